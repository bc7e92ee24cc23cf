//go:build lab

package integration

import (
	"sync"
	"testing"
	"time"
)

// guestStalls measures when this test process could not run: the
// lateness of a 20 ms ticker. Each test shard runs in a guest of one CPU,
// so that is time the host (or the guest's other processes) took from
// everything in the guest, the director included. A bound on how soon the
// director acts may allow for the stalls inside its own window; on a quiet
// machine they are near 0 and the bound stays tight.
type guestStalls struct {
	mu    sync.Mutex
	spans [][2]time.Time // [from, to], oldest first
}

const guestStallTick = 20 * time.Millisecond

// watchGuestStalls measures until the test ends.
func watchGuestStalls(t *testing.T) *guestStalls {
	g := &guestStalls{}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(guestStallTick)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				now := time.Now() // the channel's time is when it was due
				if late := now.Sub(last) - guestStallTick; late > guestStallTick {
					g.mu.Lock()
					g.spans = append(g.spans, [2]time.Time{now.Add(-late), now})
					g.mu.Unlock()
				}
				last = now
			}
		}
	}()
	t.Cleanup(func() { close(done); <-stopped })
	return g
}

// Within is how long the guest stalled between from and to, as far as
// measured by now.
func (g *guestStalls) Within(from, to time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	var sum time.Duration
	for _, s := range g.spans {
		a, b := s[0], s[1]
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
	return sum
}
