package health

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/health/check"
)

// fake answers probes per backend and records when each probe started.
type fake struct {
	mu     sync.Mutex
	result map[netip.AddrPort]func(ctx context.Context) check.Result
	starts map[netip.AddrPort][]time.Time
	built  []*config.Check
}

func newFake() *fake {
	return &fake{
		result: make(map[netip.AddrPort]func(ctx context.Context) check.Result),
		starts: make(map[netip.AddrPort][]time.Time),
	}
}

func (f *fake) set(b netip.AddrPort, res check.Result) {
	f.setFunc(b, func(context.Context) check.Result { return res })
}

func (f *fake) setFunc(b netip.AddrPort, fn func(ctx context.Context) check.Result) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.result[b] = fn
}

func (f *fake) probes(b netip.AddrPort) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.starts[b]...)
}

func (f *fake) Probe(ctx context.Context, t check.Target) check.Result {
	f.mu.Lock()
	f.starts[t.Backend] = append(f.starts[t.Backend], time.Now())
	fn := f.result[t.Backend]
	f.mu.Unlock()
	if fn == nil {
		return check.Up(nil)
	}
	return fn(ctx)
}

func (f *fake) factory(c *config.Check) (check.Prober, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.built = append(f.built, c)
	if c.Type == "broken" {
		return nil, errors.New("cannot build")
	}
	return f, nil
}

func backend(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 80)
}

func tcpCheck(interval time.Duration, rise, fall int) *config.Check {
	return &config.Check{Type: config.CheckTCP, Interval: interval, Timeout: interval / 2, Rise: rise, Fall: fall}
}

// harness runs a Monitor inside a synctest bubble.
type harness struct {
	m       *Monitor
	fake    *fake
	changes atomic.Int64
	logs    *bytes.Buffer
	logMu   *sync.Mutex
	cancel  context.CancelFunc
	done    chan error
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func newHarness(t *testing.T, seed uint64) *harness {
	h := &harness{fake: newFake(), logs: new(bytes.Buffer), logMu: new(sync.Mutex)}
	log := slog.New(slog.NewTextHandler(lockedWriter{h.logMu, h.logs}, nil))
	h.m = New(log, func() { h.changes.Add(1) },
		WithRand(rand.NewPCG(seed, seed)), WithProbers(h.fake.factory))
	return h
}

func (h *harness) start(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.m.Run(ctx) }()
	synctest.Wait()
}

func (h *harness) stop(t *testing.T) {
	h.cancel()
	if err := <-h.done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func (h *harness) logLines(sub string) int {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	return strings.Count(h.logs.String(), sub)
}

// advance moves the bubble's clock by d and lets everything settle.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func TestMonitorFirstProbesJittered(t *testing.T) {
	// 300ms apart on average, so that few first probes fall within one
	// batch (maxEarly).
	const n, interval = 200, 60 * time.Second
	offsets := func(seed uint64) []time.Duration {
		var out []time.Duration
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, seed)
			var targets []Target
			for i := range n {
				targets = append(targets, Target{Service: "web", Backend: backend(i), Check: tcpCheck(interval, 1, 1)})
			}
			if err := h.m.Update(targets); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			h.start(t)
			advance(interval - time.Nanosecond)
			for i := range n {
				p := h.fake.probes(backend(i))
				if len(p) != 1 {
					t.Fatalf("backend %d: %d probes in the first interval, want 1", i, len(p))
				}
				out = append(out, p[0].Sub(start))
			}
			h.stop(t)
		})
		return out
	}
	a := offsets(1)
	seen := make(map[time.Duration]bool)
	var early, late int
	for _, d := range a {
		seen[d] = true
		if d < interval/2 {
			early++
		} else {
			late++
		}
	}
	if len(seen) < n*9/10 {
		t.Errorf("only %d distinct first-probe offsets among %d", len(seen), n)
	}
	if early < n/4 || late < n/4 {
		t.Errorf("first probes not spread over the interval: %d early, %d late", early, late)
	}
	if b := offsets(1); !equalDurations(a, b) {
		t.Error("same seed, different offsets: jitter is not deterministic")
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMonitorSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, 7)
		h.m.Update([]Target{{Service: "web", Backend: backend(1), Check: tcpCheck(time.Second, 1, 1)}})
		h.start(t)
		advance(10 * time.Second)
		p := h.fake.probes(backend(1))
		if len(p) != 10 {
			t.Fatalf("%d probes in 10 intervals, want 10", len(p))
		}
		for i := 1; i < len(p); i++ {
			if d := p[i].Sub(p[i-1]); d != time.Second {
				t.Errorf("probe %d came %v after the previous, want 1s", i, d)
			}
		}
		h.stop(t)
	})
}

func TestMonitorTransitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, 3)
		b := backend(1)
		h.m.Update([]Target{{Service: "web", Backend: b, Check: tcpCheck(time.Second, 2, 3)}})
		if st := h.m.Backend("web", b); st.Up || st.Checked || st.Reason != ReasonNotChecked {
			t.Fatalf("before Run: %+v", st)
		}
		v0 := h.m.Version()
		h.start(t)
		advance(time.Second) // first probe: up
		if st := h.m.Backend("web", b); !st.Up || !st.Checked {
			t.Fatalf("after first success: %+v", st)
		}
		// The director reuses its plan while Version stands still.
		if h.m.Version() == v0 {
			t.Error("Version did not move when the backend came up")
		}
		if got := h.changes.Load(); got != 1 {
			t.Errorf("onChange called %d times, want 1", got)
		}

		v1 := h.m.Version()
		h.fake.set(b, refused)
		advance(2 * time.Second)
		if st := h.m.Backend("web", b); !st.Up || !strings.Contains(st.Reason, "2 of 3 to fall") {
			t.Fatalf("after 2 failures: %+v", st)
		}
		if h.m.Version() != v1 {
			t.Error("Version moved on failures that changed no verdict")
		}
		if got := h.changes.Load(); got != 1 {
			t.Errorf("onChange called %d times before the fall, want 1", got)
		}
		advance(5 * time.Second)
		if h.m.Version() == v1 {
			t.Error("Version did not move when the backend went down")
		}
		st := h.m.Backend("web", b)
		// Probes: 1 success, then failures; the third failure is probe 3.
		if downAt := h.fake.probes(b)[3]; st.Up || st.Reason != "connect: connection refused" || !st.Since.Equal(downAt) {
			t.Fatalf("after 3+ failures: %+v, want down since %v", st, downAt)
		}
		if got := h.changes.Load(); got != 2 {
			t.Errorf("onChange called %d times, want 2", got)
		}
		if got := h.logLines("backend health changed"); got != 2 {
			t.Errorf("%d transition log lines, want 2 (up, down):\n%s", got, h.logs)
		}
		if got := h.logLines("from=up to=down"); got != 1 {
			t.Errorf("down transition logged %d times, want 1", got)
		}

		h.fake.set(b, check.Result{Drain: true, WeightPercent: -1})
		advance(2 * time.Second)
		if st := h.m.Backend("web", b); !st.Up || !st.Drain {
			t.Fatalf("after rise with drain: %+v", st)
		}
		h.stop(t)
	})
}

func TestMonitorTimeoutBoundsProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, 3)
		b := backend(1)
		var took []time.Duration
		var mu sync.Mutex
		h.fake.setFunc(b, func(ctx context.Context) check.Result {
			start := time.Now()
			<-ctx.Done()
			mu.Lock()
			took = append(took, time.Since(start))
			mu.Unlock()
			return check.Up(ctx.Err())
		})
		h.m.Update([]Target{{Service: "web", Backend: b, Check: &config.Check{Type: config.CheckTCP, Interval: 2 * time.Second, Timeout: 300 * time.Millisecond, Rise: 1, Fall: 1}}})
		h.start(t)
		advance(6 * time.Second)
		h.stop(t)
		mu.Lock()
		defer mu.Unlock()
		if len(took) < 2 {
			t.Fatalf("%d probes", len(took))
		}
		for _, d := range took {
			if d != 300*time.Millisecond {
				t.Errorf("probe lasted %v, want the 300ms timeout", d)
			}
		}
		if st := h.m.Backend("web", b); st.Up || !strings.Contains(st.Reason, "deadline exceeded") {
			t.Errorf("status %+v", st)
		}
	})
}

