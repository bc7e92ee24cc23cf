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

// Rounds merge to the best time of each figure and keep every round's
// write counts.
func TestMergeKeepsBest(t *testing.T) {
	a := Result{Services: 10, Rounds: 1, Cold: 5, KeepalivedCold: 2, NoopPass: 9, NoopDump: 8, Unchanged: []uint64{0}, ChangeWrites: 1, RSSKB: 100}
	b := Result{Services: 10, Rounds: 1, Cold: 3, KeepalivedCold: 4, NoopPass: 7, NoopDump: 1, Unchanged: []uint64{2}, ChangeWrites: 1, RSSKB: 50}
	m := merge(a, b)
	if m.Cold != 3 || m.KeepalivedCold != 2 || m.NoopPass != 7 || m.NoopDump != 1 || m.RSSKB != 100 || m.Rounds != 2 {
		t.Errorf("merged %+v", m)
	}
	if len(m.Unchanged) != 2 || m.Unchanged[1] != 2 {
		t.Errorf("unchanged writes %v, want both rounds'", m.Unchanged)
	}
	if len(a.Unchanged) != 1 {
		t.Error("merge changed its input")
	}
}
