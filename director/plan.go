// Package director turns the topology into kernel IPVS state: Desired
// computes the wanted table from config and health, Plan diffs it against
// a dump of the kernel, and the Reconciler applies the plan in a loop.
package director

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/ipvs"
	"golang.org/x/sys/unix"
)

// WeightNotReported is BackendState.WeightPercent when no checker reports a
// weight: the configured weight is used as is.
const WeightNotReported = -1

// BackendState is what health checking knows about one backend.
type BackendState struct {
	Up    bool // false = the check fails (after fall)
	Drain bool // the agent or an operator asks for weight 0, connections kept
	// WeightPercent scales the configured weight (an agent's report);
	// WeightNotReported (any negative value) leaves it unchanged. Note
	// that 0 means a weight of 0, so a view must set WeightNotReported
	// explicitly: StateUp is the usual "healthy, nothing reported".
	WeightPercent int
	// Unknown: no verdict yet (the first check has not run). Desired
	// treats the backend as down, except that it still counts towards
	// quorum; the Reconciler keeps the kernel's weight for a backend
	// already in the kernel, so a restarted director causes no blip.
	Unknown bool
}

// VersionedView is a HealthView that can tell that nothing changed:
// Version differs whenever any backend's state may have. The Reconciler
// then reuses the desired table of the previous pass.
type VersionedView interface {
	HealthView
	Version() uint64
}

// StateUp is a healthy backend without a reported weight.
var StateUp = BackendState{Up: true, WeightPercent: WeightNotReported}

// HealthView reports each backend's state. service is the service's name.
type HealthView interface {
	Backend(service string, b netip.AddrPort) BackendState
}

// Key returns the kernel key of a configured service.
func Key(s *config.Service) ipvs.ServiceKey {
	if s.FWMark != 0 {
		fam := uint16(unix.AF_INET)
		if s.IPv6 {
			fam = unix.AF_INET6
		}
		return ipvs.ServiceKey{Family: fam, FWMark: s.FWMark}
	}
	fam := uint16(unix.AF_INET)
	if s.Address.Is6() {
		fam = unix.AF_INET6
	}
	return ipvs.ServiceKey{Family: fam, Protocol: protocolNumber(s.Protocol), Address: s.Address, Port: s.Port}
}

func protocolNumber(p config.Protocol) uint16 {
	switch p {
	case config.UDP:
		return unix.IPPROTO_UDP
	case config.SCTP:
		return unix.IPPROTO_SCTP
	}
	return unix.IPPROTO_TCP
}

func forwarding(f config.Forwarding) ipvs.Forwarding {
	switch f {
	case config.NAT:
		return ipvs.Masq
	case config.TUN:
		return ipvs.Tunnel
	}
	return ipvs.Route
}

// schedFlags maps scheduler_flags names to IP_VS_SVC_F_SCHED* bits.
var schedFlags = map[string]uint32{
	"sh-fallback": ipvs.FlagSched1,
	"mh-fallback": ipvs.FlagSched1,
	"flag-1":      ipvs.FlagSched1,
	"sh-port":     ipvs.FlagSched2,
	"mh-port":     ipvs.FlagSched2,
	"flag-2":      ipvs.FlagSched2,
	"flag-3":      ipvs.FlagSched3,
}

// Kernel defaults for the persistence netmask, also sent for services
// without persistence: the kernel rejects an IPv6 prefix outside 1..128.
const (
	netmaskAll4 = 0xffffffff
	netmaskAll6 = 128
)

// desiredService converts a service's settings (not its backends).
func desiredService(s *config.Service) ipvs.Service {
	out := ipvs.Service{ServiceKey: Key(s), Scheduler: s.Scheduler}
	if out.Scheduler == "" {
		out.Scheduler = config.DefaultScheduler
	}
	for _, f := range s.SchedulerFlags {
		out.Flags |= schedFlags[f]
	}
	if s.Persistence > 0 {
		out.Flags |= ipvs.FlagPersistent
		secs := (s.Persistence + time.Second - 1) / time.Second
		out.Timeout = uint32(secs)
	}
	if out.Family == unix.AF_INET6 {
		out.Netmask = netmaskAll6
		if s.PersistencePrefix > 0 {
			out.Netmask = uint32(s.PersistencePrefix)
		}
	} else {
		out.Netmask = netmaskAll4
		if s.PersistenceNetmask.Is4() {
			b := s.PersistenceNetmask.As4()
			out.Netmask = binary.BigEndian.Uint32(b[:])
		}
	}
	return out
}

