package other

import "testing"

// Same name as a failing test of the root package; it passes and is not re-run.
func TestFails(t *testing.T) {}

func TestOther(t *testing.T) {}
