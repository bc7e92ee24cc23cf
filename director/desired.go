package director

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/health"
	"golang.org/x/sys/unix"
)

// HealthView reports each backend's health. service is the service's
// name. A backend the view has no verdict on is reported not Checked.
type HealthView interface {
	Backend(service string, b netip.AddrPort) health.Status
}

// VersionedView is a HealthView that can tell that nothing changed:
// Version differs whenever any backend's state may have. The Reconciler
// then reuses the desired table of the previous pass.
type VersionedView interface {
	HealthView
	Version() uint64
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
		out.Netmask = ipvs.NetmaskAll6
		if s.PersistencePrefix > 0 {
			out.Netmask = uint32(s.PersistencePrefix)
		}
	} else {
		out.Netmask = ipvs.NetmaskAll4
		if s.PersistenceNetmask.Is4() {
			b := s.PersistenceNetmask.As4()
			out.Netmask = binary.BigEndian.Uint32(b[:])
		}
	}
	return out
}

// upView is the nil HealthView: everything up.
type upView struct{}

func (upView) Backend(string, netip.AddrPort) health.Status { return health.Initial(nil, time.Time{}) }

func (upView) Version() uint64 { return 0 }

// Desired computes the IPVS table the topology asks for, given health.
// A nil view means every backend is up. Entries and destinations are
// sorted like a dump.
func Desired(topo *config.Topology, view HealthView) []ipvs.Entry {
	if view == nil {
		view = upView{}
	}
	if topo == nil {
		return nil
	}
	out, _ := desired(topo, view)
	return out
}

// desired is Desired that also says whether health had no verdict yet on
// some backend (the Reconciler then adopts the kernel's weights).
func desired(topo *config.Topology, view HealthView) (out []ipvs.Entry, unknown bool) {
	out = make([]ipvs.Entry, 0, len(topo.Services))
	for i := range topo.Services {
		e, u := desiredEntryUnknown(&topo.Services[i], view)
		out = append(out, e)
		unknown = unknown || u
	}
	ipvs.SortEntries(out)
	return out, unknown
}

func desiredEntry(s *config.Service, view HealthView) ipvs.Entry {
	e, _ := desiredEntryUnknown(s, view)
	return e
}

func desiredEntryUnknown(s *config.Service, view HealthView) (e ipvs.Entry, unknown bool) {
	e = ipvs.Entry{Service: desiredService(s)}
	e.Destinations = make([]ipvs.Destination, 0, len(s.Backends))
	up := 0
	for _, b := range s.Backends {
		st := backendHealth(s, b, view)
		unknown = unknown || !st.Checked
		if serving(st) {
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

// nominalWeights are the configured weights of s's backends (and 1 for
// its sorry server, the weight it is given): what an mh destination that
// is down or drained is added with before its weight is set to 0, so
// every director's table gives it the same share (MHDest).
func nominalWeights(s *config.Service) map[netip.AddrPort]int {
	out := make(map[netip.AddrPort]int, len(s.Backends)+1)
	if s.SorryServer.IsValid() {
		out[s.SorryServer] = 1
	}
	for _, b := range s.Backends {
		out[b.AddrPort()] = b.Weight
	}
	return out
}

// backendHealth is b's health as the desired table sees it: before the
// monitor knows the backend (a reload applies new backends first), what
// it will start from, with any operator drain on top.
func backendHealth(s *config.Service, b config.Backend, view HealthView) health.Status {
	st := view.Backend(s.Name, b.AddrPort())
	if !st.Checked {
		drain := st.Drain
		st = health.Initial(s.Check, st.Since)
		st.Drain = st.Drain || drain
	}
	return st
}

// serving reports whether a backend counts towards its service's quorum:
// up or not checked yet (a restart is not an outage), and not drained.
func serving(st health.Status) bool { return (st.Up || !st.Checked) && !st.Drain }

// Quorum is a service's quorum state: how many backends serve, how many
// it needs, and whether it is lost (fewer than needed; with a sorry
// server, that one then takes the traffic).
type Quorum struct {
	Serving, Needed int
	Lost            bool
}

// ServiceQuorum computes s's quorum state from health.
func ServiceQuorum(s *config.Service, view HealthView) Quorum {
	q := Quorum{Needed: s.Quorum}
	for _, b := range s.Backends {
		if serving(backendHealth(s, b, view)) {
			q.Serving++
		}
	}
	q.Lost = s.Quorum > 0 && q.Serving < s.Quorum
	return q
}

func effectiveWeight(w int, st health.Status) int {
	if !st.Up || st.Drain {
		return 0
	}
	if st.WeightPercent >= 0 {
		w = w * st.WeightPercent / 100
	}
	return min(max(w, 0), 65535)
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