// upView is the nil HealthView: everything up.
type upView struct{}

func (upView) Backend(string, netip.AddrPort) BackendState { return StateUp }

func (upView) Version() uint64 { return 0 }

// Desired computes the IPVS table the topology asks for, given health.
// A nil view means every backend is up. Entries and destinations are
// sorted like a dump.
func Desired(topo *config.Topology, health HealthView) []ipvs.Entry {
	if health == nil {
		health = upView{}
	}
	if topo == nil {
		return nil
	}
	out, _ := desired(topo, health)
	return out
}

// desired is Desired that also says whether health had no verdict yet on
// some backend (the Reconciler then adopts the kernel's weights).
func desired(topo *config.Topology, health HealthView) (out []ipvs.Entry, unknown bool) {
	out = make([]ipvs.Entry, 0, len(topo.Services))
	for i := range topo.Services {
		e, u := desiredEntryUnknown(&topo.Services[i], health)
		out = append(out, e)
		unknown = unknown || u
	}
	ipvs.SortEntries(out)
	return out, unknown
}

func desiredEntry(s *config.Service, health HealthView) ipvs.Entry {
	e, _ := desiredEntryUnknown(s, health)
	return e
}

func desiredEntryUnknown(s *config.Service, health HealthView) (e ipvs.Entry, unknown bool) {
	e = ipvs.Entry{Service: desiredService(s)}
	e.Destinations = make([]ipvs.Destination, 0, len(s.Backends))
	up := 0
	unchecked := s.Check == nil || s.Check.Type == config.CheckNone
	for _, b := range s.Backends {
		st := health.Backend(s.Name, b.AddrPort())
		if st.Unknown && unchecked {
			// Nothing will ever check it: up, as health would say once
			// it knows the backend (a reload applies new backends
			// before the monitor hears of them).
			st.Up, st.Unknown, st.WeightPercent = true, false, WeightNotReported
		}
		unknown = unknown || st.Unknown
		if (st.Up || st.Unknown) && !st.Drain {
			up++
		}
		if !st.Up && s.OnFailure == config.Remove {
			continue
		}
		fwd := b.Forwarding
		if fwd == "" {
			fwd = s.Forwarding
		}
		e.Destinations = append(e.Destinations, ipvs.Destination{
			Address:        b.Address,
			Port:           b.Port,
			Weight:         effectiveWeight(b.Weight, st),
			Forwarding:     forwarding(fwd),
			UpperThreshold: b.UpperThreshold,
			LowerThreshold: b.LowerThreshold,
		})
	}
	if s.Quorum > 0 && up < s.Quorum && s.SorryServer.IsValid() {
		sorry := ipvs.Destination{
			Address:    s.SorryServer.Addr(),
			Port:       s.SorryServer.Port(),
			Weight:     1,
			Forwarding: forwarding(s.Forwarding),
		}
		replaced := false
		for i, d := range e.Destinations {
			if d.Key() == sorry.Key() {
				e.Destinations[i].Weight = 1
				replaced = true
			}
		}
		if !replaced {
			e.Destinations = append(e.Destinations, sorry)
		}
	}
	if !slices.IsSortedFunc(e.Destinations, ipvs.CompareDests) {
		ipvs.SortDestinations(e.Destinations)
	}
	return e, unknown
}

func effectiveWeight(w int, st BackendState) int {
	if !st.Up || st.Drain {
		return 0
	}
	if st.WeightPercent >= 0 {
		w = w * st.WeightPercent / 100
	}
	return min(max(w, 0), 65535)
}

// OpKind is the kind of one kernel change.
type OpKind int

const (
	AddService OpKind = iota
	UpdateService
	DeleteService
	AddDest
	UpdateDest
	DeleteDest
)

// Op is one kernel change. Service is the full service for adds and
// updates, only its key matters for the others; Dest is set for
// destination ops. Old holds the previous values of an update, for
// messages.
type Op struct {
	Kind    OpKind
	Service ipvs.Service
	Dest    ipvs.Destination
	OldSvc  ipvs.Service
	OldDest ipvs.Destination
}

