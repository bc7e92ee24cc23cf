package keepalived

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// keepalived's defaults for a virtual server (check_data.c alloc_vs).
const (
	kaDefaultScheduler   = "wlc"
	kaDefaultDelayLoop   = 60 * time.Second
	kaDefaultConnTimeout = 5 * time.Second
	kaPersistenceDefault = 360 // seconds, when the value is left out
	maxGroupServices     = 4096
	maxServices          = 16384 // in all: bounds the work on hostile input
)

var kaSchedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos"}

// timing is what checkers inherit from their real server and virtual
// server; a zero value (or -1 for retry) means "not set here".
type timing struct {
	delayLoop, connTimeout, delayBeforeRetry time.Duration
	retry                                    int
	virtualhost                              string
}

func noTiming() timing { return timing{retry: -1} }

// inherit fills what t leaves unset from parent.
func (t timing) inherit(parent timing) timing {
	if t.delayLoop == 0 {
		t.delayLoop = parent.delayLoop
	}
	if t.connTimeout == 0 {
		t.connTimeout = parent.connTimeout
	}
	if t.delayBeforeRetry == 0 {
		t.delayBeforeRetry = parent.delayBeforeRetry
	}
	if t.retry < 0 {
		t.retry = parent.retry
	}
	if t.virtualhost == "" {
		t.virtualhost = parent.virtualhost
	}
	return t
}

// timingKeyword reads a timing keyword into t; false when n is not one.
func (c *conv) timingKeyword(n *Node, t *timing) bool {
	switch n.Keyword() {
	case "delay_loop", "connect_timeout", "delay_before_retry":
		d, ok := parseTimer(n.Arg(1))
		if !ok || d == 0 && n.Keyword() != "delay_before_retry" {
			c.stmt(n, "not a positive number of seconds")
			return true
		}
		switch n.Keyword() {
		case "delay_loop":
			t.delayLoop = d
		case "connect_timeout":
			t.connTimeout = d
		default:
			t.delayBeforeRetry = max(d, time.Microsecond)
		}
	case "retry", "nb_get_retry":
		v, ok := parseUint(n.Arg(1), 0, 1<<32-1)
		if !ok {
			c.stmt(n, "not a number")
			return true
		}
		t.retry = int(min(v, 999))
	case "virtualhost":
		t.virtualhost = n.Arg(1)
	case "warmup":
		c.stmt(n, "golvs starts checking at once, with no random warm-up delay")
	default:
		return false
	}
	return true
}

// vsEntry is one IPVS service a virtual_server stands for: itself, or
// each address of its group.
type vsEntry struct {
	pos    Pos
	addr   netip.Addr
	port   int
	fwmark uint32
	family int // fwmark entries: 4, 6 or 0 (from the real servers)
}

// vsSettings is a virtual_server's block, read once for all its entries.
type vsSettings struct {
	sched       string
	flags       []string
	fwd         string
	fwdSet      bool
	protocol    string
	persistence int
	granularity string
	granPos     Pos
	quorum      int
	quorumPos   *Pos
	sorry       *Node
	inhibit     bool
	alpha       bool
	timing      timing
	weight      int
	family      int
	reals       []*realServer
	anyPortZero bool // a group entry without a port makes the whole group persistent
}

type realServer struct {
	node     *Node
	addr     netip.Addr
	port     int
	weight   int
	fwd      string
	upper    uint32
	lower    uint32
	lowerPos Pos
	inhibit  *bool
	timing   timing
	checkers []*Node
}

var fwdNames = map[string]string{"NAT": "nat", "DR": "dr", "TUN": "tun"}

func (c *conv) forwarding(n *Node) (string, bool) {
	f, ok := fwdNames[n.Arg(1)]
	if !ok {
		c.stmt(n, "forwarding must be NAT, DR or TUN")
		return "", false
	}
	for i := 2; i < len(n.Words); i++ {
		w := n.Words[i]
		if w == "type" && n.Arg(i+1) == "ipip" {
			i++
			continue
		}
		c.notConverted(n.Pos, "tunnel option "+strings.Join(n.Words[i:], " "), "golvs's tun forwarding is IPIP with the kernel's defaults")
		break
	}
	return f, true
}

