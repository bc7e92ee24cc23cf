package health

import (
	"context"
	"sync"
	"time"
)

// A probe that timed out while the director itself could not run (a VM
// whose CPU the host gave to others, a stopped or swapped-out process)
// says nothing about the backend: the answer may have been waiting for a
// CPU. In the lab, a guest starved by a loaded host let two probes in a
// row of every healthy backend run out their 400 ms, and fall=2 took all
// of them out. The monitor measures its own stalls (how late a short
// ticker wakes) and, when at least half of a timed-out probe's timeout
// went to them, keeps the backend's state, counts the probe
// (StalledProbes) and logs it at most once per localLogEvery.
//
// The price, as with local errors: while the director stalls this much, a
// backend that stops answering without refusing is not noticed either. A
// refused or reset connection, or a wrong answer, still counts.

// stallTick is how often the meter wakes; a wake-up later than a tick
// beyond its due time is a stall. At 50 a second it costs little, and a
// stall shorter than two ticks cannot cost a probe half its timeout.
const stallTick = 20 * time.Millisecond

// stallKeep is how long the meter keeps past stalls: longer than any
// probe it judges runs (probes are bounded by their timeout).
const stallKeep = 10 * time.Minute

// stallMeter records the spans in which the process did not run.
type stallMeter struct {
	tick time.Duration

	mu   sync.Mutex
	last time.Time // the last wake-up seen
	gaps []span    // oldest first
}

type span struct{ from, to time.Time }

func newStallMeter(tick time.Duration) *stallMeter {
	return &stallMeter{tick: tick, last: time.Now()}
}

// run wakes every tick until ctx ends.
func (s *stallMeter) run(ctx context.Context) {
	s.mu.Lock()
	s.last = time.Now() // the time before Run was not a stall
	s.mu.Unlock()
	t := time.NewTicker(s.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.observe(time.Now())
		}
	}
}

// observe notes a wake-up at now: the time past the tick it was due is a
// stall, when it is more than a tick.
func (s *stallMeter) observe(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g, ok := s.openLocked(now); ok {
		s.gaps = append(s.gaps, g)
	}
	s.last = now
	old := 0
	for old < len(s.gaps) && now.Sub(s.gaps[old].to) > stallKeep {
		old++
	}
	if old > 0 {
		s.gaps = append(s.gaps[:0], s.gaps[old:]...)
	}
}

// openLocked is the stall under way at now: a probe's result may be
// recorded before the meter has woken after the same stall.
func (s *stallMeter) openLocked(now time.Time) (span, bool) {
	due := s.last.Add(s.tick)
	if now.Sub(due) <= s.tick {
		return span{}, false
	}
	return span{due, now}, true
}

// within is how long the process stalled between from and to.
func (s *stallMeter) within(from, to time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum time.Duration
	add := func(g span) {
		a, b := g.from, g.to
		if a.Before(from) {
			a = from
		}
		if b.After(to) {
			b = to
		}
		if b.After(a) {
			sum += b.Sub(a)
		}
	}
	for _, g := range s.gaps {
		add(g)
	}
	if g, ok := s.openLocked(to); ok {
		add(g)
	}
	return sum
}

// stalledOut reports whether a failed probe with this timeout, taken at
// start and ended at end, ran out its time mostly while the director
// stalled, and how long it stalled.
func stalledOut(s *stallMeter, timeout time.Duration, start, end time.Time) (time.Duration, bool) {
	if s == nil || end.Sub(start) < timeout*9/10 {
		return 0, false // it ended well before its deadline: an answer
	}
	st := s.within(start, end)
	return st, st >= timeout/2
}
