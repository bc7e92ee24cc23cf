package healthbench

import (
	"context"
	"testing"
	"time"
)

// TestRunLoadBenchSmoke runs the load benchmark briefly with few backends
// and real sockets: it must probe them all, successfully, and measure.
func TestRunLoadBenchSmoke(t *testing.T) {
	for name, cfg := range map[string]LoadConfig{
		"deferring": {},
		"accepting": {Accept: true},
		"waiting":   {Wait: true},
	} {
		t.Run(name, func(t *testing.T) { loadBenchSmoke(t, cfg) })
	}
}

func loadBenchSmoke(t *testing.T, cfg LoadConfig) {
	const n, interval = 300, 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), interval+500*time.Millisecond)
	defer cancel()
	cfg.Backends, cfg.Interval = n, interval
	rep, err := RunLoadBench(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	// About 5 rounds of n probes; allow for a slow machine.
	if rep.Probes < 2*n {
		t.Errorf("%d probes, want at least %d", rep.Probes, 2*n)
	}
	if rep.Failures != 0 {
		t.Errorf("%d probes failed, first: %s", rep.Failures, rep.FirstFailure)
	}
	if rep.CPUPercent <= 0 || rep.FloorPercent <= 0 || rep.P99 < rep.P50 || rep.Max < rep.P99 {
		t.Errorf("implausible report: %+v", rep)
	}
}
