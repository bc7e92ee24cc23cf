package ipvs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	moby "github.com/moby/ipvs"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Default bounds of one call when the caller's context has no earlier
// deadline. A dump is one request per service, so it gets longer.
const (
	DefaultCallTimeout = 10 * time.Second
	DefaultDumpTimeout = 2 * time.Minute
)

// Kernel is the IPVS interface over the kernel's generic netlink API
// (github.com/moby/ipvs). It opens its netlink socket on first use (or on
// Open), so building one touches nothing.
//
// moby/ipvs is not safe for concurrent use, so every call holds mu. Its
// socket has a 3s receive timeout, but its receive loop retries on that
// timeout forever: a lost reply would hang the caller. So each call runs
// in a goroutine and, when the deadline passes, the socket is closed (which
// wakes the blocked receive) and reopened by the next call.
//
// moby/ipvs looks up the IPVS netlink family once per process (and runs
// `modprobe ip_vs` first): the ip_vs module must be loaded before the first
// call.
type Kernel struct {
	// CallTimeout bounds each write; zero means DefaultCallTimeout.
	CallTimeout time.Duration
	// DumpTimeout bounds a whole Dump; zero means DefaultDumpTimeout.
	DumpTimeout time.Duration

	mu sync.Mutex
	h  *moby.Handle // nil until first use, and after a timed-out call
}

var _ IPVS = (*Kernel)(nil)

// NewKernel returns a Kernel that opens nothing until it is used.
func NewKernel() *Kernel { return &Kernel{} }

// Open opens the netlink socket now, to report a missing IPVS early.
func (k *Kernel) Open() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.openLocked()
}

func (k *Kernel) openLocked() error {
	if k.h != nil {
		return nil
	}
	// Without this check a kernel lacking IPVS looks like an empty
	// table: moby/ipvs logs the missing family and carries on.
	nh, err := netlink.NewHandle(unix.NETLINK_GENERIC)
	if err != nil {
		return fmt.Errorf("ipvs: netlink: %w", err)
	}
	nh.SetSocketTimeout(DefaultCallTimeout)
	_, err = nh.GenlFamilyGet("IPVS")
	nh.Close()
	if err != nil {
		return fmt.Errorf("ipvs: the kernel has no IPVS (load ip_vs before starting): %w", err)
	}
	h, err := moby.New("")
	if err != nil {
		return fmt.Errorf("ipvs: open netlink socket: %w", err)
	}
	k.h = h
	return nil
}

// Close releases the netlink socket. The Kernel may be used again after
// Close: it reopens on the next call.
func (k *Kernel) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.h != nil {
		k.h.Close()
		k.h = nil
	}
	return nil
}

