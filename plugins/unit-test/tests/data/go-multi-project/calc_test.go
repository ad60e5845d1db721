package godemo

import (
	"os"
	"path/filepath"
	"testing"
)

func TestAdd(t *testing.T) {
	if Add(2, 2) != 4 {
		t.Fatal("broken")
	}
}

func TestFails(t *testing.T) {
	t.Log("about to compare")
	if got := Add(2, 2); got != 5 {
		t.Errorf("Add(2, 2) = %d, want 5", got)
	}
}

func TestTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		sum  int
	}{{"one", 2}, {"two", 5}, {"with space", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			if Add(1, 1) != tc.sum {
				t.Errorf("Add(1, 1) != %d", tc.sum)
			}
		})
	}
}

func TestFlakyOnce(t *testing.T) {
	marker := filepath.Join(os.TempDir(), "sluice-go-multi-flaky-marker")
	if _, err := os.Stat(marker); err != nil {
		os.WriteFile(marker, []byte("ran"), 0o644)
		t.Fatal("first run fails")
	}
}
