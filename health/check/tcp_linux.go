package check

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Check connects once.
func (c TCP) Check(ctx context.Context, t Target) (err error) {
	defer func() { err = Classify(err) }()
	sa, family, ok := sockaddr(t.Addr)
	if !ok {
		return dialCheck(ctx, t)
	}
	fd, pending, err := c.begin(family, &sa)
	if pending {
		return waitConnect(ctx, fd, &sa)
	}
	return err
}

// Start begins a probe without blocking (see AsyncProber). A connect
// still under way is left to one goroutine that watches them all.
func (c TCP) Start(t Target, deadline time.Time, report func(Result)) (Result, bool) {
	sa, family, ok := sockaddr(t.Addr)
	if !ok {
		goReport(deadline, report, func(ctx context.Context) error { return dialCheck(ctx, t) })
		return Result{}, false
	}
	fd, pending, err := c.begin(family, &sa)
	if !pending {
		return Up(err), true
	}
	cn := &connecting{fd: fd, family: family, sa: sa, deadline: deadline, report: func(err error) { report(Up(err)) }}
	if waiting.wait(cn) != nil {
		goReport(deadline, report, func(ctx context.Context) error { return waitConnect(ctx, fd, &sa) })
	}
	return Result{}, false
}

// begin connects without blocking. It returns the verdict in err, or
// pending with the socket when the handshake is still under way.
func (c TCP) begin(family int, sa *rawAddr) (fd int, pending bool, err error) {
	fd, err = idle.get(family)
	if err != nil {
		return -1, false, fmt.Errorf("socket: %w", err)
	}
	if err := connect(fd, sa); err != unix.EINPROGRESS {
		idle.put(family, fd)
		if err != nil {
			return -1, false, fmt.Errorf("connect: %w", err)
		}
		return -1, false, nil
	}
	if c.AlwaysWait {
		return fd, true, nil
	}
	// On loopback and fast links the handshake has usually finished by the
	// time connect returns: settle it at once, at the cost of one system
	// call, rather than wait for an event.
	if done, err := connectDone(fd, sa); done {
		idle.put(family, fd)
		if err != nil {
			return -1, false, fmt.Errorf("connect: %w", err)
		}
		return -1, false, nil
	}
	return fd, true, nil
}

// waitConnect waits for fd's connection through the runtime's poller, so
// waiting costs no thread, and closes fd.
func waitConnect(ctx context.Context, fd int, sa *rawAddr) error {
	f := os.NewFile(uintptr(fd), "tcp-check")
	defer f.Close() // a reset: the socket lingers 0
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
	// writable, until it returns true. The first call matters: the
	// connection may have completed since the last look.
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
func connectDone(fd int, sa *rawAddr) (bool, error) {
	switch err := connect(fd, sa); err {
	case nil, unix.EISCONN:
		return true, nil
	case unix.EALREADY, unix.EINPROGRESS, unix.EINTR:
		return false, nil
	default:
		return true, err
	}
}

// maxIdle bounds the sockets kept for reuse per address family: about as
// many as there are connects in flight at once, which at 10,000 checks a
// second of backends a round trip away is a hundred or two. Each idle one
// holds a descriptor and a kilobyte or two of kernel memory.
const maxIdle = 256

// idle holds unconnected TCP sockets for reuse.
var idle socketPool

type socketPool struct {
	mu     sync.Mutex
	v4, v6 []int
}

func (p *socketPool) list(family int) *[]int {
	if family == unix.AF_INET6 {
		return &p.v6
	}
	return &p.v4
}

// get returns an unconnected non-blocking socket whose close resets.
func (p *socketPool) get(family int) (int, error) {
	p.mu.Lock()
	l := p.list(family)
	if n := len(*l); n > 0 {
		fd := (*l)[n-1]
		*l = (*l)[:n-1]
		p.mu.Unlock()
		return fd, nil
	}
	p.mu.Unlock()
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	// Linger 0: whatever path closes it sends a reset.
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	return fd, nil
}

// put disconnects fd (a reset if it was connected) and keeps it for
// reuse, or closes it when it cannot be reset or the pool is full.
func (p *socketPool) put(family int, fd int) {
	if disconnect(fd) != nil {
		unix.Close(fd)
		return
	}
	p.mu.Lock()
	l := p.list(family)
	if len(*l) < maxIdle {
		*l = append(*l, fd)
		fd = -1
	}
	p.mu.Unlock()
	if fd >= 0 {
		unix.Close(fd)
	}
}

// disconnect is connect(AF_UNSPEC): the kernel resets an established TCP
// connection and returns the socket to its unconnected state, ready for
// another connect.
func disconnect(fd int) error {
	return connect(fd, &rawAddr{len: uint32(unsafe.Sizeof(unix.RawSockaddr{}))})
}

// rawAddr is a socket address in the kernel's layout (AF_UNSPEC when
// zero).
type rawAddr struct {
	any unix.RawSockaddrAny
	len uint32
}

// connect is connect(2) on a non-blocking socket, which never sleeps: it
// bypasses the runtime's system call bookkeeping, which at thousands of
// probes a second cost more than the calls, as the runtime's monitor
// thread kept handing our processor to another thread mid-batch.
func connect(fd int, sa *rawAddr) error {
	_, _, errno := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa.any)), uintptr(sa.len))
	if errno != 0 {
		return errno
	}
	return nil
}

// sockaddr converts a to a socket address; ok is false for a zoned IPv6
// address, which needs an interface lookup the net package does for us.
func sockaddr(a netip.AddrPort) (sa rawAddr, family int, ok bool) {
	ip := a.Addr()
	port := a.Port()
	switch {
	case ip.Is4() || ip.Is4In6():
		in := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa.any))
		in.Family = unix.AF_INET
		in.Addr = ip.Unmap().As4()
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&in.Port))[:], port)
		sa.len = unix.SizeofSockaddrInet4
		return sa, unix.AF_INET, true
	case ip.Is6() && ip.Zone() == "":
		in := (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa.any))
		in.Family = unix.AF_INET6
		in.Addr = ip.As16()
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&in.Port))[:], port)
		sa.len = unix.SizeofSockaddrInet6
		return sa, unix.AF_INET6, true
	}
	return sa, 0, false
}