func (c *conv) virtualServer(n *Node) {
	var entries []vsEntry
	switch n.Arg(1) {
	case "group":
		g := c.groups[n.Arg(2)]
		if g == nil {
			c.stmt(n, fmt.Sprintf("there is no virtual_server_group %q", n.Arg(2)))
			return
		}
		entries = c.groupEntries(g)
	case "fwmark":
		v, ok := parseUint(n.Arg(2), 1, 1<<32-1)
		if !ok {
			c.stmt(n, "golvs needs a fwmark of 1..4294967295")
			return
		}
		entries = []vsEntry{{pos: n.Pos, fwmark: uint32(v)}}
	default:
		a, ok := parseAddr(n.Arg(1))
		if !ok {
			c.stmt(n, "not a unicast IP address")
			return
		}
		port := 0
		if p := n.Arg(2); p != "" {
			v, ok := parseUint(p, 0, 65535)
			if !ok {
				c.stmt(n, "not a port number")
				return
			}
			port = int(v)
		}
		entries = []vsEntry{{pos: n.Pos, addr: a, port: port}}
	}
	if len(c.topo.services)+len(entries) > maxServices {
		c.stmt(n, fmt.Sprintf("the importer writes at most %d services", maxServices))
		return
	}
	s := c.vsSettings(n)
	for _, e := range entries {
		if e.fwmark == 0 && e.port == 0 && n.Arg(1) == "group" {
			s.anyPortZero = true
		}
	}
	for _, e := range entries {
		if svc := c.service(n, e, s); svc != nil {
			c.topo.services = append(c.topo.services, svc)
		}
	}
}

func (c *conv) vsSettings(n *Node) *vsSettings {
	s := &vsSettings{timing: noTiming(), weight: 1}
	for _, k := range n.Block {
		if c.timingKeyword(k, &s.timing) {
			continue
		}
		switch kw := k.Keyword(); kw {
		case "lb_algo", "lvs_sched":
			if !slices.Contains(kaSchedulers, k.Arg(1)) {
				c.stmt(k, "not a scheduler keepalived knows")
				continue
			}
			s.sched = k.Arg(1)
		case "sh-port", "sh-fallback", "mh-port", "mh-fallback":
			// keepalived applies these only when the scheduler set so
			// far is the matching one.
			if !strings.HasPrefix(kw, s.sched+"-") {
				c.warn(k.Pos, kw, "keepalived ignores it unless lb_algo "+kw[:2]+" comes before it, so golvs does too")
				continue
			}
			s.flags = append(s.flags, kw)
		case "flag-1", "flag-2", "flag-3":
			s.flags = append(s.flags, kw)
		case "ops":
			c.stmt(k, "golvs sets no one-packet scheduling")
		case "hashed":
			c.stmt(k, "the HASHED flag is the kernel's own; golvs sets no such flag")
		case "lb_kind", "lvs_method":
			if f, ok := c.forwarding(k); ok {
				s.fwd, s.fwdSet = f, true
			}
		case "protocol":
			p := strings.ToLower(k.Arg(1))
			if p != "tcp" && p != "udp" && p != "sctp" {
				c.stmt(k, "golvs services are tcp, udp or sctp")
				continue
			}
			s.protocol = p
		case "persistence_timeout":
			if k.Arg(1) == "" {
				s.persistence = kaPersistenceDefault
				continue
			}
			v, ok := parseUint(k.Arg(1), 1, 1<<32-1)
			if !ok {
				c.stmt(k, "not a number of seconds")
				continue
			}
			s.persistence = int(v)
		case "persistence_granularity":
			s.granularity, s.granPos = k.Arg(1), k.Pos
			if s.persistence == 0 {
				s.persistence = kaPersistenceDefault
			}
		case "persistence_engine":
			c.stmt(k, "golvs sets no IPVS persistence engine")
		case "quorum":
			v, ok := parseUint(k.Arg(1), 1, 1<<32-1)
			if !ok {
				c.stmt(k, "not a positive number")
				continue
			}
			s.quorum, s.quorumPos = int(min(v, 1<<20)), &k.Pos
		case "hysteresis":
			if v, ok := parseUint(k.Arg(1), 0, 1<<32-1); ok && v == 0 {
				continue
			}
			c.stmt(k, "golvs's quorum has no hysteresis: it is lost below quorum and back at quorum")
		case "quorum_up", "quorum_down":
			c.stmt(k, "golvs runs no quorum scripts; its metrics and status show the quorum")
		case "sorry_server":
			s.sorry = k
		case "sorry_server_inhibit":
			c.stmt(k, "golvs adds the sorry server only while the quorum is lost, at weight 1")
		case "sorry_server_lvs_method":
			c.stmt(k, "golvs's sorry server takes the service's forwarding")
		case "inhibit_on_failure":
			s.inhibit = true
		case "alpha":
			s.alpha = true
		case "omega":
			c.stmt(k, "golvs leaves IPVS as it is when it stops; run it with --cleanup-on-exit to remove what it owns")
		case "ha_suspend":
			c.stmt(k, "golvs checks the backends whether or not it is the VRRP master")
		case "smtp_alert", "snmp_name":
			c.stmt(k, "golvs sends no mail and has no SNMP; it has metrics and a status command")
		case "ip_family":
			switch k.Arg(1) {
			case "inet":
				s.family = 4
			case "inet6":
				s.family = 6
			default:
				c.stmt(k, "ip_family must be inet or inet6")
			}
		case "weight":
			v, ok := parseUint(k.Arg(1), 1, 65535)
			if !ok {
				c.stmt(k, "weight must be 1..65535")
				continue
			}
			s.weight = int(v)
		case "real_server":
			if rs := c.realServer(k, s); rs != nil {
				s.reals = append(s.reals, rs)
			}
		default:
			c.stmt(k, unknownWhy(kw))
		}
	}
	return s
}

