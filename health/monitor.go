package health

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/health/check"
	"github.com/golvs/golvs/health/internal/minheap"
)

// Target is one backend of one service and the check that watches it.
type Target struct {
	Service string
	Backend netip.AddrPort
	// Check nil (or type none) means no check: the backend is always up.
	Check *config.Check
}

// BackendStatus is one line of a Snapshot.
type BackendStatus struct {
	Service string
	Backend netip.AddrPort
	Status
}

// ErrRunning is returned by a second concurrent Run.
var ErrRunning = errors.New("health monitor already running")

// Monitor runs every target's check on its own schedule and keeps each
// backend's verdict.
//
// One scheduler goroutine keeps the runs in a queue ordered by their next
// slot and sleeps until the earliest; what is due then, or within a few
// milliseconds (maxEarly), starts in one batch. A TCP probe needs no
// goroutine (check.AsyncProber): a handshake with a nearby backend
// completes inside connect, and one a round trip away is watched with all
// the others by a single epoll loop. Any other probe runs on a goroutine
// of its own under the check's timeout. So a slow or hung probe delays
// nobody, and the common probe costs no goroutine, timer or context:
// against one goroutine and timer per target this cut the CPU for 10,000
// checks a second by over a third (make bench-health). The first probe of
// each target comes at a random offset within its interval, so a reload
// or a restart does not fire thousands at once.
type Monitor struct {
	log       *slog.Logger
	onChange  func()
	newProber func(*config.Check) (check.Prober, error)
	// started, when set, learns each probe's scheduled and actual start
	// (WithStartObserver).
	started func(scheduled, actual time.Time)
	// beat, when set, is called at least every beatEvery (WithBeat).
	beat      func()
	beatEvery time.Duration

	// version changes whenever a backend's status may have (see Version).
	version atomic.Uint64
	// localErrors counts probes that failed for the director's own reasons
	// (check.ErrLocal); they leave the backend's state as it was.
	localErrors atomic.Uint64
	// stalledProbes counts probes that timed out while the director
	// stalled (stall.go); they too leave the backend's state as it was.
	stalledProbes atomic.Uint64
	stalls        *stallMeter

	epoch time.Time // origin of run slots

	mu      sync.Mutex
	rnd     *rand.Rand
	entries map[key]*entry
	queue   *minheap.Heap[*run] // scheduled runs, earliest next slot first
	ctx     context.Context     // set while Run runs
	stopped bool                // Run has returned: start nothing more
	wg      sync.WaitGroup      // probes on goroutines of their own
	kick    chan struct{}       // onChange is wanted
	wake    chan struct{}       // the queue's head may have moved earlier
	local   localLog            // rate limit of the local-error log
	stalled localLog            // rate limit of the stalled-probe log

	recent recentLog // the last transitions, for the status page
}

type key struct {
	service string
	backend netip.AddrPort
}

type entry struct {
	target Target
	state  *State
	run    *run // nil when the target has no check
}

// run is one target's probing with one check configuration. A new
// configuration gets a new run; results of a stale run are dropped.
type run struct {
	key      key
	entry    *entry // the run is current while entry.run is this run
	prober   check.Prober
	async    check.AsyncProber // prober's goroutine-free start, if it has one
	target   check.Target
	interval time.Duration
	timeout  time.Duration
	early    time.Duration // how early a probe may start (maxEarly)

	// Guarded by Monitor.mu:
	ctx    context.Context    // ends when the run stops
	report func(check.Result) // records a result of an async probe
	cancel context.CancelFunc // nil until scheduled
	next   time.Duration      // the next slot, from Monitor.epoch
	index  int                // in Monitor.queue, -1 when not queued
	busy   bool               // a probe is under way
	start  time.Time          // when the probe under way was taken
}

// Option configures a Monitor.
type Option func(*Monitor)

// WithRand sets the source of the first-probe jitter (tests make it
// deterministic).
func WithRand(src rand.Source) Option {
	return func(m *Monitor) { m.rnd = rand.New(src) }
}

// WithProbers replaces check.New, the factory of probers (tests use fakes).
func WithProbers(f func(*config.Check) (check.Prober, error)) Option {
	return func(m *Monitor) { m.newProber = f }
}

// WithBeat has the scheduler call beat at least every `every`, also when
// idle: a watchdog then knows the scheduler itself is not stuck.
func WithBeat(beat func(), every time.Duration) Option {
	return func(m *Monitor) { m.beat, m.beatEvery = beat, max(every, time.Millisecond) }
}

// WithStartObserver has fn learn each probe's scheduled and actual start:
// how late the scheduler runs (make bench-health measures it).
func WithStartObserver(fn func(scheduled, actual time.Time)) Option {
	return func(m *Monitor) { m.started = fn }
}