// String is one human-readable line, as `director plan` prints it.
func (o Op) String() string {
	k := o.Service.ServiceKey
	switch o.Kind {
	case AddService:
		return fmt.Sprintf("add service %s %s", k, svcSettings(o.Service))
	case UpdateService:
		return fmt.Sprintf("update service %s %s", k, svcChanges(o.OldSvc, o.Service))
	case DeleteService:
		return fmt.Sprintf("delete service %s", k)
	case AddDest:
		return fmt.Sprintf("add destination %s -> %s %s", k, o.Dest.Key(), destSettings(o.Dest))
	case UpdateDest:
		return fmt.Sprintf("update destination %s -> %s %s", k, o.Dest.Key(), destChanges(o.OldDest, o.Dest))
	case DeleteDest:
		return fmt.Sprintf("delete destination %s -> %s", k, o.Dest.Key())
	}
	return fmt.Sprintf("op %d on %s", o.Kind, k)
}

func svcSettings(s ipvs.Service) string {
	parts := []string{s.Scheduler}
	if s.Flags != 0 {
		parts = append(parts, fmt.Sprintf("flags %#x", s.Flags))
	}
	if s.Flags&ipvs.FlagPersistent != 0 {
		parts = append(parts, fmt.Sprintf("persistent %ds", s.Timeout))
	}
	if !isDefaultNetmask(s) {
		parts = append(parts, "netmask "+netmaskString(s))
	}
	return strings.Join(parts, " ")
}

func isDefaultNetmask(s ipvs.Service) bool {
	if s.Family == unix.AF_INET6 {
		return s.Netmask == netmaskAll6
	}
	return s.Netmask == netmaskAll4
}

func netmaskString(s ipvs.Service) string {
	if s.Family == unix.AF_INET6 {
		return fmt.Sprintf("/%d", s.Netmask)
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], s.Netmask)
	return netip.AddrFrom4(b).String()
}

func svcChanges(old, s ipvs.Service) string {
	var parts []string
	if old.Scheduler != s.Scheduler {
		parts = append(parts, fmt.Sprintf("scheduler %s -> %s", old.Scheduler, s.Scheduler))
	}
	if old.Flags != s.Flags {
		parts = append(parts, fmt.Sprintf("flags %#x -> %#x", old.Flags, s.Flags))
	}
	if old.Timeout != s.Timeout {
		parts = append(parts, fmt.Sprintf("timeout %ds -> %ds", old.Timeout, s.Timeout))
	}
	if old.Netmask != s.Netmask {
		parts = append(parts, fmt.Sprintf("netmask %s -> %s", netmaskString(old), netmaskString(s)))
	}
	return strings.Join(parts, ", ")
}

func destSettings(d ipvs.Destination) string {
	s := fmt.Sprintf("%s weight %d", fwdName(d.Forwarding), d.Weight)
	if d.UpperThreshold != 0 || d.LowerThreshold != 0 {
		s += fmt.Sprintf(" thresholds %d/%d", d.LowerThreshold, d.UpperThreshold)
	}
	return s
}

func fwdName(f ipvs.Forwarding) string {
	switch f {
	case ipvs.Masq:
		return "nat"
	case ipvs.Route:
		return "dr"
	case ipvs.Tunnel:
		return "tun"
	}
	return f.String()
}

func destChanges(old, d ipvs.Destination) string {
	var parts []string
	if old.Weight != d.Weight {
		parts = append(parts, fmt.Sprintf("weight %d -> %d", old.Weight, d.Weight))
	}
	if old.Forwarding != d.Forwarding {
		parts = append(parts, fmt.Sprintf("forwarding %s -> %s", fwdName(old.Forwarding), fwdName(d.Forwarding)))
	}
	if old.UpperThreshold != d.UpperThreshold || old.LowerThreshold != d.LowerThreshold {
		parts = append(parts, fmt.Sprintf("thresholds %d/%d -> %d/%d",
			old.LowerThreshold, old.UpperThreshold, d.LowerThreshold, d.UpperThreshold))
	}
	return strings.Join(parts, ", ")
}

