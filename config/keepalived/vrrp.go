package keepalived

import (
	"fmt"
	"math"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/golvs/golvs/config"
)

// vrrp converts the first vrrp_instance into [failover]; golvs runs one
// VRRP instance for all its addresses.
func (c *conv) vrrp() {
	probeConfig()
	if len(c.instances) == 0 {
		if c.syncNode != nil {
			c.stmt(c.syncNode, "golvs syncs connections between the directors of a [failover], and there is no vrrp_instance")
		}
		return
	}
	for _, n := range c.instances[1:] {
		c.stmt(n, "golvs runs one VRRP instance, converted from the first one; move these addresses there")
	}
	in := c.instances[0]
	f := &failover{priority: 100, advert: time.Second, preempt: true}
	vips := map[netip.Addr]bool{}
	for _, s := range c.topo.services {
		if s.address != "" {
			a, _ := netip.ParseAddr(s.address)
			vips[a] = true
		}
	}
	var addrNodes []*Node // virtual_ipaddress entries
	version := c.vrrpVersion
	var versionPos = c.versionPos
	for _, k := range in.Block {
		switch kw := k.Keyword(); kw {
		case "state":
			f.comments = append(f.comments, fmt.Sprintf("keepalived: state %s; golvs has no initial state, the priorities and preempt decide.", k.Arg(1)))
		case "interface":
			if !ifNameOK(k.Arg(1)) {
				c.stmt(k, "not an interface name")
				continue
			}
			c.topo.iface = k.Arg(1)
		case "virtual_router_id":
			v, ok := parseUint(k.Arg(1), 1, 255)
			if !ok {
				c.stmt(k, "virtual_router_id must be 1..255")
				continue
			}
			f.vrid = int(v)
		case "priority":
			v, ok := parseUint(k.Arg(1), 1, 255)
			if !ok {
				c.stmt(k, "priority must be 1..255")
				continue
			}
			if v == 255 {
				c.notConverted(k.Pos, "priority 255", "golvs never claims to own the addresses; 254 written, the highest a backup may have")
				v = 254
			}
			f.priority = int(v)
		case "advert_int":
			d, ok := parseTimer(k.Arg(1))
			cs := int64(math.Round(float64(d) / float64(10*time.Millisecond)))
			if !ok || cs < 1 || cs > 4095 {
				c.stmt(k, "advert_int must be 0.01..40.95 seconds")
				continue
			}
			f.advert = time.Duration(cs) * 10 * time.Millisecond
			if f.advert != d {
				c.warn(k.Pos, "advert_int "+k.Arg(1), "rounded to VRRPv3's centiseconds: "+duration(f.advert))
			}
		case "nopreempt":
			f.preempt = false
		case "preempt":
			f.preempt = true
		case "preempt_delay":
			d, ok := parseTimer(k.Arg(1))
			if !ok || d > config.MaxPreemptDelay {
				c.stmt(k, "preempt_delay must be 0.."+duration(config.MaxPreemptDelay)+" seconds")
				continue
			}
			f.preemptDelay = &d
		case "unicast_peer":
			for _, p := range k.Block {
				a, ok := parseAddr(p.Keyword())
				if !ok {
					c.stmt(p, "not a unicast address")
					continue
				}
				if len(p.Words) > 1 {
					c.notConverted(p.Pos, strings.Join(p.Words[1:], " "), "golvs takes a peer's address only")
				}
				if len(f.peers) > 0 {
					first, _ := netip.ParseAddr(f.peers[0])
					if first.Is6() != a.Is6() {
						c.stmt(p, "golvs's peers are all of one family")
						continue
					}
				}
				dup := false
				for _, q := range f.peers {
					dup = dup || q == a.String()
				}
				if !dup {
					f.peers = append(f.peers, a.String())
				}
			}
		case "unicast_src_ip", "mcast_src_ip":
			c.stmt(k, "golvs sends adverts from the interface's primary address")
		case "virtual_ipaddress", "virtual_ipaddress_excluded":
			addrNodes = append(addrNodes, k.Block...)
		case "version":
			v, ok := parseUint(k.Arg(1), 2, 3)
			if !ok {
				c.stmt(k, "version must be 2 or 3")
				continue
			}
			version, versionPos = int(v), k.Pos
		case "authentication":
			c.notConverted(k.Pos, "authentication", "VRRPv3 has no PASS or AH authentication; golvs's auth_key_file signs adverts with HMAC-SHA256, which only golvs speaks")
		case "notify":
			argv, err := scriptArgv(k)
			switch {
			case err != nil:
				c.stmt(k, err.Error())
			case len(argv) > 1 || !path.IsAbs(argv[0]):
				c.stmt(k, "golvs's notify is one absolute program path, run with the new state as its only argument")
			default:
				f.notify = argv[0]
				c.warn(k.Pos, "notify "+argv[0], "golvs runs it as `notify STATE` (master|backup|fault); keepalived passed TYPE NAME STATE PRIORITY, so adapt the script")
			}
		case "notify_master", "notify_backup", "notify_fault", "notify_stop", "notify_deleted", "notify_master_rx_lower_pri":
			c.stmt(k, "golvs runs one notify program with the new state as its argument; dispatch on it there")
		case "track_interface", "track_script", "track_process", "track_file", "track_bfd":
			c.stmt(k, "golvs tracks no interfaces, scripts or processes; track_decrement lowers the priority when no backend is healthy")
		case "lvs_sync_daemon_interface":
			if c.syncNode == nil {
				c.syncNode = k
			}
		case "garp_master_delay", "garp_master_refresh", "garp_master_repeat", "garp_master_refresh_repeat",
			"garp_lower_prio_delay", "garp_lower_prio_repeat", "garp_extra_if", "vmac_garp_intvl":
			c.stmt(k, "golvs sends its gratuitous ARP and NA on becoming master, with its own timing")
		default:
			c.stmt(k, "golvs's VRRP has no such setting")
		}
	}
	if f.vrid == 0 {
		c.stmt(in, "the vrrp_instance has no valid virtual_router_id")
		if c.syncNode != nil {
			c.stmt(c.syncNode, "there is no [failover] to sync for")
		}
		return
	}
	if version != 3 {
		what := "VRRP version 2 (keepalived's default)"
		pos := in.Pos
		if version == 2 {
			what, pos = "vrrp_version 2", versionPos
		}
		c.notConverted(pos, what, "golvs speaks VRRPv3 only; during a migration set vrrp_version 3 on the keepalived peers")
	}
	if c.topo.iface == "" {
		c.notConverted(in.Pos, "vrrp_instance without interface", "golvs needs one; see [director] interface")
	}

	// Addresses: a service's address on the instance's interface is a VIP
	// golvs holds anyway; anything else follows the master as an extra
	// address.
	held := map[netip.Addr]bool{}
	for _, n := range addrNodes {
		pfx, dev, extra := vipEntry(n)
		if !pfx.IsValid() {
			c.stmt(n, "not an address with an optional prefix length")
			continue
		}
		if extra != "" {
			c.notConverted(n.Pos, extra, "golvs adds a plain address with its prefix")
		}
		if dev == "" {
			dev = c.topo.iface
		}
		if vips[pfx.Addr()] {
			held[pfx.Addr()] = true
			if dev != c.topo.iface {
				c.warn(n.Pos, "virtual_ipaddress "+pfx.String()+" dev "+dev, "a service's address: golvs holds it on [director] interface "+c.topo.iface)
			}
			continue
		}
		if !ifNameOK(dev) {
			c.stmt(n, "no valid interface for it")
			continue
		}
		f.addresses = append(f.addresses, extraAddress{address: pfx.String(), iface: dev})
		if !acceptsAddresses {
			c.notConverted(n.Pos, "virtual_ipaddress "+pfx.String()+" dev "+dev,
				"it is no service's address on the instance's interface, and this golvs does not take [[failover.address]] yet; written commented out")
		}
	}
	f.addressesOff = !acceptsAddresses
	for _, s := range c.topo.services {
		if s.address == "" {
			continue
		}
		a, _ := netip.ParseAddr(s.address)
		if !held[a] {
			held[a] = true // once per address
			c.warn(in.Pos, "service address "+s.address, "not among the instance's virtual_ipaddress, but golvs holds every service address on [director] interface while master")
		}
	}
	f.comments = append(f.comments, fmt.Sprintf("keepalived: vrrp_instance %s; the service addresses are the VIPs golvs holds on [director] interface while master.", in.Arg(1)))
	if len(vips) == 0 && (len(f.addresses) == 0 || f.addressesOff) {
		// golvs refuses to run VRRP with nothing to hold.
		f.off = true
		f.comments = append(f.comments, "keepalived: no service address and no extra address golvs takes: nothing to hold, so no [failover].")
		c.notConverted(in.Pos, "vrrp_instance "+in.Arg(1), "it holds no service's address, and golvs runs VRRP only for addresses it holds; written commented out")
	}
	c.topo.failover = f
	if c.syncNode != nil {
		c.syncTable(f)
		if f.preemptDelay == nil && f.preempt {
			f.comments = append(f.comments, "keepalived: no preempt_delay, so it preempts at once; with [failover.sync] golvs waits 7s as backup first (preempt_delay's default), so the connections its peer took meanwhile reach it before it takes them over.")
		}
	}
}

