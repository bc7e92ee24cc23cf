package ipvs

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"
)

var _ IPVS = (*Kernel)(nil)

// Survey reads the services over netlink (one dump) and all their
// destinations from the namespace's /proc/net/ip_vs, which the kernel
// writes in one pass: a fraction of the cost of one netlink destination
// dump per service, which dominates a large table's periodic pass.
func (k *Kernel) Survey(ctx context.Context) ([]Entry, []ServiceKey, error) {
	if err := k.Open(); err != nil {
		return nil, nil, err
	}
	k.mu.Lock()
	has := k.proc > 0
	k.mu.Unlock()
	if !has {
		return nil, nil, errNoProc
	}
	var entries []Entry
	var inexact []ServiceKey
	err := k.do(ctx, k.dumpTimeout(), func(ctx context.Context, c *nlConn) error {
		if k.proc == 0 {
			return errNoProc
		}
		svcs, err := c.dumpServiceList(ctx)
		if err != nil {
			return err
		}
		text, err := k.readProc()
		if err != nil {
			return err
		}
		entries, inexact = merge(svcs, parseProc(text))
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("ipvs survey: %w", err)
	}
	SortEntries(entries)
	return entries, inexact, nil
}

var errNoProc = fmt.Errorf("no /proc/net/ip_vs: %w", unix.ENOENT)

// openProc opens /proc/net/ip_vs of the calling thread's network
// namespace (the one the sockets are made in); -1 when it cannot.
func openProc() int {
	fd, err := unix.Open("/proc/thread-self/net/ip_vs", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}

// readProc reads the whole file from its start into k.procBuf.
func (k *Kernel) readProc() ([]byte, error) {
	fd := k.proc - 1
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		return nil, fmt.Errorf("/proc/net/ip_vs: %w", err)
	}
	b := k.procBuf[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, make([]byte, max(64<<10, cap(b)))...)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("/proc/net/ip_vs: %w", err)
		}
		if n == 0 {
			break
		}
		b = b[:len(b)+n]
	}
	k.procBuf = b
	return b, nil
}

// dumpServiceList is the services of the table, without destinations.
func (c *nlConn) dumpServiceList(ctx context.Context) ([]Entry, error) {
	var entries []Entry
	err := c.dump(ctx, cmdGetService, nil, func(b []byte) error {
		var perr error
		attrs(b, func(typ uint16, data []byte) {
			if typ == attrService {
				s, err := parseService(data)
				if err != nil {
					perr = err
					return
				}
				entries = append(entries, Entry{Service: s})
			}
		})
		return perr
	})
	if err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	return entries, nil
}
