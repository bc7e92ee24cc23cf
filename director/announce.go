package director

import (
	"context"
	"net/netip"

	"github.com/golvs/golvs/config"
)

// Announcer puts a whole set of addresses on the network: vip.Holder on
// this host's interface (always, or while VRRP master), and to come, BGP
// routes. Set is idempotent, adds before it removes, and removes only
// addresses it set or that were claimed as possibly its own from before a
// restart (Claim).
type Announcer interface {
	Claim(addrs []netip.Addr)
	Set(ctx context.Context, want []netip.Addr) error
}

// PrefixAnnouncer holds addresses with their prefix on one interface
// (vip.Holder): the [[failover.address]] entries. Same contract as
// Announcer.
type PrefixAnnouncer interface {
	ClaimPrefixes(want []netip.Prefix)
	SetPrefixes(ctx context.Context, want []netip.Prefix) error
}

// Mode is how a director's addresses reach the network.
type Mode int

const (
	// Static: no [failover]: the director holds every VIP for as long as
	// it runs.
	Static Mode = iota
	// VRRP: the VIPs move together to the VRRP master.
	VRRP
	// Routed: each VIP is announced on its own (BGP) while this director
	// can serve it.
	Routed
)

// Situation is everything the address decision depends on.
type Situation struct {
	Topo   *config.Topology
	Health HealthView
	Mode   Mode
	// Master: with VRRP, this director is the master now.
	Master bool
	// SelfDrained: routed, the operator took this director out of the
	// routers' ECMP groups (director drain-self) until undrain-self.
	SelfDrained bool
	// Drains is Health with the operator's backend drains (director
	// drain) on top; nil = none. Routed, a VIP whose services have only
	// drained backends left is not announced: this director could
	// schedule none of the new flows the routers would send it. It stays
	// held, for the connections it still forwards.
	Drains HealthView
	// Programmed (routed) are the VIPs the kernel's table can serve as
	// last applied: a route waits for its table (programmed.go). nil =
	// no such wait.
	Programmed map[netip.Addr]bool
}

// Decision is which addresses this director should hold now, and what the
// tracking policy asks of VRRP.
type Decision struct {
	// Hold is every address to have on the network, sorted. An announcer
	// applies it whole (Set), adding before removing.
	Hold []netip.Addr
	// Extra are the [[failover.address]] entries to hold, each with its
	// prefix on its interface (defaulted to [director] interface): only
	// while VRRP master, like the VIPs. A NAT pair's gateway lives here.
	Extra []config.FailoverAddress
	// Routes (routed only) are the VIPs to announce to the routers: those
	// of Hold with a backend the operator has not drained, or none while
	// the director is drained (drain-self). A drained director keeps
	// Hold on its device, so flows the routers still send (while they
	// converge) are forwarded, not dropped.
	Routes []netip.Addr
	// Waiting (routed) are VIPs left out of Routes only because the
	// kernel's table cannot serve them yet (Situation.Programmed).
	Waiting []netip.Addr
	// Fault: no service has a healthy backend, so this director should
	// hand the VIPs to a peer that may reach its real servers (VRRP fault,
	// or a priority lowered by track_decrement).
	Fault  bool
	Reason string
}

// Announce decides. It is a pure function of the situation: the caller
// applies Hold with an announcer and Fault with VRRP, and calls it again
// whenever health, the VRRP state or the topology changes.
func Announce(s Situation) Decision {
	var d Decision
	view := s.Health
	if view == nil {
		view = upView{}
	}
	d.Fault = noHealthyBackend(s.Topo, view)
	d.Reason = "a service has a healthy backend"
	if d.Fault {
		d.Reason = "no service has a healthy backend"
	}
	switch s.Mode {
	case Static:
		d.Hold = VIPs(s.Topo)
	case VRRP:
		if s.Master {
			d.Hold = VIPs(s.Topo)
			d.Extra = FailoverAddresses(s.Topo)
		}
	case Routed:
		d.Hold = servableVIPs(s.Topo, view)
		d.Routes = d.Hold
		if s.Drains != nil {
			d.Routes = servableVIPs(s.Topo, s.Drains)
		}
		if s.Programmed != nil {
			var ready []netip.Addr
			for _, a := range d.Routes {
				if s.Programmed[a] {
					ready = append(ready, a)
				} else {
					d.Waiting = append(d.Waiting, a)
				}
			}
			d.Routes = ready
		}
		if s.SelfDrained {
			d.Routes = nil
		}
	}
	return d
}

// FailoverAddresses lists the file's [[failover.address]] entries with
// their interface defaulted to [director] interface.
func FailoverAddresses(topo *config.Topology) []config.FailoverAddress {
	if topo == nil || topo.Failover == nil {
		return nil
	}
	out := make([]config.FailoverAddress, 0, len(topo.Failover.Addresses))
	for _, a := range topo.Failover.Addresses {
		if a.Interface == "" {
			a.Interface = topo.Director.Interface
		}
		out = append(out, a)
	}
	return out
}

// noHealthyBackend reports whether every service with backends has none
// up. Backends not checked yet count as up: a restart is not a fault.
func noHealthyBackend(topo *config.Topology, view HealthView) bool {
	if topo == nil {
		return false
	}
	any := false
	for i := range topo.Services {
		s := &topo.Services[i]
		for _, b := range s.Backends {
			any = true
			if st := view.Backend(s.Name, b.AddrPort()); st.Up || !st.Checked {
				return false
			}
		}
	}
	return any
}

// servableVIPs lists the VIPs of which some service has enough healthy
// backends (its quorum, at least one): a routed director withdraws the
// others so the router sends their traffic to a director that can serve
// it. A service with a sorry server can always serve.
func servableVIPs(topo *config.Topology, view HealthView) []netip.Addr {
	if topo == nil {
		return nil
	}
	ok := map[netip.Addr]bool{}
	for i := range topo.Services {
		s := &topo.Services[i]
		if s.FWMark != 0 || !s.Address.IsValid() || ok[s.Address] {
			continue
		}
		if q := ServiceQuorum(s, view); q.Serving >= max(q.Needed, 1) || s.SorryServer.IsValid() {
			ok[s.Address] = true
		}
	}
	var out []netip.Addr
	for _, a := range VIPs(topo) {
		if ok[a] {
			out = append(out, a)
		}
	}
	return out
}
