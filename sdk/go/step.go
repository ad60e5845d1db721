package sluice

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime/debug"
	"sort"
	"strings"
)

// Grants is what the step was granted, as the `grants` import of the contract reports
// it: absolute, canonical folders for Read and Write (each one a preopen at the same
// path inside the sandbox), and the names of everything else.
type Grants struct {
	Read, Write, Exec, Net, Env, Secrets, Targets []string
}

// Input is what the host tells a step (the fields of the contract's `step-input` that
// the helper uses; the generated bindings have them all).
type Input struct {
	RunID, Pipeline, Stage, Step string
	// Config is the step's `with` table as JSON text, already checked against the
	// plugin's schema.
	Config string
	// Workdir is the pipeline's folder: relative paths are relative to it.
	Workdir string
	Attempt uint32
}

// Step is one run of the plugin: its input and grants, with the file helpers that
// resolve paths against the workdir and say which grant is missing.
type Step struct {
	Input
	// Grants is nil when they are not known (natively, in unit tests): then every path
	// counts as granted and only the operating system's errors say otherwise.
	Grants *Grants
}

// panicLog is where a recovered panic's message and stack go: stderr, the step log.
var panicLog io.Writer = os.Stderr

// Run runs a step: fn's report, with the fingerprints it left empty computed, or the
// RunError its error maps to (see AsRunError). A panic in fn is recovered: its message
// and stack go to stderr (the step log) and the step fails with `panic: <message>`.
func Run(input Input, grants *Grants, fn func(*Step) (*Report, error)) (report *Report, runErr *RunError) {
	step := &Step{Input: input, Grants: grants}
	defer func() {
		if recovered := recover(); recovered != nil {
			message := fmt.Sprintf("panic: %v", recovered)
			fmt.Fprintf(panicLog, "%s\n\n%s", message, debug.Stack())
			report, runErr = nil, &RunError{KindFailed, message}
		}
	}()
	report, err := fn(step)
	if err != nil {
		return nil, AsRunError(err)
	}
	if report == nil {
		return nil, &RunError{KindFailed, "the plugin returned neither a report nor an error (a bug in the plugin)"}
	}
	AssignFingerprints(report.Findings, step.Workdir, step.readGranted)
	return report, nil
}

// DecodeConfig decodes the `with` table into v (a pointer to a struct with json
// tags), refusing keys v does not have. Its errors are KindInvalidConfig and name the
// key at fault.
func (s *Step) DecodeConfig(v any) error {
	text := s.Config
	if strings.TrimSpace(text) == "" {
		text = "{}"
	}
	decoder := json.NewDecoder(bytes.NewReader([]byte(text)))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return InvalidConfig("`%s` must be %s, not %s", typeErr.Field, typeErr.Type.String(), typeErr.Value)
		}
		if key, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return InvalidConfig("unknown key %s in the `with` table", key)
		}
		return InvalidConfig("the `with` table is not valid: %v", err)
	}
	return nil
}

// Resolve is the absolute path that path (relative to the pipeline's folder, unless
// absolute) names, with `.` and `..` resolved lexically. Resolve relative paths
// yourself or with this: WASI has no working directory, and Go on wasip1 resolves
// them against the first preopened folder.
func (s *Step) Resolve(p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join(s.Workdir, p)
}

// Relative is how a path under the workdir is shown in reports: relative to the
// pipeline's folder, with `/`; a path outside it stays absolute.
func (s *Step) Relative(p string) string {
	abs := s.Resolve(p)
	workdir := path.Clean(s.Workdir)
	if abs == workdir {
		return "."
	}
	if rest, ok := strings.CutPrefix(abs, strings.TrimSuffix(workdir, "/")+"/"); ok {
		return rest
	}
	return abs
}

// Covered says whether a grant of kind access covers the absolute path p: a write
// grant covers reads too. Without known grants everything is covered.
func (s *Step) Covered(p string, access Access) bool {
	if s.Grants == nil {
		return true
	}
	folders := s.Grants.Write
	if access == AccessRead {
		folders = append(append([]string{}, s.Grants.Read...), s.Grants.Write...)
	}
	for _, folder := range folders {
		folder = path.Clean(folder)
		if p == folder || folder == "/" || strings.HasPrefix(p, folder+"/") {
			return true
		}
	}
	return false
}

