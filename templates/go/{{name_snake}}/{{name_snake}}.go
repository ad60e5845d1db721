// Package {{name_snake}} is what the `{{name}}` plugin does: find the lines matching a
// pattern in the files under `paths`, one finding per match (rule `{{name}}/match`).
//
// It uses only the Go helper (package sluice) and the standard library, not the
// generated bindings, so `go test ./{{name_snake}}/` runs it natively; the package
// export_sluice_plugin_plugin makes it the component's `plugin` export.
package {{name_snake}}

import (
	_ "embed"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"unicode/utf8"

	"sluice"
)

// Name, Version and Summary are what `describe` says of the plugin.
const (
	Name    = "{{name}}"
	Version = "0.1.0"
	Summary = "Finds the lines matching a pattern in the files under `paths`."
	// RuleID is the rule of every finding.
	RuleID = "{{name}}/match"
)

// ConfigSchema is the JSON Schema of the step's `with` table (schema.json): what
// `sluice plugin info` shows and the runner checks every pipeline against.
//
//go:embed schema.json
var ConfigSchema string

// Config is the step's `with` table.
type Config struct {
	// Paths are files or folders to scan, relative to the pipeline's folder.
	Paths []string `json:"paths"`
	// Pattern is the text to look for: a literal, not a regular expression.
	Pattern string `json:"pattern"`
}

// DefaultConfig is the configuration of a step that sets nothing.
func DefaultConfig() Config {
	return Config{Paths: []string{"."}, Pattern: "TODO"}
}

// Run is one step: read the configuration, scan, report.
func Run(step *sluice.Step) (*sluice.Report, error) {
	config := DefaultConfig()
	if err := step.DecodeConfig(&config); err != nil {
		return nil, err
	}
	if config.Pattern == "" {
		return nil, sluice.InvalidConfig("`pattern` is empty: give the text to look for")
	}
	return Scan(step, config)
}

// Scan looks for config.Pattern in the files under config.Paths. A path outside every
// grant is run-error denied, naming the grant to add.
func Scan(step *sluice.Step, config Config) (*sluice.Report, error) {
	var files []string
	for _, p := range config.Paths {
		// Stat checks p against the grants first: outside them, the error is
		// run-error denied naming the grant; inside, a missing p is failed.
		info, err := step.Stat(p)
		if err != nil {
			return nil, err
		}
		absolute := step.Resolve(p)
		if info.IsDir() {
			if err := walk(absolute, &files); err != nil {
				return nil, err
			}
		} else {
			files = append(files, absolute)
		}
	}
	var findings []*sluice.Finding
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, sluice.Fail("cannot read %s: %v", file, unwrapPathError(err))
		}
		shown := step.Relative(file)
		for _, m := range Matches(data, config.Pattern) {
			findings = append(findings,
				sluice.NewFinding(RuleID, sluice.SeverityInfo, fmt.Sprintf("`%s` found", config.Pattern)).
					At(shown, m.Line, m.Column))
		}
	}
	inFiles := plural(len(files), "file", "files")
	var report *sluice.Report
	if len(findings) == 0 {
		report = sluice.Passed(fmt.Sprintf("no `%s` in %s", config.Pattern, inFiles))
	} else {
		report = sluice.Warned(fmt.Sprintf("%s of `%s` in %s", plural(len(findings), "match", "matches"), config.Pattern, inFiles))
	}
	return report.WithFinding(findings...).WithOutput("matches", len(findings)), nil
}

// walk adds every file under folder, entries in byte order of their names, skipping
// names that start with `.`.
func walk(folder string, files *[]string) error {
	entries, err := os.ReadDir(folder)
	if err != nil {
		return sluice.Fail("cannot list %s: %v", folder, unwrapPathError(err))
	}
	var names []string
	for _, entry := range entries {
		if !strings.HasPrefix(entry.Name(), ".") {
			names = append(names, entry.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		child := path.Join(folder, name)
		if info, err := os.Stat(child); err == nil && info.IsDir() {
			if err := walk(child, files); err != nil {
				return err
			}
		} else {
			*files = append(*files, child)
		}
	}
	return nil
}

// Match is where the pattern occurs: 1-based line and column, the column in
// characters.
type Match struct {
	Line, Column uint32
}

// Matches are every non-overlapping occurrence of pattern in a file's contents. Lines
// end at `\n`; a trailing `\r` is not part of the line; invalid UTF-8 counts as U+FFFD
// (sluice.SplitLines reads lines as the fingerprint does).
func Matches(data []byte, pattern string) []Match {
	var found []Match
	for index, line := range sluice.SplitLines(data) {
		offset := 0
		for {
			at := strings.Index(line[offset:], pattern)
			if at < 0 {
				break
			}
			at += offset
			found = append(found, Match{uint32(index + 1), uint32(utf8.RuneCountInString(line[:at]) + 1)})
			offset = at + len(pattern)
		}
	}
	return found
}

// unwrapPathError is the reason of a failed file operation without the path Go puts
// in front of it (the message names the path the way the user wrote it).
func unwrapPathError(err error) error {
	if pathErr, ok := err.(*os.PathError); ok {
		return pathErr.Err
	}
	return err
}

func plural(count int, one, many string) string {
	if count == 1 {
		return fmt.Sprintf("%d %s", count, one)
	}
	return fmt.Sprintf("%d %s", count, many)
}