func TestMonitorHungProbeDelaysNobody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, 5)
		hung, fine := backend(1), backend(2)
		release := make(chan struct{})
		// A checker that ignores its context entirely.
		h.fake.setFunc(hung, func(context.Context) check.Result { <-release; return ok })
		h.m.Update([]Target{
			{Service: "web", Backend: hung, Check: tcpCheck(time.Second, 1, 1)},
			{Service: "web", Backend: fine, Check: tcpCheck(time.Second, 1, 1)},
		})
		h.start(t)
		advance(20 * time.Second)
		if got := len(h.fake.probes(hung)); got != 1 {
			t.Errorf("hung backend probed %d times, want 1", got)
		}
		p := h.fake.probes(fine)
		if len(p) != 20 {
			t.Errorf("other backend probed %d times in 20 intervals, want 20", len(p))
		}
		for i := 1; i < len(p); i++ {
			if d := p[i].Sub(p[i-1]); d != time.Second {
				t.Errorf("other backend's probe %d came after %v, want 1s", i, d)
			}
		}
		if st := h.m.Backend("web", hung); st.Checked {
			t.Errorf("hung backend has a verdict: %+v", st)
		}
		// Its late result is recorded and the schedule resumes without a
		// burst of the missed slots.
		close(release)
		synctest.Wait()
		if st := h.m.Backend("web", hung); !st.Up {
			t.Errorf("released backend: %+v", st)
		}
		before := len(h.fake.probes(hung))
		advance(3 * time.Second)
		if got := len(h.fake.probes(hung)) - before; got != 3 {
			t.Errorf("after release: %d probes in 3 intervals, want 3", got)
		}
		h.stop(t)
	})
}

func TestMonitorUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, 9)
		a, b, c := backend(1), backend(2), backend(3)
		chk := tcpCheck(time.Second, 2, 2)
		h.m.Update([]Target{
			{Service: "web", Backend: a, Check: chk},
			{Service: "web", Backend: b, Check: chk},
		})
		h.start(t)
		advance(5 * time.Second)
		stA := h.m.Backend("web", a)
		if !stA.Up {
			t.Fatalf("a: %+v", stA)
		}
		built := len(h.fake.built)

		// Same targets, equal (not identical) check: state and schedule kept.
		same := *chk
		if err := h.m.Update([]Target{
			{Service: "web", Backend: a, Check: &same},
			{Service: "web", Backend: b, Check: &same},
		}); err != nil {
			t.Fatal(err)
		}
		if len(h.fake.built) != built {
			t.Error("an unchanged check was rebuilt")
		}
		if got := h.m.Backend("web", a); got != stA {
			t.Errorf("unchanged target: %+v, want %+v", got, stA)
		}
		pa := h.fake.probes(a)
		advance(3 * time.Second)
		pa2 := h.fake.probes(a)
		if len(pa2)-len(pa) != 3 || pa2[len(pa)].Sub(pa[len(pa)-1]) != time.Second {
			t.Errorf("schedule disturbed by an unchanged reload: %v then %v", pa, pa2)
		}

		// A changed check on a: verdict kept, counting restarts; b removed;
		// c added without a check: up at once.
		h.fake.set(a, refused)
		changed := tcpCheck(2*time.Second, 2, 3)
		changesBefore := h.changes.Load()
		if err := h.m.Update([]Target{
			{Service: "web", Backend: a, Check: changed},
			{Service: "web", Backend: c},
		}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := h.m.Backend("web", a); !got.Up || !got.Since.Equal(stA.Since) {
			t.Errorf("changed check lost the verdict: %+v", got)
		}
		if got := h.m.Backend("web", c); !got.Up || got.Reason != ReasonNoCheck {
			t.Errorf("unchecked backend: %+v", got)
		}
		if got := h.m.Backend("web", b); got.Up || got.Reason != "not monitored" {
			t.Errorf("removed backend: %+v", got)
		}
		if h.changes.Load() == changesBefore {
			t.Error("adding an up backend did not call onChange")
		}
		pb := len(h.fake.probes(b))
		// fall=3 at 2s: within 4s only 2 failures, within 6s+jitter 3.
		advance(4*time.Second - time.Nanosecond)
		if !h.m.Backend("web", a).Up {
			t.Error("a went down before fall=3 failures of the new check")
		}
		advance(4 * time.Second)
		if h.m.Backend("web", a).Up {
			t.Error("a still up after the new check failed 3 times")
		}
		if got := len(h.fake.probes(b)); got != pb {
			t.Errorf("removed backend probed %d more times", got-pb)
		}
		if got := len(h.m.Snapshot()); got != 2 {
			t.Errorf("snapshot has %d backends, want 2", got)
		}
		h.stop(t)
	})
}

func TestMonitorBrokenCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, 1)
		err := h.m.Update([]Target{
			{Service: "web", Backend: backend(1), Check: &config.Check{Type: "broken", Interval: time.Second}},
			{Service: "web", Backend: backend(2), Check: tcpCheck(time.Second, 1, 1)},
		})
		if err == nil || !strings.Contains(err.Error(), "cannot build") {
			t.Fatalf("Update: %v, want the build error", err)
		}
		h.start(t)
		advance(3 * time.Second)
		if st := h.m.Backend("web", backend(1)); st.Up || !st.Checked || st.Reason != "cannot build" {
			t.Errorf("broken check: %+v", st)
		}
		if st := h.m.Backend("web", backend(2)); !st.Up {
			t.Errorf("the other target suffered: %+v", st)
		}
		// An up backend whose new check cannot be built goes down at once,
		// although fall is 3.
		if err := h.m.Update([]Target{
			{Service: "web", Backend: backend(1), Check: &config.Check{Type: "broken", Interval: time.Second}},
			{Service: "web", Backend: backend(2), Check: &config.Check{Type: "broken", Interval: time.Second, Fall: 3}},
		}); err == nil {
			t.Fatal("Update accepted a broken check")
		}
		if st := h.m.Backend("web", backend(2)); st.Up || st.Reason != "cannot build" {
			t.Errorf("up backend with a broken check: %+v", st)
		}
		h.stop(t)
	})
}

func TestMonitorUpdateWhileStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, 1)
		h.start(t)
		h.stop(t)
		h.m.Update([]Target{{Service: "web", Backend: backend(1), Check: tcpCheck(time.Second, 1, 1)}})
		advance(3 * time.Second)
		if n := len(h.fake.probes(backend(1))); n != 0 {
			t.Errorf("%d probes after Run returned", n)
		}
		if err := h.m.Run(t.Context()); !errors.Is(err, ErrRunning) {
			t.Errorf("second Run: %v, want ErrRunning", err)
		}
	})
}

func TestSnapshotOrder(t *testing.T) {
	m := New(slog.New(slog.DiscardHandler), nil)
	m.Update([]Target{
		{Service: "web", Backend: backend(2)},
		{Service: "api", Backend: backend(9)},
		{Service: "web", Backend: backend(1)},
	})
	var got []string
	for _, s := range m.Snapshot() {
		got = append(got, s.Service+" "+s.Backend.String())
	}
	want := "api 192.0.2.9:80,web 192.0.2.1:80,web 192.0.2.2:80"
	if strings.Join(got, ",") != want {
		t.Errorf("snapshot order %v, want %s", got, want)
	}
}

func TestMonitorSlowOnChangeDelaysNoProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		release := make(chan struct{})
		var calls atomic.Int64
		m := New(slog.New(slog.DiscardHandler), func() { calls.Add(1); <-release },
			WithRand(rand.NewPCG(1, 1)), WithProbers(f.factory))
		a, b := backend(1), backend(2)
		f.set(b, refused)
		m.Update([]Target{
			{Service: "web", Backend: a, Check: tcpCheck(time.Second, 1, 1)},
			{Service: "web", Backend: b, Check: tcpCheck(time.Second, 1, 1)},
		})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		advance(5 * time.Second)
		if got := calls.Load(); got != 1 {
			t.Errorf("onChange entered %d times while blocked, want 1", got)
		}
		if n := len(f.probes(a)); n != 5 {
			t.Errorf("%d probes while onChange blocked, want 5", n)
		}
		// Changes made meanwhile are not lost: one more (coalesced) call.
		f.set(a, refused)
		advance(2 * time.Second)
		if m.Backend("web", a).Up {
			t.Error("state did not advance while onChange blocked")
		}
		close(release)
		synctest.Wait()
		if got := calls.Load(); got != 2 {
			t.Errorf("onChange called %d times in all, want 2 (coalesced)", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// A run taken well behind its slot probes next a whole interval later,
// not on its old phase (which would probe it again soon after, to catch
// up); a run a little late keeps its phase.
func TestTakeDueLateRunKeepsItsInterval(t *testing.T) {
	m := New(slog.New(slog.DiscardHandler), nil)
	const interval = 2 * time.Second
	for _, c := range []struct {
		late, wantNext time.Duration
	}{
		{5 * time.Millisecond, interval},
		{interval / 4, interval},
		{interval/4 + time.Millisecond, interval/4 + time.Millisecond + interval},
		{1900 * time.Millisecond, 1900*time.Millisecond + interval},
		{5 * interval, 6 * interval},
	} {
		r := &run{interval: interval, index: -1}
		m.queue.Push(r)
		due, _ := m.takeDue(c.late, nil, nil)
		if len(due) != 1 || r.next != c.wantNext {
			t.Errorf("taken %v late: %d due, next slot %v; want 1 due, next at %v", c.late, len(due), r.next, c.wantNext)
		}
		m.queue.Pop()
	}
}
