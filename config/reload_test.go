package config

import (
	"fmt"
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
