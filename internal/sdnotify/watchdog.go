package sdnotify

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Watchdog pings systemd (WATCHDOG=1) only while every registered loop has
// shown progress within the watchdog interval. A loop that hangs (a stuck
// netlink call, a deadlock) stops the pings, and systemd kills and
// restarts the daemon after WatchdogSec; a process that is merely alive
// is not enough.
//
//	w := sdnotify.NewWatchdog(n, log)
//	beat := w.Register("reconciler")
//	... in the loop, after each pass and on a ticker of w.BeatEvery(): beat()
//	go w.Run(ctx)
type Watchdog struct {
	n        *Notifier
	log      *slog.Logger
	interval time.Duration // WatchdogSec; 0 = disabled

	mu       sync.Mutex
	loops    []*loop
	stalled  bool // the last tick withheld the ping
	startErr error
}

type loop struct {
	name string
	last time.Time
}

// NewWatchdog reads WatchdogSec from the environment systemd sets
// (WATCHDOG_USEC, WATCHDOG_PID). Without it the watchdog is disabled:
// Register still works and Run waits for ctx.
func NewWatchdog(n *Notifier, log *slog.Logger) *Watchdog {
	d, err := daemon.SdWatchdogEnabled(false)
	w := newWatchdog(n, d, log)
	w.startErr = err
	return w
}

func newWatchdog(n *Notifier, interval time.Duration, log *slog.Logger) *Watchdog {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if n == nil || n.send == nil {
		interval = 0
	}
	return &Watchdog{n: n, log: log, interval: interval}
}

// Interval is WatchdogSec, 0 when disabled.
func (w *Watchdog) Interval() time.Duration { return w.interval }

// BeatEvery is how often a loop that may sit idle (waiting for a timer or
// an event) should wake just to beat: a quarter of the interval, so one
// late wake-up does not cost a restart. One minute when disabled.
func (w *Watchdog) BeatEvery() time.Duration {
	if w.interval == 0 {
		return time.Minute
	}
	return w.interval / 4
}

// Register adds a loop that must keep making progress and returns the
// function it calls to say it has. A loop counts as fresh when registered.
func (w *Watchdog) Register(name string) (beat func()) {
	l := &loop{name: name, last: time.Now()}
	w.mu.Lock()
	w.loops = append(w.loops, l)
	w.mu.Unlock()
	return func() {
		now := time.Now()
		w.mu.Lock()
		l.last = now
		w.mu.Unlock()
	}
}

// Stalled is the decision: the loops (by name, sorted) whose last beat is
// older than interval at now. None means the ping may be sent.
func Stalled(now time.Time, interval time.Duration, last map[string]time.Time) []string {
	var out []string
	for name, t := range last {
		if now.Sub(t) > interval {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Run pings at half the interval (what sd_watchdog_enabled(3) advises)
// until ctx ends, withholding each ping while a loop is stalled. It
// returns nil when ctx ends, also when the watchdog is disabled.
func (w *Watchdog) Run(ctx context.Context) error {
	if w.startErr != nil {
		w.log.Warn("watchdog: ignoring the environment", "err", w.startErr)
	}
	if w.interval == 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(w.interval / 2)
	defer t.Stop()
	w.tick(time.Now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			w.tick(now)
		}
	}
}

// tick sends one ping or says once why it is withheld.
func (w *Watchdog) tick(now time.Time) {
	w.mu.Lock()
	last := make(map[string]time.Time, len(w.loops))
	for _, l := range w.loops {
		// Two loops of one name: the staler one speaks for both.
		if t, ok := last[l.name]; !ok || l.last.Before(t) {
			last[l.name] = l.last
		}
	}
	stalled := Stalled(now, w.interval, last)
	was := w.stalled
	w.stalled = len(stalled) > 0
	w.mu.Unlock()

	if len(stalled) == 0 {
		if was {
			w.log.Info("watchdog: every loop is making progress again; pinging")
			w.n.sendRaw(status1(w.n.status()))
		}
		if err := w.n.sendRaw(daemon.SdNotifyWatchdog); err != nil {
			w.log.Warn("watchdog ping failed", "err", err)
		}
		return
	}
	if !was {
		var ages []string
		for _, name := range stalled {
			ages = append(ages, fmt.Sprintf("%s %s", name, now.Sub(last[name]).Round(time.Millisecond)))
		}
		msg := "watchdog: no progress from " + strings.Join(ages, ", ") + "; withholding WATCHDOG=1"
		w.log.Error(msg, "watchdog_sec", w.interval)
		w.n.sendRaw(status1(msg))
	}
}
