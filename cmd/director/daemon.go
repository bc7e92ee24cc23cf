package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director"
	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/director/metrics"
	"github.com/golvs/golvs/director/vip"
	"github.com/golvs/golvs/director/vrrp"
	"github.com/golvs/golvs/health"
	"github.com/golvs/golvs/internal/logflag"
)

// healthView adapts the health monitor to the reconciler.
type healthView struct{ m *health.Monitor }

func (h healthView) Version() uint64 { return h.m.Version() }

func (h healthView) Backend(svc string, b netip.AddrPort) director.BackendState {
	st := h.m.Backend(svc, b)
	return director.BackendState{Up: st.Up, Drain: st.Drain, WeightPercent: st.WeightPercent, Unknown: !st.Checked}
}

// targets lists every configured backend for the health monitor.
func targets(topo *config.Topology) []health.Target {
	var out []health.Target
	for i := range topo.Services {
		s := &topo.Services[i]
		for _, b := range s.Backends {
			out = append(out, health.Target{Service: s.Name, Backend: b.AddrPort(), Check: s.Check})
		}
	}
	return out
}

// daemon is the running director's parts.
type daemon struct {
	log      *slog.Logger
	path     string
	priority int // 0 = no override
	rec      *director.Reconciler
	monitor  *health.Monitor
	vips     *vip.Holder
	vrrp     *vrrp.Runner  // nil without [failover]
	master   atomic.Bool   // with failover: VIPs are ours only while master
	track    chan struct{} // health changed: re-evaluate VRRP tracking
	sysctls  []director.SysctlChange

	// Injected by tests; zero values mean the real host.
	kernel    ipvs.IPVS // nil = the kernel's IPVS
	procSys   string    // "" = /proc/sys
	netnsPath string    // network namespace of the VIP interface
	ready     func()    // called once everything runs

	mu   sync.Mutex
	topo *config.Topology
}

func cmdRun(args []string, stderr io.Writer) int {
	fs := newFlags("run", stderr)
	path := fs.String("config", config.DefaultPath, "topology file")
	priority := fs.Int("priority", 0, "VRRP priority 1..254, overriding the file's")
	logFormat := fs.String("log-format", "text", "text or json")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	cleanup := fs.Bool("cleanup-on-exit", false, "on exit, remove the IPVS services and VIPs this director owns")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "director run: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	log, err := logflag.New(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "director run: %v\n", err)
		return 2
	}
	if *priority != 0 && (*priority < 1 || *priority > 254) {
		fmt.Fprintf(stderr, "director run: --priority %d is out of range 1..254\n", *priority)
		return 2
	}
	topo, ok := loadConfig(*path, stderr)
	if !ok {
		return 1
	}
	d := &daemon{log: log, path: *path, priority: *priority, procSys: "/proc/sys"}
	d.applyPriority(topo)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := d.run(ctx, hup, topo, *cleanup); err != nil {
		log.Error("director failed", "err", err)
		return 1
	}
	return 0
}

func (d *daemon) applyPriority(topo *config.Topology) {
	if d.priority == 0 {
		return
	}
	if topo.Failover == nil {
		d.log.Warn("--priority given but the file has no [failover]; ignored")
		return
	}
	topo.Failover.Priority = uint8(d.priority)
}

