package realserver

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestJournalRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "rs.state")
	j, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	first := Change{Kind: ChangeSysctl, Path: "net/ipv4/conf/all/arp_ignore", Old: "2", New: "1"}
	addr := Change{Kind: ChangeAddr, Dev: "lo", Prefix: netip.MustParsePrefix("192.0.2.10/32")}
	kept := Change{Kind: ChangeAddr, Dev: "lo", Prefix: netip.MustParsePrefix("192.0.2.11/32")}
	j.Keep(kept)
	for _, c := range []Change{first, addr, kept} {
		if err := j.Record(c); err != nil {
			t.Fatal(err)
		}
	}
	// Someone reset the sysctl and the agent set it again: the value from
	// before the agent must stay the one to restore.
	if err := j.Record(Change{Kind: ChangeSysctl, Path: first.Path, Old: "0", New: "1"}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}
	again, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Change{first, addr}, again.Changes(), cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
		t.Errorf("reread journal (-want +got):\n%s", diff)
	}
	// No temporary files are left next to it.
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the state file", len(ents))
	}
	// Forgetting everything removes the file.
	for _, c := range again.Changes() {
		if err := again.Forget(c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty journal left its file: %v", err)
	}
}

func TestJournalRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "rs.state")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if err := CheckPath(link); !errors.Is(err, ErrSymlink) {
		t.Errorf("CheckPath: %v, want ErrSymlink", err)
	}
	if _, err := OpenJournal(link); !errors.Is(err, ErrSymlink) {
		t.Errorf("OpenJournal: %v, want ErrSymlink", err)
	}
	// A link planted after opening is refused when saving.
	path := filepath.Join(dir, "later.state")
	j, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	if err := j.Record(Change{Kind: ChangeLinkUp, Dev: "lo"}); !errors.Is(err, ErrSymlink) {
		t.Errorf("Record through a symlink: %v, want ErrSymlink", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Errorf("the link's target was overwritten: %q", b)
	}
}

func TestJournalRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rs.state")
	if err := os.WriteFile(path, []byte(`{"version": 9, "changes": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenJournal(path); err == nil {
		t.Error("unknown version accepted")
	}
}

func get(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return strings.TrimSpace(string(b))
}

func TestAgentStatus(t *testing.T) {
	dir := t.TempDir()
	a := &Agent{DrainFile: filepath.Join(dir, "drain"), WeightFile: filepath.Join(dir, "weight"), Log: quiet}
	step := func(want string) {
		t.Helper()
		if got := get(t, a); got != want {
			t.Errorf("agent says %q, want %q", got, want)
		}
	}
	step("up")
	if err := os.WriteFile(a.WeightFile, []byte("50\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	step("50%")
	if err := os.WriteFile(a.WeightFile, []byte("150%"), 0o644); err != nil {
		t.Fatal(err)
	}
	step("up") // out of range: ignored
	if err := Drain(a.DrainFile); err != nil {
		t.Fatal(err)
	}
	step("drain")
	if err := Undrain(a.DrainFile); err != nil {
		t.Fatal(err)
	}
	if err := Undrain(a.DrainFile); err != nil {
		t.Errorf("second undrain: %v", err)
	}
	step("up")
	a.SetDraining(true)
	step("drain")

	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", rec.Code)
	}
}
