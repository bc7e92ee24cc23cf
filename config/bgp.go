package config

import (
	"fmt"
	"net/netip"
	"path"
	"time"
)

// BGP is the [bgp] table: this director announces the VIPs it should carry
// as host routes, so several directors can be active behind an ECMP router.
type BGP struct {
	ASN uint32 // 1..4294967295
	// RouterID is the BGP identifier; invalid (zero) = the first IPv4
	// address of [director] interface, looked up when the director starts
	// (an address is a property of the host, not of the shared file).
	RouterID netip.Addr
	// VIPInterface carries the announced VIPs so the kernel accepts their
	// traffic; on "lo" (the default) nobody answers ARP for them.
	VIPInterface string
	// LeaveGrace is how long a stopping director keeps forwarding after
	// it withdrew its routes, while the routers converge (default 5s).
	LeaveGrace time.Duration
	Peers      []BGPPeer
}

// DefaultLeaveGrace is [bgp] leave_grace's default.
const DefaultLeaveGrace = 5 * time.Second

// BGPPeer is one [[bgp.peer]]: a router this director keeps a session with.
type BGPPeer struct {
	Address netip.Addr
	ASN     uint32
	// HoldTime is the proposed BGP hold time; 0 = GoBGP's default (90s).
	HoldTime time.Duration
	// BFD asks for a BFD session with the peer, which resets the BGP
	// session (and so withdraws this director's routes) within about a
	// second of the path failing instead of after the hold time.
	BFD bool
	// PasswordFile holds the TCP MD5 (RFC 2385) key; "" = none. The file
	// is read when the director starts and must have mode 0600 or
	// stricter.
	PasswordFile string
}

// DefaultVIPInterface is where BGP-announced VIPs go.
const DefaultVIPInterface = "lo"

// BGP's hold time is 0 or 3..65535 whole seconds (RFC 4271 4.2); 0 turns
// keepalives off, which would hide a dead director forever, so it is not
// offered.
const (
	minHoldTime = 3 * time.Second
	maxHoldTime = 65535 * time.Second
)

func (d *decoder) bgp(t *table) *BGP {
	b := &BGP{VIPInterface: DefaultVIPInterface, LeaveGrace: DefaultLeaveGrace}
	if v, ok := t.intRange("asn", 1, maxU32); ok {
		b.ASN = uint32(v)
	} else if !t.has("asn") {
		t.errorf("", "asn is required")
	}
	if s, ok := t.str("router_id"); ok {
		// The BGP identifier is 4 bytes even on IPv6-only sessions.
		if a, err := netip.ParseAddr(s); err != nil || !a.Is4() || a.IsUnspecified() {
			t.errorf("router_id", "router_id %q is not a non-zero IPv4 address", s)
		} else {
			b.RouterID = a
		}
	}
	if s, ok := t.str("vip_interface"); ok {
		if problem := ifNameProblem(s); problem != "" {
			t.errorf("vip_interface", "vip_interface %q %s", s, problem)
		}
		b.VIPInterface = s
	}
	if v, ok := t.duration("leave_grace"); ok {
		if v < 0 || v > time.Hour {
			t.errorf("leave_grace", "leave_grace %s is out of range 0s..1h", v)
		} else {
			b.LeaveGrace = v
		}
	}
	peers := t.tables("peer")
	if !t.has("peer") {
		t.errorf("", "at least one [[bgp.peer]] is required")
	}
	seen := map[netip.Addr]int{}
	for i, m := range peers {
		if m == nil {
			continue
		}
		p, ok := d.bgpPeer(i, m)
		if !ok {
			continue
		}
		if j, dup := seen[p.Address]; dup {
			pt := d.table(m, []string{"bgp", "peer", fmt.Sprint(i)}, fmt.Sprintf("bgp: peer %d", i+1))
			pt.errorf("address", "address %s is already used by peer %d", p.Address, j+1)
			continue
		}
		seen[p.Address] = i
		b.Peers = append(b.Peers, p)
	}
	t.finish()
	return b
}

// bgpPeer converts one [[bgp.peer]]; ok is false when its address is
// unusable (other errors are reported and the peer kept).
func (d *decoder) bgpPeer(i int, m map[string]any) (BGPPeer, bool) {
	t := d.table(m, []string{"bgp", "peer", fmt.Sprint(i)}, fmt.Sprintf("bgp: peer %d", i+1))
	var p BGPPeer
	ok := false
	if s, present := t.str("address"); present {
		a, problem := parseAddr(s)
		if problem != "" {
			t.errorf("address", "address %q %s", s, problem)
		} else {
			p.Address, ok = a, true
		}
	} else if !t.has("address") {
		t.errorf("", "address is required")
	}
	if v, present := t.intRange("asn", 1, maxU32); present {
		p.ASN = uint32(v)
	} else if !t.has("asn") {
		t.errorf("", "asn is required")
	}
	if v, present := t.duration("hold_time"); present {
		switch {
		case v < minHoldTime || v > maxHoldTime:
			t.errorf("hold_time", "hold_time %s is out of range 3s..65535s", v)
		case v%time.Second != 0:
			t.errorf("hold_time", "hold_time %s is not a whole number of seconds", v)
		default:
			p.HoldTime = v
		}
	}
	if v, present := t.boolean("bfd"); present {
		p.BFD = v
	}
	if s, present := t.str("password_file"); present {
		if !path.IsAbs(s) {
			t.errorf("password_file", "password_file %q must be an absolute path", s)
		}
		p.PasswordFile = s
	}
	t.finish()
	return p, ok
}

// checkBGP cross-checks [bgp] against the rest of the file. A VIP is moved
// by VRRP or announced by BGP, never both: with [failover] every VIP
// follows the VRRP master, with [bgp] every healthy director announces
// every VIP, and both at once would have a backup announce a VIP it does
// not hold.
func (d *decoder) checkBGP(topo *Topology) {
	if topo.BGP == nil {
		return
	}
	if !topo.BGP.RouterID.IsValid() && topo.Director.Interface == "" {
		d.add([]string{"bgp"}, "bgp", "router_id is required when [director] names no interface to take it from")
	}
	if topo.Failover == nil {
		return
	}
	for _, s := range topo.Services {
		if !s.Address.IsValid() {
			continue
		}
		d.add([]string{"bgp"}, "bgp",
			"[bgp] and [failover] would both carry VIP %s (service %q): a VIP is either moved by VRRP or announced by BGP", s.Address, s.Name)
		return
	}
}