// run runs the director until ctx ends (SIGTERM/SIGINT); a value on hup
// (SIGHUP) reloads the file.
func (d *daemon) run(ctx context.Context, hup <-chan os.Signal, topo *config.Topology, cleanup bool) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	if d.procSys == "" {
		d.procSys = "/proc/sys"
	}

	d.topo = topo
	kernel := d.kernel
	if kernel == nil {
		k := ipvs.NewKernel()
		defer k.Close()
		if err := k.Open(); err != nil {
			return fmt.Errorf("IPVS unavailable: %w", err)
		}
		kernel = k
	}

	var rec *director.Reconciler
	d.track = make(chan struct{}, 1)
	d.monitor = health.New(d.log.With("part", "health"), func() {
		rec.Kick()
		kick(d.track)
	})
	rec = director.NewReconciler(director.Options{
		Kernel: kernel,
		Health: healthView{d.monitor},
		Logger: d.log.With("part", "ipvs"),
		// A cold start or a large reload leaves megabytes of garbage
		// (the decoded file, the plan): hand it back at once, rather
		// than let a collection run into the next small reload, which
		// it would slow several times over on a busy CPU.
		AfterBulkPass: debug.FreeOSMemory,
	}, topo)
	d.rec = rec
	if err := d.monitor.Update(targets(topo)); err != nil {
		d.log.Warn("some checks could not be built; their backends stay down", "err", err)
	}
	d.setSysctls(topo)

	d.vips = vip.New(topo.Director.Interface, d.log.With("part", "vip"))
	d.vips.NetnsPath = d.netnsPath
	d.vips.SetVIPs(director.VIPs(topo))

	ctl := &director.ControlServer{Path: topo.Director.ControlSocket, Controller: rec, Logger: d.log.With("part", "control")}
	parts := map[string]func(context.Context) error{
		"reconciler": rec.Run,
		"health":     d.monitor.Run,
	}
	if topo.Failover != nil {
		// With failover, IPVS is programmed all the time (a backup's table
		// is ready) and only the VIPs follow the VRRP state.
		r, err := d.newVRRP(topo)
		if err != nil {
			return err
		}
		d.vrrp = r
		parts["vrrp"] = r.Run
		parts["tracking"] = d.runTracking
		ctl.VRRPState = d.vrrpState
	} else if err := d.vips.Hold(ctx, director.VIPs(topo)); err != nil {
		// Without failover the director holds its VIPs for as long as it runs.
		d.log.Error("could not add VIPs; retrying on reload", "err", err)
	}
	ln, err := ctl.Listen()
	if err != nil {
		return err
	}
	parts["control"] = func(ctx context.Context) error { return ctl.Serve(ctx, ln) }
	if addr := topo.Director.MetricsAddress; addr != "" {
		mln, err := metrics.Listen(addr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics_address: %w", err)
		}
		src := metrics.Source{Status: rec.Status}
		if d.vrrp != nil {
			src.VRRP = func() metrics.VRRPInfo {
				st := d.vrrp.Status()
				return metrics.VRRPInfo{State: st.State.String(), Priority: int(st.Priority)}
			}
		}
		h := metrics.Handler(src, d.log.With("part", "metrics"))
		parts["metrics"] = func(ctx context.Context) error { return metrics.Serve(ctx, mln, h) }
	}

	var wg sync.WaitGroup
	errc := make(chan error, len(parts))
	for name, fn := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	d.log.Info("director running", "config", d.path, "services", len(topo.Services), "interface", topo.Director.Interface)
	if d.ready != nil {
		d.ready()
	}

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hup:
			d.reload(ctx)
		case runErr = <-errc:
			stop()
			break loop
		}
	}
	stop()
	wg.Wait()
	d.log.Info("director stopping", "cleanup", cleanup)
	if cleanup {
		if err := d.cleanup(); err != nil {
			return errors.Join(runErr, err)
		}
	}
	return runErr
}

