package ipvs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Default bounds of one call when the caller's context has no earlier
// deadline. A dump is one request per service, so it gets longer; a batch
// gets CallTimeout per request it carries, at most DumpTimeout.
const (
	DefaultCallTimeout = 10 * time.Second
	DefaultDumpTimeout = 2 * time.Minute
)

// Kernel is the IPVS interface over the kernel's generic netlink API, with
// our own client (netlink.go) that batches writes. It opens its netlink
// socket on first use (or on Open), so building one touches nothing.
//
// One socket serves every call, so calls hold mu. A call that fails on
// the socket (an I/O error, or its deadline passed while it waited for a
// reply) closes it: a late reply can then never be taken for the next
// call's, and the next call opens a fresh socket.
//
// The ip_vs module must be loaded before the first call: without it the
// kernel has no IPVS family and every call fails (never an empty table).
type Kernel struct {
	// CallTimeout bounds each write; zero means DefaultCallTimeout.
	CallTimeout time.Duration
	// DumpTimeout bounds a whole Dump; zero means DefaultDumpTimeout.
	DumpTimeout time.Duration

	mu  sync.Mutex
	c   *nlConn // nil until first use, and after a failed call
	d   *nlConn // destination dumps (small buffers); nil = use c
	noD bool    // d truncated a reply once: use c only
	// proc is 1 + the descriptor of /proc/net/ip_vs of the sockets'
	// namespace, opened with them (0: none); procBuf is reused.
	proc    int
	procBuf []byte
	writes  atomic.Uint64 // netlink write requests sent
}

// NewKernel returns a Kernel that opens nothing until it is used.
func NewKernel() *Kernel { return &Kernel{} }

// Open opens the netlink socket now, to report a missing IPVS early.
func (k *Kernel) Open() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.openLocked()
}

func (k *Kernel) openLocked() error {
	if k.c != nil {
		return nil
	}
	c, err := dialIPVS()
	if err != nil {
		return fmt.Errorf("ipvs: %w", err)
	}
	k.c = c
	// Opened with c, so both live in the same network namespace. Without
	// it dumps are only slower.
	if !k.noD {
		k.d, _ = dialIPVSBuf(destBufLen())
	}
	k.proc = openProc() + 1
	return nil
}

// closeLocked closes both sockets.
func (k *Kernel) closeLocked() {
	for _, c := range []*nlConn{k.c, k.d} {
		if c != nil {
			c.close()
		}
	}
	k.c, k.d = nil, nil
	if k.proc > 0 {
		unix.Close(k.proc - 1)
		k.proc = 0
	}
}

// Writes returns how many netlink write requests (adds, updates, deletes)
// this Kernel has sent, failed ones included: the director logs it per pass
// so an unchanged reload can be seen to write nothing.
func (k *Kernel) Writes() uint64 { return k.writes.Load() }

// Close releases the netlink socket. The Kernel may be used again after
// Close: it reopens on the next call.
func (k *Kernel) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closeLocked()
	return nil
}

// do runs fn with the socket under the lock, bounded by ctx and timeout.
// When fn reports the socket broken, it is closed.
func (k *Kernel) do(ctx context.Context, timeout time.Duration, fn func(ctx context.Context, c *nlConn) (broken error)) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := k.openLocked(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := fn(ctx, k.c); err != nil {
		k.closeLocked()
		return err
	}
	return nil
}

func (k *Kernel) callTimeout() time.Duration {
	if k.CallTimeout > 0 {
		return k.CallTimeout
	}
	return DefaultCallTimeout
}

func (k *Kernel) dumpTimeout() time.Duration {
	if k.DumpTimeout > 0 {
		return k.DumpTimeout
	}
	return DefaultDumpTimeout
}

// Dump returns every service with its destinations, sorted: one netlink
// dump for the services plus one per service for its destinations.
func (k *Kernel) Dump(ctx context.Context) ([]Entry, error) {
	var entries []Entry
	err := k.do(ctx, k.dumpTimeout(), func(ctx context.Context, c *nlConn) error {
		var err error
		entries, err = c.dumpTable(ctx, k.d)
		if errors.Is(err, errTruncated) && k.d != nil {
			// A kernel whose dump replies outgrow a page: big
			// buffers from now on.
			k.d.close()
			k.d, k.noD = nil, true
			entries, err = c.dumpTable(ctx, nil)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ipvs dump: %w", err)
	}
	SortEntries(entries)
	return entries, nil
}

// DumpServices reads only the services keys name, with their
// destinations: one get and one destination dump per key.
func (k *Kernel) DumpServices(ctx context.Context, keys []ServiceKey) ([]Entry, error) {
	var entries []Entry
	err := k.do(ctx, k.dumpTimeout(), func(ctx context.Context, c *nlConn) error {
		var err error
		entries, err = c.dumpServices(ctx, keys)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ipvs dump: %w", err)
	}
	SortEntries(entries)
	return entries, nil
}

// WriteBatch applies ws in order in as few round trips as fit (see
// netlink.go); errs[i] wraps the kernel's errno for ws[i].
func (k *Kernel) WriteBatch(ctx context.Context, ws []Write) []error {
	errs := make([]error, len(ws))
	if len(ws) == 0 {
		return errs
	}
	timeout := min(k.callTimeout()*time.Duration(len(ws)), max(k.dumpTimeout(), k.callTimeout()))
	err := k.do(ctx, timeout, func(ctx context.Context, c *nlConn) error {
		k.writes.Add(uint64(len(ws)))
		var broken error
		errs, broken = c.writeBatch(ctx, ws)
		return broken
	})
	for i := range errs {
		if errs[i] == nil && err != nil {
			errs[i] = err // could not open, or cancelled before sending
		}
		if errs[i] != nil {
			errs[i] = fmt.Errorf("ipvs %s: %w", ws[i], errs[i])
		}
	}
	return errs
}

func (k *Kernel) write(ctx context.Context, w Write) error {
	return k.WriteBatch(ctx, []Write{w})[0]
}

func (k *Kernel) AddService(ctx context.Context, s Service) error {
	return k.write(ctx, Write{Kind: WriteAddService, Service: s})
}

func (k *Kernel) UpdateService(ctx context.Context, s Service) error {
	return k.write(ctx, Write{Kind: WriteUpdateService, Service: s})
}

func (k *Kernel) DeleteService(ctx context.Context, key ServiceKey) error {
	return k.write(ctx, Write{Kind: WriteDeleteService, Service: Service{ServiceKey: key}})
}

func (k *Kernel) AddDestination(ctx context.Context, key ServiceKey, d Destination) error {
	return k.write(ctx, Write{Kind: WriteAddDest, Service: Service{ServiceKey: key}, Dest: d})
}

func (k *Kernel) UpdateDestination(ctx context.Context, key ServiceKey, d Destination) error {
	return k.write(ctx, Write{Kind: WriteUpdateDest, Service: Service{ServiceKey: key}, Dest: d})
}

func (k *Kernel) DeleteDestination(ctx context.Context, key ServiceKey, d Destination) error {
	return k.write(ctx, Write{Kind: WriteDeleteDest, Service: Service{ServiceKey: key}, Dest: d})
}
