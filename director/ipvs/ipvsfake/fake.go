// Package ipvsfake is an in-memory IPVS that behaves like the kernel's for
// the calls golvs makes: same errnos, same normalisation, deterministic
// dumps. Tests inject failures with Fail and count writes with Writes.
package ipvsfake

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/golvs/golvs/director/ipvs"
	"golang.org/x/sys/unix"
)

// OpDump is the operation name Fail sees for reads; writes are named by
// their ipvs.WriteKind's String ("add-destination", ...).
const OpDump = "dump"

type service struct {
	svc   ipvs.Service
	dests map[netip.AddrPort]ipvs.Destination
	// order is the kernel's destination list, head first: an add goes
	// to the head (list_add_rcu in __ip_vs_update_dest), an edit keeps
	// its place, a delete unlinks.
	order []netip.AddrPort
	// trash holds deleted destinations that still had connections: the
	// kernel keeps them (ip_vs_trash_put_dest) and an add of the same
	// address revives them with their connections.
	trash map[netip.AddrPort]ipvs.Destination
}

// Fake is an in-memory IPVS table. The zero value is an empty table.
type Fake struct {
	// Fail, when set, is called before every operation (dst is nil for
	// service operations and dumps); a non-nil result fails the operation
	// without changing anything.
	Fail func(op string, key ipvs.ServiceKey, dst *ipvs.Destination) error

	// Interfaces, when not nil, are the interfaces a sync daemon may
	// use: others are ENODEV, as in the kernel.
	Interfaces []string

	mu      sync.Mutex
	svcs    map[ipvs.ServiceKey]*service
	writes  map[ipvs.WriteKind]int
	daemons map[ipvs.SyncState]ipvs.SyncDaemon // see daemon.go
	// daemonWrites counts daemon starts and stops by operation.
	daemonWrites map[string]int
}

var _ ipvs.IPVS = (*Fake)(nil)

// New returns an empty fake.
func New() *Fake { return &Fake{} }

func (f *Fake) init() {
	if f.svcs == nil {
		f.svcs = make(map[ipvs.ServiceKey]*service)
		f.writes = make(map[ipvs.WriteKind]int)
	}
}

// begin takes the lock and runs the failure hook; the caller must unlock.
func (f *Fake) begin(ctx context.Context, op string, key ipvs.ServiceKey, dst *ipvs.Destination) error {
	f.mu.Lock()
	f.init()
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.Fail != nil {
		if err := f.Fail(op, key, dst); err != nil {
			return err
		}
	}
	return nil
}

// WritesByKind returns how many writes were attempted past the failure
// hook, by kind, and in total.
func (f *Fake) WritesByKind() (map[ipvs.WriteKind]int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	out := make(map[ipvs.WriteKind]int, len(f.writes))
	total := 0
	for k, v := range f.writes {
		out[k] = v
		total += v
	}
	return out, total
}

// Writes is the total of WritesByKind.
func (f *Fake) Writes() uint64 {
	_, n := f.WritesByKind()
	return uint64(n)
}

// count records a write that got past the failure hook; f.mu is held.
func (f *Fake) count(k ipvs.WriteKind, hookErr error) {
	if hookErr == nil {
		f.writes[k]++
	}
}

// ResetWrites zeroes the write counters.
func (f *Fake) ResetWrites() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	clear(f.writes)
}

// SetConns sets a destination's connection counters, as traffic would.
func (f *Fake) SetConns(key ipvs.ServiceKey, dst netip.AddrPort, active, inactive int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	s, ok := f.svcs[key]
	if !ok {
		return fmt.Errorf("fake: service %s: %w", key, unix.ESRCH)
	}
	d, ok := s.dests[dst]
	if !ok {
		return fmt.Errorf("fake: destination %s: %w", dst, unix.ENOENT)
	}
	d.ActiveConns, d.InactiveConns = active, inactive
	s.dests[dst] = d
	return nil
}

// Dump returns every service and destination, sorted, with the list
// order of ListOrdered services, as the kernel client does.
func (f *Fake) Dump(ctx context.Context) ([]ipvs.Entry, error) {
	err := f.begin(ctx, OpDump, ipvs.ServiceKey{}, nil)
	defer f.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("fake dump: %w", err)
	}
	out := make([]ipvs.Entry, 0, len(f.svcs))
	for _, s := range f.svcs {
		e := ipvs.Entry{Service: s.svc, Destinations: make([]ipvs.Destination, 0, len(s.dests))}
		for _, k := range s.order {
			e.Destinations = append(e.Destinations, s.dests[k])
		}
		e.Order = ipvs.OrderOf(s.svc.Scheduler, e.Destinations)
		ipvs.SortDestinations(e.Destinations)
		out = append(out, e)
	}
	ipvs.SortEntries(out)
	return out, nil
}

