package realserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/golvs/golvs/config"
)

// Loader computes the desired state, given every address on this host.
// It is called at start and on every reload.
type Loader func(local []netip.Addr) (Desired, error)

// FromFile loads the topology at path on every call. The files it names
// are the director's (keys, scripts): a real server holds none of them.
func FromFile(path string, log *slog.Logger) Loader {
	return func(local []netip.Addr) (Desired, error) {
		topo, err := config.Options{SkipFiles: true}.Load(path)
		if err != nil {
			return Desired{}, err
		}
		return FromTopology(topo, local, log)
	}
}

// FromTopology is the desired state for this host in topo.
func FromTopology(topo *config.Topology, local []netip.Addr, log *slog.Logger) (Desired, error) {
	vips, skipped := LocalVIPs(topo, local)
	for _, name := range skipped {
		log.Warn("firewall-mark service names no VIP: configure its VIPs with --vip or by hand", "service", name)
	}
	d, err := Build(vips, topo.RealServer.TunnelInterface)
	if errors.Is(err, ErrNoLocalBackend) {
		return Desired{}, fmt.Errorf("%s: none of this host's addresses (%s): %w", topo.Path, addrList(local), err)
	}
	return d, err
}

func addrList(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// FromVIP is the desired state for one VIP given on the command line.
func FromVIP(vip netip.Addr, mode config.Forwarding, tunnelDev string) Loader {
	return func([]netip.Addr) (Desired, error) {
		return Build([]VIP{{Addr: vip.Unmap(), Mode: mode, Services: []string{"--vip"}}}, tunnelDev)
	}
}

// Check computes what Run would change now, changing nothing.
func Check(ctx context.Context, k Host, load Loader) ([]Op, error) {
	_, ops, err := prepare(ctx, k, load, nil)
	return ops, err
}

func prepare(ctx context.Context, k Host, load Loader, owned []Change) (Desired, []Op, error) {
	st, err := k.Snapshot(ctx, nil)
	if err != nil {
		return Desired{}, nil, err
	}
	d, err := load(st.LocalAddrs())
	if err != nil {
		return Desired{}, nil, err
	}
	if st, err = k.Snapshot(ctx, sysctlPaths(d)); err != nil {
		return Desired{}, nil, err
	}
	ops, err := Plan(d, st, owned)
	return d, ops, err
}

func sysctlPaths(d Desired) []string {
	out := make([]string, len(d.Sysctls))
	for i, s := range d.Sysctls {
		out[i] = s.Path
	}
	return out
}

// Options configure Run.
type Options struct {
	Log *slog.Logger
	// Kernel is the host's kernel (*Kernel; a fake in tests).
	Kernel  Host
	Journal *Journal
	Load    Loader
	// Reload asks for Load again (SIGHUP); a failed load keeps the
	// current state.
	Reload <-chan struct{}
	// Resync is the period of the full check, besides address events.
	Resync time.Duration
	// Agent and AgentListener are optional: nil means no endpoint.
	Agent         *Agent
	AgentListener net.Listener
	// DrainGrace is how long the agent reports drain after ctx ends,
	// before the host is restored.
	DrainGrace time.Duration
	// Notify, when set, hears ready, reload and stop (systemd).
	Notify Notifier
	// Beat, when set, is called after every pass and at least every
	// BeatEvery while idle: a watchdog's proof that the loop runs.
	Beat      func()
	BeatEvery time.Duration
}

// Run prepares the host, adopting what the state file of an earlier run
// holds (see Adoption), keeps it prepared until ctx ends, then reports
// drain for DrainGrace and restores everything changed. Errors found
// before the first change (bad file, VIP on another device, no local
// backend) return at once with nothing changed; a failure while applying
// the first time restores what was done and returns the error.
func Run(ctx context.Context, o Options) error {
	log := o.Log
	d, _, err := prepare(ctx, o.Kernel, o.Load, nil)
	if err != nil {
		return err
	}
	r := &runner{log: log, k: o.Kernel, j: o.Journal, desired: d}
	if err := r.start(ctx); err != nil {
		rerr := Restore(context.Background(), o.Kernel, o.Journal)
		return errors.Join(err, rerr)
	}

	agentCtx, stopAgent := context.WithCancel(context.Background())
	defer stopAgent()
	var wg sync.WaitGroup
	if o.AgentListener != nil {
		wg.Go(func() {
			if err := o.Agent.Serve(agentCtx, o.AgentListener); err != nil {
				log.Error("agent endpoint failed", "err", err)
			}
		})
	}

	log.Info("host prepared", "addresses", len(d.Addrs))
	o.notifier().Ready(fmt.Sprintf("host prepared: %d addresses", len(d.Addrs)))
	r.loop(ctx, o.Load, o.Reload, o.Resync, o.notifier(), o.heartbeat())
	o.notifier().Stopping()

	if o.Agent != nil && o.DrainGrace > 0 {
		o.Agent.SetDraining(true)
		log.Info("shutting down: reporting drain before restoring the host", "grace", o.DrainGrace)
		t := time.NewTimer(o.DrainGrace)
		<-t.C
	}
	rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = Restore(rctx, o.Kernel, o.Journal)
	if err == nil {
		log.Info("host restored")
	}
	stopAgent()
	wg.Wait()
	return err
}

type runner struct {
	log     *slog.Logger
	k       Host
	j       *Journal
	desired Desired
}

// start brings the host to r.desired the first time, adopting what the
// journal of an earlier run holds (see Adoption): a restart after a crash
// leaves the VIPs and sysctls that are still wanted exactly as they are.
// It stops at the first failure (the caller then restores the host).
func (r *runner) start(ctx context.Context) error {
	st, err := r.k.Snapshot(ctx, sysctlPaths(r.desired))
	if err != nil {
		return err
	}
	leftover := r.j.Changes()
	a, err := Adopt(r.desired, st, leftover)
	if err != nil {
		return err
	}
	if len(leftover) > 0 {
		r.log.Info("adopting the state file of an earlier run: what is still wanted stays in place",
			"changes", len(leftover), "adopted", len(a.Adopted), "undone", len(leftover)-len(a.Adopted))
	}
	for _, c := range a.Keep {
		r.log.Info("VIP was already there; it will be left in place on exit", "vip", c.Prefix, "dev", c.Dev)
		r.j.Keep(c)
	}
	return r.apply(ctx, a.Ops, true)
}

// reconcile brings the host to r.desired, logging one line per change. It
// applies every op it can and returns all failures.
func (r *runner) reconcile(ctx context.Context) error {
	st, err := r.k.Snapshot(ctx, sysctlPaths(r.desired))
	if err != nil {
		return err
	}
	ops, err := Plan(r.desired, st, r.j.Changes())
	if err != nil {
		return err
	}
	return r.apply(ctx, ops, false)
}

// apply runs ops in order, logging each change; with firstErr it stops at
// the first failure, otherwise it goes on and returns every failure.
func (r *runner) apply(ctx context.Context, ops []Op, firstErr bool) error {
	if len(ops) == 0 {
		r.log.Debug("host is as desired")
		return nil
	}
	var errs []error
	for _, op := range ops {
		if err := r.k.Apply(ctx, op, r.j); err != nil {
			if firstErr {
				return err
			}
			errs = append(errs, err)
			continue
		}
		r.log.Info(op.String())
	}
	return errors.Join(errs...)
}

func (r *runner) loop(ctx context.Context, load Loader, reload <-chan struct{}, resync time.Duration, n Notifier, hb heartbeat) {
	kick := make(chan struct{}, 1)
	subCtx, stopSub := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		err := Subscribe(subCtx, kick, func(err error) {
			if subCtx.Err() == nil {
				r.log.Warn("address events", "err", err)
			}
		})
		if subCtx.Err() == nil { // Subscribe returns only with an error
			r.log.Warn("address events stopped; relying on the periodic check", "err", err)
		}
	})
	defer wg.Wait()
	defer stopSub()

	if resync <= 0 {
		resync = 5 * time.Second
	}
	tick := time.NewTicker(resync)
	defer tick.Stop()
	beat := time.NewTicker(hb.every)
	defer beat.Stop()
	for {
		reloaded := false
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			hb.beat()
			continue
		case <-kick:
		case <-tick.C:
		case <-reload:
			n.Reloading()
			st, err := r.k.Snapshot(ctx, nil)
			if err == nil {
				var d Desired
				if d, err = load(st.LocalAddrs()); err == nil {
					r.desired = d
					reloaded = true
					r.log.Info("reloaded")
				}
			}
			if err != nil {
				r.log.Error("reload failed; keeping the current state", "err", err)
				n.ReloadRejected(err)
			}
		}
		err := r.reconcile(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Error("reconcile", "err", err)
		}
		if reloaded {
			status := fmt.Sprintf("reload applied: %d addresses", len(r.desired.Addrs))
			if err != nil {
				status += "; some changes failed and are retried: " + err.Error()
			}
			n.ReloadApplied(status)
		}
		hb.beat()
	}
}
