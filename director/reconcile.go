package director

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/ipvs"
	"github.com/hashicorp/go-multierror"
	"golang.org/x/sys/unix"
)

// Errors of operator requests, for errors.Is.
var (
	ErrUnknownService = errors.New("unknown service")
	ErrUnknownBackend = errors.New("unknown backend")
)

// bulkOps is the size above which a pass logs its changes at Debug.
const bulkOps = 64

// DefaultDrainPoll is how often a pass runs while a backend drains, to see
// its connections reach 0 soon after they do.
const DefaultDrainPoll = time.Second

// Options are the Reconciler's dependencies.
type Options struct {
	Kernel ipvs.IPVS
	Health HealthView // nil = every backend up; call Kick when it changes
	Logger *slog.Logger
	Now    func() time.Time // nil = time.Now; drains are timed with it
	// StateFile overrides the topology's Director.StateFile; "" keeps it.
	// When both are empty, nothing is persisted.
	StateFile string
	DrainPoll time.Duration // 0 = DefaultDrainPoll
	// AfterBulkPass, if set, runs after a pass that applied more than a
	// few dozen changes (a cold start, a large reload).
	AfterBulkPass func()
}

// destKey is one destination of one kernel service.
type destKey struct {
	Service ipvs.ServiceKey
	Dest    netip.AddrPort
}

// Reconciler keeps the kernel's IPVS table equal to the topology: every
// pass dumps the kernel once, computes the desired table from config and
// health, and applies the difference. Passes run on a timer
// (resync_interval) and on Kick.
//
// Ownership: a service is ours when the file names it or the state file
// says we created it; nothing else is ever touched. A service removed from
// the file is deleted at once (its connections are not drained); a backend
// removed from the file, or down with on_failure=remove, is drained first:
// it stays with weight 0 until the kernel reports no connections or the
// service's drain_timeout has passed.
type Reconciler struct {
	kernel    ipvs.IPVS
	health    HealthView
	log       *slog.Logger
	now       func() time.Time
	stateFile string
	drainPoll time.Duration
	afterBulk func()

	kick  chan struct{}
	rearm chan struct{} // a drain began outside Run's passes
	pass  sync.Mutex    // one pass at a time

	mu          sync.Mutex
	topo        *config.Topology
	stateLoaded bool
	owned       map[ipvs.ServiceKey]bool // as last persisted
	opDrains    map[drainKey]bool        // operator drains, persisted
	draining    map[destKey]time.Time    // leaving destinations, since when
	reloaded    bool                     // SetConfig since the last pass
	idx         *topoIndex               // of idxOf
	passes      uint64                   // full passes run, for FullDumpEvery
	drainsGen   uint64                   // changes of opDrains
	// cache is the last pass's desired table (held under pass).
	cache struct {
		key desiredKey
		val []ipvs.Entry
	}
	idxOf *config.Topology
}