// New returns a Monitor with no targets. onChange (may be nil) is called
// from Run's goroutine after any backend's Up, Drain, WeightPercent or
// Checked changed; calls are coalesced, so it should re-read what it
// needs. It never delays a probe.
func New(log *slog.Logger, onChange func(), opts ...Option) *Monitor {
	m := &Monitor{
		log:       log,
		onChange:  onChange,
		newProber: check.New,
		epoch:     time.Now(),
		stalls:    newStallMeter(stallTick),
		rnd:       rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		entries:   make(map[key]*entry),
		kick:      make(chan struct{}, 1),
		wake:      make(chan struct{}, 1),
		queue: minheap.New(func(a, b *run) bool { return a.next < b.next },
			func(r *run, i int) { r.index = i }),
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Update makes targets the monitored set.
//
// A target whose service, backend and check configuration are unchanged
// keeps its state and its schedule. A target whose check changed keeps its
// current verdict (a reload must not bounce traffic) but starts counting
// rise/fall afresh with the new check. New targets start down and
// unchecked; removed ones stop. An error names targets whose check could
// not be built: they stay down with the error as the reason.
func (m *Monitor) Update(targets []Target) error {
	defer m.version.Add(1)
	now := time.Now()
	var errs *multierror.Error
	var logs []transition
	m.mu.Lock()
	notify := false
	seen := make(map[key]bool, len(targets))
	for _, t := range targets {
		k := key{t.Service, t.Backend}
		seen[k] = true
		e := m.entries[k]
		if e != nil && reflect.DeepEqual(e.target.Check, t.Check) {
			continue
		}
		if e != nil {
			m.stop(e)
		}
		t.Check = copyCheck(t.Check)
		if !HasCheck(t.Check) {
			since := now
			if e != nil && e.state.Status().Up {
				since = e.state.Status().Since
			}
			ne := &entry{target: t, state: newUpState(since)}
			if e == nil || statusChanged(e.state.Status(), ne.state.Status()) {
				notify = true
				logs = append(logs, transition{k, oldStatus(e), ne.state.Status()})
			}
			m.entries[k] = ne
			continue
		}
		r, err := m.newRun(t)
		if e == nil {
			e = &entry{state: NewState(t.Check.Rise, t.Check.Fall, now)}
		} else {
			e.state.Reconfigure(t.Check.Rise, t.Check.Fall)
		}
		e.target = t
		m.entries[k] = e
		if err != nil {
			errs = multierror.Append(errs, fmt.Errorf("service %q backend %s: %w", t.Service, t.Backend, err))
			// Down at once, whatever fall says: nothing will ever probe it.
			before := e.state.Status()
			e.state = NewState(1, 1, before.Since)
			if e.state.Observe(check.Up(err), now); statusChanged(before, e.state.Status()) {
				notify = true
				logs = append(logs, transition{k, before, e.state.Status()})
			}
			continue
		}
		r.entry, e.run = e, r
		m.start(e)
	}
	for k, e := range m.entries {
		if !seen[k] {
			m.stop(e)
			delete(m.entries, k)
		}
	}
	m.mu.Unlock()
	for _, tr := range logs {
		m.logTransition(tr)
	}
	if notify {
		m.notify()
	}
	return errs.ErrorOrNil()
}

// transition is a change worth one log line.
type transition struct {
	key           key
	before, after Status
}

func oldStatus(e *entry) Status {
	if e == nil {
		return Status{WeightPercent: WeightNotReported}
	}
	return e.state.Status()
}

// copyCheck keeps the caller's later edits out of our comparison.
func copyCheck(c *config.Check) *config.Check {
	if c == nil {
		return nil
	}
	cp := *c
	cp.ExpectStatus = slices.Clone(c.ExpectStatus)
	cp.Send, cp.Expect = slices.Clone(c.Send), slices.Clone(c.Expect)
	cp.Command = slices.Clone(c.Command)
	return &cp
}

func (m *Monitor) newRun(t Target) (*run, error) {
	p, err := m.newProber(t.Check)
	if err != nil {
		return nil, err
	}
	// The loader validates these; guard anyway, as a zero or negative
	// interval would spin or panic.
	interval := positiveOr(t.Check.Interval, config.DefaultCheckInterval)
	timeout := min(positiveOr(t.Check.Timeout, config.DefaultCheckTimeout), interval)
	a, _ := p.(check.AsyncProber)
	return &run{
		key:      key{t.Service, t.Backend},
		prober:   p,
		async:    a,
		index:    -1,
		target:   check.NewTarget(t.Service, t.Backend, t.Check),
		interval: interval,
		timeout:  timeout,
		early:    min(maxEarly, interval/100),
	}, nil
}

func positiveOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// start schedules e's run if Run is running; m.mu is held.
func (m *Monitor) start(e *entry) {
	r := e.run
	if r == nil || r.cancel != nil || m.ctx == nil || m.stopped {
		return
	}
	r.ctx, r.cancel = context.WithCancel(m.ctx)
	r.report = func(res check.Result) { m.record([]result{{r, res}}) }
	r.next = time.Since(m.epoch) + time.Duration(m.rnd.Int64N(int64(r.interval)))
	m.queue.Push(r)
	if r.index == 0 {
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
}

// stop ends e's run; m.mu is held.
func (m *Monitor) stop(e *entry) {
	if r := e.run; r != nil {
		if r.cancel != nil {
			r.cancel()
		}
		if r.index >= 0 {
			m.queue.Remove(r.index)
		}
	}
	e.run = nil
}

// Run probes until ctx ends, then stops every probe and waits for them.
func (m *Monitor) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.ctx != nil || m.stopped {
		m.mu.Unlock()
		return ErrRunning
	}
	m.ctx = ctx
	// In a fixed order, so a seeded jitter source gives fixed offsets.
	keys := slices.SortedFunc(maps.Keys(m.entries), compareKeys)
	for _, k := range keys {
		m.start(m.entries[k])
	}
	m.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.stalls.run(ctx)
	}()
	scheduled := make(chan struct{})
	go func() {
		defer close(scheduled)
		m.schedule(ctx)
	}()
	for {
		select {
		case <-ctx.Done():
			m.mu.Lock()
			m.stopped = true
			for _, e := range m.entries {
				m.stop(e)
			}
			m.mu.Unlock()
			<-scheduled
			m.wg.Wait()
			return nil
		case <-m.kick:
			if m.onChange != nil {
				m.onChange()
			}
		}
	}
}

// schedule starts each run's probes in its slots until ctx ends.
func (m *Monitor) schedule(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var (
		due   []*run
		slots []time.Duration
		done  []result
	)
	for {
		if m.beat != nil {
			m.beat()
		}
		m.mu.Lock()
		now := time.Since(m.epoch)
		due, slots = m.takeDue(now, due[:0], slots[:0])
		wait := time.Duration(-1)
		if len(due) == 0 && m.queue.Len() > 0 {
			// Wake for the head's slot, not its allowance: runs due
			// soon after start early with it, so wakes stay few.
			wait = m.queue.Head().next - now
		}
		if m.beat != nil && (wait < 0 || wait > m.beatEvery) {
			wait = m.beatEvery // wake to say the scheduler is alive
		}
		m.mu.Unlock()
		if len(due) > 0 {
			done = m.probe(due, slots, done[:0])
			m.record(done)
			clear(due) // let stopped runs go
			continue
		}
		if wait >= 0 {
			timer.Reset(wait)
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-m.wake:
		}
	}
}

// takeDue moves every run whose slot has come (or comes within its early
// allowance) to its next slot, and returns those to probe now with the
// slots they were due in; m.mu is held. A run whose previous probe is
// still under way (a checker ignoring its deadline) skips the slot rather
// than queueing a burst.
func (m *Monitor) takeDue(now time.Duration, due []*run, slots []time.Duration) ([]*run, []time.Duration) {
	var notYet []*run
	for m.queue.Len() > 0 && m.queue.Head().next <= now+maxEarly {
		r := m.queue.Pop()
		if r.next > now+r.early {
			notYet = append(notYet, r) // a short interval allows less
			continue
		}
		slot := r.next
		r.next = slot + r.interval
		if now-slot > r.interval/4 {
			// Well behind its slot (a stalled machine, a storm): the
			// next probe comes a whole interval after this one. Kept
			// on its old phase, a late run probed again soon after to
			// catch up: after a health storm under a host CPU hog the
			// director ran 862 probes a second against 500 scheduled.
			r.next = now + r.interval
		}
		notYet = append(notYet, r)
		if r.busy {
			continue
		}
		r.busy = true
		r.start = m.epoch.Add(now)
		due = append(due, r)
		slots = append(slots, slot)
	}
	for _, r := range notYet {
		m.queue.Push(r)
	}
	return due, slots
}

// maxEarly is how much earlier than its slot a probe may start, so that
// probes due within a few milliseconds of each other start in one batch:
// at 10,000 checks a second, waking for each costs more than the probes.
// A run allows at most 1% of its interval (run.early).
const maxEarly = 10 * time.Millisecond

// result is one finished probe.
type result struct {
	run *run
	res check.Result
}

// probe starts a probe of each run. Those that finish at once are
// appended to done; the others report later, through the async prober or
// from goroutines of their own.
func (m *Monitor) probe(due []*run, slots []time.Duration, done []result) []result {
	for i, r := range due {
		start := time.Now()
		if m.started != nil {
			m.started(m.epoch.Add(slots[i]), start)
		}
		if r.async != nil {
			if res, ok := r.async.Start(r.target, start.Add(r.timeout), r.report); ok {
				done = append(done, result{r, res})
			}
			continue
		}
		m.finish(r, start, func(ctx context.Context) check.Result { return r.prober.Probe(ctx, r.target) })
	}
	return done
}

// finish runs probe on a goroutine of its own, bounded by r's timeout
// from start, and records its result.
func (m *Monitor) finish(r *run, start time.Time, probe func(context.Context) check.Result) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithDeadline(r.ctx, start.Add(r.timeout))
		res := probe(ctx)
		cancel()
		m.record([]result{{r, res}})
	}()
}