// do runs fn with the handle under the lock, bounded by ctx and CallTimeout.
func (k *Kernel) do(ctx context.Context, what string, fn func(h *moby.Handle) error) error {
	timeout := k.CallTimeout
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	if what == "dump" {
		timeout = k.DumpTimeout
		if timeout <= 0 {
			timeout = DefaultDumpTimeout
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ipvs %s: %w", what, err)
	}
	if err := k.openLocked(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	h := k.h
	done := make(chan error, 1)
	go func() { done <- fn(h) }()
	select {
	case err := <-done:
		if err != nil {
			// moby/ipvs returns the kernel's syscall.Errno (== unix.Errno).
			return fmt.Errorf("ipvs %s: %w", what, err)
		}
		return nil
	case <-ctx.Done():
		// Closing the socket wakes the blocked receive; wait for the
		// goroutine so it never uses a handle after we dropped it.
		h.Close()
		<-done
		k.h = nil
		return fmt.Errorf("ipvs %s: %w", what, ctx.Err())
	}
}

// Dump returns every service with its destinations, sorted. It costs one
// netlink dump for the services plus one per service for its destinations
// (O(services) round trips; to be optimised for very large tables).
func (k *Kernel) Dump(ctx context.Context) ([]Entry, error) {
	var entries []Entry
	err := k.do(ctx, "dump", func(h *moby.Handle) error {
		svcs, err := h.GetServices()
		if err != nil {
			return err
		}
		entries = make([]Entry, 0, len(svcs))
		for _, ms := range svcs {
			s, err := fromMobyService(ms)
			if err != nil {
				return err
			}
			mds, err := h.GetDestinations(ms)
			if err != nil {
				// The service may vanish between the two calls.
				if errors.Is(err, unix.ESRCH) {
					continue
				}
				return fmt.Errorf("destinations of %s: %w", s.ServiceKey, err)
			}
			e := Entry{Service: s, Destinations: make([]Destination, 0, len(mds))}
			for _, md := range mds {
				d, err := fromMobyDestination(md)
				if err != nil {
					return fmt.Errorf("destination of %s: %w", s.ServiceKey, err)
				}
				e.Destinations = append(e.Destinations, d)
			}
			SortDestinations(e.Destinations)
			entries = append(entries, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	SortEntries(entries)
	return entries, nil
}

func (k *Kernel) AddService(ctx context.Context, s Service) error {
	return k.do(ctx, "add service "+s.ServiceKey.String(), func(h *moby.Handle) error {
		return h.NewService(toMobyService(s))
	})
}

func (k *Kernel) UpdateService(ctx context.Context, s Service) error {
	return k.do(ctx, "update service "+s.ServiceKey.String(), func(h *moby.Handle) error {
		return h.UpdateService(toMobyService(s))
	})
}

func (k *Kernel) DeleteService(ctx context.Context, key ServiceKey) error {
	return k.do(ctx, "delete service "+key.String(), func(h *moby.Handle) error {
		return h.DelService(toMobyService(Service{ServiceKey: key}))
	})
}

func (k *Kernel) AddDestination(ctx context.Context, key ServiceKey, d Destination) error {
	return k.do(ctx, "add destination "+key.String()+" -> "+d.Key().String(), func(h *moby.Handle) error {
		return h.NewDestination(toMobyService(Service{ServiceKey: key}), toMobyDestination(d))
	})
}

func (k *Kernel) UpdateDestination(ctx context.Context, key ServiceKey, d Destination) error {
	return k.do(ctx, "update destination "+key.String()+" -> "+d.Key().String(), func(h *moby.Handle) error {
		return h.UpdateDestination(toMobyService(Service{ServiceKey: key}), toMobyDestination(d))
	})
}

func (k *Kernel) DeleteDestination(ctx context.Context, key ServiceKey, d Destination) error {
	return k.do(ctx, "delete destination "+key.String()+" -> "+d.Key().String(), func(h *moby.Handle) error {
		return h.DelDestination(toMobyService(Service{ServiceKey: key}), toMobyDestination(d))
	})
}

// toMobyService converts our service. The kernel keeps an IPv4 persistence
// netmask as the raw bytes of a big-endian mask, and moby/ipvs writes
// Netmask in host byte order, so an IPv4 mask is converted here; an IPv6
// netmask is a plain prefix length.
func toMobyService(s Service) *moby.Service {
	ms := &moby.Service{
		AddressFamily: s.Family,
		FWMark:        s.FWMark,
		SchedName:     s.Scheduler,
		Flags:         s.Flags &^ FlagHashed,
		Timeout:       s.Timeout,
		Netmask:       s.Netmask,
	}
	if s.Family == unix.AF_INET {
		ms.Netmask = swapMask(s.Netmask)
	}
	if s.FWMark == 0 {
		ms.Protocol = s.Protocol
		ms.Port = s.Port
		ms.Address = net.IP(s.Address.AsSlice())
	}
	return ms
}

// swapMask converts between a big-endian mask value and the host-order
// value whose bytes in memory are that big-endian mask.
func swapMask(v uint32) uint32 {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return binary.NativeEndian.Uint32(b[:])
}

// fromMobyService normalises what the kernel returns so that it compares
// equal to what we asked for: HASHED is masked, the netmask is in our
// byte order, fwmark services carry no address, port or protocol.
func fromMobyService(ms *moby.Service) (Service, error) {
	s := Service{
		ServiceKey: ServiceKey{Family: ms.AddressFamily, FWMark: ms.FWMark},
		Scheduler:  ms.SchedName,
		Flags:      ms.Flags &^ FlagHashed,
		Timeout:    ms.Timeout,
		Netmask:    ms.Netmask,
	}
	if s.Family == unix.AF_INET {
		s.Netmask = swapMask(ms.Netmask)
	}
	if ms.FWMark == 0 {
		a, err := addrOf(ms.Address, ms.AddressFamily)
		if err != nil {
			return Service{}, fmt.Errorf("service address: %w", err)
		}
		s.Address = a
		s.Port = ms.Port
		s.Protocol = ms.Protocol
	}
	return s, nil
}

func toMobyDestination(d Destination) *moby.Destination {
	fam := uint16(unix.AF_INET)
	if d.Address.Is6() {
		fam = unix.AF_INET6
	}
	return &moby.Destination{
		Address:         net.IP(d.Address.AsSlice()),
		Port:            d.Port,
		Weight:          d.Weight,
		ConnectionFlags: uint32(d.Forwarding) & moby.ConnectionFlagFwdMask,
		AddressFamily:   fam,
		UpperThreshold:  d.UpperThreshold,
		LowerThreshold:  d.LowerThreshold,
	}
}

func fromMobyDestination(md *moby.Destination) (Destination, error) {
	a, err := addrOf(md.Address, md.AddressFamily)
	if err != nil {
		return Destination{}, err
	}
	return Destination{
		Address:        a,
		Port:           md.Port,
		Weight:         md.Weight,
		Forwarding:     Forwarding(md.ConnectionFlags & moby.ConnectionFlagFwdMask),
		UpperThreshold: md.UpperThreshold,
		LowerThreshold: md.LowerThreshold,
		ActiveConns:    md.ActiveConnections,
		InactiveConns:  md.InactiveConnections,
	}, nil
}

// addrOf converts a kernel address to netip, IPv4 as a 4-byte address so
// that it compares equal to the parsed config.
func addrOf(ip net.IP, family uint16) (netip.Addr, error) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, fmt.Errorf("bad address %v", []byte(ip))
	}
	if family == unix.AF_INET {
		a = a.Unmap()
	}
	return a, nil
}

// SortEntries orders entries by service key, the order Dump returns.
func SortEntries(es []Entry) {
	sort.Slice(es, func(i, j int) bool { return KeyLess(es[i].Service.ServiceKey, es[j].Service.ServiceKey) })
}

// SortDestinations orders destinations by address and port.
func SortDestinations(ds []Destination) {
	sort.Slice(ds, func(i, j int) bool { return ds[i].Key().Compare(ds[j].Key()) < 0 })
}

// KeyLess orders service keys: address services before fwmark ones, then
// by family, address, protocol, port and mark.
func KeyLess(a, b ServiceKey) bool {
	if (a.FWMark != 0) != (b.FWMark != 0) {
		return a.FWMark == 0
	}
	if a.Family != b.Family {
		return a.Family < b.Family
	}
	if c := a.Address.Compare(b.Address); c != 0 {
		return c < 0
	}
	if a.Protocol != b.Protocol {
		return a.Protocol < b.Protocol
	}
	if a.Port != b.Port {
		return a.Port < b.Port
	}
	return a.FWMark < b.FWMark
}
