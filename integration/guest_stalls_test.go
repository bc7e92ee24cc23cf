//go:build lab

package integration

import (
	"sync"
	"testing"
	"time"
)

// guestStalls measures how long this test process could not run: the
// lateness of a 20 ms ticker, summed. Each test shard runs in a guest of
// one CPU, so that is time the host (or the guest's other processes) took
// from everything in the guest, the director included. A bound on how soon
// the director acts may allow for it; on a quiet machine it is near 0 and
// the bound stays tight.
type guestStalls struct {
	mu    sync.Mutex
	total time.Duration
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
			case now := <-tick.C:
				now = time.Now() // the channel's time is when it was due
				if late := now.Sub(last) - guestStallTick; late > guestStallTick {
					g.mu.Lock()
					g.total += late
					g.mu.Unlock()
				}
				last = now
			}
		}
	}()
	t.Cleanup(func() { close(done); <-stopped })
	return g
}

// Total is the stall time measured so far.
func (g *guestStalls) Total() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total
}