func (c *conv) realServer(n *Node, vs *vsSettings) *realServer {
	a, ok := parseAddr(n.Arg(1))
	if !ok {
		c.stmt(n, "not a unicast IP address")
		return nil
	}
	rs := &realServer{node: n, addr: a, weight: -1, timing: noTiming()}
	if p := n.Arg(2); p != "" {
		v, ok := parseUint(p, 0, 65535)
		if !ok {
			c.stmt(n, "not a port number")
			return nil
		}
		rs.port = int(v)
	}
	for _, k := range n.Block {
		if c.timingKeyword(k, &rs.timing) {
			continue
		}
		switch kw := k.Keyword(); kw {
		case "weight":
			v, ok := parseUint(k.Arg(1), 0, 65535)
			if !ok {
				c.stmt(k, "weight must be 0..65535")
				continue
			}
			rs.weight = int(v)
		case "lvs_method", "lb_kind":
			if f, ok := c.forwarding(k); ok {
				rs.fwd = f
			}
		case "uthreshold", "lthreshold":
			v, ok := parseUint(k.Arg(1), 0, 1<<32-1)
			if !ok {
				c.stmt(k, "not a number")
				continue
			}
			if kw == "uthreshold" {
				rs.upper = uint32(v)
			} else {
				rs.lower, rs.lowerPos = uint32(v), k.Pos
			}
		case "inhibit_on_failure":
			b, ok := boolArg(k)
			if !ok {
				c.stmt(k, "not true or false")
				continue
			}
			rs.inhibit = &b
		case "notify_up", "notify_down":
			c.stmt(k, "golvs runs no per-backend scripts; its metrics and status show each backend's health")
		case "alpha":
			c.warn(k.Pos, "alpha", "golvs always waits for a checked backend's first verdict before it gives it traffic")
		case "smtp_alert", "snmp_name":
			c.stmt(k, "golvs sends no mail and has no SNMP")
		case "TCP_CHECK", "HTTP_GET", "SSL_GET", "MISC_CHECK", "DNS_CHECK", "UDP_CHECK":
			rs.checkers = append(rs.checkers, k)
		case "PING_CHECK", "SMTP_CHECK", "BFD_CHECK", "FILE_CHECK":
			c.stmt(k, "golvs has no "+strings.ToLower(strings.TrimSuffix(kw, "_CHECK"))+" check")
		default:
			c.stmt(k, unknownWhy(kw))
		}
	}
	return rs
}

// groupEntries expands a virtual_server_group into its IPVS services.
func (c *conv) groupEntries(g *Node) []vsEntry {
	var out []vsEntry
	for _, k := range g.Block {
		if k.Keyword() == "fwmark" {
			v, ok := parseUint(k.Arg(1), 1, 1<<32-1)
			if !ok {
				c.stmt(k, "golvs needs a fwmark of 1..4294967295")
				continue
			}
			e := vsEntry{pos: k.Pos, fwmark: uint32(v)}
			switch k.Arg(2) {
			case "inet":
				e.family = 4
			case "inet6":
				e.family = 6
			case "":
			default:
				c.stmt(k, "family must be inet or inet6")
				continue
			}
			out = append(out, e)
			continue
		}
		addrs, err := expandRange(k.Keyword())
		if err != "" {
			c.stmt(k, err)
			continue
		}
		port := 0
		if p := k.Arg(1); p != "" {
			v, ok := parseUint(p, 0, 65535)
			if !ok {
				c.stmt(k, "not a port number")
				continue
			}
			port = int(v)
		}
		if len(out)+len(addrs) > maxGroupServices {
			c.stmt(k, fmt.Sprintf("the importer expands at most %d services per group", maxGroupServices))
			continue
		}
		for _, a := range addrs {
			out = append(out, vsEntry{pos: k.Pos, addr: a, port: port})
		}
	}
	return out
}

