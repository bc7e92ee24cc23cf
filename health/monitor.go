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
// Each checked target has one goroutine: it sleeps until its next slot,
// probes with the check's timeout and feeds the result to the target's
// State. A probe that hangs therefore delays nobody else, and probes of
// different backends never queue behind one another. The first probe of
// each target comes at a random offset within its interval, so a reload
// or a restart does not fire thousands of probes at once.
type Monitor struct {
	log       *slog.Logger
	onChange  func()
	newProber func(*config.Check) (check.Prober, error)
	// started, when set, learns each probe's scheduled and actual start
	// (the load benchmark measures lateness with it).
	started func(scheduled, actual time.Time)

	// version changes whenever a backend's status may have (see Version).
	version atomic.Uint64

	mu      sync.Mutex
	rnd     *rand.Rand
	entries map[key]*entry
	ctx     context.Context // set while Run runs
	stopped bool            // Run has returned: start nothing more
	wg      sync.WaitGroup
	kick    chan struct{}
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
	prober   check.Prober
	target   check.Target
	interval time.Duration
	timeout  time.Duration
	cancel   context.CancelFunc // nil until started
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

// New returns a Monitor with no targets. onChange (may be nil) is called
// from Run's goroutine after any backend's Up, Drain, WeightPercent or
// Checked changed; calls are coalesced, so it should re-read what it
// needs. It never delays a probe.
func New(log *slog.Logger, onChange func(), opts ...Option) *Monitor {
	m := &Monitor{
		log:       log,
		onChange:  onChange,
		newProber: check.New,
		rnd:       rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		entries:   make(map[key]*entry),
		kick:      make(chan struct{}, 1),
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
		if !hasCheck(t.Check) {
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
		e.run = r
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
		return Status{WeightPercent: -1}
	}
	return e.state.Status()
}

func hasCheck(c *config.Check) bool { return c != nil && c.Type != config.CheckNone }

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
	return &run{
		prober:   p,
		target:   check.NewTarget(t.Service, t.Backend, t.Check),
		interval: interval,
		timeout:  timeout,
	}, nil
}

func positiveOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// start launches e's run if Run is running; m.mu is held.
func (m *Monitor) start(e *entry) {
	r := e.run
	if r == nil || r.cancel != nil || m.ctx == nil || m.stopped {
		return
	}
	ctx, cancel := context.WithCancel(m.ctx)
	r.cancel = cancel
	first := time.Duration(m.rnd.Int64N(int64(r.interval)))
	k := key{e.target.Service, e.target.Backend}
	m.wg.Add(1)
	go m.loop(ctx, k, r, first)
}

// stop ends e's run; m.mu is held.
func (m *Monitor) stop(e *entry) {
	if e.run != nil && e.run.cancel != nil {
		e.run.cancel()
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
	for {
		select {
		case <-ctx.Done():
			m.mu.Lock()
			m.stopped = true
			for _, e := range m.entries {
				if e.run != nil && e.run.cancel != nil {
					e.run.cancel()
				}
			}
			m.mu.Unlock()
			m.wg.Wait()
			return nil
		case <-m.kick:
			if m.onChange != nil {
				m.onChange()
			}
		}
	}
}

// loop probes one target on its schedule.
func (m *Monitor) loop(ctx context.Context, k key, r *run, first time.Duration) {
	defer m.wg.Done()
	next := time.Now().Add(first)
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if m.started != nil {
			m.started(next, time.Now())
		}
		pctx, cancel := context.WithTimeout(ctx, r.timeout)
		res := r.prober.Probe(pctx, r.target)
		cancel()
		if ctx.Err() != nil {
			return
		}
		m.observe(k, r, res)
		next = next.Add(r.interval)
		if late := time.Since(next); late > 0 {
			// The probe overran its slot (a checker ignoring its
			// deadline): skip the missed slots rather than burst.
			next = next.Add((late/r.interval + 1) * r.interval)
		}
		timer.Reset(time.Until(next))
	}
}

// observe records a probe result and logs a transition once.
func (m *Monitor) observe(k key, r *run, res check.Result) {
	now := time.Now()
	m.mu.Lock()
	e := m.entries[k]
	if e == nil || e.run != r {
		m.mu.Unlock()
		return // a result of a stopped run
	}
	before := e.state.Status()
	changed := e.state.Observe(res, now)
	after := e.state.Status()
	if before.Up != after.Up || before.Drain != after.Drain || before.WeightPercent != after.WeightPercent || before.Checked != after.Checked {
		m.version.Add(1)
	}
	m.mu.Unlock()
	if changed {
		m.logTransition(transition{k, before, after})
		m.notify()
	}
}

func (m *Monitor) logTransition(tr transition) {
	k, before, after := tr.key, tr.before, tr.after
	if before.Up != after.Up || before.Checked != after.Checked {
		level := slog.LevelInfo
		if !before.Checked && after.Reason == ReasonNoCheck {
			// Not a health event: a backend without a check is up from the
			// start, and 20,000 such lines cost a large start real time.
			level = slog.LevelDebug
		}
		m.log.Log(context.Background(), level, "backend health changed", "service", k.service, "backend", k.backend,
			"from", upDown(before), "to", upDown(after), "reason", after.Reason)
		return
	}
	m.log.Info("backend agent report changed", "service", k.service, "backend", k.backend,
		"drain", after.Drain, "weight_percent", after.WeightPercent, "reason", after.Reason)
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
	return Status{WeightPercent: -1, Reason: "not monitored"}
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
