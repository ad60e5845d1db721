//go:build !wasip1

package sluice

// isNotPreopened: natively (unit tests) there are no preopens, so no error means that.
func isNotPreopened(error) bool { return false }
