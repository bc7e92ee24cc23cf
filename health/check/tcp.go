package check

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"
)

// TCP passes when a TCP connection to the target is established.
//
// It connects with bare socket calls instead of net.Dialer: a probe needs
// no keep-alive, no-delay or address lookups, and the director may probe
// ten thousand backends a second, where net.Dialer's extra system calls
// double the cost. A connection ends with a reset, never an orderly close,
// which would leave a TIME_WAIT socket on the director for every probe.
//
// Sockets are reused: connect(AF_UNSPEC) resets the connection and leaves
// the socket as if new, one system call where close and socket take two
// and a file, an inode and a socket to free and allocate again.
type TCP struct {
	// AlwaysWait skips settling the connect at once, as if every backend
	// were a round trip away (benchmarks time the waiting path with it).
	AlwaysWait bool
}

// Probe is Check as a Prober.
func (c TCP) Probe(ctx context.Context, t Target) Result { return Up(c.Check(ctx, t)) }

// goReport runs check on a goroutine of its own until deadline and
// reports its verdict: Start's way out when the shared waiter cannot help.
func goReport(deadline time.Time, report func(Result), check func(context.Context) error) {
	go func() {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		report(Up(check(ctx)))
	}()
}

// dialCheck is the portable path, through net.Dialer.
func dialCheck(ctx context.Context, t Target) error {
	d := net.Dialer{KeepAlive: -1}
	c, err := d.DialContext(ctx, "tcp", t.Addr.String())
	if err != nil {
		return fmt.Errorf("connect: %w", unwrapOp(err))
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return c.Close()
}

// unwrapOp drops net.OpError's "dial tcp 1.2.3.4:80:" and the syscall
// name prefixes, which add nothing next to the backend's name; the errno
// stays in the chain for errors.Is.
func unwrapOp(err error) error {
	if oe, ok := err.(*net.OpError); ok && oe.Err != nil {
		err = oe.Err
	}
	if se, ok := err.(*os.SyscallError); ok && se.Err != nil {
		err = se.Err
	}
	return err
}
