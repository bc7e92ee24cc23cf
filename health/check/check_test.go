package check

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/health/internal/testnet"
)

// testTimeout is the check timeout in these tests: long enough for a
// loaded CI machine, short enough that timeouts are cheap.
const testTimeout = 300 * time.Millisecond

func target(t *testing.T, addr string) Target {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return Target{Service: "web", Backend: ap, Addr: ap}
}

// run runs c against addr with testTimeout and reports the error and how
// long the check took.
func run(t *testing.T, c Checker, addr string) (error, time.Duration) {
	t.Helper()
	return runFor(t, c, addr, testTimeout)
}

// runFor is run with its own timeout, for checks whose verdict, not their
// timing, is under test (a TLS handshake on a busy machine takes longer
// than testTimeout).
func runFor(t *testing.T, c Checker, addr string, timeout time.Duration) (error, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	start := time.Now()
	err := c.Check(ctx, target(t, addr))
	return err, time.Since(start)
}

// closedPort returns a loopback TCP or UDP address nobody listens on.
func closedPort(t *testing.T, network string) string {
	t.Helper()
	switch network {
	case "tcp":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	default:
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := c.LocalAddr().String()
		c.Close()
		return addr
	}
}

// hangingTCP accepts connections and never answers.
func hangingTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// wantTimeout checks that a check failed by its timeout, promptly.
func wantTimeout(t *testing.T, err error, took time.Duration) {
	t.Helper()
	if err == nil {
		t.Fatal("check passed, want a timeout")
	}
	if !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
		t.Errorf("err = %v, want a timeout", err)
	}
	if took > testTimeout+time.Second {
		t.Errorf("check took %v, want about %v", took, testTimeout)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func wantRefused(t *testing.T, err error, took time.Duration) {
	t.Helper()
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("err = %v, want connection refused", err)
	}
	if took > testTimeout/2 {
		t.Errorf("refusal took %v, want it fast", took)
	}
}

func wantErrContains(t *testing.T, err error, sub string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), sub) {
		t.Errorf("err = %v, want it to contain %q", err, sub)
	}
}

func TestTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err, _ := run(t, TCP{}, l.Addr().String()); err != nil {
		t.Errorf("listening port: %v", err)
	}
	err, took := run(t, TCP{}, closedPort(t, "tcp"))
	wantRefused(t, err, took)
	if got := err.Error(); got != "connect: connection refused" {
		t.Errorf("reason = %q, want %q", got, "connect: connection refused")
	}
}

func TestNewTarget(t *testing.T) {
	b := netip.MustParseAddrPort("192.0.2.1:80")
	for _, tc := range []struct {
		cfg  *config.Check
		want uint16
	}{
		{&config.Check{Type: config.CheckTCP}, 80},
		{&config.Check{Type: config.CheckTCP, Port: 8080}, 8080},
		{&config.Check{Type: config.CheckAgent}, DefaultAgentPort},
		{&config.Check{Type: config.CheckAgent, Port: 9000}, 9000},
	} {
		got := NewTarget("web", b, tc.cfg)
		if got.Addr.Port() != tc.want || got.Backend != b || got.Addr.Addr() != b.Addr() {
			t.Errorf("%+v: target %+v, want check port %d", tc.cfg, got, tc.want)
		}
	}
}

func TestNewRejects(t *testing.T) {
	for _, cfg := range []*config.Check{
		{Type: "smtp"},
		{Type: config.CheckDNS, Query: "example.com.", QueryType: "NOPE"},
		{Type: config.CheckDNS},
		{Type: config.CheckExec},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", cfg)
		}
	}
	if _, err := New(&config.Check{Type: "smtp"}); !errors.Is(err, ErrUnknownType) {
		t.Errorf("unknown type: err = %v, want ErrUnknownType", err)
	}
}

func TestNone(t *testing.T) {
	p, err := New(&config.Check{Type: config.CheckNone})
	if err != nil {
		t.Fatal(err)
	}
	if r := p.Probe(t.Context(), Target{}); r.Err != nil || r.Drain || r.WeightPercent != -1 {
		t.Errorf("none: %+v, want up with no agent report", r)
	}
}

func TestTCPTimeout(t *testing.T) {
	err, took := run(t, TCP{}, testnet.NewFull(t).Addr.String())
	wantTimeout(t, err, took)
	// The socket of a timed-out probe is not reused half-connected: the
	// next probe of a live backend passes.
	l, lerr := net.Listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	defer l.Close()
	if err, _ := run(t, TCP{}, l.Addr().String()); err != nil {
		t.Errorf("live backend after a timeout: %v", err)
	}
}

// TestTCPReusesSockets probes live and refusing backends in turn: each
// verdict is right although sockets are reused, the director keeps no
// more descriptors than the pool's bound, and the backend sees each probe
// end in a reset (no TIME_WAIT left behind on the director).
func TestTCPReusesSockets(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	live, dead := l.Addr().String(), closedPort(t, "tcp")
	resets := make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
			select {
			case resets <- err:
			default:
			}
		}
	}()
	before := openFDs(t)
	const n = 200
	for i := range n {
		if err, _ := run(t, TCP{}, live); err != nil {
			t.Fatalf("probe %d of a live backend: %v", i, err)
		}
		if err, _ := run(t, TCP{}, dead); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("probe %d of a refusing backend: %v", i, err)
		}
	}
	// One probe at a time needs one socket (and a spare at most).
	if grown := openFDs(t) - before; grown > 2 {
		t.Errorf("%d more descriptors after %d probes, want at most 2", grown, 2*n)
	}
	idle.mu.Lock()
	kept := len(idle.v4)
	idle.mu.Unlock()
	if kept == 0 {
		t.Error("no socket kept for reuse")
	}
	if err := <-resets; !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("backend read %v, want a reset", err)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestTCPAddressForms checks the socket addresses the checker builds by
// hand: IPv6, and IPv4-mapped IPv6 (probed over IPv4).
func TestTCPAddressForms(t *testing.T) {
	l4, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l4.Close()
	port := netip.MustParseAddrPort(l4.Addr().String()).Port()
	mapped := netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), port)
	if err, _ := run(t, TCP{}, mapped.String()); err != nil {
		t.Errorf("IPv4-mapped %s: %v", mapped, err)
	}
	l6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	defer l6.Close()
	if err, _ := run(t, TCP{}, l6.Addr().String()); err != nil {
		t.Errorf("IPv6 %s: %v", l6.Addr(), err)
	}
	gone, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	gone.Close()
	err, took := run(t, TCP{}, gone.Addr().String())
	wantRefused(t, err, took)
}
