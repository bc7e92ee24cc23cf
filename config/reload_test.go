package config

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func reloadBase(n int) string {
	var b strings.Builder
	b.WriteString("[director]\ninterface = \"eth0\"\n")
	for i := range n {
		fmt.Fprintf(&b, "\n[[service]]\nname = \"s%d\"\naddress = \"192.0.2.1\"\nport = %d\nforwarding = \"dr\"\n", i, 1000+i)
		b.WriteString("[service.check]\ntype = \"tcp\"\n")
		for j := range 2 {
			fmt.Fprintf(&b, "[[service.backend]]\naddress = \"10.0.0.%d\"\nweight = 1\n", j+1)
		}
	}
	return b.String()
}

// reloadVsLoad reloads after writing next over prev's file and checks
// that the result (or error) is exactly what a fresh Load gives.
func reloadVsLoad(t *testing.T, path string, prev *Topology, next string) (*Topology, error) {
	t.Helper()
	if err := os.WriteFile(path, []byte(next), 0o644); err != nil {
		t.Fatal(err)
	}
	got, gotErr := Reload(path, prev)
	want, wantErr := Load(path)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
		t.Fatalf("Reload error %v, Load error %v", gotErr, wantErr)
	}
	if diff := cmp.Diff(want, got, addrs); diff != "" {
		t.Fatalf("Reload differs from Load (-load +reload):\n%s", diff)
	}
	return got, gotErr
}

func TestReloadDecodesOnlyChangedServices(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.toml")
	base := reloadBase(50)
	if err := os.WriteFile(path, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	prev, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if prev.pieces == nil || len(prev.pieces.text) != 50 {
		t.Fatalf("Load did not record the file's pieces")
	}

	// Unchanged: nothing differs, every piece is reused.
	same, _ := reloadVsLoad(t, path, prev, base)
	if changed, gone, ok := Diff(prev, same); !ok || len(changed)+len(gone) != 0 {
		t.Fatalf("unchanged reload: Diff = %v %v %v, want nothing changed", changed, gone, ok)
	}

	// One weight: only that service differs, and it was decoded from the
	// new text.
	at := strings.Index(base, "port = 1007\n")
	next := base[:at] + strings.Replace(base[at:], "weight = 1", "weight = 5", 1)
	if next == base {
		t.Fatal("test edit did not apply")
	}
	one, _ := reloadVsLoad(t, path, same, next)
	changed, gone, ok := Diff(same, one)
	if !ok || fmt.Sprint(changed, gone) != "[7] [7]" {
		t.Fatalf("Diff = %v %v %v, want [7] [7] true", changed, gone, ok)
	}
	if one.pieces == nil {
		t.Fatal("reload took the full path")
	}
	if w := one.Services[7].Backends[0].Weight; w != 5 {
		t.Fatalf("weight %d, want 5", w)
	}

	// A service added and one removed.
	added := next + "\n[[service]]\nname = \"new\"\naddress = \"192.0.2.2\"\nport = 80\nforwarding = \"nat\"\n[[service.backend]]\naddress = \"10.0.0.9\"\n"
	two, _ := reloadVsLoad(t, path, one, added)
	if changed, gone, ok := Diff(one, two); !ok || fmt.Sprint(changed, gone) != "[50] []" {
		t.Fatalf("add: Diff = %v %v %v", changed, gone, ok)
	}
	i := strings.Index(added, "\n[[service]]\nname = \"s3\"")
	j := strings.Index(added, "\n[[service]]\nname = \"s4\"")
	removed := added[:i] + added[j:]
	three, _ := reloadVsLoad(t, path, two, removed)
	if changed, gone, ok := Diff(two, three); !ok || fmt.Sprint(changed, gone) != "[] [3]" {
		t.Fatalf("remove: Diff = %v %v %v", changed, gone, ok)
	}
}

func TestReloadFallsBackToFullLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.toml")
	base := reloadBase(5)
	if err := os.WriteFile(path, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	prev, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, src string }{
		{"bad value in a changed service", strings.Replace(base, "weight = 1", "weight = -3", 1)},
		{"unknown key", strings.Replace(base, "port = 1002\n", "port = 1002\nprt = 3\n", 1)},
		{"duplicate name", strings.Replace(base, `name = "s3"`, `name = "s1"`, 1)},
		{"duplicate address", strings.Replace(base, "port = 1003\n", "port = 1001\n", 1)},
		{"renamed, still unique", strings.Replace(base, `name = "s3"`, `name = "s9"`, 1)},
		{"head changed", strings.Replace(base, "[director]\n", "[director]\nresync_interval = \"5s\"\n", 1)},
		{"table after the services", base + "\n[realserver]\ntunnel_interface = \"tun1\"\n"},
		{"multi-line string", strings.Replace(base, `name = "s2"`, "name = \"\"\"s2\"\"\"", 1)},
		{"[service] table", base + "\n[service]\nname = \"x\"\n"},
		{"syntax error", strings.Replace(base, "weight = 1", "weight = = 1", 1)},
		{"no services left", "[director]\ninterface = \"eth0\"\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reloadVsLoad(t, path, prev, tt.src)
		})
	}
}

