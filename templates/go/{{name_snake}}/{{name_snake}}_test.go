package {{name_snake}}

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"sluice"
)

// scratch is a fresh folder with files (relative path -> text).
func scratch(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func run(t *testing.T, dir, config string, grants *sluice.Grants) (*sluice.Report, *sluice.RunError) {
	t.Helper()
	return sluice.Run(sluice.Input{Workdir: dir, Config: config}, grants, Run)
}

func TestMatchesGiveLinesAndCharacterColumns(t *testing.T) {
	got := Matches([]byte("a TODO\r\nTODO TODO\né TODO\n"), "TODO")
	want := []Match{{1, 3}, {2, 1}, {2, 6}, {3, 3}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestAFolderIsScannedInNameOrderWithoutHiddenEntries(t *testing.T) {
	dir := scratch(t, map[string]string{
		"src/b.txt":         "TODO b\n",
		"src/a.txt":         "x\n// TODO a\n",
		"src/.hidden/c.txt": "TODO hidden\n",
		"src/.d.txt":        "TODO hidden\n",
	})
	report, err := run(t, dir, `{"paths": ["src"], "pattern": "TODO"}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	var places []sluice.Location
	for _, finding := range report.Findings {
		if finding.RuleID != RuleID {
			t.Errorf("rule %s", finding.RuleID)
		}
		places = append(places, *finding.Location)
	}
	want := []sluice.Location{{Path: "src/a.txt", Line: 2, Column: 4}, {Path: "src/b.txt", Line: 1, Column: 1}}
	if !reflect.DeepEqual(places, want) {
		t.Errorf("got %v, want %v", places, want)
	}
	if report.Status != sluice.StatusWarned || report.Summary != "2 matches of `TODO` in 2 files" {
		t.Errorf("got %v %q", report.Status, report.Summary)
	}
	if !reflect.DeepEqual(report.Outputs, []sluice.Output{{Name: "matches", Value: "2"}}) {
		t.Errorf("outputs %v", report.Outputs)
	}
	// sluice.Run gave every finding the contract's fingerprint.
	if want := sluice.LineHash(RuleID, "src/a.txt", "// TODO a") + ":1"; report.Findings[0].Fingerprint != want {
		t.Errorf("fingerprint %s, want %s", report.Findings[0].Fingerprint, want)
	}
}

func TestNoMatchPasses(t *testing.T) {
	dir := scratch(t, map[string]string{"notes.md": "nothing to do\n"})
	report, err := run(t, dir, `{}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if report.Status != sluice.StatusPassed || report.Summary != "no `TODO` in 1 file" {
		t.Errorf("got %v %q", report.Status, report.Summary)
	}
}

func TestAPathOutsideEveryGrantIsDeniedNamingTheGrant(t *testing.T) {
	dir := scratch(t, map[string]string{"granted/a.txt": "TODO\n", "elsewhere/b.txt": "TODO\n"})
	_, err := run(t, dir, `{"paths": ["elsewhere"]}`, &sluice.Grants{Read: []string{filepath.Join(dir, "granted")}})
	want := &sluice.RunError{Kind: sluice.KindDenied, Message: "cannot read `elsewhere`: the step has no read grant covering it; add `read = [\"elsewhere\"]` to the step's grants"}
	if !reflect.DeepEqual(err, want) {
		t.Errorf("got %#v", err)
	}
}

func TestAMissingPathInsideAGrantFails(t *testing.T) {
	dir := scratch(t, nil)
	_, err := run(t, dir, `{"paths": ["nowhere"]}`, &sluice.Grants{Read: []string{dir}})
	want := &sluice.RunError{Kind: sluice.KindFailed, Message: "cannot read `nowhere`: no such file or folder"}
	if !reflect.DeepEqual(err, want) {
		t.Errorf("got %#v", err)
	}
}

func TestAnEmptyPatternIsInvalidConfig(t *testing.T) {
	_, err := run(t, scratch(t, nil), `{"pattern": ""}`, nil)
	if err == nil || err.Kind != sluice.KindInvalidConfig {
		t.Errorf("got %#v", err)
	}
}

func TestTheSchemaClosesTheConfigAndHasAnExample(t *testing.T) {
	var schema struct {
		AdditionalProperties *bool            `json:"additionalProperties"`
		Examples             []map[string]any `json:"examples"`
	}
	if err := json.Unmarshal([]byte(ConfigSchema), &schema); err != nil {
		t.Fatal(err)
	}
	if schema.AdditionalProperties == nil || *schema.AdditionalProperties {
		t.Error("additionalProperties is not false")
	}
	if len(schema.Examples) == 0 || schema.Examples[0]["pattern"] != "TODO" {
		t.Errorf("examples %v", schema.Examples)
	}
}