// NewReconciler builds a Reconciler for topo (already validated). It starts
// nothing and touches neither the kernel nor the state file.
func NewReconciler(opts Options, topo *config.Topology) *Reconciler {
	r := &Reconciler{
		kernel:    opts.Kernel,
		health:    opts.Health,
		log:       opts.Logger,
		now:       opts.Now,
		stateFile: opts.StateFile,
		drainPoll: opts.DrainPoll,
		afterBulk: opts.AfterBulkPass,
		kick:      make(chan struct{}, 1),
		rearm:     make(chan struct{}, 1),
		topo:      topo,
		owned:     map[ipvs.ServiceKey]bool{},
		opDrains:  map[drainKey]bool{},
		draining:  map[destKey]time.Time{},
	}
	if r.health == nil {
		r.health = upView{}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.drainPoll <= 0 {
		r.drainPoll = DefaultDrainPoll
	}
	if r.stateFile == "" && topo != nil {
		r.stateFile = topo.Director.StateFile
	}
	return r
}

// Kick asks for a pass soon. It never blocks; kicks coalesce.
func (r *Reconciler) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// SetConfig swaps in a new (validated) topology and kicks a pass, which
// applies the difference only.
func (r *Reconciler) SetConfig(topo *config.Topology) {
	r.mu.Lock()
	r.topo = topo
	r.reloaded = true
	r.mu.Unlock()
	r.Kick()
}

// Config returns the topology in force.
func (r *Reconciler) Config() *config.Topology {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.topo
}

// Run reconciles until ctx ends; it returns nil then. A failed pass is
// logged and retried on the next one.
func (r *Reconciler) Run(ctx context.Context) error {
	for {
		if err := r.Sync(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("reconcile pass failed; retrying on the next pass", "err", err)
		}
		due := time.Now().Add(r.resyncInterval())
		if err := r.waitPass(ctx, due); err != nil {
			return nil
		}
	}
}

// waitPass waits until the next pass is due: at due, on Kick, or a drain
// poll from now while backends drain (a reload pass may start a drain
// while this waits: it rearms).
func (r *Reconciler) waitPass(ctx context.Context, due time.Time) error {
	for {
		wait := time.Until(due)
		r.mu.Lock()
		if len(r.draining) > 0 {
			wait = min(wait, r.drainPoll)
		}
		r.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
			return nil
		case <-r.kick:
			t.Stop()
			return nil
		case <-r.rearm:
			t.Stop()
		}
	}
}

func (r *Reconciler) resyncInterval() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.topo != nil && r.topo.Director.ResyncInterval > 0 {
		return r.topo.Director.ResyncInterval
	}
	return config.DefaultResyncInterval
}

// loadStateLocked reads the state file once. r.mu must be held.
func (r *Reconciler) loadStateLocked() {
	if r.stateLoaded {
		return
	}
	r.stateLoaded = true
	st, err := readState(r.stateFile)
	if err != nil {
		// Losing ownership memory only means a service removed while we
		// were down is left in place: run on, loudly.
		r.log.Error("state file unreadable; starting without it", "err", err)
		return
	}
	for _, k := range st.Services {
		r.owned[k] = true
	}
	for _, d := range st.Drains {
		r.opDrains[d] = true
	}
	r.drainsGen++
}

// saveStateLocked persists owned and operator drains. r.mu must be held.
func (r *Reconciler) saveStateLocked() error {
	st := state{Services: make([]ipvs.ServiceKey, 0, len(r.owned))}
	for k := range r.owned {
		st.Services = append(st.Services, k)
	}
	for d := range r.opDrains {
		st.Drains = append(st.Drains, d)
	}
	return writeState(r.stateFile, st)
}

// setOwned replaces the owned set and persists it when it changed.
func (r *Reconciler) setOwned(owned map[ipvs.ServiceKey]bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if maps.Equal(owned, r.owned) {
		return nil
	}
	r.owned = owned
	return r.saveStateLocked()
}

// drainView adds operator drains to the health view.
type drainView struct {
	base   HealthView
	drains map[drainKey]bool
}

func (v drainView) Backend(service string, b netip.AddrPort) BackendState {
	st := v.base.Backend(service, b)
	if v.drains[drainKey{service, b}] {
		st.Drain = true
	}
	return st
}

// viewLocked is health with the operator drains (a copy) on top; r.mu
// must be held.
func (r *Reconciler) viewLocked() HealthView {
	if len(r.opDrains) == 0 {
		return r.health
	}
	return drainView{base: r.health, drains: maps.Clone(r.opDrains)}
}

// computed is one pass's plan and what it is based on.
type computed struct {
	topo     *config.Topology
	idx      *topoIndex
	desired  []ipvs.Entry
	ops      []Op
	owned    map[ipvs.ServiceKey]bool // state-file keys before the pass; read-only
	draining map[destKey]time.Time
}