// vipEntry reads "ADDR[/LEN] [dev DEV] [brd X] [scope S] [label L] ...".
func vipEntry(n *Node) (netip.Prefix, string, string) {
	var pfx netip.Prefix
	s := n.Keyword()
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, "", ""
		}
		pfx = p
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, "", ""
		}
		pfx = netip.PrefixFrom(a, a.BitLen())
	}
	if _, ok := parseAddr(pfx.Addr().String()); !ok {
		return netip.Prefix{}, "", ""
	}
	dev := ""
	var extra []string
	for i := 1; i < len(n.Words); i++ {
		if n.Words[i] == "dev" && i+1 < len(n.Words) {
			dev = n.Words[i+1]
			i++
			continue
		}
		extra = append(extra, n.Words[i])
	}
	return pfx, dev, strings.Join(extra, " ")
}

// syncTable converts lvs_sync_daemon IF [INSTANCE] [id N] [maxlen N]
// [port N] [ttl N] [group ADDR] (or the old per-instance
// lvs_sync_daemon_interface IF).
func (c *conv) syncTable(f *failover) {
	n := c.syncNode
	if !ifNameOK(n.Arg(1)) {
		c.stmt(n, "not an interface name")
		return
	}
	s := &syncTable{iface: n.Arg(1)}
	w := n.Words
	for i := 2; i < len(w); i++ {
		key, val := w[i], ""
		if i+1 < len(w) {
			val = w[i+1]
		}
		var v uint64
		var ok bool
		switch key {
		case "inst":
			ok = true
		case "id":
			v, ok = parseUint(val, 0, 255)
			s.syncID = int(v)
		case "maxlen":
			v, ok = parseUint(val, 1, 65535-20-8)
			s.maxLen = int(v)
		case "port":
			v, ok = parseUint(val, 1, 65535)
			s.port = int(v)
		case "ttl":
			v, ok = parseUint(val, 1, 255)
			s.ttl = int(v)
		case "group":
			a, err := netip.ParseAddr(val)
			ok = err == nil && a.IsMulticast()
			if ok {
				s.group = a.String()
			}
		default:
			// The old positional form: IF INSTANCE [SYNC_ID].
			if i == 2 {
				continue
			}
			if i == 3 {
				if v, ok := parseUint(key, 0, 255); ok {
					s.syncID = int(v)
					continue
				}
			}
			c.notConverted(n.Pos, "lvs_sync_daemon "+key, "not an option golvs knows")
			continue
		}
		if !ok {
			c.notConverted(n.Pos, "lvs_sync_daemon "+key+" "+val, "not a valid value")
		}
		i++
	}
	s.comments = []string{"keepalived: " + statementText(n) + "; keepalived's sync id defaults to the virtual_router_id, as golvs's does."}
	f.sync = s
	f.syncOff = !acceptsSyncTbl
	if f.syncOff {
		c.notConverted(n.Pos, statementText(n), "this golvs does not take [failover.sync] yet; written commented out")
	}
}