// expandRange expands a group address: "10.0.0.3", "10.0.0.3-10" (the
// last byte, or the last 16 bits of IPv6, in hex), "10.0.0.3-10.0.0.10",
// or "10.0.0.0/29" (every address of the prefix).
func expandRange(s string) ([]netip.Addr, string) {
	if pfx, err := netip.ParsePrefix(s); err == nil {
		if pfx.Masked() != pfx {
			return nil, "the address has bits set beyond its prefix"
		}
		bits := pfx.Addr().BitLen() - pfx.Bits()
		if bits > 12 {
			return nil, fmt.Sprintf("the importer expands at most %d services per group", maxGroupServices)
		}
		var out []netip.Addr
		a := pfx.Addr()
		for i := 0; i < 1<<bits; i++ {
			if ok := usable(a); ok {
				out = append(out, a)
			}
			a = a.Next()
		}
		return out, ""
	}
	first, rest, isRange := strings.Cut(s, "-")
	a, ok := parseAddr(first)
	if !ok {
		return nil, "not a unicast IP address or range"
	}
	if !isRange {
		return []netip.Addr{a}, ""
	}
	var last netip.Addr
	if (a.Is4() && strings.Contains(rest, ".")) || (a.Is6() && strings.Contains(rest, ":")) {
		if last, ok = parseAddr(rest); !ok || last.Is4() != a.Is4() || last.Less(a) {
			return nil, "the range's end is not an address after its start"
		}
	} else {
		base := 10
		if a.Is6() {
			base = 16
		}
		v, err := strconv.ParseUint(rest, base, 16)
		b := a.AsSlice()
		if a.Is4() {
			if err != nil || v > 255 || v <= uint64(b[3]) {
				return nil, "the range's end is not a last byte after its start"
			}
			b[3] = byte(v)
		} else {
			start := uint64(b[14])<<8 | uint64(b[15])
			if err != nil || v <= start {
				return nil, "the range's end is not a last group after its start"
			}
			b[14], b[15] = byte(v>>8), byte(v)
		}
		last, _ = netip.AddrFromSlice(b)
	}
	var out []netip.Addr
	for x := a; ; x = x.Next() {
		if len(out) >= maxGroupServices {
			return nil, fmt.Sprintf("the importer expands at most %d services per group", maxGroupServices)
		}
		if usable(x) {
			out = append(out, x)
		}
		if x == last {
			break
		}
	}
	return out, ""
}

func usable(a netip.Addr) bool { _, ok := parseAddr(a.String()); return ok }

