package sluice

import (
	"errors"
	"fmt"
)

// ErrorKind is the kind of a RunError, as in the contract's `run-error` variant.
type ErrorKind int

const (
	// KindInvalidConfig: the configuration made no sense, even though it matched the schema.
	KindInvalidConfig ErrorKind = iota
	// KindDenied: the step needed access it was not granted; the message names the grant.
	KindDenied
	// KindFailed: anything else.
	KindFailed
)

// String is the contract's name of the kind.
func (k ErrorKind) String() string {
	switch k {
	case KindInvalidConfig:
		return "invalid-config"
	case KindDenied:
		return "denied"
	case KindFailed:
		return "failed"
	}
	return fmt.Sprintf("ErrorKind(%d)", int(k))
}

// RunError is why a step could not produce a report. Return one (or any error: it
// becomes KindFailed, and an *AccessError KindDenied when a grant is missing) from the
// function given to Run.
type RunError struct {
	Kind    ErrorKind
	Message string
}

func (e *RunError) Error() string { return e.Kind.String() + ": " + e.Message }

// InvalidConfig is a RunError for a `with` table that makes no sense; name the key.
func InvalidConfig(format string, args ...any) error {
	return &RunError{KindInvalidConfig, fmt.Sprintf(format, args...)}
}

// Denied is a RunError for access the step was not granted; name the grant to add.
func Denied(format string, args ...any) error {
	return &RunError{KindDenied, fmt.Sprintf(format, args...)}
}

// Fail is a RunError for anything else.
func Fail(format string, args ...any) error {
	return &RunError{KindFailed, fmt.Sprintf(format, args...)}
}

// AsRunError maps any error to the RunError the host is given: a *RunError in its
// chain as it is, an *AccessError as KindDenied when a grant is missing, anything
// else as KindFailed with its text. nil stays nil.
func AsRunError(err error) *RunError {
	if err == nil {
		return nil
	}
	var run *RunError
	if errors.As(err, &run) {
		return run
	}
	var access *AccessError
	if errors.As(err, &access) && access.MissingGrant {
		return &RunError{KindDenied, err.Error()}
	}
	return &RunError{KindFailed, err.Error()}
}