// record feeds probe results to their targets' states and logs each
// transition once.
func (m *Monitor) record(done []result) {
	if len(done) == 0 {
		return
	}
	now := time.Now()
	var logs []transition
	var locals, stalls []localLine
	m.mu.Lock()
	for _, d := range done {
		r := d.run
		r.busy = false
		if r.entry.run != r || r.ctx.Err() != nil {
			continue // a result of a stopped run
		}
		if errors.Is(check.Classify(d.res.Err), check.ErrLocal) {
			m.localErrors.Add(1)
			r.entry.state.Excuse()
			if line, ok := m.local.note(r.key, d.res.Err, now); ok {
				locals = append(locals, line)
			}
			continue
		}
		if d.res.Err != nil {
			if took, ok := stalledOut(m.stalls, r.timeout, r.start, now); ok {
				m.stalledProbes.Add(1)
				r.entry.state.Excuse()
				if line, ok := m.stalled.note(r.key, d.res.Err, now); ok {
					line.stalled = took
					stalls = append(stalls, line)
				}
				continue
			}
		}
		st := r.entry.state
		before := st.Status()
		changed := st.Observe(d.res, now)
		after := st.Status()
		if before.Up != after.Up || before.Drain != after.Drain || before.WeightPercent != after.WeightPercent || before.Checked != after.Checked {
			m.version.Add(1)
		}
		if changed {
			tr := transition{r.key, before, after}
			logs = append(logs, tr)
			// Noted under the lock that publishes the state: a status
			// page that reads the state and then the transitions (as
			// the page does) never shows a backend down without the
			// transition that took it there. Noted after the unlock, a
			// busy host let a page in between.
			if tr.event() {
				m.noteTransition(tr, now)
			}
		}
	}
	m.mu.Unlock()
	for _, l := range locals {
		m.logLocal(l)
	}
	for _, l := range stalls {
		m.logStalled(l)
	}
	for _, tr := range logs {
		m.logTransition(tr)
	}
	if len(logs) > 0 {
		m.notify()
	}
}

