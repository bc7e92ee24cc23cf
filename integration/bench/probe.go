package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director"
	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/director/vip"
)

// Probe times the director's parts one by one in this process at n
// services (config load, plan, one batched write of the table, a dump,
// then two reconciler passes), to show where a pass's time goes; with
// prof non-nil the passes are CPU-profiled into it. With manyVIPs the
// table has a VIP per service, and putting them on an interface (and
// taking them off) is timed too. It flushes the table.
func Probe(ctx context.Context, w io.Writer, prof io.Writer, work string, n, backends int, manyVIPs bool) error {
	tab := table{n: n, backends: backends, manyVIPs: manyVIPs}
	if manyVIPs {
		if err := probeVIPs(ctx, w, tab); err != nil {
			return err
		}
	}
	if err := clearTable(ctx); err != nil {
		return err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	p := filepath.Join(work, "probe.toml")
	if err := os.WriteFile(p, topology(work, tab, -1), 0o644); err != nil {
		return err
	}
	t := time.Now()
	topo, err := config.Load(p)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "probe %d: config.Load %s\n", n, time.Since(t))
	k := ipvs.NewKernel()
	defer k.Close()
	t = time.Now()
	actual, err := k.Dump(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "probe %d: empty dump %s\n", n, time.Since(t))
	t = time.Now()
	desired := director.Desired(topo, nil)
	ops := director.Plan(desired, actual, func(ipvs.ServiceKey) bool { return true })
	fmt.Fprintf(w, "probe %d: desired+plan %s (%d ops)\n", n, time.Since(t), len(ops))
	// From empty, the plan is only adds.
	for _, op := range ops {
		if op.Kind != ipvs.WriteAddService && op.Kind != ipvs.WriteAddDest {
			return fmt.Errorf("probe: unexpected op %s from an empty table", op)
		}
	}
	ws := ops
	t = time.Now()
	for i, err := range k.WriteBatch(ctx, ws) {
		if err != nil {
			return fmt.Errorf("write %d: %w", i, err)
		}
	}
	fmt.Fprintf(w, "probe %d: batch write %s\n", n, time.Since(t))
	t = time.Now()
	actual, err = k.Dump(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "probe %d: full dump %s (%d services)\n", n, time.Since(t), len(actual))
	t = time.Now()
	ops = director.Plan(desired, actual, func(ipvs.ServiceKey) bool { return true })
	fmt.Fprintf(w, "probe %d: no-op plan %s (%d ops)\n", n, time.Since(t), len(ops))
	t = time.Now()
	countTable("/proc/net/ip_vs")
	fmt.Fprintf(w, "probe %d: read /proc/net/ip_vs %s\n", n, time.Since(t))
	for range 2 {
		t = time.Now()
		es, inexact, err := k.Survey(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "probe %d: survey %s (%d services, %d inexact)\n", n, time.Since(t), len(es), len(inexact))
	}
	if err := clearTable(ctx); err != nil {
		return err
	}
	os.Remove(filepath.Join(work, "director.state"))
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	rec := director.NewReconciler(director.Options{Kernel: k, Logger: log}, topo)
	if prof != nil {
		pprof.StartCPUProfile(prof)
		defer pprof.StopCPUProfile()
	}
	for range 4 {
		t = time.Now()
		if err := rec.Sync(ctx); err != nil {
			return err
		}
		fmt.Fprintf(w, "probe %d: reconciler pass %s\n", n, time.Since(t))
	}
	return clearTable(ctx)
}

// probeVIPs times vip.Holder.Set of the table's VIPs on a dummy interface
// in a namespace of its own, then their removal.
func probeVIPs(ctx context.Context, w io.Writer, tab table) error {
	ns, err := newNetns(ctx, "golvsb-probe")
	if err != nil {
		return err
	}
	defer ns.remove(ctx)
	if err := run(ctx, "ip", "-n", ns.name, "link", "add", benchIface, "type", "dummy"); err != nil {
		return err
	}
	if err := run(ctx, "ip", "-n", ns.name, "link", "set", benchIface, "up"); err != nil {
		return err
	}
	h := vip.New(benchIface, slog.New(slog.NewTextHandler(w, nil)))
	h.NetnsPath = ns.path()
	want := tab.vips()
	// In steps, to show whether an address costs more the more there are.
	step := max(1, len(want)/4)
	t0 := time.Now()
	for k := step; ; k += step {
		k = min(k, len(want))
		t := time.Now()
		if err := h.Set(ctx, want[:k]); err != nil {
			return err
		}
		fmt.Fprintf(w, "probe %d: VIPs set %d more, to %d: %s\n", tab.n, min(step, k), k, time.Since(t))
		if k == len(want) {
			break
		}
	}
	fmt.Fprintf(w, "probe %d: VIPs set %s (%d addresses)\n", tab.n, time.Since(t0), len(want))
	t := time.Now()
	if err := h.Set(ctx, want); err != nil {
		return err
	}
	fmt.Fprintf(w, "probe %d: VIPs set again %s (no change)\n", tab.n, time.Since(t))
	t = time.Now()
	if err := h.Set(ctx, nil); err != nil {
		return err
	}
	fmt.Fprintf(w, "probe %d: VIPs removed %s\n", tab.n, time.Since(t))
	return nil
}
