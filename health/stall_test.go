package health

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/health/check"
)

func TestStallMeterWithin(t *testing.T) {
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	s := &stallMeter{tick: 20 * time.Millisecond, last: t0}
	s.observe(at(20))
	s.observe(at(55)) // 15 ms late: jitter, not a stall
	s.observe(at(575))
	for _, c := range []struct {
		from, to int
		want     time.Duration
	}{
		{0, 575, 500 * time.Millisecond}, // due at 75, woke at 575
		{100, 200, 100 * time.Millisecond},
		{0, 75, 0},
		{575, 595, 0},
		// Open: the meter has not woken since 575; at 1095 it is a
		// stall from 595 on, though no wake-up has recorded it yet.
		{575, 1095, 500 * time.Millisecond},
		{0, 1095, time.Second},
	} {
		if got := s.within(at(c.from), at(c.to)); got != c.want {
			t.Errorf("within(%d, %d) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
	if len(s.gaps) != 1 {
		t.Errorf("gaps %v, want one", s.gaps)
	}
	// Old stalls are dropped (the one now recorded began at 595).
	s.observe(at(575).Add(stallKeep + time.Second))
	if len(s.gaps) != 1 || !s.gaps[0].from.Equal(at(595)) {
		t.Errorf("after stallKeep: gaps %v, want only the new one", s.gaps)
	}
}

// TestMonitorStalledTimeoutKeepsState: a probe that runs out its timeout
// while the director itself stalls for at least half of it leaves the
// backend as it was, is counted and logged; a timeout with a shorter
// stall, and a refusal during a stall, still count as failures.
func TestMonitorStalledTimeoutKeepsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, 7)
		b := backend(1)
		const timeout = 400 * time.Millisecond
		// stall makes the meter see the director stalled for d of every
		// probe that follows, then answers with res once the probe's
		// deadline (or its own answer) comes.
		probeWith := func(d time.Duration, res func(ctx context.Context) check.Result) {
			h.fake.setFunc(b, func(ctx context.Context) check.Result {
				start := time.Now()
				r := res(ctx)
				h.m.stalls.mu.Lock()
				h.m.stalls.gaps = append(h.m.stalls.gaps, span{start, start.Add(d)})
				h.m.stalls.mu.Unlock()
				return r
			})
		}
		timedOut := func(ctx context.Context) check.Result {
			<-ctx.Done()
			return check.Up(ctx.Err())
		}
		h.m.Update([]Target{{Service: "web", Backend: b, Check: &config.Check{Type: config.CheckTCP, Interval: time.Second, Timeout: timeout, Rise: 1, Fall: 2}}})
		h.start(t)
		advance(2 * time.Second)
		if !h.m.Backend("web", b).Up {
			t.Fatalf("not up: %+v", h.m.Backend("web", b))
		}

		probeWith(timeout/2, timedOut)
		advance(10 * time.Second)
		if st := h.m.Backend("web", b); !st.Up {
			t.Errorf("a healthy backend went down on timeouts the director's stalls explain: %+v", st)
		}
		n := h.m.StalledProbes()
		if n < 9 {
			t.Errorf("StalledProbes() = %d after 10 stalled probes", n)
		}
		if st := h.m.Backend("web", b); st.Excused != n {
			t.Errorf("the backend's Excused = %d, want the %d stalled probes", st.Excused, n)
		}
		if got := h.logLines("director itself stalled"); got < 1 || got > 2 {
			t.Errorf("%d stalled-probe log lines in 10 s, want 1 or 2", got)
		}

		probeWith(timeout/2-time.Millisecond, timedOut)
		advance(3 * time.Second)
		if st := h.m.Backend("web", b); st.Up || st.Excused != h.m.StalledProbes() {
			t.Errorf("timeouts with less than half of them stalled did not count, or were excused (%d stalled probes in all): %+v", h.m.StalledProbes(), st)
		}

		h.fake.set(b, check.Up(nil))
		advance(2 * time.Second)
		probeWith(timeout, func(context.Context) check.Result { return refused })
		advance(3 * time.Second)
		if st := h.m.Backend("web", b); st.Up {
			t.Errorf("refusals during a stall did not count: %+v", st)
		}
		h.stop(t)
	})
}
