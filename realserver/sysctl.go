package realserver

import (
	"strings"
)

// Sysctl is one kernel setting the agent wants, with the reason.
type Sysctl struct {
	Path  string // under /proc/sys, e.g. "net/ipv4/conf/all/arp_ignore"
	Value string
	Why   string
}

// Name is the sysctl(8) spelling: dots between the parts, and a dot inside
// a part (a device such as eth0.100) written as '/'.
func (s Sysctl) Name() string {
	parts := strings.Split(s.Path, "/")
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(p, ".", "/")
	}
	return strings.Join(parts, ".")
}

func conf(dev, key string) string { return "net/ipv4/conf/" + dev + "/" + key }

// Sysctls is the table of settings for this host: ARP settings when any VIP
// is IPv4, rp_filter when any service uses tun.
//
// For arp_ignore, arp_announce and rp_filter the kernel uses the larger of
// conf/all and conf/DEV (IN_DEV_ARP_IGNORE, IN_DEV_ARP_ANNOUNCE,
// IN_DEV_RPFILTER are max(all, dev)). So the ARP settings take effect on
// every interface through "all", and rp_filter is only off on the tunnel
// when BOTH "all" and the tunnel device are 0: setting the device alone
// does nothing while "all" is 1 or 2.
//
// IPv6 has no such settings, and needs none: the kernel answers a
// neighbour solicitation only for an address configured on the interface
// the solicitation arrived on (ndisc_recv_ns looks the target up strictly
// on that device), so a VIP on lo is never announced on eth0. The tests
// check this with a real solicitation between two namespaces.
func Sysctls(anyV4, tun bool, tunnelDev string) []Sysctl {
	var out []Sysctl
	if anyV4 {
		out = append(out,
			Sysctl{conf("all", "arp_ignore"), "1",
				"answer ARP only for addresses on the interface the request came in on, so the VIP on lo (or the tunnel) is never claimed on the LAN where the director owns it"},
			Sysctl{conf("all", "arp_announce"), "2",
				"use the outgoing interface's own address as the ARP source, never the VIP, so neighbours do not learn the VIP at this host's MAC"},
			Sysctl{conf(Loopback, "arp_ignore"), "1",
				"the same on lo, where the VIPs live (the kernel takes max(all, lo); this keeps lo right if all is lowered)"},
			Sysctl{conf(Loopback, "arp_announce"), "2",
				"the same on lo, as above"},
		)
	}
	if tun {
		out = append(out,
			Sysctl{conf("all", "rp_filter"), "0",
				"decapsulated packets arrive on the tunnel with the client's source address, which routes via another interface; reverse-path filtering would drop them, and the kernel uses max(all, dev)"},
			Sysctl{conf(tunnelDev, "rp_filter"), "0",
				"the same on the tunnel device itself, since max(all, dev) must be 0"},
			Sysctl{conf(tunnelDev, "arp_ignore"), "1",
				"never answer ARP for the VIP through the tunnel device"},
			Sysctl{conf(tunnelDev, "arp_announce"), "2",
				"never use the VIP as an ARP source on the tunnel device"},
		)
	}
	return out
}