// topoIndex is what passes look up in a topology, built once per
// topology rather than once per pass: with thousands of services these
// maps cost more than the diff itself.
type topoIndex struct {
	wanted map[ipvs.ServiceKey]bool // every configured service
	// exact: services a survey cannot check (thresholds on a backend).
	exact    []ipvs.ServiceKey
	names    map[ipvs.ServiceKey]string
	timeouts map[ipvs.ServiceKey]time.Duration // drain timeouts
}

func indexTopology(topo *config.Topology) *topoIndex {
	x := &topoIndex{wanted: map[ipvs.ServiceKey]bool{}, names: map[ipvs.ServiceKey]string{}, timeouts: map[ipvs.ServiceKey]time.Duration{}}
	if topo == nil {
		return x
	}
	for i := range topo.Services {
		s := &topo.Services[i]
		k := Key(s)
		x.wanted[k] = true
		x.names[k] = s.Name
		x.timeouts[k] = positive(s.DrainTimeout, config.DefaultDrainTimeout)
		for _, b := range s.Backends {
			if b.UpperThreshold != 0 || b.LowerThreshold != 0 {
				x.exact = append(x.exact, k)
				break
			}
		}
	}
	return x
}

// indexLocked returns the index of r.topo; r.mu must be held.
func (r *Reconciler) indexLocked() *topoIndex {
	if r.idx == nil || r.idxOf != r.topo {
		r.idx, r.idxOf = indexTopology(r.topo), r.topo
	}
	return r.idx
}

// compute plans one pass against actual without changing anything.
func (r *Reconciler) compute(actual []ipvs.Entry) computed {
	r.mu.Lock()
	r.loadStateLocked()
	c := computed{
		topo: r.topo,
		idx:  r.indexLocked(),
		// r.owned is replaced, never changed, once loaded: share it.
		owned: r.owned,
	}
	view := r.viewLocked()
	prev := maps.Clone(r.draining)
	drainsGen := r.drainsGen
	r.mu.Unlock()

	actual = sortedEntries(actual)
	var unknown bool
	c.desired, unknown = r.desiredFor(c.topo, view, drainsGen)
	if unknown {
		adoptUnknown(c.topo, view, c.desired, actual)
	}
	c.draining = keepDraining(c.idx.timeouts, c.desired, actual, prev, r.now())
	c.ops = plan(c.desired, actual, func(k ipvs.ServiceKey) bool { return c.idx.wanted[k] || c.owned[k] })
	return c
}

// desiredKey is what a pass's desired table depends on.
type desiredKey struct {
	topo      *config.Topology
	health    uint64
	drainsGen uint64
}

// desiredFor returns the desired table for topo and view: the previous
// pass's (copied: passes change their copy) when neither the topology,
// the health versions nor the operator drains changed, which spares a
// no-op pass over thousands of services most of its work.
// Callers hold r.pass.
func (r *Reconciler) desiredFor(topo *config.Topology, view HealthView, drainsGen uint64) ([]ipvs.Entry, bool) {
	if topo == nil {
		return nil, false
	}
	vv, versioned := r.health.(VersionedView)
	var key desiredKey
	if versioned {
		key = desiredKey{topo, vv.Version(), drainsGen}
		if r.cache.val != nil && r.cache.key == key {
			return slices.Clone(r.cache.val), false
		}
	}
	out, unknown := desired(topo, view)
	r.cache.val = nil
	if versioned && !unknown {
		// The version was read before computing: a change during the
		// computation makes the next pass miss. Only tables without
		// unknown backends are kept: adoptUnknown edits in place.
		r.cache.key, r.cache.val = key, slices.Clone(out)
	}
	return out, unknown
}

