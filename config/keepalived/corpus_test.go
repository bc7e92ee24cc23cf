package keepalived

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golvs/golvs/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// corpus lists the top-level keepalived files of testdata (the files in
// testdata/include are reached through them).
func corpus(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/*.conf")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	return files
}

// TestCorpusGolden converts every corpus file and compares the topology
// and the notes with testdata/NAME.toml and NAME.notes (go test -update
// rewrites them). The topology must pass config's loader.
func TestCorpusGolden(t *testing.T) {
	for _, file := range corpus(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			nodes, warnings, err := Read(file)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Convert(file, nodes)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := config.Parse(file+".toml", []byte(res.TOML)); err != nil {
				t.Fatalf("config rejects the converted topology: %v", err)
			}
			var notes strings.Builder
			for _, w := range warnings {
				notes.WriteString(w.Pos.String() + ": warning: " + w.Msg + "\n")
			}
			for _, n := range res.Notes {
				notes.WriteString(n.String() + "\n")
			}
			base := strings.TrimSuffix(file, ".conf")
			golden(t, base+".toml", res.TOML)
			golden(t, base+".notes", notes.String())
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the conversion (go test -update rewrites it):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}