// Survey is what the kernel client's Survey returns: Dump without the
// destinations' thresholds, fwmark services inexact (with no
// destinations).
func (f *Fake) Survey(ctx context.Context) ([]ipvs.Entry, []ipvs.ServiceKey, error) {
	all, err := f.Dump(ctx)
	if err != nil {
		return nil, nil, err
	}
	var inexact []ipvs.ServiceKey
	for i := range all {
		if all[i].Service.FWMark != 0 {
			inexact = append(inexact, all[i].Service.ServiceKey)
			all[i].Destinations = nil
			continue
		}
		for j := range all[i].Destinations {
			all[i].Destinations[j].UpperThreshold, all[i].Destinations[j].LowerThreshold = 0, 0
		}
	}
	return all, inexact, nil
}

// WriteBatch applies ws one by one, as the kernel does a batch.
func (f *Fake) WriteBatch(ctx context.Context, ws []ipvs.Write) []error {
	errs := make([]error, len(ws))
	for i, w := range ws {
		errs[i] = f.write(ctx, w)
	}
	return errs
}

func (f *Fake) write(ctx context.Context, w ipvs.Write) error {
	key := w.Service.ServiceKey
	switch w.Kind {
	case ipvs.WriteAddService:
		return f.AddService(ctx, w.Service)
	case ipvs.WriteUpdateService:
		return f.UpdateService(ctx, w.Service)
	case ipvs.WriteDeleteService:
		return f.DeleteService(ctx, key)
	case ipvs.WriteAddDest:
		return f.AddDestination(ctx, key, w.Dest)
	case ipvs.WriteUpdateDest:
		return f.UpdateDestination(ctx, key, w.Dest)
	case ipvs.WriteDeleteDest:
		return f.DeleteDestination(ctx, key, w.Dest)
	}
	return fmt.Errorf("fake: unknown write kind %d: %w", w.Kind, unix.EINVAL)
}

// DumpServices is Dump restricted to keys (counted as one dump).
func (f *Fake) DumpServices(ctx context.Context, keys []ipvs.ServiceKey) ([]ipvs.Entry, error) {
	all, err := f.Dump(ctx)
	if err != nil {
		return nil, err
	}
	return ipvs.OnlyServices(all, keys), nil
}

func validService(s ipvs.Service) error {
	if s.Family != unix.AF_INET && s.Family != unix.AF_INET6 {
		return unix.EAFNOSUPPORT
	}
	if s.Scheduler == "" {
		return unix.ENOENT // the kernel cannot find scheduler ""
	}
	if s.Family == unix.AF_INET6 && (s.Netmask < 1 || s.Netmask > 128) {
		return unix.EINVAL
	}
	if s.FWMark == 0 {
		if !s.Address.IsValid() || s.Address.Is6() != (s.Family == unix.AF_INET6) {
			return unix.EINVAL
		}
		if s.Protocol != unix.IPPROTO_TCP && s.Protocol != unix.IPPROTO_UDP && s.Protocol != unix.IPPROTO_SCTP {
			return unix.EAFNOSUPPORT
		}
		if s.Port == 0 && s.Flags&ipvs.FlagPersistent == 0 {
			return unix.EINVAL
		}
	}
	return nil
}

// normalService is what the kernel would store and report back.
func normalService(s ipvs.Service) ipvs.Service {
	s.Flags &^= ipvs.FlagHashed
	if s.FWMark != 0 {
		s.Address, s.Port, s.Protocol = netip.Addr{}, 0, 0
	}
	return s
}

func (f *Fake) AddService(ctx context.Context, s ipvs.Service) error {
	err := f.begin(ctx, ipvs.WriteAddService.String(), s.ServiceKey, nil)
	f.count(ipvs.WriteAddService, err)
	defer f.mu.Unlock()
	if err == nil {
		err = validService(s)
	}
	if err == nil {
		s = normalService(s)
		if _, ok := f.svcs[s.ServiceKey]; ok {
			err = unix.EEXIST
		} else {
			f.svcs[s.ServiceKey] = &service{svc: s, dests: make(map[netip.AddrPort]ipvs.Destination)}
		}
	}
	if err != nil {
		return fmt.Errorf("fake add service %s: %w", s.ServiceKey, err)
	}
	return nil
}

