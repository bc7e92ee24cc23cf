package director

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/ipvs"
)

// Errors of operator requests, for errors.Is.
var (
	ErrUnknownService = errors.New("unknown service")
	ErrUnknownBackend = errors.New("unknown backend")
)

// DefaultDrainPoll is how often a pass runs while a backend drains, to see
// its connections reach 0 soon after they do.
const DefaultDrainPoll = time.Second

// DefaultPassGap is the least time from the start of one pass of Run to
// the start of the next that a kick asked for. Without it a health storm
// (hundreds of verdicts a second) ran one pass after another, each with
// the few changes made during the previous one, and took whatever CPU was
// left; with it, passes come at most ten a second and each carries every
// change made meanwhile. A kick is never lost, only deferred, and the
// first kick after a quiet spell still starts a pass at once.
const DefaultPassGap = 100 * time.Millisecond

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
	PassGap   time.Duration // 0 = DefaultPassGap; negative = none
	// AfterBulkPass, if set, runs after a pass that applied more than a
	// few dozen changes (a cold start, a large reload).
	AfterBulkPass func()
	// OnDrain, if set, runs after an operator drain or undrain is in
	// force: what else depends on drains (a routed director's routes)
	// decides again.
	OnDrain func()
	// OnProgrammed, if set, runs after a pass changed which VIPs the
	// kernel can serve (ProgrammedVIPs).
	OnProgrammed func()
	// Beat, when set, is called after every pass of Run and at least
	// every BeatEvery while Run waits: a watchdog's sign that the loop
	// is not stuck.
	Beat      func()
	BeatEvery time.Duration
}

// destKey is one destination of one kernel service.
type destKey struct {
	Service ipvs.ServiceKey
	Dest    netip.AddrPort
}

// Reconciler keeps the kernel's IPVS table equal to the topology: every
// pass reads the kernel once, computes the desired table from config and
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
	passGap   time.Duration
	afterBulk func()
	onDrain   func()
	onProg    func()
	beat      func()
	beatEvery time.Duration

	readers readerTable // what status readers are served from

	kick  chan struct{}
	rearm chan struct{} // a drain began outside Run's passes
	pass  sync.Mutex    // one pass at a time

	mu            sync.Mutex
	topo          *config.Topology
	stateLoaded   bool
	stateDirty    bool                     // the last state write failed: retry each pass
	stateErr      error                    // the last state write's error, or why the file is not used
	stateFailures uint64                   // state writes that failed, in all
	owned         map[ipvs.ServiceKey]bool // as last persisted
	opDrains      map[drainKey]bool        // operator drains, persisted
	selfDrained   bool                     // drain-self, persisted
	draining      map[destKey]time.Time    // leaving destinations, since when
	quorumLost    map[string]bool          // services whose quorum is lost, as last logged
	serving       map[ipvs.ServiceKey]bool // can schedule, as last applied (programmed.go)
	reloaded      bool                     // SetConfig since the last pass
	idx           *topoIndex               // of idxOf
	passes        uint64                   // full passes run, for FullDumpEvery
	drainsGen     uint64                   // changes of opDrains
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
		passGap:   opts.PassGap,
		afterBulk: opts.AfterBulkPass,
		onDrain:   opts.OnDrain,
		onProg:    opts.OnProgrammed,
		beat:      opts.Beat,
		beatEvery: opts.BeatEvery,
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
	if r.passGap == 0 {
		r.passGap = DefaultPassGap
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
		start := time.Now()
		if err := r.Sync(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("reconcile pass failed; retrying on the next pass", "err", err)
		}
		if r.beat != nil {
			r.beat()
		}
		due := time.Now().Add(r.resyncInterval())
		if err := r.waitPass(ctx, due); err != nil {
			return nil
		}
		// Kicks that come meanwhile wait with this one (r.kick holds one).
		if gap := time.Until(start.Add(r.passGap)); gap > 0 {
			t := time.NewTimer(gap)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
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
		beatOnly := r.beat != nil && r.beatEvery > 0 && r.beatEvery < wait
		if beatOnly {
			wait = r.beatEvery // wake to say the loop is alive
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
			if beatOnly {
				r.beat()
				continue
			}
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
	return resyncOf(r.topo)
}

// resyncOf is topo's resync interval, or the default.
func resyncOf(topo *config.Topology) time.Duration {
	if topo != nil && topo.Director.ResyncInterval > 0 {
		return topo.Director.ResyncInterval
	}
	return config.DefaultResyncInterval
}
