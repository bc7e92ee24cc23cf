package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// The parts of [failover] beyond VRRP itself: [[failover.address]] and
// [failover.sync].

// failoverAddresses converts [[failover.address]]. Interfaces left out
// are filled in by failoverDefaults, which knows [director].
func (d *decoder) failoverAddresses(ft *table) []FailoverAddress {
	var out []FailoverAddress
	seen := map[netip.Addr]int{} // address -> its element number (1-based)
	for i, m := range ft.tables("address") {
		if m == nil {
			continue // not a table; already reported
		}
		t := d.table(m, append(ft.keyPath("address"), strconv.Itoa(i)), fmt.Sprintf("failover: address %d", i+1))
		var a FailoverAddress
		if s, present := t.str("address"); present {
			p, problem := parsePrefix(s)
			if problem != "" {
				t.errorf("address", "address %q %s", s, problem)
			} else if j, dup := seen[p.Addr()]; dup {
				t.errorf("address", "address %s repeats address %d", p.Addr(), j)
			} else {
				seen[p.Addr()] = i + 1
				a.Prefix = p
			}
		} else if !t.has("address") {
			t.errorf("", "address is required")
		}
		if s, present := t.str("interface"); present {
			if problem := ifNameProblem(s); problem != "" {
				t.errorf("interface", "interface %q %s", s, problem)
			}
			a.Interface = s
		}
		t.finish()
		// Kept even when bad, so indexes match the file's elements.
		out = append(out, a)
	}
	return out
}

// parsePrefix parses an interface address written with its prefix length,
// as `ip addr add` takes it: "10.0.1.1/24" (the host bits are kept).
func parsePrefix(s string) (netip.Prefix, string) {
	if !strings.Contains(s, "/") {
		return netip.Prefix{}, "has no prefix length (write it as ADDR/LEN, e.g. \"10.0.1.1/24\")"
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, "is not an address with a prefix length such as \"10.0.1.1/24\""
	}
	if _, problem := parseAddr(p.Addr().String()); problem != "" {
		return netip.Prefix{}, problem
	}
	if p.Bits() == 0 {
		return netip.Prefix{}, "has prefix length 0"
	}
	return p, ""
}

// failoverSync converts [failover.sync]. The sync id defaults to the VRID:
// two clusters on one segment then never take each other's connections.
func (d *decoder) failoverSync(t *table, f *Failover) *Sync {
	s := &Sync{SyncID: f.VirtualRouterID, Group: DefaultSyncGroup, Port: DefaultSyncPort, TTL: DefaultSyncTTL}
	if v, present := t.str("interface"); present {
		if problem := ifNameProblem(v); problem != "" {
			t.errorf("interface", "interface %q %s", v, problem)
		}
		s.Interface = v
	}
	// 0 is the kernel's "any": a backup daemon with sync id 0 takes every
	// cluster's connections.
	if v, present := t.intRange("sync_id", 0, 255); present {
		s.SyncID = uint8(v)
	}
	if v, present := t.str("group"); present {
		a, err := netip.ParseAddr(v)
		switch {
		case err != nil || a.Zone() != "" || a.Is4In6():
			t.errorf("group", "group %q is not an IPv4 or IPv6 address", v)
		case !a.IsMulticast():
			t.errorf("group", "group %s is not a multicast address", a)
		default:
			s.Group = a
		}
	}
	if v, present := t.intRange("port", 1, 65535); present {
		s.Port = uint16(v)
	}
	if v, present := t.intRange("ttl", 1, 255); present {
		s.TTL = uint8(v)
	}
	// The kernel takes 1024 at least for a backup daemon (which also
	// sizes its receive buffer by it) and at most what fits in one UDP
	// datagram after the IP and UDP headers.
	hdr := int64(20 + 8)
	if s.Group.Is6() {
		hdr = 40 + 8
	}
	if v, present := t.intRange("max_len", 1024, 65535-hdr); present {
		s.MaxLen = uint16(v)
	}
	t.finish()
	return s
}

// failoverDefaults fills what [failover] takes from [director] and the
// services, once all three are decoded, and cross-checks them.
func (d *decoder) failoverDefaults(topo *Topology) {
	f := topo.Failover
	if f == nil {
		return
	}
	dirIf := topo.Director.Interface
	if f.Sync != nil && f.Sync.Interface == "" {
		if dirIf == "" {
			d.add([]string{"failover", "sync"}, "failover: sync", "interface is required when [director] has none")
		}
		f.Sync.Interface = dirIf
	}
	vips := map[netip.Addr]string{}
	for _, s := range topo.Services {
		if s.Address.IsValid() {
			vips[s.Address] = s.Name
		}
	}
	for i := range f.Addresses {
		a := &f.Addresses[i]
		if a.Interface == "" {
			if dirIf == "" {
				d.add([]string{"failover", "address", strconv.Itoa(i)}, fmt.Sprintf("failover: address %d", i+1),
					"interface is required when [director] has none")
			}
			a.Interface = dirIf
		}
		if name, isVIP := vips[a.Prefix.Addr()]; isVIP && a.Prefix.IsValid() {
			d.add([]string{"failover", "address", strconv.Itoa(i), "address"}, fmt.Sprintf("failover: address %d", i+1),
				"address %s is the VIP of service %q, which follows the master already", a.Prefix.Addr(), name)
		}
	}
}