// adoptUnknown keeps the kernel's weight for backends that health has no
// verdict on yet and that are already in the kernel (a restart must not
// zero every weight until the first checks run); desired changes in place.
func adoptUnknown(topo *config.Topology, view HealthView, desired, actual []ipvs.Entry) {
	if topo == nil {
		return
	}
	have := make(map[ipvs.ServiceKey]ipvs.Entry, len(actual))
	for _, e := range actual {
		have[e.Service.ServiceKey] = e
	}
	idx := make(map[ipvs.ServiceKey]int, len(desired))
	for i, e := range desired {
		idx[e.Service.ServiceKey] = i
	}
	for si := range topo.Services {
		s := &topo.Services[si]
		key := Key(s)
		a, ok := have[key]
		i, ok2 := idx[key]
		if !ok || !ok2 {
			continue
		}
		kernel := make(map[netip.AddrPort]ipvs.Destination, len(a.Destinations))
		for _, d := range a.Destinations {
			kernel[d.Key()] = d
		}
		for _, b := range s.Backends {
			st := view.Backend(s.Name, b.AddrPort())
			k, inKernel := kernel[b.AddrPort()]
			if !st.Unknown || st.Drain || !inKernel {
				continue
			}
			found := false
			for j, d := range desired[i].Destinations {
				if d.Key() == b.AddrPort() {
					desired[i].Destinations[j].Weight = k.Weight
					found = true
				}
			}
			if !found { // on_failure=remove left it out
				d := desiredEntry(&config.Service{Name: s.Name, Forwarding: s.Forwarding,
					Backends: []config.Backend{b}}, upView{}).Destinations[0]
				d.Weight = k.Weight
				desired[i].Destinations = append(desired[i].Destinations, d)
				ipvs.SortDestinations(desired[i].Destinations)
			}
		}
	}
}

// keepDraining puts destinations that are leaving a desired service back
// into it with weight 0 while they still have connections and their drain
// has not timed out. It returns the drains still running (with the time
// each started); desired is changed in place. Both tables are sorted.
func keepDraining(timeouts map[ipvs.ServiceKey]time.Duration, desired, actual []ipvs.Entry, prev map[destKey]time.Time, now time.Time) map[destKey]time.Time {
	running := map[destKey]time.Time{}
	i, j := 0, 0
	for i < len(desired) && j < len(actual) {
		key := desired[i].Service.ServiceKey
		if c := ipvs.KeyCompare(key, actual[j].Service.ServiceKey); c != 0 {
			if c < 0 {
				i++
			} else {
				j++
			}
			continue
		}
		want, have := desired[i].Destinations, actual[j].Destinations
		var leaving []ipvs.Destination
		for x, y := 0, 0; y < len(have); {
			if x < len(want) {
				if c := ipvs.CompareDests(want[x], have[y]); c <= 0 {
					x++
					if c == 0 {
						y++
					}
					continue
				}
			}
			d := have[y]
			y++
			dk := destKey{key, d.Key()}
			start, ok := prev[dk]
			if !ok {
				start = now
			}
			timeout, ok := timeouts[key]
			if !ok {
				timeout = config.DefaultDrainTimeout
			}
			if d.ActiveConns+d.InactiveConns == 0 || now.Sub(start) >= timeout {
				continue // Plan deletes it
			}
			d.Weight = 0
			leaving = append(leaving, d)
			running[dk] = start
		}
		if len(leaving) > 0 {
			desired[i].Destinations = append(slices.Clone(want), leaving...)
			ipvs.SortDestinations(desired[i].Destinations)
		}
		i++
		j++
	}
	return running
}

// Pending returns the ops the next pass would apply now, changing nothing
// (for `director plan`).
func (r *Reconciler) Pending(ctx context.Context) ([]Op, error) {
	r.pass.Lock()
	defer r.pass.Unlock()
	actual, err := r.kernel.Dump(ctx)
	if err != nil {
		return nil, err
	}
	return r.compute(actual).ops, nil
}