// BenchmarkReloadOneChange is a reload of a 5,000-service file after one
// weight changed (compare with BenchmarkDecode5000's full Parse).
func BenchmarkReloadOneChange(b *testing.B) {
	path := filepath.Join(b.TempDir(), "t.toml")
	base := reloadBase(5000)
	at := strings.Index(base, "port = 3007\n")
	next := base[:at] + strings.Replace(base[at:], "weight = 1", "weight = 5", 1)
	if err := os.WriteFile(path, []byte(base), 0o644); err != nil {
		b.Fatal(err)
	}
	prev, err := Load(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(next), 0o644); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		t, err := Reload(path, prev)
		if err != nil || t.pieces == nil {
			b.Fatal("reload failed or took the full path", err)
		}
	}
}

// TestReloadRandomEdits chains reloads over random edits of a file (a
// weight, a comment, blank lines, services added, removed, duplicated or
// moved, the head changed) and holds every result, and every error,
// equal to a fresh Load's.
func TestReloadRandomEdits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.toml")
	src := reloadBase(30)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	prev, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(7, 9))
	fresh := 1000
	blocks := func(s string) (head string, svcs []string) {
		parts := strings.Split(s, "\n[[service]]\n")
		for _, p := range parts[1:] {
			svcs = append(svcs, "\n[[service]]\n"+p)
		}
		return parts[0], svcs
	}
	fast := 0
	for step := range 400 {
		lines := strings.SplitAfter(src, "\n")
		next := src
		switch rnd.IntN(9) {
		case 0: // a weight
			for range 20 {
				i := rnd.IntN(len(lines))
				if strings.HasPrefix(lines[i], "weight = ") {
					lines[i] = fmt.Sprintf("weight = %d\n", rnd.IntN(5))
					break
				}
			}
			next = strings.Join(lines, "")
		case 1: // a comment or blank lines anywhere
			i := rnd.IntN(len(lines) + 1)
			ins := []string{"# note\n", "\n", "\n\n", "  # indented\n"}[rnd.IntN(4)]
			next = strings.Join(lines[:i], "") + ins + strings.Join(lines[i:], "")
		case 2, 3: // a service removed
			head, svcs := blocks(src)
			if len(svcs) > 1 {
				i := rnd.IntN(len(svcs))
				next = head + strings.Join(append(svcs[:i:i], svcs[i+1:]...), "")
			}
		case 4, 5: // a service added somewhere
			head, svcs := blocks(src)
			fresh++
			add := fmt.Sprintf("\n[[service]]\nname = \"n%d\"\naddress = \"192.0.2.2\"\nport = %d\nforwarding = \"nat\"\n[[service.backend]]\naddress = \"10.0.1.1\"\n", fresh, fresh)
			i := rnd.IntN(len(svcs) + 1)
			next = head + strings.Join(svcs[:i], "") + add + strings.Join(svcs[i:], "")
		case 6: // two services swapped
			head, svcs := blocks(src)
			if len(svcs) > 1 {
				i, j := rnd.IntN(len(svcs)), rnd.IntN(len(svcs))
				svcs[i], svcs[j] = svcs[j], svcs[i]
				next = head + strings.Join(svcs, "")
			}
		case 7: // the head
			next = strings.Replace(src, "[director]\n", fmt.Sprintf("[director]\nresync_interval = \"%ds\"\n", 1+rnd.IntN(9)), 1)
			next = strings.Replace(next, fmt.Sprintf("resync_interval = \"%ds\"\nresync_interval", 1), "resync_interval", 1)
		case 8: // a bad edit, then the file as it was
			bad := strings.Replace(src, "weight = ", "weight = -", 1)
			reloadVsLoad(t, path, prev, bad)
		}
		before := reparses.Load()
		got, err := reloadVsLoad(t, path, prev, next)
		if reparses.Load() > before {
			fast++
		}
		if err != nil {
			// Duplicate keys from the head edit: keep the old file.
			if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if changed, gone, ok := Diff(prev, got); ok && len(prev.Services)-len(gone)+len(changed) != len(got.Services) {
			t.Fatalf("step %d: Diff %v %v does not add up from %d to %d services", step, changed, gone, len(prev.Services), len(got.Services))
		}
		src, prev = next, got
	}
	if fast < 250 {
		t.Errorf("only %d of 400 reloads took the fast path", fast)
	}
	t.Logf("%d of 400 reloads took the fast path", fast)
}
