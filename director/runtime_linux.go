package director

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/bgp"
	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/director/metrics"
	"github.com/golvs/golvs/director/vip"
	"github.com/golvs/golvs/director/vrrp"
	"github.com/golvs/golvs/health"
	"github.com/golvs/golvs/internal/sdnotify"
)

// Runtime is the running director: the reconciler, the health monitor,
// the address announcer (with VRRP when the file has [failover]), the
// control socket and metrics, and reloads. cmd/director builds one from
// its flags and calls Run.
type Runtime struct {
	Path          string // the topology file, read again on reload
	Priority      int    // --priority: overrides [failover] priority; 0 = the file's
	CleanupOnExit bool   // remove what this director owns when Run ends
	Log           *slog.Logger

	// Test seams; zero values mean the real host.
	Kernel    ipvs.IPVS // nil = the kernel's IPVS
	ProcSys   string    // "" = /proc/sys
	NetnsPath string    // network namespace of the VIP interface
	Ready     func()    // called once everything runs
	Announcer Announcer // nil = the VIPs on [director] interface (vip.Holder)
	// ExtraAnnouncer holds the [[failover.address]] entries of one
	// interface; nil = a vip.Holder on it.
	ExtraAnnouncer func(iface string) PrefixAnnouncer
	// Notify hears readiness, reloads and the stop (systemd); Watchdog
	// pings only while the reconciler, the health scheduler and VRRP all
	// make progress. Both may be nil.
	Notify   *sdnotify.Notifier
	Watchdog *sdnotify.Watchdog

	rec      *Reconciler
	kernel   ipvs.IPVS
	syncKick chan struct{} // the file changed: ensure the sync daemons now
	monitor  *health.Monitor
	vips     Announcer
	extra    map[string]PrefixAnnouncer // by interface; guarded by holdMu
	vrrp     *vrrp.Runner               // nil without [failover]
	bgp      *bgp.Announcer             // nil without [bgp]
	speaker  speakerStatus              // with bgp: its sessions, for status
	master   atomic.Bool                // with failover: VIPs are ours only while master
	track    chan struct{}              // health or topology changed: decide again
	sysctls  []SysctlChange
	holdMu   sync.Mutex // one Set of the addresses at a time
	// held is the decision last applied without error (heldOK); guarded
	// by holdMu. A health change that leaves it as it is costs no
	// netlink round trips (holdChanged).
	held   Decision
	heldOK bool

	mu   sync.Mutex
	topo *config.Topology
}

// Reconciler is the runtime's reconciler, once Run has started.
func (rt *Runtime) Reconciler() *Reconciler { return rt.rec }

