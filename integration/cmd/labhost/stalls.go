package main

import (
	"context"
	"sync"
	"time"
)

// Stall is a stretch in which the harness's own sampler woke late: time
// in which the guest ran nothing of ours, so a test can tell a pause the
// network caused from one a starved emulated guest added (its timers,
// softirqs and this process all wait alike).
type Stall struct {
	AtMS int64 `json:"at_ms"` // Unix milliseconds: when the sampler was due
	MS   int64 `json:"ms"`    // how late it woke
}

const (
	sampleEvery  = 5 * time.Millisecond
	stallAtLeast = 5 * time.Millisecond // lateness below this is the scheduler's ordinary noise
	maxStalls    = 1 << 20
)

// stallSampler sleeps sampleEvery over and over and records each wake-up
// at least stallAtLeast late.
type stallSampler struct {
	sleep func(time.Duration) // time.Sleep; a test's stand-in
	mu    sync.Mutex
	got   []Stall
}

// run samples until ctx ends.
func (s *stallSampler) run(ctx context.Context) {
	for ctx.Err() == nil {
		t0 := time.Now()
		s.sleep(sampleEvery)
		if late := time.Since(t0) - sampleEvery; late >= stallAtLeast {
			s.mu.Lock()
			if len(s.got) < maxStalls {
				s.got = append(s.got, Stall{AtMS: t0.Add(sampleEvery).UnixMilli(), MS: late.Milliseconds()})
			}
			s.mu.Unlock()
		}
	}
}

// stalls returns what has been recorded so far.
func (s *stallSampler) stalls() []Stall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Stall(nil), s.got...)
}
