package sluice

import (
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"strings"
	"testing"
)

// The contract's test vectors (crates/fingerprint/tests/vectors.json, copied here): the
// Go helper must give every finding the fingerprint the host and the other SDKs give.
type vectors struct {
	Hashes []struct {
		Parts []string `json:"parts"`
		Hash  string   `json:"hash"`
	} `json:"hashes"`
	Normalize []struct {
		Line       string `json:"line"`
		Normalized string `json:"normalized"`
	} `json:"normalize"`
	Cases []struct {
		Name  string `json:"name"`
		Files map[string]struct {
			Text *string `json:"text"`
			Hex  *string `json:"hex"`
		} `json:"files"`
		Findings []struct {
			RuleID  string  `json:"rule_id"`
			Message string  `json:"message"`
			Path    *string `json:"path"`
			Line    uint32  `json:"line"`
			Column  uint32  `json:"column"`
		} `json:"findings"`
		Fingerprints []string `json:"fingerprints"`
	} `json:"cases"`
}

func loadVectors(t *testing.T) vectors {
	t.Helper()
	data, err := os.ReadFile("testdata/fingerprint-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Hashes) == 0 || len(v.Normalize) == 0 || len(v.Cases) == 0 {
		t.Fatal("testdata/fingerprint-vectors.json has no vectors")
	}
	return v
}

func TestFingerprintHashesMatchTheContractVectors(t *testing.T) {
	for _, vector := range loadVectors(t).Hashes {
		if got := FNV1a(vector.Parts...); got != vector.Hash {
			t.Errorf("FNV1a(%q) = %s, want %s", vector.Parts, got, vector.Hash)
		}
	}
}

func TestFingerprintLinesLoseExactlyTheWhiteSpaceCharacters(t *testing.T) {
	for _, vector := range loadVectors(t).Normalize {
		if got := NormalizeLine(vector.Line); got != vector.Normalized {
			t.Errorf("NormalizeLine(%q) = %q, want %q", vector.Line, got, vector.Normalized)
		}
	}
}

func TestFingerprintsMatchTheContractVectors(t *testing.T) {
	for _, c := range loadVectors(t).Cases {
		t.Run(c.Name, func(t *testing.T) {
			files := map[string][]byte{}
			for name, file := range c.Files {
				switch {
				case file.Text != nil:
					files["/work/"+name] = []byte(*file.Text)
				case file.Hex != nil:
					bytes, err := hex.DecodeString(*file.Hex)
					if err != nil {
						t.Fatal(err)
					}
					files["/work/"+name] = bytes
				}
			}
			read := func(path string) ([]byte, error) {
				if data, ok := files[path]; ok {
					return data, nil
				}
				return nil, fs.ErrNotExist
			}
			var findings []*Finding
			for _, f := range c.Findings {
				finding := NewFinding(f.RuleID, SeverityLow, f.Message)
				if f.Path != nil {
					finding.At(*f.Path, f.Line, f.Column)
				}
				findings = append(findings, finding)
			}
			AssignFingerprints(findings, "/work", read)
			for i, finding := range findings {
				if finding.Fingerprint != c.Fingerprints[i] {
					t.Errorf("finding %d: %s, want %s", i, finding.Fingerprint, c.Fingerprints[i])
				}
			}
		})
	}
}

func TestFingerprintsSetByThePluginAreKept(t *testing.T) {
	findings := []*Finding{
		NewFinding("r", SeverityLow, "m").WithFingerprint("scanner-1"),
		NewFinding("r", SeverityLow, "m"),
	}
	AssignFingerprints(findings, "/nowhere", nil)
	if findings[0].Fingerprint != "scanner-1" {
		t.Errorf("kept %q", findings[0].Fingerprint)
	}
	if want := MessageHash("r", "", "m") + ":1"; findings[1].Fingerprint != want {
		t.Errorf("got %q, want %q", findings[1].Fingerprint, want)
	}
}

func TestFingerprintsOfFilesOverTheBoundUseTheMessage(t *testing.T) {
	big := []byte(strings.Repeat("x", MaxSourceBytes) + "\n")
	findings := []*Finding{NewFinding("r", SeverityLow, "m").At("big.txt", 1, 1)}
	AssignFingerprints(findings, "/w", func(string) ([]byte, error) { return big, nil })
	if want := MessageHash("r", "big.txt", "m") + ":1"; findings[0].Fingerprint != want {
		t.Errorf("got %q, want %q", findings[0].Fingerprint, want)
	}
}

func TestInvalidUTF8BecomesOneReplacementPerMaximalSubpart(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"a\xffb", "a\uFFFDb"},
		{"\xff\xff", "\uFFFD\uFFFD"},
		{"\xe2\x82", "\uFFFD"},
		{"\xe2\x82a", "\uFFFDa"},
		{"\xf0\x9f\x98", "\uFFFD"},
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"},
		{"\xc0\xaf", "\uFFFD\uFFFD"},
		{"\xf4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
		{"é✓", "é✓"},
	} {
		if got := lossyUTF8([]byte(c.in)); got != c.want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