// ApplyPriority puts --priority into topo's [failover].
func (rt *Runtime) ApplyPriority(topo *config.Topology) {
	if rt.Priority == 0 {
		return
	}
	if topo.Failover == nil {
		rt.Log.Warn("--priority given but the file has no [failover]; ignored")
		return
	}
	topo.Failover.Priority = uint8(rt.Priority)
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

// Run runs the director with topo (already loaded and validated) until ctx
// ends (SIGTERM/SIGINT); a value on reload (SIGHUP) reads the file again.
func (rt *Runtime) Run(ctx context.Context, topo *config.Topology, reload <-chan os.Signal) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	if rt.ProcSys == "" {
		rt.ProcSys = "/proc/sys"
	}
	if rt.Log == nil {
		rt.Log = slog.New(slog.DiscardHandler)
	}
	rt.ApplyPriority(topo)
	rt.topo = topo
	// Before anything touches the kernel: this state file must be ours
	// alone (another director on it would delete our services) and ours
	// to trust.
	if err := CheckStateFile(topo.Director.StateFile); err != nil {
		return err
	}
	lock, err := lockState(topo.Director.StateFile)
	if err != nil {
		return err
	}
	if lock != nil {
		defer lock.Close()
	}
	kernel := rt.Kernel
	if kernel == nil {
		k := ipvs.NewKernel()
		defer k.Close()
		if err := k.Open(); err != nil {
			return fmt.Errorf("IPVS unavailable: %w", err)
		}
		kernel = k
	}

	// Each loop the watchdog watches beats; an idle one wakes to beat.
	beat := func(string) func() { return nil }
	beatEvery := time.Minute
	if rt.Watchdog != nil {
		beat, beatEvery = rt.Watchdog.Register, rt.Watchdog.BeatEvery()
	}
	var rec *Reconciler
	rt.track = make(chan struct{}, 1)
	var healthOpts []health.Option
	if b := beat("health"); b != nil {
		healthOpts = append(healthOpts, health.WithBeat(b, beatEvery))
	}
	rt.monitor = health.New(rt.Log.With("part", "health"), func() {
		rec.Kick()
		kick(rt.track)
	}, healthOpts...)
	rt.kernel = kernel
	rt.syncKick = make(chan struct{}, 1)
	rec = NewReconciler(Options{
		Beat:      beat("reconciler"),
		BeatEvery: beatEvery,
		Kernel:    kernel,
		Health:    rt.monitor,
		Logger:    rt.Log.With("part", "ipvs"),
		// A cold start or a large reload leaves megabytes of garbage
		// (the decoded file, the plan): hand it back at once, rather
		// than let a collection run into the next small reload, which
		// it would slow several times over on a busy CPU.
		AfterBulkPass: debug.FreeOSMemory,
		// A routed director's routes follow the operator's drains.
		OnDrain: func() { kick(rt.track) },
		// And they wait for the table that serves them.
		OnProgrammed: func() { kick(rt.track) },
	}, topo)
	rt.rec = rec
	if err := rt.monitor.Update(targets(topo)); err != nil {
		rt.Log.Warn("some checks could not be built; their backends stay down", "err", err)
	}
	rt.setSysctls(topo)

	parts0 := map[string]func(context.Context) error{}
	rt.vips = rt.Announcer
	if rt.vips == nil && topo.BGP != nil {
		ann, sp, err := rt.newBGP(topo)
		if err != nil {
			return err
		}
		rt.bgp, rt.vips, rt.speaker = ann.Announcer, ann, sp
		parts0["bgp"] = sp.Run
	}
	if rt.vips == nil {
		h := vip.New(topo.Director.Interface, rt.Log.With("part", "vip"))
		h.NetnsPath = rt.NetnsPath
		rt.vips = h
	}
	// VIPs of the file found on the interface may be a previous run's:
	// ours to remove while this director should not hold them.
	rt.vips.Claim(VIPs(topo))
	rt.claimExtra(topo)

	ctl := &ControlServer{Path: topo.Director.ControlSocket, Controller: rec, Logger: rt.Log.With("part", "control")}
	if rt.bgp != nil {
		ctl.Self = rt
	}
	parts := map[string]func(context.Context) error{
		"reconciler": rec.Run,
		"health":     rt.monitor.Run,
		"announce":   rt.runAnnounce,
		"sync":       rt.runSyncDaemons,
		"links":      rt.runLinks,
	}
	maps.Copy(parts, parts0)
	if topo.Failover != nil {
		// With failover, IPVS is programmed all the time (a backup's table
		// is ready) and only the addresses follow the VRRP state.
		r, err := rt.newVRRP(topo, beat("vrrp"), beatEvery)
		if err != nil {
			return err
		}
		rt.vrrp = r
		parts["vrrp"] = r.Run
		ctl.VRRPState = rt.vrrpState
	} else {
		rt.hold(ctx)
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
		src := metrics.Source{Status: rec.Status, LocalErrors: rt.monitor.LocalErrors, StalledProbes: rt.monitor.StalledProbes, HealthTransitions: rt.monitor.RecentTransitions,
			StateWrites: rec.StateWrites}
		if topo.Failover != nil && topo.Failover.Sync != nil {
			src.Sync = func(ctx context.Context) (SyncStatus, error) {
				return ReadSyncStatus(ctx, kernel, WantDaemons(rt.current().Failover), ipvs.ReadConnOrigins)
			}
		}
		if rt.bgp != nil {
			src.BGP = rt.BGPStatus
		}
		if rt.vrrp != nil {
			src.VRRP = func() metrics.VRRPInfo {
				st := rt.vrrp.Status()
				return metrics.VRRPInfo{State: st.State.String(), Priority: int(st.Priority)}
			}
			src.VRRPTransitions = func() []string { return vrrp.FormatTransitions(rt.vrrp.Status().Transitions) }
		}
		h := metrics.Handler(src, rt.Log.With("part", "metrics"))
		parts["metrics"] = func(ctx context.Context) error { return metrics.Serve(ctx, mln, h) }
	}

	if rt.Watchdog != nil {
		parts["watchdog"] = rt.Watchdog.Run
	}
	// The first pass before anything is announced as ready: READY=1 means
	// the table is programmed (a restart adopts it without a write).
	if err := rec.Sync(ctx); err != nil {
		rt.Log.Warn("first reconcile pass incomplete; retrying on the next pass", "err", err)
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
	rt.Log.Info("director running", "config", rt.Path, "services", len(topo.Services), "interface", topo.Director.Interface)
	rt.Notify.Ready(fmt.Sprintf("%d services from %s", len(topo.Services), rt.Path))
	if rt.Ready != nil {
		rt.Ready()
	}

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-reload:
			rt.Notify.Reloading()
			if err := rt.reload(ctx); err != nil {
				rt.Notify.ReloadRejected(err)
			} else {
				rt.Notify.ReloadApplied(fmt.Sprintf("reload applied: %d services from %s", len(rt.current().Services), rt.Path))
			}
		case runErr = <-errc:
			stop()
			break loop
		}
	}
	rt.Notify.Stopping()
	if rt.bgp != nil && runErr == nil {
		rt.leave()
	}
	stop()
	wg.Wait()
	rt.Log.Info("director stopping", "cleanup", rt.CleanupOnExit)
	if rt.CleanupOnExit {
		if err := rt.cleanup(); err != nil {
			return errors.Join(runErr, err)
		}
	}
	return runErr
}