// reload re-reads the file on SIGHUP. A bad file is reported line by line
// and the running topology stays; a good one is applied as a diff.
func (d *daemon) reload(ctx context.Context) {
	start := time.Now()
	d.mu.Lock()
	prev := d.topo
	d.mu.Unlock()
	// Only the services whose text changed are decoded again.
	topo, err := config.Reload(d.path, prev)
	parsed := time.Since(start)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				d.log.Error("config error", "error", e.Error())
			}
		} else {
			d.log.Error("config unreadable", "err", err)
		}
		d.log.Error("new configuration rejected; the running one stays in force", "config", d.path)
		return
	}
	d.applyPriority(topo)
	d.mu.Lock()
	old := d.topo
	d.topo = topo
	d.mu.Unlock()
	if old.Director.Interface != topo.Director.Interface || old.Director.ControlSocket != topo.Director.ControlSocket ||
		old.Director.MetricsAddress != topo.Director.MetricsAddress ||
		old.Director.StateFile != topo.Director.StateFile {
		d.log.Warn("interface, control_socket, metrics_address and state_file changes take effect on restart")
	}
	// The kernel first, and only what changed: with thousands of services
	// the bookkeeping below takes longer than the change itself.
	changed, goneIdx, diffOK := config.Diff(old, topo)
	if diffOK {
		gone := make([]ipvs.ServiceKey, len(goneIdx))
		for j, i := range goneIdx {
			gone[j] = director.Key(&old.Services[i])
		}
		if err := d.rec.ReloadServices(ctx, topo, changed, gone); err != nil {
			d.log.Warn("reload pass failed; the next pass retries", "err", err)
			d.rec.Kick()
		}
	} else {
		d.rec.SetConfig(topo)
	}
	applied := time.Since(start)
	// Checks and sysctls follow the services: with none changed, there is
	// nothing to redo (and it would cost more than the rest of a reload).
	if !diffOK || len(changed)+len(goneIdx) > 0 {
		if err := d.monitor.Update(targets(topo)); err != nil {
			d.log.Warn("some checks could not be built; their backends stay down", "err", err)
		}
		d.setSysctls(topo)
	}

	newVIPs := director.VIPs(topo)
	keep := map[netip.Addr]bool{}
	for _, a := range newVIPs {
		keep[a] = true
	}
	var gone []netip.Addr
	for _, a := range director.VIPs(old) {
		if !keep[a] {
			gone = append(gone, a)
		}
	}
	d.vips.SetVIPs(append(append([]netip.Addr(nil), newVIPs...), gone...))
	if d.vrrp == nil || d.master.Load() {
		if err := d.vips.Hold(ctx, newVIPs); err != nil {
			d.log.Error("could not add VIPs", "err", err)
		}
	}
	if !sameFailover(old, topo) {
		d.log.Warn("[failover] changes (and the VIPs a running VRRP instance announces) take effect on restart")
	}
	kick(d.track)
	if len(gone) > 0 {
		if err := d.vips.Release(ctx, gone); err != nil {
			d.log.Error("could not remove VIPs", "err", err)
		}
	}
	d.vips.SetVIPs(newVIPs)
	// Collect now, while nothing waits: the reload's garbage (at least a
	// copy of the file) would otherwise start a collection in the middle
	// of the next one, slowing it several times over on a busy CPU.
	if !diffOK || len(changed)+len(goneIdx) > 64 {
		debug.FreeOSMemory() // the whole file was decoded again
	} else {
		runtime.GC()
	}
	d.log.Info("configuration reloaded", "config", d.path, "services", len(topo.Services),
		"read", parsed, "kernel", applied, "took", time.Since(start))
}

func (d *daemon) setSysctls(topo *config.Topology) {
	changed, err := director.ApplySysctls(d.procSys, director.NeededSysctls(topo), d.log)
	d.sysctls = append(d.sysctls, changed...)
	if err != nil {
		d.log.Error("sysctls", "err", err)
	}
}

// cleanup removes what this director owns: its IPVS services, its VIPs,
// and the sysctls it changed.
func (d *daemon) cleanup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var msgs []string
	if err := d.rec.Cleanup(ctx); err != nil {
		msgs = append(msgs, err.Error())
	}
	d.mu.Lock()
	topo := d.topo
	d.mu.Unlock()
	if err := d.vips.Release(ctx, append(director.VIPs(topo), d.vips.Added()...)); err != nil {
		msgs = append(msgs, err.Error())
	}
	if err := director.RestoreSysctls(d.procSys, d.sysctls); err != nil {
		msgs = append(msgs, err.Error())
	}
	if len(msgs) > 0 {
		return fmt.Errorf("cleanup: %s", strings.Join(msgs, "; "))
	}
	return nil
}