// Sync runs one pass: dump, plan, apply. Every op is tried; the failures
// are returned together and retried by the next pass.
func (r *Reconciler) Sync(ctx context.Context) error {
	r.pass.Lock()
	defer r.pass.Unlock()

	start := time.Now()
	writes0 := kernelWrites(r.kernel)
	actual, read, err := r.read(ctx)
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	dumped := time.Since(start)
	r.mu.Lock()
	reloaded := r.reloaded
	r.reloaded = false
	r.mu.Unlock()
	c := r.compute(actual)

	// Remember what we are about to own before creating it, so a crash
	// mid-pass cannot leave an unowned service of ours behind.
	var errs *multierror.Error
	if !subset(c.idx.wanted, c.owned) {
		owned := maps.Clone(c.owned)
		maps.Copy(owned, c.idx.wanted)
		if err := r.setOwned(owned); err != nil {
			errs = multierror.Append(errs, err)
		}
	}

	r.logDrains(c)
	failedDeletes, failed, err := r.apply(ctx, c.ops, c.idx.names)
	if err != nil {
		errs = multierror.Append(errs, err)
	}
	// One line per pass with what it cost (`make bench` reads it): an
	// unchanged table must show writes=0. No-op passes are Debug, except
	// the first after a reload, which the operator wants to see.
	level, msg := slog.LevelInfo, "ipvs pass"
	if len(c.ops) == 0 {
		msg = "ipvs in sync"
		if !reloaded {
			level = slog.LevelDebug
		}
	}
	r.log.Log(ctx, level, msg, "services", len(c.desired), "ops", len(c.ops), "failed", failed,
		"writes", kernelWrites(r.kernel)-writes0, "read", read, "dump", dumped, "took", time.Since(start))
	if len(c.ops) > bulkOps && r.afterBulk != nil {
		defer r.afterBulk()
	}

	// Forget services that are gone; keep those whose delete failed so
	// the next pass tries again even after a restart.
	if len(failedDeletes) > 0 || !sameKeys(c.idx.wanted, r.ownedNow()) {
		owned := maps.Clone(c.idx.wanted)
		for k := range c.owned {
			if failedDeletes[k] {
				owned[k] = true
			}
		}
		if err := r.setOwned(owned); err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	return errs.ErrorOrNil()
}

// apply sends ops to the kernel, in one batch when it can take one, and
// logs each change; it returns the services whose delete failed, how many
// ops failed, and their errors.
func (r *Reconciler) apply(ctx context.Context, ops []Op, names map[ipvs.ServiceKey]string) (map[ipvs.ServiceKey]bool, int, error) {
	var errs *multierror.Error
	failedDeletes := map[ipvs.ServiceKey]bool{}
	results := ipvs.ApplyWrites(ctx, r.kernel, writesOf(ops))
	// A large pass (a cold start, a big reload) logs each change at Debug
	// and its totals in the pass line: thousands of lines cost more than
	// the kernel work. Failures are always logged one by one.
	opLevel := slog.LevelInfo
	if len(ops) > bulkOps {
		opLevel = slog.LevelDebug
	}
	failed := 0
	for i, op := range ops {
		name := names[op.Service.ServiceKey]
		err := results[i]
		if err != nil && op.Kind == DeleteService && errors.Is(err, unix.ESRCH) {
			err = nil // already gone: the goal is met
		}
		if err != nil {
			if op.Kind == DeleteService {
				failedDeletes[op.Service.ServiceKey] = true
			}
			failed++
			r.log.Warn("ipvs change failed", "service", name, "op", op.String(), "err", err)
			errs = multierror.Append(errs, fmt.Errorf("%s: %w", op, err))
			continue
		}
		if r.log.Enabled(ctx, opLevel) {
			r.log.Log(ctx, opLevel, "ipvs change", "service", name, "op", op.String())
		}
	}
	return failedDeletes, failed, errs.ErrorOrNil()
}

// ReloadServices swaps in topo like SetConfig, and at once brings in line
// only what a reload changed: changed are indexes into topo.Services of
// new or changed services, gone the keys of services the previous
// topology had that were removed or changed. Only those services are read
// from the kernel and written, so a one-line change in a file of
// thousands of services costs one small pass (it must not wait for, or
// cost, a full dump); the periodic full pass still covers everything.
func (r *Reconciler) ReloadServices(ctx context.Context, topo *config.Topology, changed []int, gone []ipvs.ServiceKey) error {
	r.pass.Lock()
	defer r.pass.Unlock()
	start := time.Now()
	writes0 := kernelWrites(r.kernel)

	r.mu.Lock()
	r.loadStateLocked()
	r.topo = topo
	owned := r.owned
	view := r.viewLocked()
	r.mu.Unlock()

	// The services concerned, as a topology of their own.
	sub := &config.Topology{Services: make([]config.Service, 0, len(changed))}
	names := make(map[ipvs.ServiceKey]string, len(changed))
	timeouts := make(map[ipvs.ServiceKey]time.Duration, len(changed))
	wanted := make(map[ipvs.ServiceKey]bool, len(changed))
	keys := make([]ipvs.ServiceKey, 0, len(changed)+len(gone))
	for _, i := range changed {
		s := &topo.Services[i]
		sub.Services = append(sub.Services, *s)
		k := Key(s)
		names[k], wanted[k] = s.Name, true
		timeouts[k] = positive(s.DrainTimeout, config.DefaultDrainTimeout)
		keys = append(keys, k)
	}
	for _, k := range gone {
		if !wanted[k] {
			keys = append(keys, k)
		}
	}
	var actual []ipvs.Entry
	var err error
	if len(keys) > 0 {
		actual, err = dumpServices(ctx, r.kernel, keys)
		if err != nil {
			r.Kick() // a full pass will do it
			return fmt.Errorf("dump: %w", err)
		}
	}
	dumped := time.Since(start)

	desired, unknown := desired(sub, view)
	if unknown {
		adoptUnknown(sub, view, desired, actual)
	}
	r.mu.Lock()
	prev := make(map[destKey]time.Time)
	for k, t := range r.draining {
		if timeouts[k.Service] > 0 {
			prev[k] = t
		}
	}
	r.mu.Unlock()
	draining := keepDraining(timeouts, desired, actual, prev, r.now())
	ops := Plan(desired, actual, func(k ipvs.ServiceKey) bool { return wanted[k] || owned[k] })

	var errs *multierror.Error
	if !subset(wanted, owned) {
		next := maps.Clone(owned)
		maps.Copy(next, wanted)
		if err := r.setOwned(next); err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	r.mu.Lock()
	for k := range r.draining {
		if _, still := draining[k]; !still && timeouts[k.Service] > 0 {
			delete(r.draining, k)
			r.log.Info("drain over", "service", k.Service.String(), "backend", k.Dest)
		}
	}
	for k, t := range draining {
		if _, was := r.draining[k]; !was {
			r.log.Info("draining backend", "service", k.Service.String(), "backend", k.Dest, "since", t)
		}
		r.draining[k] = t
	}
	r.mu.Unlock()
	if len(draining) > 0 {
		// Run's passes must now poll the drain.
		select {
		case r.rearm <- struct{}{}:
		default:
		}
	}
	failedDeletes, failed, err := r.apply(ctx, ops, names)
	if err != nil {
		errs = multierror.Append(errs, err)
	}
	msg := "ipvs pass"
	if len(ops) == 0 {
		msg = "ipvs in sync"
	}
	r.log.Info(msg, "scope", "reload", "services", len(changed), "ops", len(ops), "failed", failed,
		"writes", kernelWrites(r.kernel)-writes0, "dump", dumped, "took", time.Since(start))

	// Forget the services that went (unless their delete failed).
	cur := r.ownedNow()
	drop := false
	for _, k := range gone {
		if !wanted[k] && !failedDeletes[k] && cur[k] {
			drop = true
		}
	}
	if drop {
		next := maps.Clone(cur)
		for _, k := range gone {
			if !wanted[k] && !failedDeletes[k] {
				delete(next, k)
			}
		}
		if err := r.setOwned(next); err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	return errs.ErrorOrNil()
}

// FullDumpEvery is how often a pass reads the table with a full dump
// when the kernel adapter can survey it: the other passes survey, which
// does not see destination thresholds where the file sets none.
const FullDumpEvery = 10

// read returns the kernel's table for a pass, and how it was read
// ("survey" or "dump"). Where the kernel adapter can survey (see
// ipvs.Surveyor), passes survey, and read exactly the services a survey
// cannot check (those with thresholds, fwmark services); every
// FullDumpEvery-th pass, and any pass whose survey fails, dumps.
func (r *Reconciler) read(ctx context.Context) ([]ipvs.Entry, string, error) {
	r.mu.Lock()
	r.passes++
	full := r.passes%FullDumpEvery == 1
	idx := r.indexLocked()
	r.mu.Unlock()
	sv, ok := r.kernel.(ipvs.Surveyor)
	if ok && !full {
		entries, err := survey(ctx, sv, r.kernel, idx.exact)
		if err == nil {
			return entries, "survey", nil
		}
		r.log.Debug("survey failed; dumping", "err", err)
	}
	entries, err := r.kernel.Dump(ctx)
	return entries, "dump", err
}

// survey reads the table through sv, then reads the inexact services and
// those in exact again with DumpServices (dropping any gone since).
func survey(ctx context.Context, sv ipvs.Surveyor, k ipvs.IPVS, exact []ipvs.ServiceKey) ([]ipvs.Entry, error) {
	entries, inexact, err := sv.Survey(ctx)
	if err != nil {
		return nil, err
	}
	redo := make(map[ipvs.ServiceKey]bool, len(inexact)+len(exact))
	var keys []ipvs.ServiceKey
	for _, key := range append(inexact, exact...) {
		if !redo[key] {
			redo[key] = true
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return entries, nil
	}
	got, err := dumpServices(ctx, k, keys)
	if err != nil {
		return nil, err
	}
	byKey := make(map[ipvs.ServiceKey]ipvs.Entry, len(got))
	for _, e := range got {
		byKey[e.Service.ServiceKey] = e
	}
	out := entries[:0]
	for _, e := range entries {
		key := e.Service.ServiceKey
		if redo[key] {
			x, ok := byKey[key]
			if !ok {
				continue // gone since the survey
			}
			e = x
		}
		out = append(out, e)
	}
	return out, nil
}

// dumpServices reads keys' services through k: only those when k can,
// else from a full dump.
func dumpServices(ctx context.Context, k ipvs.IPVS, keys []ipvs.ServiceKey) ([]ipvs.Entry, error) {
	if sd, ok := k.(ipvs.ServiceDumper); ok {
		return sd.DumpServices(ctx, keys)
	}
	all, err := k.Dump(ctx)
	if err != nil {
		return nil, err
	}
	return ipvs.OnlyServices(all, keys), nil
}

func positive(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// subset reports whether every key of a is in b.
func subset(a, b map[ipvs.ServiceKey]bool) bool {
	if len(a) > len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func sameKeys(a, b map[ipvs.ServiceKey]bool) bool { return len(a) == len(b) && subset(a, b) }

func (r *Reconciler) ownedNow() map[ipvs.ServiceKey]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.owned
}

// writesOf converts ops to the IPVS layer's changes.
func writesOf(ops []Op) []ipvs.Write {
	kinds := map[OpKind]ipvs.WriteKind{
		AddService: ipvs.WriteAddService, UpdateService: ipvs.WriteUpdateService, DeleteService: ipvs.WriteDeleteService,
		AddDest: ipvs.WriteAddDest, UpdateDest: ipvs.WriteUpdateDest, DeleteDest: ipvs.WriteDeleteDest,
	}
	ws := make([]ipvs.Write, len(ops))
	for i, op := range ops {
		ws[i] = ipvs.Write{Kind: kinds[op.Kind], Service: op.Service, Dest: op.Dest}
	}
	return ws
}

// kernelWrites returns the kernel's count of netlink writes so far, or 0
// when it keeps none (the fake).
func kernelWrites(k ipvs.IPVS) uint64 {
	if wc, ok := k.(interface{ Writes() uint64 }); ok {
		return wc.Writes()
	}
	return 0
}

// logDrains records the drains of this pass and logs starts and ends.
func (r *Reconciler) logDrains(c computed) {
	r.mu.Lock()
	prev := r.draining
	r.draining = c.draining
	r.mu.Unlock()
	for k, start := range c.draining {
		if _, ok := prev[k]; !ok {
			r.log.Info("draining backend", "service", k.Service.String(), "backend", k.Dest, "since", start)
		}
	}
	for k := range prev {
		if _, ok := c.draining[k]; !ok {
			r.log.Info("drain over", "service", k.Service.String(), "backend", k.Dest)
		}
	}
}

// Cleanup deletes every service this director owns (for
// --cleanup-on-exit) and forgets them. Foreign services stay.
func (r *Reconciler) Cleanup(ctx context.Context) error {
	r.pass.Lock()
	defer r.pass.Unlock()
	actual, err := r.kernel.Dump(ctx)
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	c := r.compute(actual)
	var errs *multierror.Error
	left := map[ipvs.ServiceKey]bool{}
	for _, e := range actual {
		k := e.Service.ServiceKey
		if !c.idx.wanted[k] && !c.owned[k] {
			continue
		}
		err := r.kernel.DeleteService(ctx, k)
		if err != nil && !errors.Is(err, unix.ESRCH) {
			left[k] = true
			errs = multierror.Append(errs, err)
			continue
		}
		r.log.Info("ipvs change", "op", Op{Kind: DeleteService, Service: e.Service}.String())
	}
	if err := r.setOwned(left); err != nil {
		errs = multierror.Append(errs, err)
	}
	return errs.ErrorOrNil()
}

// findBackend checks that service and backend are in the topology.
func (r *Reconciler) findBackendLocked(service string, backend netip.AddrPort) error {
	if r.topo == nil {
		return fmt.Errorf("service %q: %w", service, ErrUnknownService)
	}
	for i := range r.topo.Services {
		s := &r.topo.Services[i]
		if s.Name != service {
			continue
		}
		for _, b := range s.Backends {
			if b.AddrPort() == backend {
				return nil
			}
		}
		return fmt.Errorf("service %q: backend %s: %w", service, backend, ErrUnknownBackend)
	}
	return fmt.Errorf("service %q: %w", service, ErrUnknownService)
}

// Drain is an operator drain: the backend gets weight 0 and keeps its
// connections until Undrain. It survives restarts (state file).
func (r *Reconciler) Drain(service string, backend netip.AddrPort) error {
	return r.setDrain(service, backend, true)
}

// Undrain ends an operator drain.
func (r *Reconciler) Undrain(service string, backend netip.AddrPort) error {
	return r.setDrain(service, backend, false)
}

func (r *Reconciler) setDrain(service string, backend netip.AddrPort, on bool) error {
	r.mu.Lock()
	r.loadStateLocked()
	k := drainKey{service, backend}
	if on {
		if err := r.findBackendLocked(service, backend); err != nil {
			r.mu.Unlock()
			return err
		}
		r.opDrains[k] = true
	} else {
		if !r.opDrains[k] {
			err := r.findBackendLocked(service, backend)
			r.mu.Unlock()
			return err // not drained: nothing to do, unless unknown
		}
		delete(r.opDrains, k)
	}
	r.drainsGen++
	err := r.saveStateLocked()
	r.mu.Unlock()
	r.log.Info("operator drain", "service", service, "backend", backend, "drain", on)
	r.Kick()
	return err
}