// routedAnnouncer is the BGP announcer with the VIP device's claim.
type routedAnnouncer struct {
	*bgp.Announcer
	dev *vip.Holder
}

func (a routedAnnouncer) Claim(addrs []netip.Addr) { a.dev.Claim(addrs) }

// newBGP builds the routed announcer: VIPs on [bgp] vip_interface (no ARP
// for them), each announced while this director can serve it.
func (rt *Runtime) newBGP(topo *config.Topology) (routedAnnouncer, *bgp.Speaker, error) {
	rid := topo.BGP.RouterID
	if !rid.IsValid() {
		var err error
		if rid, err = bgp.RouterIDOf(topo.Director.Interface); err != nil {
			return routedAnnouncer{}, nil, err
		}
	}
	cfg, err := bgp.FromTopology(topo.BGP, rid)
	if err != nil {
		return routedAnnouncer{}, nil, err
	}
	sp, err := bgp.New(cfg, rt.Log.With("part", "bgp"))
	if err != nil {
		return routedAnnouncer{}, nil, err
	}
	dev := vip.New(topo.BGP.VIPInterface, rt.Log.With("part", "vip"))
	dev.NetnsPath = rt.NetnsPath
	return routedAnnouncer{Announcer: &bgp.Announcer{Device: dev, Routes: sp}, dev: dev}, sp, nil
}

