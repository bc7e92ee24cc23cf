package sdnotify

import (
	"context"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestStalled(t *testing.T) {
	now := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	last := map[string]time.Time{
		"reconciler": now.Add(-3 * time.Second),
		"health":     now.Add(-10 * time.Second), // exactly the interval: still fresh
		"vrrp":       now.Add(-11 * time.Second),
	}
	if got := Stalled(now, 10*time.Second, last); !slices.Equal(got, []string{"vrrp"}) {
		t.Fatalf("Stalled = %q", got)
	}
	if got := Stalled(now, 10*time.Second, nil); got != nil {
		t.Fatalf("no loops: %q", got)
	}
}

// TestWatchdogStopsWhenALoopStalls: two loops beat; when one stops, the
// pings stop within one interval of its last beat, so systemd (which
// restarts after an interval without a ping) acts within two; when it
// beats again the pings resume.
func TestWatchdogStopsWhenALoopStalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 8 * time.Second
		var rec recorder
		n := &Notifier{send: rec.send}
		n.Ready("2 services")
		rec.take()
		w := newWatchdog(n, interval, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()

		beatA := w.Register("reconciler")
		beatB := w.Register("health")
		stopB := make(chan struct{})
		go loopBeating(ctx, beatA, w.BeatEvery(), nil)
		go loopBeating(ctx, beatB, w.BeatEvery(), stopB)
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()

		// Healthy: a ping at once and one every interval/2.
		time.Sleep(20*time.Second + time.Millisecond)
		if got := pings(rec.take()); got != 6 { // t=0,4,8,12,16,20
			t.Fatalf("healthy: %d pings in 20s, want 6", got)
		}

		// health hangs: its last beat is at t=20s (it beats at 2s steps).
		close(stopB)
		lastBeat := time.Now()
		time.Sleep(30 * time.Second)
		msgs := rec.take()
		// Pings come at multiples of 4s: t=24 and t=28 are within the interval.
		if got := pings(msgs); got > 2 {
			t.Fatalf("stalled loop: %d pings after its last beat, want at most 2 (t=24, t=28)", got)
		}
		var sawStatus bool
		for _, m := range msgs {
			if strings.HasPrefix(m, "STATUS=watchdog: no progress from health") {
				sawStatus = true
			}
		}
		if !sawStatus {
			t.Fatalf("no STATUS naming the stalled loop in %q", msgs)
		}
		if since := time.Since(lastBeat); since < interval {
			t.Fatal("test clock broken")
		}

		// It recovers: pings resume and the daemon's status comes back.
		beatB()
		time.Sleep(interval / 2)
		msgs = rec.take()
		if pings(msgs) != 1 || !slices.Contains(msgs, "STATUS=2 services") {
			t.Fatalf("after recovery: %q", msgs)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestWatchdogPingTimes checks the bound itself: the last ping comes no
// later than one interval after the stalled loop's last beat.
func TestWatchdogPingTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 10 * time.Second
		start := time.Now()
		var pingsAt []time.Duration
		n := &Notifier{send: func(s string) error {
			if s == "WATCHDOG=1" {
				pingsAt = append(pingsAt, time.Since(start))
			}
			return nil
		}}
		w := newWatchdog(n, interval, nil)
		beat := w.Register("reconciler")
		ctx, cancel := context.WithCancel(context.Background())
		go w.Run(ctx)
		time.Sleep(7 * time.Second)
		beat() // its last sign of life, at t=7s
		time.Sleep(60 * time.Second)
		cancel()
		synctest.Wait()
		last := pingsAt[len(pingsAt)-1]
		if last > 7*time.Second+interval {
			t.Fatalf("pinged at %v, more than %v after the last beat at 7s (pings %v)", last, interval, pingsAt)
		}
		if last < 15*time.Second {
			t.Fatalf("stopped pinging at %v, before the loop was late (pings %v)", last, pingsAt)
		}
	})
}

func TestWatchdogDisabled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		w := newWatchdog(&Notifier{send: rec.send}, 0, nil)
		beat := w.Register("reconciler")
		beat()
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		if err := w.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if m := rec.take(); len(m) != 0 {
			t.Fatalf("disabled watchdog sent %q", m)
		}
		if w.BeatEvery() != time.Minute {
			t.Fatal(w.BeatEvery())
		}
	})
}

// loopBeating is a loop that beats on its ticker until stop closes.
func loopBeating(ctx context.Context, beat func(), every time.Duration, stop chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-t.C:
			beat()
		}
	}
}

func pings(msgs []string) int {
	n := 0
	for _, m := range msgs {
		if m == "WATCHDOG=1" {
			n++
		}
	}
	return n
}
