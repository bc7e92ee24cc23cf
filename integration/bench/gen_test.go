package bench

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/golvs/golvs/config"
)

// TestTopologyLoads checks that the generated topology is a valid file
// with the table the other contenders get.
func TestTopologyLoads(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "t.toml")
	if err := os.WriteFile(p, topology(dir, 50, 4, 7), 0o644); err != nil {
		t.Fatal(err)
	}
	topo, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Services) != 50 {
		t.Fatalf("%d services, want 50", len(topo.Services))
	}
	for i, s := range topo.Services {
		if len(s.Backends) != 4 || s.Port != uint16(port(i)) {
			t.Fatalf("service %d: %d backends, port %d", i, len(s.Backends), s.Port)
		}
		if w := s.Backends[0].Weight; (i == 7) != (w == 2) {
			t.Fatalf("service %d: first backend weight %d", i, w)
		}
	}
}

func BenchmarkLoad5000(b *testing.B) {
	dir := b.TempDir()
	p := filepath.Join(dir, "t.toml")
	if err := os.WriteFile(p, topology(dir, 5000, 4, -1), 0o644); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := config.Load(p); err != nil {
			b.Fatal(err)
		}
	}
}