// leave is the graceful leave of a routed director: withdraw every route
// first, keep forwarding (parts still run) while the routers converge,
// then let the director stop.
func (rt *Runtime) leave() {
	grace := config.DefaultLeaveGrace
	if b := rt.current().BGP; b != nil {
		grace = b.LeaveGrace
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := rt.bgp.Leave(ctx)
	cancel()
	if err != nil {
		rt.Log.Error("could not withdraw the routes before stopping", "err", err)
		return
	}
	rt.Log.Info("routes withdrawn; forwarding on while the routers converge", "grace", grace)
	time.Sleep(grace)
}

// current returns the topology in force.
func (rt *Runtime) current() *config.Topology {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.topo
}

// situation is what the address decision depends on now.
func (rt *Runtime) situation() Situation {
	s := Situation{Topo: rt.current(), Health: rt.monitor}
	switch {
	case rt.vrrp != nil:
		s.Mode, s.Master = VRRP, rt.master.Load()
	case rt.bgp != nil:
		s.Mode, s.SelfDrained, s.Drains = Routed, rt.rec.SelfDrained(), rt.rec.HealthView()
		s.Programmed = rt.rec.ProgrammedVIPs()
	}
	return s
}

// hold decides and applies the addresses to hold now.
func (rt *Runtime) hold(ctx context.Context) Decision {
	d, _ := rt.apply(ctx)
	return d
}

// apply is hold, with what failed: the VIPs (and with [bgp] their
// routes), or the failover addresses.
func (rt *Runtime) apply(ctx context.Context) (Decision, error) {
	return rt.applyIf(ctx, false)
}

// holdChanged is hold after a health change: it applies the decision
// only when it differs from the last one applied without error. Health
// changes come once per probe batch, hundreds a second in a flap storm,
// and applying an unchanged decision still costs a netlink socket and a
// dump of the interface's addresses per announcer; under emulation that
// was a large part of the director's CPU in the storm. The other callers
// (reload, link up, VRRP state) still apply in full, re-adding what was
// removed behind the director's back.
func (rt *Runtime) holdChanged(ctx context.Context) Decision {
	d, _ := rt.applyIf(ctx, true)
	return d
}

func (rt *Runtime) applyIf(ctx context.Context, changedOnly bool) (Decision, error) {
	rt.holdMu.Lock()
	defer rt.holdMu.Unlock()
	d := Announce(rt.situation())
	if changedOnly && rt.heldOK && reflect.DeepEqual(d, rt.held) {
		return d, nil
	}
	var err error
	if rt.bgp != nil {
		err = rt.bgp.SetRoutes(ctx, d.Hold, d.Routes)
	} else {
		err = rt.vips.Set(ctx, d.Hold)
	}
	if err != nil {
		rt.Log.Error("could not set the VIPs; retrying on the next change", "err", err)
	}
	if xerr := rt.setExtra(ctx, d.Extra); xerr != nil {
		rt.Log.Error("could not set the failover addresses; retrying on the next change", "err", xerr)
		err = errors.Join(err, xerr)
	}
	rt.held, rt.heldOK = d, err == nil
	return d, err
}

// runAnnounce decides again whenever health or the topology changes:
// the addresses to hold, and (with VRRP) fault while no service has a
// healthy backend, so a director that cannot reach its real servers hands
// the VIPs to a peer that may.
//
// A change that leaves the decision as it is applies nothing (holdChanged);
// every resync interval the decision is applied in full all the same, so
// an address removed behind the director's back comes back then.
func (rt *Runtime) runAnnounce(ctx context.Context) error {
	fault := false
	full := time.Now().Add(resyncOf(rt.current()))
	for {
		t := time.NewTimer(time.Until(full))
		var d Decision
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-rt.track:
			t.Stop()
			d = rt.holdChanged(ctx)
		case <-t.C:
			d = rt.hold(ctx)
			full = time.Now().Add(resyncOf(rt.current()))
		}
		if rt.vrrp == nil || d.Fault == fault {
			continue
		}
		fault = d.Fault
		if err := rt.vrrp.SetFault(ctx, d.Fault, d.Reason); err != nil {
			return nil // ctx ended
		}
	}
}