// newVRRP builds the failover runner: its hooks move the VIPs.
func (d *daemon) newVRRP(topo *config.Topology) (*vrrp.Runner, error) {
	return vrrp.NewRunner(vrrp.Config{
		Interface: topo.Director.Interface,
		Failover:  *topo.Failover,
		VIPs:      director.VIPs(topo),
		Logger:    d.log.With("part", "vrrp"),
	}, vrrp.Hooks{
		OnMaster: func(ctx context.Context) error {
			d.master.Store(true)
			return d.vips.Hold(ctx, d.currentVIPs())
		},
		OnBackup: func(ctx context.Context) error {
			d.master.Store(false)
			return d.vips.Release(ctx, d.currentVIPs())
		},
	})
}

func (d *daemon) currentVIPs() []netip.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return director.VIPs(d.topo)
}

// vrrpState is the one-line VRRP state for `director status`.
func (d *daemon) vrrpState() string {
	st := d.vrrp.Status()
	s := fmt.Sprintf("%s priority %d", st.State, st.Priority)
	if st.Master.IsValid() {
		s += fmt.Sprintf(", master %s", st.Master)
	}
	if n := len(st.Transitions); n > 0 {
		t := st.Transitions[n-1]
		s += fmt.Sprintf(", last %s->%s at %s (%s)", t.From, t.To, t.Time.Format(time.RFC3339), t.Reason)
	}
	if drops := formatDrops(st.Drops); drops != "" {
		// Rejected adverts (unsigned, bad MAC, replays) are what an
		// operator needs to see a rogue or misconfigured peer.
		s += ", dropped adverts: " + drops
	}
	return s
}

// formatDrops lists the non-zero drop counters, e.g. "unsigned 12".
func formatDrops(d vrrp.Drops) string {
	var parts []string
	for _, c := range []struct {
		name string
		n    uint64
	}{
		{"ttl", d.TTL}, {"interface", d.Interface}, {"destination", d.Destination},
		{"malformed", d.Malformed}, {"vrid", d.VRID}, {"unsigned", d.Unsigned},
		{"bad-mac", d.BadMAC}, {"replay", d.Replay},
	} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", c.name, c.n))
		}
	}
	return strings.Join(parts, ", ")
}

// runTracking puts VRRP into fault while no service has a healthy backend,
// so a director that cannot reach its real servers hands the VIPs to a peer
// that may.
func (d *daemon) runTracking(ctx context.Context) error {
	last := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.track:
		}
		d.mu.Lock()
		topo := d.topo
		d.mu.Unlock()
		bad := noHealthyBackend(topo, healthView{d.monitor})
		if bad == last {
			continue
		}
		last = bad
		reason := "a service has a healthy backend again"
		if bad {
			reason = "no service has a healthy backend"
		}
		if err := d.vrrp.SetFault(ctx, bad, reason); err != nil {
			return nil // ctx ended
		}
	}
}

// noHealthyBackend reports whether every service with backends has none
// up. Backends not checked yet count as up: a restart is not a fault.
func noHealthyBackend(topo *config.Topology, h director.HealthView) bool {
	any := false
	for i := range topo.Services {
		s := &topo.Services[i]
		for _, b := range s.Backends {
			any = true
			st := h.Backend(s.Name, b.AddrPort())
			if st.Up || st.Unknown {
				return false
			}
		}
	}
	return any
}

func sameFailover(a, b *config.Topology) bool {
	if (a.Failover == nil) != (b.Failover == nil) {
		return false
	}
	if a.Failover != nil && fmt.Sprint(*a.Failover) != fmt.Sprint(*b.Failover) {
		return false
	}
	return slices.Equal(director.VIPs(a), director.VIPs(b))
}

// kick wakes a loop waiting on c without blocking.
func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
