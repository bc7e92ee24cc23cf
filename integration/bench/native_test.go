package bench

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director"
	"github.com/golvs/golvs/director/ipvs/ipvsfake"
)

// BenchmarkColdPassFake times the director's first pass over 5,000
// services against the in-memory fake: the reconciler's own cost (plan,
// logging, state file) without the kernel's.
func BenchmarkColdPassFake(b *testing.B) {
	dir := b.TempDir()
	p := filepath.Join(dir, "t.toml")
	if err := os.WriteFile(p, topology(dir, table{n: 5000, backends: 4}, -1), 0o644); err != nil {
		b.Fatal(err)
	}
	topo, err := config.Load(p)
	if err != nil {
		b.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	log := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for b.Loop() {
		b.StopTimer()
		os.Remove(filepath.Join(dir, "director.state"))
		fake := ipvsfake.New()
		rec := director.NewReconciler(director.Options{Kernel: fake, Logger: log}, topo)
		b.StartTimer()
		if err := rec.Sync(context.Background()); err != nil {
			b.Fatal(err)
		}
		if err := rec.Sync(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