// runSyncDaemons keeps the kernel's connection sync daemons as
// [failover.sync] asks, level-triggered: every resync interval and after
// each reload it reads the running daemons and starts or restarts only
// what differs, so one stopped behind our back (ipvsadm --stop-daemon)
// comes back. Without [failover.sync] it touches no daemon, unless the
// file just dropped it: then it stops the ones it ran.
func (rt *Runtime) runSyncDaemons(ctx context.Context) error {
	ran := false
	for {
		topo := rt.current()
		want := WantDaemons(topo.Failover)
		switch {
		case len(want) > 0:
			changes, err := EnsureDaemons(ctx, rt.kernel, want)
			for _, c := range changes {
				rt.Log.Info("sync daemon", "change", c)
			}
			if err != nil && ctx.Err() == nil {
				rt.Log.Warn("sync daemons; retrying on the next pass", "err", err)
			}
			ran = true
		case ran:
			changes, err := StopDaemons(ctx, rt.kernel, ipvs.SyncMaster, ipvs.SyncBackup)
			for _, c := range changes {
				rt.Log.Info("sync daemon", "change", c)
			}
			if err == nil {
				ran = false
			}
		}
		t := time.NewTimer(resyncOf(topo))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-rt.syncKick:
			t.Stop()
		}
	}
}

// reload re-reads the file on SIGHUP. A bad file is reported line by line
// and the running topology stays (the error says why); a good one is
// applied as a diff.
func (rt *Runtime) reload(ctx context.Context) error {
	start := time.Now()
	prev := rt.current()
	// Only the services whose text changed are decoded again.
	topo, err := config.Reload(rt.Path, prev)
	parsed := time.Since(start)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				rt.Log.Error("config error", "error", e.Error())
			}
		} else {
			rt.Log.Error("config unreadable", "err", err)
		}
		rt.Log.Error("new configuration rejected; the running one stays in force", "config", rt.Path)
		return err
	}
	rt.ApplyPriority(topo)
	rt.mu.Lock()
	old := rt.topo
	rt.topo = topo
	rt.mu.Unlock()
	if old.Director.Interface != topo.Director.Interface || old.Director.ControlSocket != topo.Director.ControlSocket ||
		old.Director.MetricsAddress != topo.Director.MetricsAddress ||
		old.Director.StateFile != topo.Director.StateFile {
		rt.Log.Warn("interface, control_socket, metrics_address and state_file changes take effect on restart")
	}
	// The kernel first, and only what changed: with thousands of services
	// the bookkeeping below takes longer than the change itself.
	changed, goneIdx, diffOK := config.Diff(old, topo)
	if diffOK {
		gone := make([]ipvs.ServiceKey, len(goneIdx))
		for j, i := range goneIdx {
			gone[j] = Key(&old.Services[i])
		}
		if err := rt.rec.ReloadServices(ctx, topo, changed, gone); err != nil {
			rt.Log.Warn("reload pass failed; the next pass retries", "err", err)
			rt.rec.Kick()
		}
	} else {
		rt.rec.SetConfig(topo)
	}
	applied := time.Since(start)
	// Checks and sysctls follow the services: with none changed, there is
	// nothing to redo (and it would cost more than the rest of a reload).
	if !diffOK || len(changed)+len(goneIdx) > 0 {
		if err := rt.monitor.Update(targets(topo)); err != nil {
			rt.Log.Warn("some checks could not be built; their backends stay down", "err", err)
		}
		rt.setSysctls(topo)
	}
	rt.hold(ctx)
	kick(rt.track)
	kick(rt.syncKick)
	if !sameFailover(old, topo) {
		rt.Log.Warn("[failover] changes (and the VIPs a running VRRP instance announces) take effect on restart")
	}
	// Collect now, while nothing waits: the reload's garbage (at least a
	// copy of the file) would otherwise start a collection in the middle
	// of the next one, slowing it several times over on a busy CPU.
	if !diffOK || len(changed)+len(goneIdx) > 64 {
		debug.FreeOSMemory() // the whole file was decoded again
	} else {
		runtime.GC()
	}
	rt.Log.Info("configuration reloaded", "config", rt.Path, "services", len(topo.Services),
		"read", parsed, "kernel", applied, "took", time.Since(start))
	return nil
}