// service builds one golvs service for one entry of a virtual server.
func (c *conv) service(n *Node, e vsEntry, s *vsSettings) *service {
	svc := &service{protocol: s.protocol, persistence: s.persistence}
	label := statementText(&Node{Words: n.Words})
	if e.pos != n.Pos {
		label = fmt.Sprintf("%s entry at %s", label, e.pos)
	}
	family := 0
	if e.fwmark != 0 {
		svc.fwmark = e.fwmark
		family = e.family
		if family == 0 {
			family = s.family
		}
		svc.name = fmt.Sprintf("fwmark-%d", e.fwmark)
	} else {
		svc.address, svc.port = e.addr.String(), e.port
		family = 4
		if e.addr.Is6() {
			family = 6
		}
		proto := s.protocol
		if proto == "" {
			proto = "udp"
		}
		svc.name = netip.AddrPortFrom(e.addr, uint16(e.port)).String() + "/" + proto
	}
	svc.scheduler = s.sched
	if svc.scheduler == "" {
		svc.scheduler = kaDefaultScheduler
		svc.comments = append(svc.comments, "keepalived: no lb_algo; wlc is keepalived's default.")
	}
	svc.flags = s.flags
	svc.forwarding = s.fwd
	if !s.fwdSet {
		svc.forwarding = "nat"
		svc.comments = append(svc.comments, "keepalived: no lb_kind; NAT is keepalived's default.")
	}
	if svc.fwmark == 0 && svc.protocol == "" {
		svc.protocol = "udp"
		svc.comments = append(svc.comments, "keepalived: no protocol; keepalived 2 defaults to UDP.")
	}
	if svc.persistence == 0 && svc.fwmark == 0 && (svc.port == 0 || s.anyPortZero) {
		svc.persistence = kaPersistenceDefault
		svc.comments = append(svc.comments, "keepalived: port 0 (all ports) without persistence_timeout; keepalived makes it persistent for 360s.")
	}

	// Real servers, in keepalived's order, with its corrections.
	seen := map[netip.AddrPort]bool{}
	for _, rs := range s.reals {
		fwd := rs.fwd
		if fwd == "" {
			fwd = svc.forwarding
		}
		if family == 0 && fwd != "tun" {
			family = 4
			if rs.addr.Is6() {
				family = 6
			}
		}
		if (rs.addr.Is6() != (family == 6)) && fwd != "tun" {
			c.warn(rs.node.Pos, "real_server "+rs.addr.String(), "its address family differs from the service's; keepalived skips it too")
			continue
		}
		b := &backend{address: rs.addr.String(), weight: rs.weight, upper: rs.upper, lower: rs.lower}
		if b.weight < 0 {
			b.weight = s.weight
		}
		if rs.fwd != "" && rs.fwd != svc.forwarding {
			b.forwarding = rs.fwd
		}
		port := rs.port
		switch {
		case fwd == "nat" && svc.fwmark == 0 && port == 0:
			port = svc.port
		case fwd != "nat" && svc.fwmark != 0:
			if port != 0 {
				c.warn(rs.node.Pos, fmt.Sprintf("real_server %s port %d", rs.addr, port), "a fwmark service's "+fwd+" backends take no port; keepalived clears it too")
			}
			port = 0
		case fwd != "nat":
			if port != 0 && port != svc.port {
				c.warn(rs.node.Pos, fmt.Sprintf("real_server %s port %d", rs.addr, port), fmt.Sprintf("%s forwarding keeps the service port %d; keepalived resets it too", fwd, svc.port))
			}
			port = svc.port
		}
		key := netip.AddrPortFrom(rs.addr, uint16(port))
		if seen[key] {
			c.warn(rs.node.Pos, "real_server "+key.String(), "a duplicate; keepalived drops it too")
			continue
		}
		seen[key] = true
		if port != svc.port {
			b.port = port
		}
		if b.upper != 0 && b.lower > b.upper {
			c.notConverted(rs.lowerPos, fmt.Sprintf("lthreshold %d", b.lower), "it is above uthreshold; golvs requires lower <= upper")
			b.lower = 0
		}
		svc.backends = append(svc.backends, b)
	}
	if svc.fwmark != 0 {
		if family == 0 {
			family = 4
		}
		if e.family != 0 && len(svc.backends) == 0 && e.family == 6 {
			c.notConverted(e.pos, label, "an IPv6 fwmark service without backends: golvs takes a fwmark service's family from its backends")
			return nil
		}
		svc.name = fmt.Sprintf("fwmark-%d", e.fwmark)
		if family == 6 {
			svc.name += "-ipv6"
		}
	}
	// config keys fwmark services by mark alone, whatever the family.
	key := svc.name
	if svc.fwmark != 0 {
		key = fmt.Sprintf("fwmark %d", svc.fwmark)
	}
	if c.topo.serviceKeys[key] {
		c.notConverted(e.pos, label, "the same IPVS service is already defined above")
		return nil
	}
	c.topo.serviceKeys[key] = true

	// Persistence granularity: a dotted mask for IPv4, a prefix length for IPv6.
	if s.granularity != "" {
		if family == 6 {
			v, ok := parseUint(s.granularity, 1, 128)
			if !ok {
				c.notConverted(s.granPos, "persistence_granularity "+s.granularity, "an IPv6 granularity is a prefix length 1..128")
			} else {
				svc.netmask = "/" + strconv.FormatUint(v, 10)
			}
		} else {
			m, err := netip.ParseAddr(s.granularity)
			if err != nil || !m.Is4() || !contiguous(m) {
				c.notConverted(s.granPos, "persistence_granularity "+s.granularity, "golvs takes a contiguous IPv4 netmask such as 255.255.255.0")
			} else {
				svc.netmask = s.granularity
			}
		}
	}

	c.failurePolicy(svc, s)
	c.quorumAndSorry(n, svc, s, family)
	c.serviceCheck(svc, s)
	return svc
}

