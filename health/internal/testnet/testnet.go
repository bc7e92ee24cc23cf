// Package testnet makes loopback TCP servers that behave in the ways
// health checks must tell apart. It is for tests only.
package testnet

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Accepting listens on 127.0.0.1 and accepts and closes every connection
// until the test ends.
func Accepting(t testing.TB) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String())
}

// Refusing returns a loopback address where nobody listens.
func Refusing(t testing.TB) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(l.Addr().String())
	l.Close()
	return ap
}

// Full is a listener whose accept queue is full: the kernel drops further
// SYNs, so a connect neither succeeds nor fails until it times out, or
// until Free makes room and a retransmitted SYN is answered.
type Full struct {
	Addr    netip.AddrPort
	fd      int
	fillers []net.Conn
}

// NewFull listens on 127.0.0.1 and fills the queue with connections
// nobody accepts.
func NewFull(t testing.TB) *Full {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := &Full{fd: fd}
	t.Cleanup(func() {
		unix.Close(f.fd)
		for _, c := range f.fillers {
			c.Close()
		}
	})
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
	f.Addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port))
	for range 2 { // backlog 0 still admits one
		c, err := net.DialTimeout("tcp", f.Addr.String(), 200*time.Millisecond)
		if err != nil {
			break
		}
		f.fillers = append(f.fillers, c)
	}
	return f
}

// Free accepts (and closes) the queued connections, making room.
func (f *Full) Free() {
	for range f.fillers {
		if nfd, _, err := unix.Accept4(f.fd, unix.SOCK_CLOEXEC); err == nil {
			unix.Close(nfd)
		}
	}
}
