package health

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/golvs/golvs/config"
)

// TestMonitorRealTCP runs the real TCP checker through the scheduler's
// two paths: a live and a refusing backend settle inside connect (the
// scheduler's own goroutine), while a backend that never answers the
// handshake goes to a goroutine of its own and times out without holding
// the others back.
func TestMonitorRealTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	live := netip.MustParseAddrPort(l.Addr().String())
	dead := closedTCPPort(t)
	silent := silentTCP(t)

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

func closedTCPPort(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(l.Addr().String())
	l.Close()
	return ap
}

// silentTCP listens with a full accept queue: the kernel drops further
// SYNs, so a connect neither succeeds nor fails until it times out.
func silentTCP(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port))
	for range 2 { // backlog 0 still admits one
		c, err := net.DialTimeout("tcp", ap.String(), 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return ap
}
