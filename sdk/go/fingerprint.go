package sluice

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The fingerprint algorithm of the contract (wit/plugin.wit, `finding.fingerprint`),
// the same in every SDK and in the host, so that one finding has one identity whatever
// the plugin's language:
//
//   - a fingerprint is `<hash>:<occurrence>`;
//   - hash is 64-bit FNV-1a over parts joined by one 0xff byte, as 16 hex digits;
//   - with a readable line (a file of at most 64 MiB), the parts are "line", the rule
//     id, the path and the line's text without White_Space characters; otherwise
//     "message", the rule id, the path (empty without a location) and the message;
//   - occurrence counts from 1 among the findings sharing a hash, in (line, column)
//     order, ties kept in report order.

const (
	fnvOffsetBasis uint64 = 0xcbf29ce484222325
	fnvPrime       uint64 = 0x100000001b3
	// MaxSourceBytes: a larger file counts as unreadable (the message is hashed).
	MaxSourceBytes = 64 << 20
)

// FNV1a is 64-bit FNV-1a of parts joined by a 0xff byte (a byte UTF-8 text never
// contains, so ("ab", "c") and ("a", "bc") differ), as 16 lowercase hex digits.
func FNV1a(parts ...string) string {
	hash := fnvOffsetBasis
	for index, part := range parts {
		if index > 0 {
			hash ^= 0xff
			hash *= fnvPrime
		}
		for i := 0; i < len(part); i++ {
			hash ^= uint64(part[i])
			hash *= fnvPrime
		}
	}
	return fmt.Sprintf("%016x", hash)
}

// NormalizeLine removes every Unicode whitespace character (the White_Space
// property), so that re-indenting a line keeps its fingerprint.
func NormalizeLine(line string) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.White_Space, r) {
			return -1
		}
		return r
	}, line)
}

// LineHash is the hash part of the fingerprint of a finding of ruleID in path whose
// line reads text.
func LineHash(ruleID, path, text string) string {
	return FNV1a("line", ruleID, path, NormalizeLine(text))
}

// MessageHash is the hash part when the finding's line cannot be had: path is empty
// for a finding without a location.
func MessageHash(ruleID, path, message string) string {
	return FNV1a("message", ruleID, path, message)
}

// SplitLines splits file contents the way the fingerprint reads them: invalid UTF-8
// replaced by U+FFFD (one per maximal invalid subsequence, as Rust's
// `String::from_utf8_lossy` does), split at '\n', a trailing '\r' dropped from each line.
func SplitLines(data []byte) []string {
	lines := strings.Split(lossyUTF8(data), "\n")
	for i, line := range lines {
		lines[i] = strings.TrimSuffix(line, "\r")
	}
	return lines
}

// lossyUTF8 is data as text with each maximal invalid subsequence (Unicode's "maximal
// subpart" rule) replaced by one U+FFFD. Go's own conversions replace each invalid byte
// (range) or each run (strings.ToValidUTF8), which would hash differently from the host.
func lossyUTF8(data []byte) string {
	if utf8.Valid(data) {
		return string(data)
	}
	var out strings.Builder
	out.Grow(len(data))
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if r != utf8.RuneError || size > 1 {
			out.Write(data[:size])
			data = data[size:]
			continue
		}
		out.WriteRune(utf8.RuneError)
		data = data[maximalSubpart(data):]
	}
	return out.String()
}

// maximalSubpart is the length of the invalid sequence at the start of data: its lead
// byte and the continuation bytes that could still have completed it.
func maximalSubpart(data []byte) int {
	lead := data[0]
	var need int
	low, high := byte(0x80), byte(0xbf)
	switch {
	case lead >= 0xc2 && lead <= 0xdf:
		need = 1
	case lead == 0xe0:
		need, low = 2, 0xa0
	case lead >= 0xe1 && lead <= 0xec, lead == 0xee, lead == 0xef:
		need = 2
	case lead == 0xed:
		need, high = 2, 0x9f
	case lead == 0xf0:
		need, low = 3, 0x90
	case lead >= 0xf1 && lead <= 0xf3:
		need = 3
	case lead == 0xf4:
		need, high = 3, 0x8f
	default:
		return 1
	}
	length := 1
	for length <= need && length < len(data) {
		b := data[length]
		if b < low || b > high {
			break
		}
		low, high = 0x80, 0xbf
		length++
	}
	return length
}

// AssignFingerprints gives every finding whose Fingerprint is empty its automatic
// fingerprint. Relative paths are read from workdir; each file is read at most once
// through readFile (nil: os.ReadFile), and a file that cannot be read falls back to
// the message.
func AssignFingerprints(findings []*Finding, workdir string, readFile func(string) ([]byte, error)) {
	if readFile == nil {
		readFile = os.ReadFile
	}
	files := map[string][]string{}
	unreadable := map[string]bool{}
	lineOf := func(path string, line uint32) (string, bool) {
		if unreadable[path] {
			return "", false
		}
		lines, ok := files[path]
		if !ok {
			full := path
			if !filepath.IsAbs(full) {
				full = filepath.Join(workdir, path)
			}
			data, err := readFile(full)
			if err != nil || len(data) > MaxSourceBytes {
				unreadable[path] = true
				return "", false
			}
			lines = SplitLines(data)
			files[path] = lines
		}
		if int(line) > len(lines) {
			return "", false
		}
		return lines[line-1], true
	}
	type pending struct {
		index        int
		hash         string
		line, column uint32
	}
	var todo []pending
	for index, finding := range findings {
		if finding.Fingerprint != "" {
			continue
		}
		var hash string
		var line, column uint32
		path := ""
		if location := finding.Location; location != nil {
			path = location.Path
			line, column = location.Line, location.Column
			if location.Path != "" && location.Line >= 1 {
				if text, ok := lineOf(location.Path, location.Line); ok {
					hash = LineHash(finding.RuleID, location.Path, text)
				}
			}
		}
		if hash == "" {
			hash = MessageHash(finding.RuleID, path, finding.Message)
		}
		todo = append(todo, pending{index, hash, line, column})
	}
	sort.SliceStable(todo, func(i, j int) bool {
		if todo[i].line != todo[j].line {
			return todo[i].line < todo[j].line
		}
		return todo[i].column < todo[j].column
	})
	occurrences := map[string]int{}
	for _, p := range todo {
		occurrences[p.hash]++
		findings[p.index].Fingerprint = fmt.Sprintf("%s:%d", p.hash, occurrences[p.hash])
	}
}