func contiguous(a netip.Addr) bool {
	b := a.As4()
	m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	return m != 0 && ^m&(^m+1) == 0
}

// failurePolicy: keepalived removes a failed real server unless
// inhibit_on_failure keeps it at weight 0. golvs decides per service.
func (c *conv) failurePolicy(svc *service, s *vsSettings) {
	inhibit := func(rs *realServer) bool {
		if rs.inhibit != nil {
			return *rs.inhibit
		}
		return s.inhibit
	}
	svc.onFailure = "remove"
	if s.inhibit {
		svc.onFailure = "weight0"
	}
	if len(s.reals) > 0 {
		votes := 0
		for _, rs := range s.reals {
			if inhibit(rs) {
				votes++
			}
		}
		if votes*2 > len(s.reals) {
			svc.onFailure = "weight0"
		} else {
			svc.onFailure = "remove"
		}
		for _, rs := range s.reals {
			if inhibit(rs) != (svc.onFailure == "weight0") {
				c.notConverted(rs.node.Pos, fmt.Sprintf("inhibit_on_failure of real_server %s", rs.addr),
					"golvs sets on_failure per service; this service's other real servers decided it")
			}
		}
	}
	if svc.onFailure == "remove" {
		svc.comments = append(svc.comments, "keepalived: no inhibit_on_failure, so a failed backend leaves the table.")
	}
	if !s.alpha {
		svc.comments = append(svc.comments, "keepalived: without alpha, keepalived gives a checked backend traffic before its first check; golvs waits for it.")
	}
}

// quorumAndSorry: keepalived's quorum is a sum of weights, golvs's a
// number of healthy backends; they agree when the weights are equal.
func (c *conv) quorumAndSorry(n *Node, svc *service, s *vsSettings, family int) {
	if s.sorry != nil {
		k := s.sorry
		a, ok := parseAddr(k.Arg(1))
		port := svc.port
		if p := k.Arg(2); ok && p != "" {
			v, good := parseUint(p, 0, 65535)
			ok = good
			if good && v != 0 {
				if svc.forwarding == "nat" {
					port = int(v)
				} else if int(v) != svc.port {
					c.warn(k.Pos, "sorry_server port "+p, "dr and tun keep the service port; keepalived resets it too")
				}
			}
		}
		switch {
		case !ok:
			c.stmt(k, "not an address and port")
		case port == 0:
			c.stmt(k, "golvs needs a port for the sorry server; a fwmark or all-ports service has none to give it")
		case (a.Is6() != (family == 6)) && svc.forwarding != "tun":
			c.stmt(k, "its address family differs from the service's")
		default:
			svc.sorry = netip.AddrPortFrom(a, uint16(port)).String()
		}
	}
	if s.quorumPos == nil && svc.sorry == "" {
		return
	}
	q := 1
	if s.quorumPos != nil {
		q = s.quorum
	}
	weights := make([]int, len(svc.backends))
	equal := true
	for i, b := range svc.backends {
		weights[i] = b.weight
		if b.weight != svc.backends[0].weight {
			equal = false
		}
	}
	count := q
	if len(weights) > 0 && weights[0] > 0 && equal {
		count = (q + weights[0] - 1) / weights[0]
	} else if len(weights) > 0 {
		// The fewest backends whose weights reach q, heaviest first.
		slices.Sort(weights)
		sum, k := 0, 0
		for i := len(weights) - 1; i >= 0 && sum < q; i-- {
			sum += weights[i]
			k++
		}
		count = k
		pos := n.Pos
		if s.quorumPos != nil {
			pos = *s.quorumPos
		}
		c.notConverted(pos, fmt.Sprintf("quorum %d as a sum of unequal weights", q),
			fmt.Sprintf("golvs counts healthy backends; %d of them is the nearest", count))
	}
	count = max(1, min(count, len(svc.backends)))
	if len(svc.backends) == 0 {
		count = 0
		if svc.sorry != "" {
			c.notConverted(s.sorry.Pos, "sorry_server of a service without real servers", "golvs's quorum needs backends to count")
			svc.sorry = ""
		}
	}
	svc.quorum = count
	svc.comments = append(svc.comments, fmt.Sprintf("keepalived: quorum %d (a sum of weights) is %d healthy backends here.", q, count))
}
