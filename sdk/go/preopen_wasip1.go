//go:build wasip1

package sluice

import (
	"errors"
	"syscall"
)

// isNotPreopened is how Go on wasip1 reports a path outside every preopened folder:
// EBADF (Go's runtime finds no preopen to open the path from and passes fd -1), or
// ENOTCAPABLE (the host refuses to leave a preopen, e.g. through `..` or a link).
func isNotPreopened(err error) bool {
	return errors.Is(err, syscall.EBADF) || errors.Is(err, syscall.ENOTCAPABLE)
}