// Plan returns the minimal list of ops that turns actual into desired.
// Services in actual but not in desired are deleted only when owned says
// they are ours; every other service is left alone. Within a desired
// service every destination is ours: unknown ones are deleted. The order
// is deterministic: per desired service (sorted), the service add or
// update, then destination deletes, updates and adds; then deletes of
// services that are no longer wanted. Deleting a service removes its
// destinations with it. The kernel updates a destination's forwarding
// method in place, so a forwarding change is one update.
func Plan(desired, actual []ipvs.Entry, owned func(ipvs.ServiceKey) bool) []Op {
	return plan(sortedEntries(desired), sortedEntries(actual), owned)
}

// plan is Plan on tables already in dump order. Both sides come sorted
// (Desired and dumps sort), so one merge walk replaces maps: a no-op pass
// over thousands of services allocates nothing here.
func plan(desired, actual []ipvs.Entry, owned func(ipvs.ServiceKey) bool) []Op {
	var ops, dels []Op
	i, j := 0, 0
	for i < len(desired) || j < len(actual) {
		c := 1 // actual[j] only
		switch {
		case j == len(actual):
			c = -1
		case i < len(desired):
			c = ipvs.KeyCompare(desired[i].Service.ServiceKey, actual[j].Service.ServiceKey)
		}
		switch {
		case c < 0:
			d := desired[i]
			ops = append(ops, Op{Kind: AddService, Service: d.Service})
			for _, dst := range d.Destinations {
				ops = append(ops, Op{Kind: AddDest, Service: d.Service, Dest: dst})
			}
			i++
		case c > 0:
			a := actual[j]
			if owned != nil && owned(a.Service.ServiceKey) {
				dels = append(dels, Op{Kind: DeleteService, Service: a.Service})
			}
			j++
		default:
			d, a := desired[i], actual[j]
			if !a.Service.Equal(d.Service) {
				ops = append(ops, Op{Kind: UpdateService, Service: d.Service, OldSvc: a.Service})
			}
			ops = planDests(ops, d, a)
			i++
			j++
		}
	}
	return append(ops, dels...)
}

// sortedEntries returns es when it and every entry's destinations are
// already in dump order, else a sorted copy (the caller's slice is never
// reordered).
func sortedEntries(es []ipvs.Entry) []ipvs.Entry {
	ok := slices.IsSortedFunc(es, func(a, b ipvs.Entry) int {
		return ipvs.KeyCompare(a.Service.ServiceKey, b.Service.ServiceKey)
	})
	for i := 0; ok && i < len(es); i++ {
		ok = slices.IsSortedFunc(es[i].Destinations, ipvs.CompareDests)
	}
	if ok {
		return es
	}
	out := make([]ipvs.Entry, len(es))
	for i, e := range es {
		e.Destinations = slices.Clone(e.Destinations)
		ipvs.SortDestinations(e.Destinations)
		out[i] = e
	}
	ipvs.SortEntries(out)
	return out
}

// planDests appends the destination changes of one service to ops:
// deletes, then updates, then adds, each in address order. Both lists
// are sorted.
func planDests(ops []Op, d, a ipvs.Entry) []Op {
	var upds, adds []Op
	i, j := 0, 0
	for i < len(d.Destinations) || j < len(a.Destinations) {
		c := 1
		switch {
		case j == len(a.Destinations):
			c = -1
		case i < len(d.Destinations):
			c = ipvs.CompareDests(d.Destinations[i], a.Destinations[j])
		}
		switch {
		case c < 0:
			adds = append(adds, Op{Kind: AddDest, Service: d.Service, Dest: d.Destinations[i]})
			i++
		case c > 0:
			ops = append(ops, Op{Kind: DeleteDest, Service: d.Service, Dest: a.Destinations[j]})
			j++
		default:
			if x, old := d.Destinations[i], a.Destinations[j]; !old.Equal(x) {
				upds = append(upds, Op{Kind: UpdateDest, Service: d.Service, Dest: x, OldDest: old})
			}
			i++
			j++
		}
	}
	return append(append(ops, upds...), adds...)
}

// VIPs returns the topology's service addresses (fwmark services have
// none), without duplicates, sorted: what the director holds on its
// interface.
func VIPs(topo *config.Topology) []netip.Addr {
	if topo == nil {
		return nil
	}
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	for i := range topo.Services {
		a := topo.Services[i].Address
		if topo.Services[i].FWMark != 0 || !a.IsValid() || seen[a] {
			continue
		}
		seen[a] = true
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}