func (rt *Runtime) setSysctls(topo *config.Topology) {
	var syncSysctls []Sysctl
	if topo.Failover != nil {
		syncSysctls = SyncSysctls(topo.Failover)
	}
	changed, err := ApplySysctls(rt.ProcSys, append(NeededSysctls(topo), syncSysctls...), rt.Log)
	rt.sysctls = append(rt.sysctls, changed...)
	if err != nil {
		rt.Log.Error("sysctls", "err", err)
	}
}

// cleanup removes what this director owns: its IPVS services, its VIPs,
// and the sysctls it changed.
func (rt *Runtime) cleanup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var msgs []string
	if err := rt.rec.Cleanup(ctx); err != nil {
		msgs = append(msgs, err.Error())
	}
	rt.vips.Claim(VIPs(rt.current()))
	if err := rt.vips.Set(ctx, nil); err != nil {
		msgs = append(msgs, err.Error())
	}
	rt.claimExtra(rt.current())
	if err := rt.setExtra(ctx, nil); err != nil {
		msgs = append(msgs, err.Error())
	}
	if len(WantDaemons(rt.current().Failover)) > 0 {
		if _, err := StopDaemons(ctx, rt.kernel, ipvs.SyncMaster, ipvs.SyncBackup); err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if err := RestoreSysctls(rt.ProcSys, rt.sysctls); err != nil {
		msgs = append(msgs, err.Error())
	}
	if len(msgs) > 0 {
		return fmt.Errorf("cleanup: %s", strings.Join(msgs, "; "))
	}
	return nil
}

// newVRRP builds the failover runner: its transitions decide the
// addresses again, at once (VRRP announces them right after).
func (rt *Runtime) newVRRP(topo *config.Topology, beat func(), beatEvery time.Duration) (*vrrp.Runner, error) {
	onState := func(master bool) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			rt.master.Store(master)
			rt.hold(ctx)
			return nil
		}
	}
	return vrrp.NewRunner(vrrp.Config{
		Interface: topo.Director.Interface,
		Failover:  *topo.Failover,
		VIPs:      VIPs(topo),
		Extra:     vrrpExtra(topo),
		// track_decrement: no healthy backend lowers the priority
		// instead of entering fault.
		FaultDecrement: topo.Failover.TrackDecrement,
		// With sync, preempting before the peer has told us of the
		// connections it took while we were away would reset them.
		PreemptDelay: PreemptDelay(topo.Failover),
		Beat:         beat,
		BeatEvery:    beatEvery,
		Logger:       rt.Log.With("part", "vrrp"),
	}, vrrp.Hooks{OnMaster: onState(true), OnBackup: onState(false)})
}

// vrrpState is the VRRP state for `director status`: one line, and the
// last transitions with their reasons.
func (rt *Runtime) vrrpState() (string, []string) {
	st := rt.vrrp.Status()
	s := fmt.Sprintf("%s priority %d", st.State, st.Priority)
	if st.Master.IsValid() {
		s += fmt.Sprintf(", master %s", st.Master)
	}
	if drops := formatDrops(st.Drops); drops != "" {
		// Rejected adverts (unsigned, bad MAC, replays) are what an
		// operator needs to see a rogue or misconfigured peer.
		s += ", dropped adverts: " + drops
	}
	return s, vrrp.FormatTransitions(st.Transitions)
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
		{"bad-mac", d.BadMAC}, {"replay", d.Replay}, {"stale", d.Stale},
	} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", c.name, c.n))
		}
	}
	return strings.Join(parts, ", ")
}

func sameFailover(a, b *config.Topology) bool {
	if (a.Failover == nil) != (b.Failover == nil) {
		return false
	}
	// DeepEqual, not printing: the struct holds pointers (sync, the
	// preempt delay), printed as addresses that differ on every load.
	if a.Failover != nil && !reflect.DeepEqual(*a.Failover, *b.Failover) {
		return false
	}
	return slices.Equal(VIPs(a), VIPs(b))
}

// kick wakes a loop waiting on c without blocking.
func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
