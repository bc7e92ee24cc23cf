package director

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/ipvs"
	"github.com/hashicorp/go-multierror"
	"golang.org/x/sys/unix"
)

// bulkOps is the size above which a pass logs its changes at Debug.
const bulkOps = 64

// scope is what one pass covers: every service (periodic passes, kicks,
// the first pass) or only the services a reload changed. Both run the
// same steps (read, compute, record ownership, apply, forget gone
// services, log), so the two cannot drift apart.
type scope struct {
	name string // "full" or "reload", for the log
	// For a reload: the changed services as a topology of their own,
	// indexed, and the keys of services that left the file or changed key.
	sub  *config.Topology
	idx  *topoIndex
	gone []ipvs.ServiceKey
}

func (s *scope) full() bool { return s.sub == nil }

// keys lists the services a reload scope reads: the changed ones and the
// gone ones.
func (s *scope) keys() []ipvs.ServiceKey {
	keys := make([]ipvs.ServiceKey, 0, len(s.sub.Services)+len(s.gone))
	for i := range s.sub.Services {
		keys = append(keys, Key(&s.sub.Services[i]))
	}
	for _, k := range s.gone {
		if !s.idx.wanted[k] {
			keys = append(keys, k)
		}
	}
	return keys
}

// has reports whether a service is in a reload scope.
func (s *scope) has(k ipvs.ServiceKey) bool {
	return s.full() || s.idx.wanted[k] || slices.Contains(s.gone, k)
}

// computed is one pass's plan and what it is based on.
type computed struct {
	idx      *topoIndex // of the services in scope
	desired  []ipvs.Entry
	ops      []ipvs.Write
	owned    map[ipvs.ServiceKey]bool // state-file keys before the pass; read-only
	draining map[destKey]time.Time    // the drains in scope after the pass
	quorum   map[string]Quorum        // services in scope with a quorum rule
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
	// nominal: the configured weights of mh services' backends.
	nominal map[ipvs.ServiceKey]map[netip.AddrPort]int
}

// nominalWeight is the Nominal of x.
func (x *topoIndex) nominalWeight(k ipvs.ServiceKey, d netip.AddrPort) int { return x.nominal[k][d] }

