package check

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// TCP passes when a TCP connection to the target is established.
//
// It connects with bare socket calls instead of net.Dialer: a probe needs
// no keep-alive, no-delay or address lookups, and the director may probe
// ten thousand backends a second, where net.Dialer's extra system calls
// double the cost. It closes with a reset (SO_LINGER 0): an orderly close
// would leave a TIME_WAIT socket on the director for every probe.
type TCP struct{}

// Check connects once.
func (TCP) Check(ctx context.Context, t Target) error {
	sa, family, ok := sockaddr(t.Addr)
	if !ok {
		return dialCheck(ctx, t)
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	// Linger 0 before connecting: every way out below closes with a reset.
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	err = unix.Connect(fd, sa)
	if err == nil {
		unix.Close(fd)
		return nil
	}
	if err != unix.EINPROGRESS {
		unix.Close(fd)
		return fmt.Errorf("connect: %w", err)
	}
	// On loopback and fast links the handshake has usually finished by the
	// time connect returns: settle it without the runtime's poller, whose
	// registration and removal cost more system calls than the probe.
	if done, err := connectDone(fd, sa); done {
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		return nil
	}
	// The file takes the descriptor and registers it with the runtime's
	// poller, so waiting for the connection costs no thread.
	f := os.NewFile(uintptr(fd), "tcp-check")
	defer f.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = f.SetWriteDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	// Write calls the function, and again each time the socket turns
	// writable, until it returns true. The first call matters: on loopback
	// the connection is often complete before the poller is armed.
	var connErr error
	werr := rc.Write(func(fd uintptr) bool {
		done, err := connectDone(int(fd), sa)
		connErr = err
		return done
	})
	if werr != nil {
		return fmt.Errorf("connect: %w", ctxErr(ctx, werr))
	}
	if connErr != nil {
		return fmt.Errorf("connect: %w", connErr)
	}
	return nil
}

// connectDone reports whether a non-blocking connect on fd has finished,
// and how. It asks with a second connect, one system call where SO_ERROR
// and getpeername take two: Linux answers EALREADY while the handshake
// runs, 0 (or EISCONN) once established, and the socket's error (e.g.
// ECONNREFUSED) if it failed.
func connectDone(fd int, sa unix.Sockaddr) (bool, error) {
	switch err := unix.Connect(fd, sa); err {
	case nil, unix.EISCONN:
		return true, nil
	case unix.EALREADY, unix.EINPROGRESS, unix.EINTR:
		return false, nil
	default:
		return true, err
	}
}

// sockaddr converts a to a socket address; ok is false for a zoned IPv6
// address, which needs an interface lookup the net package does for us.
func sockaddr(a netip.AddrPort) (sa unix.Sockaddr, family int, ok bool) {
	ip := a.Addr()
	switch {
	case ip.Is4() || ip.Is4In6():
		return &unix.SockaddrInet4{Port: int(a.Port()), Addr: ip.Unmap().As4()}, unix.AF_INET, true
	case ip.Is6() && ip.Zone() == "":
		return &unix.SockaddrInet6{Port: int(a.Port()), Addr: ip.As16()}, unix.AF_INET6, true
	}
	return nil, 0, false
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
