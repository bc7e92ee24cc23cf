package check

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// UDP sends Send and passes when a reply arrives that starts with Expect
// (any reply when Expect is empty). "Starts with" rather than "equals"
// lets a service append a timestamp or version to its answer, while still
// rejecting an unrelated datagram.
//
// The socket is connected, so an ICMP port unreachable from the backend
// fails the check at once with "connection refused" instead of waiting
// for the timeout.
type UDP struct {
	Send   []byte
	Expect []byte
}

// Check sends one datagram and reads one reply.
func (u UDP) Check(ctx context.Context, t Target) (err error) {
	defer func() { err = Classify(err) }()
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", t.Addr.String())
	if err != nil {
		return fmt.Errorf("dial: %w", unwrapOp(err))
	}
	defer c.Close()
	stop := closeOnDone(ctx, c)
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write(u.Send); err != nil {
		return fmt.Errorf("send: %w", ctxErr(ctx, err))
	}
	buf := make([]byte, maxBody)
	n, err := c.Read(buf)
	if err != nil {
		return fmt.Errorf("receive: %w", ctxErr(ctx, err))
	}
	if !bytes.HasPrefix(buf[:n], u.Expect) {
		return fmt.Errorf("reply %s does not start with %s", quoteShort(buf[:n]), strconv.Quote(string(u.Expect)))
	}
	return nil
}

// closeOnDone makes a context cancellation (not only its deadline) end
// blocking I/O on c.
func closeOnDone(ctx context.Context, c net.Conn) (stop func() bool) {
	return context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
}

// ctxErr prefers the context's reason over the I/O error it caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// A descriptor deadline set from ctx's may expire a moment before ctx
	// does: one reason for one cause.
	if dl, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return unwrapOp(err)
}

// quoteShort quotes at most 64 bytes of b for a reason string.
func quoteShort(b []byte) string {
	if len(b) > 64 {
		return strconv.Quote(string(b[:64])) + "..."
	}
	return strconv.Quote(string(b))
}