func indexTopology(topo *config.Topology) *topoIndex {
	x := &topoIndex{wanted: map[ipvs.ServiceKey]bool{}, names: map[ipvs.ServiceKey]string{}, timeouts: map[ipvs.ServiceKey]time.Duration{},
		nominal: map[ipvs.ServiceKey]map[netip.AddrPort]int{}}
	if topo == nil {
		return x
	}
	for i := range topo.Services {
		s := &topo.Services[i]
		k := Key(s)
		x.wanted[k] = true
		x.names[k] = s.Name
		x.timeouts[k] = positive(s.DrainTimeout, config.DefaultDrainTimeout)
		if ipvs.ListOrdered(s.Scheduler) {
			x.nominal[k] = nominalWeights(s)
		}
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

// fullScope is a pass over every service.
var fullScope = &scope{name: "full"}

// reloadScope is a pass over the services a reload changed: changed are
// indexes into topo.Services, gone the keys of services the previous
// topology had that were removed or changed.
func reloadScope(topo *config.Topology, changed []int, gone []ipvs.ServiceKey) *scope {
	sub := &config.Topology{Services: make([]config.Service, 0, len(changed))}
	for _, i := range changed {
		sub.Services = append(sub.Services, topo.Services[i])
	}
	return &scope{name: "reload", sub: sub, idx: indexTopology(sub), gone: gone}
}

// compute plans one pass over sc against actual (the kernel's table of
// the services in scope) without changing anything.
func (r *Reconciler) compute(sc *scope, actual []ipvs.Entry) computed {
	r.mu.Lock()
	r.loadStateLocked()
	c := computed{idx: sc.idx, owned: r.owned} // r.owned is replaced, never changed: share it
	topo := sc.sub
	if sc.full() {
		topo, c.idx = r.topo, r.indexLocked()
	}
	view := r.viewLocked()
	prev := make(map[destKey]time.Time, len(r.draining))
	for k, t := range r.draining {
		if sc.has(k.Service) {
			prev[k] = t
		}
	}
	drainsGen := r.drainsGen
	r.mu.Unlock()

	actual = sortedEntries(actual)
	var unknown bool
	if sc.full() {
		c.desired, unknown = r.desiredFor(topo, view, drainsGen)
	} else {
		c.desired, unknown = desired(topo, view)
	}
	if unknown {
		adoptUnknown(topo, view, c.desired, actual)
	}
	c.draining = keepDraining(c.idx.timeouts, c.desired, actual, prev, r.now())
	c.quorum = quorumStates(topo, view)
	c.ops = plan(c.desired, actual, func(k ipvs.ServiceKey) bool { return c.idx.wanted[k] || c.owned[k] }, c.idx.nominalWeight)
	return c
}

// desiredKey is what a pass's desired table depends on.
type desiredKey struct {
	topo      *config.Topology
	health    uint64
	drainsGen uint64
}

// desiredFor returns the desired table for topo and view: the previous
// full pass's (copied: passes change their copy) when neither the
// topology, the health versions nor the operator drains changed, which
// spares a no-op pass over thousands of services most of its work.
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

// Pending returns the changes the next full pass would apply now,
// changing nothing (for `director plan`).
func (r *Reconciler) Pending(ctx context.Context) ([]ipvs.Write, error) {
	r.pass.Lock()
	defer r.pass.Unlock()
	actual, err := r.kernel.Dump(ctx)
	if err != nil {
		return nil, err
	}
	return r.compute(fullScope, actual).ops, nil
}

// Sync runs one full pass: read, plan, apply. Every change is tried; the
// failures are returned together and retried by the next pass.
func (r *Reconciler) Sync(ctx context.Context) error {
	return r.run(ctx, fullScope, nil)
}

// ReloadServices swaps in topo like SetConfig and at once brings in line
// only what the reload changed: changed are indexes into topo.Services of
// new or changed services, gone the keys of services the previous
// topology had that were removed or changed. Only those services are read
// from the kernel and written, so a one-line change in a file of
// thousands of services costs one small pass (it must not wait for, or
// cost, a full read); the periodic full pass still covers everything.
func (r *Reconciler) ReloadServices(ctx context.Context, topo *config.Topology, changed []int, gone []ipvs.ServiceKey) error {
	return r.run(ctx, reloadScope(topo, changed, gone), topo)
}

// run is the one pass engine. With swap set it first puts that topology
// in force (a reload), under the pass lock so no pass sees half of it.
func (r *Reconciler) run(ctx context.Context, sc *scope, swap *config.Topology) error {
	r.pass.Lock()
	defer r.pass.Unlock()
	start := time.Now()
	writes0 := r.kernel.Writes()

	r.mu.Lock()
	if swap != nil {
		r.topo = swap
	}
	reloaded := r.reloaded && sc.full()
	if sc.full() {
		r.reloaded = false
	}
	r.mu.Unlock()

	actual, read, err := r.readScope(ctx, sc)
	if err != nil {
		if !sc.full() {
			r.Kick() // a full pass will do it
		}
		return fmt.Errorf("read: %w", err)
	}
	readTook := time.Since(start)
	c := r.compute(sc, actual)

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

	r.recordDrains(sc, c.draining)
	r.recordQuorum(sc, c.quorum)
	if sc.full() || len(c.ops) > 0 {
		r.shareRead(actual, len(c.ops) > 0)
	}
	failedDeletes, failed, err := r.apply(ctx, c.ops, c.idx.names)
	if err != nil {
		errs = multierror.Append(errs, err)
	}
	r.logReorders(ctx, c.ops, c.idx.names)
	if err == nil && r.recordServing(sc, c.desired) && r.onProg != nil {
		r.onProg()
	}
	// One line per pass with what it cost (`make bench` reads it): an
	// unchanged table must show writes=0. No-op full passes are Debug,
	// except the first after a reload, which the operator wants to see.
	level, msg := slog.LevelInfo, "ipvs pass"
	if len(c.ops) == 0 {
		msg = "ipvs in sync"
		if sc.full() && !reloaded {
			level = slog.LevelDebug
		}
	}
	r.log.Log(ctx, level, msg, "scope", sc.name, "services", len(c.desired), "ops", len(c.ops), "failed", failed,
		"writes", r.kernel.Writes()-writes0, "read", read, "dump", readTook, "took", time.Since(start))
	if len(c.ops) > bulkOps && r.afterBulk != nil {
		defer r.afterBulk()
	}

	if err := r.retryState(); err != nil {
		errs = multierror.Append(errs, err)
	}
	// Forget the services in scope that are gone, except those whose
	// delete failed: the next pass tries again, even after a restart.
	cur := r.ownedNow()
	var drop []ipvs.ServiceKey
	for k := range cur {
		if !c.idx.wanted[k] && !failedDeletes[k] && sc.has(k) {
			drop = append(drop, k)
		}
	}
	if len(drop) > 0 {
		next := maps.Clone(cur)
		for _, k := range drop {
			delete(next, k)
		}
		if err := r.setOwned(next); err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	return errs.ErrorOrNil()
}

// apply sends the changes to the kernel in one batch and logs each; it
// returns the services whose delete failed, how many changes failed, and
// their errors.
func (r *Reconciler) apply(ctx context.Context, ops []ipvs.Write, names map[ipvs.ServiceKey]string) (map[ipvs.ServiceKey]bool, int, error) {
	var errs *multierror.Error
	failedDeletes := map[ipvs.ServiceKey]bool{}
	results := r.kernel.WriteBatch(ctx, ops)
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
		if err != nil && op.Kind == ipvs.WriteDeleteService && errors.Is(err, unix.ESRCH) {
			err = nil // already gone: the goal is met
		}
		if err != nil {
			if op.Kind == ipvs.WriteDeleteService {
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

// logReorders logs one line per mh service whose destinations the pass
// moved to bring its kernel list to the canonical order (PlanMHOrder).
func (r *Reconciler) logReorders(ctx context.Context, ops []ipvs.Write, names map[ipvs.ServiceKey]string) {
	var moved []string
	for i, op := range ops {
		if op.Reorder && op.Kind == ipvs.WriteDeleteDest {
			moved = append(moved, op.Dest.Key().String())
		}
		last := i+1 == len(ops) || ops[i+1].Service.ServiceKey != op.Service.ServiceKey
		if last && len(moved) > 0 {
			r.log.Log(ctx, slog.LevelInfo, "mh destinations reordered", "service", names[op.Service.ServiceKey],
				"key", op.Service.ServiceKey.String(), "moved", moved)
			moved = nil
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
	c := r.compute(fullScope, actual)
	var dels []ipvs.Write
	for _, e := range actual {
		if k := e.Service.ServiceKey; c.idx.wanted[k] || c.owned[k] {
			dels = append(dels, ipvs.Write{Kind: ipvs.WriteDeleteService, Service: e.Service})
		}
	}
	failedDeletes, _, errs := r.apply(ctx, dels, c.idx.names)
	if err := r.setOwned(failedDeletes); err != nil {
		errs = errors.Join(errs, err)
	}
	return errs
}

func positive(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