// ReadFile reads a whole file (relative to the workdir). Its error is an *AccessError
// that names the missing grant when one is the reason.
func (s *Step) ReadFile(p string) ([]byte, error) {
	abs := s.Resolve(p)
	if !s.Covered(abs, AccessRead) {
		return nil, s.accessError(p, AccessRead, fs.ErrPermission)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, s.accessError(p, AccessRead, err)
	}
	return data, nil
}

// WriteFile creates or replaces a file (relative to the workdir) inside a write grant.
func (s *Step) WriteFile(p string, data []byte) error {
	abs := s.Resolve(p)
	if !s.Covered(abs, AccessWrite) {
		return s.accessError(p, AccessWrite, fs.ErrPermission)
	}
	if err := os.WriteFile(abs, data, 0o644); err != nil {
		return s.accessError(p, AccessWrite, err)
	}
	return nil
}

// Stat is os.Stat of a path relative to the workdir, with grant-aware errors.
func (s *Step) Stat(p string) (fs.FileInfo, error) {
	abs := s.Resolve(p)
	if !s.Covered(abs, AccessRead) {
		return nil, s.accessError(p, AccessRead, fs.ErrPermission)
	}
	info, err := os.Stat(abs)
	if err != nil {
		return nil, s.accessError(p, AccessRead, err)
	}
	return info, nil
}

// Files lists the files at or under p (relative to the workdir): p itself when it is
// a file, else every regular file below it in name order, skipping folders for which
// skipDir returns true (nil: none). Paths come back as given, joined with `/`.
func (s *Step) Files(p string, skipDir func(name string) bool) ([]string, error) {
	info, err := s.Stat(p)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{p}, nil
	}
	var files []string
	var walk func(dir string) error
	walk = func(dir string) error {
		entries, err := os.ReadDir(s.Resolve(dir))
		if err != nil {
			return s.accessError(dir, AccessRead, err)
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
		for _, entry := range entries {
			child := path.Join(dir, entry.Name())
			switch {
			case entry.IsDir():
				if skipDir != nil && skipDir(entry.Name()) {
					continue
				}
				if err := walk(child); err != nil {
					return err
				}
			case entry.Type().IsRegular():
				files = append(files, child)
			}
		}
		return nil
	}
	if err := walk(p); err != nil {
		return nil, err
	}
	return files, nil
}

// readGranted reads a file for the fingerprint, only inside the grants.
func (s *Step) readGranted(abs string) ([]byte, error) {
	if !s.Covered(path.Clean(abs), AccessRead) {
		return nil, fs.ErrPermission
	}
	return os.ReadFile(abs)
}

func (s *Step) accessError(p string, access Access, err error) *AccessError {
	abs := s.Resolve(p)
	missing := !s.Covered(abs, access) || isNotPreopened(err)
	return &AccessError{Path: p, Shown: s.Relative(p), Absolute: abs, Access: access, MissingGrant: missing, Err: err}
}

// Access is what a step tried to do with a path; each needs its own kind of grant.
type Access int

const (
	// AccessRead needs a `read` grant (or a `write` one).
	AccessRead Access = iota
	// AccessWrite needs a `write` grant.
	AccessWrite
)

func (a Access) String() string {
	if a == AccessWrite {
		return "write"
	}
	return "read"
}

// AccessError is a file operation that failed, saying whether a missing grant is the
// reason; AsRunError makes it KindDenied then. Its message is the one every Sluice
// helper gives: "cannot read `src`: the step has no read grant covering it; add
// `read = ["src"]` to the step's grants".
type AccessError struct {
	// Path as the plugin gave it, Shown relative to the pipeline's folder (as
	// messages show it), and Absolute as resolved against it.
	Path, Shown, Absolute string
	Access                Access
	MissingGrant          bool
	Err                   error
}

func (e *AccessError) Error() string {
	shown := e.Shown
	if shown == "" {
		shown = e.Path
	}
	if e.MissingGrant {
		return fmt.Sprintf("cannot %s `%s`: the step has no %s grant covering it; add `%s = [%q]` to the step's grants",
			e.Access, shown, e.Access, e.Access, shown)
	}
	if errors.Is(e.Err, fs.ErrNotExist) {
		return fmt.Sprintf("cannot %s `%s`: no such file or folder", e.Access, shown)
	}
	reason := e.Err.Error()
	var pathErr *fs.PathError
	if errors.As(e.Err, &pathErr) {
		reason = pathErr.Err.Error()
	}
	return fmt.Sprintf("cannot %s `%s`: %s", e.Access, shown, reason)
}

func (e *AccessError) Unwrap() error { return e.Err }
