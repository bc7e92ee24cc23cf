package health

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/health/internal/testnet"
)

// TestMonitorRealTCP runs the real TCP checker through the scheduler's
// two paths: a live and a refusing backend settle inside connect, on the
// scheduler's own goroutine, while a backend that never answers the
// handshake is left to the checker's epoll loop and times out without
// holding the others back.
func TestMonitorRealTCP(t *testing.T) {
	live, dead, silent := testnet.Accepting(t), testnet.Refusing(t), testnet.NewFull(t).Addr

	const interval = 100 * time.Millisecond
	chk := &config.Check{Type: config.CheckTCP, Interval: interval, Timeout: interval / 2, Rise: 1, Fall: 1}
	m := New(slog.New(slog.DiscardHandler), nil)
	var starts []time.Time
	m.started = func(_, actual time.Time) { starts = append(starts, actual) }
	if err := m.Update([]Target{
		{Service: "web", Backend: live, Check: chk},
		{Service: "web", Backend: dead, Check: chk},
		{Service: "web", Backend: silent, Check: chk},
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	time.Sleep(8 * interval)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := m.Backend("web", live); !st.Up {
		t.Errorf("live backend: %+v", st)
	}
	if st := m.Backend("web", dead); st.Up || st.Reason != "connect: connection refused" {
		t.Errorf("refusing backend: %+v", st)
	}
	if st := m.Backend("web", silent); st.Up || !st.Checked || st.Reason != "connect: context deadline exceeded" {
		t.Errorf("silent backend: %+v, want down by the timeout", st)
	}
	// About 8 probes each; the silent one's timeouts must not have
	// thinned out the others.
	if len(starts) < 3*6 {
		t.Errorf("%d probes in 8 intervals of 3 backends, want at least 18", len(starts))
	}
}
