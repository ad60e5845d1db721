package sluice

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunMapsAPanicToAFailedStepWithItsMessage(t *testing.T) {
	var logged strings.Builder
	panicLog = &logged
	defer func() { panicLog = os.Stderr }()
	report, err := Run(Input{Workdir: t.TempDir()}, nil, func(*Step) (*Report, error) {
		panic("boom")
	})
	if report != nil || err == nil || err.Kind != KindFailed || err.Message != "panic: boom" {
		t.Fatalf("got %v, %#v", report, err)
	}
	if !strings.HasPrefix(logged.String(), "panic: boom\n\ngoroutine ") {
		t.Errorf("the step log got %q", logged.String())
	}
}

func TestRunMapsErrorsToRunErrorKinds(t *testing.T) {
	cases := []struct {
		err  error
		kind ErrorKind
		text string
	}{
		{InvalidConfig("`pattern` is empty"), KindInvalidConfig, "`pattern` is empty"},
		{Denied("add read"), KindDenied, "add read"},
		{errors.New("disk on fire"), KindFailed, "disk on fire"},
		{&AccessError{Path: "./x", Shown: "x", Absolute: "/w/x", MissingGrant: true, Err: os.ErrPermission}, KindDenied,
			"cannot read `x`: the step has no read grant covering it; add `read = [\"x\"]` to the step's grants"},
	}
	for _, c := range cases {
		_, err := Run(Input{}, nil, func(*Step) (*Report, error) { return nil, c.err })
		if err == nil || err.Kind != c.kind || err.Message != c.text {
			t.Errorf("%v: got %#v", c.err, err)
		}
	}
}

func TestRunComputesTheFingerprintsLeftEmpty(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("x\n  TODO: y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	report, err := Run(Input{Workdir: dir}, &Grants{Read: []string{dir}}, func(*Step) (*Report, error) {
		return Warned("1").WithFinding(NewFinding("r", SeverityInfo, "m").At("a.txt", 2, 3)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := LineHash("r", "a.txt", "TODO: y") + ":1"; report.Findings[0].Fingerprint != want {
		t.Errorf("got %s, want %s", report.Findings[0].Fingerprint, want)
	}
}

func TestReadingOutsideTheGrantsIsDeniedNamingTheGrant(t *testing.T) {
	dir := t.TempDir()
	step := &Step{Input: Input{Workdir: dir}, Grants: &Grants{Read: []string{filepath.Join(dir, "src")}}}
	_, err := step.ReadFile("secrets/key.txt")
	run := AsRunError(err)
	if run == nil || run.Kind != KindDenied || run.Message != "cannot read `secrets/key.txt`: the step has no read grant covering it; add `read = [\"secrets/key.txt\"]` to the step's grants" {
		t.Fatalf("got %#v", run)
	}
	// A sibling whose name starts like a granted folder is not inside it.
	if step.Covered(filepath.Join(dir, "src-old/a"), AccessRead) {
		t.Error("src-old was taken as inside src")
	}
	if !step.Covered(filepath.Join(dir, "src/a/../b"), AccessRead) {
		t.Error("src/b was not taken as inside src")
	}
}

func TestAMissingFileInsideAGrantFailsWithoutBlamingGrants(t *testing.T) {
	dir := t.TempDir()
	step := &Step{Input: Input{Workdir: dir}, Grants: &Grants{Read: []string{dir}}}
	_, err := step.ReadFile("nowhere.txt")
	run := AsRunError(err)
	if run.Kind != KindFailed || run.Message != "cannot read `nowhere.txt`: no such file or folder" {
		t.Fatalf("got %#v", run)
	}
}

func TestWritingNeedsAWriteGrant(t *testing.T) {
	dir := t.TempDir()
	step := &Step{Input: Input{Workdir: dir}, Grants: &Grants{Read: []string{dir}}}
	if run := AsRunError(step.WriteFile("out.txt", nil)); run == nil || run.Kind != KindDenied {
		t.Fatalf("got %#v", run)
	}
	step.Grants.Write = []string{dir}
	if err := step.WriteFile("out.txt", []byte("x")); err != nil {
		t.Fatal(err)
	}
}

func TestPathsResolveAgainstTheWorkdir(t *testing.T) {
	step := &Step{Input: Input{Workdir: "/p/pipe"}}
	for in, want := range map[string]string{
		"src/a.go":    "/p/pipe/src/a.go",
		"./src/../b":  "/p/pipe/b",
		"../out/x":    "/p/out/x",
		"/etc/passwd": "/etc/passwd",
		".":           "/p/pipe",
	} {
		if got := step.Resolve(in); got != want {
			t.Errorf("Resolve(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"./src/a.go": "src/a.go", ".": ".", "../x": "/p/x"} {
		if got := step.Relative(in); got != want {
			t.Errorf("Relative(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFilesListsInNameOrderAndSkipsWhatIsAskedTo(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"b.txt", "a/z.txt", ".git/x", "a/.h"} {
		path := filepath.Join(dir, name)
		_ = os.MkdirAll(filepath.Dir(path), 0o755)
		_ = os.WriteFile(path, nil, 0o644)
	}
	step := &Step{Input: Input{Workdir: dir}}
	files, err := step.Files(".", func(name string) bool { return strings.HasPrefix(name, ".") })
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(files, " "); got != "a/.h a/z.txt b.txt" {
		t.Errorf("got %s", got)
	}
}

func TestConfigWithAnUnknownKeyIsInvalidNamingTheKey(t *testing.T) {
	var config struct {
		Pattern string `json:"pattern"`
	}
	step := &Step{Input: Input{Config: `{"patern": "x"}`}}
	run := AsRunError(step.DecodeConfig(&config))
	if run == nil || run.Kind != KindInvalidConfig || !strings.Contains(run.Message, `"patern"`) {
		t.Fatalf("got %#v", run)
	}
	step.Config = `{"pattern": 3}`
	run = AsRunError(step.DecodeConfig(&config))
	if run == nil || run.Kind != KindInvalidConfig || !strings.Contains(run.Message, "`pattern` must be string") {
		t.Fatalf("got %#v", run)
	}
}