func (m *Monitor) logTransition(tr transition) {
	k, before, after := tr.key, tr.before, tr.after
	if before.Up != after.Up || before.Checked != after.Checked {
		level := slog.LevelInfo
		if !tr.event() {
			level = slog.LevelDebug
		}
		m.log.Log(context.Background(), level, "backend health changed", "service", k.service, "backend", k.backend,
			"from", upDown(before), "to", upDown(after), "reason", after.Reason)
		return
	}
	m.log.Info("backend agent report changed", "service", k.service, "backend", k.backend,
		"drain", after.Drain, "weight_percent", after.WeightPercent, "reason", after.Reason)
}

// event tells a health event from a backend without a check coming up
// at start: that is logged at debug and kept off the status page, as
// 20,000 such lines cost a large start real time.
func (tr transition) event() bool {
	return tr.before.Checked || tr.after.Reason != ReasonNoCheck
}

func upDown(s Status) string {
	if !s.Checked {
		return "unchecked"
	}
	if s.Up {
		return "up"
	}
	return "down"
}

// notify asks Run to call onChange, without ever blocking a probe.
func (m *Monitor) notify() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Version changes whenever the Up, Drain, WeightPercent or Checked of
// some backend may have changed, so a caller can tell that nothing did.
func (m *Monitor) Version() uint64 { return m.version.Load() }

// Backend returns the status of backend b of service svc. A backend the
// monitor does not know is reported down and unchecked.
func (m *Monitor) Backend(svc string, b netip.AddrPort) Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.entries[key{svc, b}]; e != nil {
		return e.state.Status()
	}
	return Status{WeightPercent: WeightNotReported, Reason: "not monitored"}
}

// Snapshot returns every backend's status, ordered by service and backend.
func (m *Monitor) Snapshot() []BackendStatus {
	m.mu.Lock()
	out := make([]BackendStatus, 0, len(m.entries))
	for k, e := range m.entries {
		out = append(out, BackendStatus{Service: k.service, Backend: k.backend, Status: e.state.Status()})
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b BackendStatus) int {
		return compareKeys(key{a.Service, a.Backend}, key{b.Service, b.Backend})
	})
	return out
}

func compareKeys(a, b key) int {
	return cmp.Or(cmp.Compare(a.service, b.service), a.backend.Compare(b.backend))
}