func (f *Fake) UpdateService(ctx context.Context, s ipvs.Service) error {
	err := f.begin(ctx, ipvs.WriteUpdateService.String(), s.ServiceKey, nil)
	f.count(ipvs.WriteUpdateService, err)
	defer f.mu.Unlock()
	if err == nil {
		err = validService(s)
	}
	if err == nil {
		s = normalService(s)
		if cur, ok := f.svcs[s.ServiceKey]; !ok {
			err = unix.ESRCH
		} else {
			cur.svc = s
		}
	}
	if err != nil {
		return fmt.Errorf("fake update service %s: %w", s.ServiceKey, err)
	}
	return nil
}

func (f *Fake) DeleteService(ctx context.Context, k ipvs.ServiceKey) error {
	k = normalService(ipvs.Service{ServiceKey: k}).ServiceKey
	err := f.begin(ctx, ipvs.WriteDeleteService.String(), k, nil)
	f.count(ipvs.WriteDeleteService, err)
	defer f.mu.Unlock()
	if err == nil {
		if _, ok := f.svcs[k]; !ok {
			err = unix.ESRCH
		} else {
			delete(f.svcs, k)
		}
	}
	if err != nil {
		return fmt.Errorf("fake delete service %s: %w", k, err)
	}
	return nil
}

// destOp runs the common part of the destination calls: the hook, the
// service lookup (ESRCH like the kernel) and validation.
func (f *Fake) destOp(ctx context.Context, op ipvs.WriteKind, k ipvs.ServiceKey, d ipvs.Destination, full bool) (*service, error) {
	err := f.begin(ctx, op.String(), k, &d)
	f.count(op, err)
	if err != nil {
		return nil, err
	}
	s, ok := f.svcs[normalService(ipvs.Service{ServiceKey: k}).ServiceKey]
	if !ok {
		return nil, unix.ESRCH
	}
	if !d.Address.IsValid() || d.Address.Is6() != (s.svc.Family == unix.AF_INET6) {
		return nil, unix.EINVAL
	}
	if full {
		if d.Weight < 0 || d.Weight > 65535 {
			return nil, unix.ERANGE
		}
		if d.LowerThreshold > d.UpperThreshold && d.UpperThreshold != 0 {
			return nil, unix.ERANGE
		}
		switch d.Forwarding {
		case ipvs.Masq, ipvs.Tunnel, ipvs.Route:
		default:
			return nil, unix.EINVAL
		}
	}
	return s, nil
}

// written drops the counters a caller cannot set.
func written(d ipvs.Destination, old ipvs.Destination) ipvs.Destination {
	d.ActiveConns, d.InactiveConns = old.ActiveConns, old.InactiveConns
	return d
}

func (f *Fake) AddDestination(ctx context.Context, k ipvs.ServiceKey, d ipvs.Destination) error {
	s, err := f.destOp(ctx, ipvs.WriteAddDest, k, d, true)
	defer f.mu.Unlock()
	if err == nil {
		if _, ok := s.dests[d.Key()]; ok {
			err = unix.EEXIST
		} else {
			s.dests[d.Key()] = written(d, s.trash[d.Key()])
			delete(s.trash, d.Key())
			s.order = append([]netip.AddrPort{d.Key()}, s.order...)
		}
	}
	if err != nil {
		return fmt.Errorf("fake add destination %s -> %s: %w", k, d.Key(), err)
	}
	return nil
}

func (f *Fake) UpdateDestination(ctx context.Context, k ipvs.ServiceKey, d ipvs.Destination) error {
	s, err := f.destOp(ctx, ipvs.WriteUpdateDest, k, d, true)
	defer f.mu.Unlock()
	if err == nil {
		if old, ok := s.dests[d.Key()]; !ok {
			err = unix.ENOENT
		} else {
			s.dests[d.Key()] = written(d, old)
		}
	}
	if err != nil {
		return fmt.Errorf("fake update destination %s -> %s: %w", k, d.Key(), err)
	}
	return nil
}

func (f *Fake) DeleteDestination(ctx context.Context, k ipvs.ServiceKey, d ipvs.Destination) error {
	s, err := f.destOp(ctx, ipvs.WriteDeleteDest, k, d, false)
	defer f.mu.Unlock()
	if err == nil {
		if old, ok := s.dests[d.Key()]; !ok {
			err = unix.ENOENT
		} else {
			delete(s.dests, d.Key())
			s.order = slices.DeleteFunc(s.order, func(k netip.AddrPort) bool { return k == d.Key() })
			if old.ActiveConns+old.InactiveConns > 0 {
				if s.trash == nil {
					s.trash = make(map[netip.AddrPort]ipvs.Destination)
				}
				s.trash[d.Key()] = old
			}
		}
	}
	if err != nil {
		return fmt.Errorf("fake delete destination %s -> %s: %w", k, d.Key(), err)
	}
	return nil
}
