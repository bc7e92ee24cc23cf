package config

import (
	"encoding/hex"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	schedulers     = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"}
	protocols      = []string{string(TCP), string(UDP), string(SCTP)}
	forwardings    = []string{string(NAT), string(DR), string(TUN)}
	onFailures     = []string{string(Weight0), string(Remove)}
	checkTypes     = []string{"tcp", "http", "https", "udp", "dns", "exec", "agent", "none"}
	dnsQueryTypes  = []string{"A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT", "ANY"}
	rawSchedFlags  = []string{"flag-1", "flag-2", "flag-3"}
	schedFlagsOnly = map[string]string{ // flag -> the only scheduler that takes it
		"sh-fallback": "sh", "sh-port": "sh",
		"mh-fallback": "mh", "mh-port": "mh",
	}
)

// checkKeys lists the keys that only some check types take, and which.
var checkKeys = []struct {
	key   string
	types []CheckType
	names string
}{
	{"path", []CheckType{CheckHTTP, CheckHTTPS}, "http/https"},
	{"host", []CheckType{CheckHTTP, CheckHTTPS}, "http/https"},
	{"expect_status", []CheckType{CheckHTTP, CheckHTTPS}, "http/https"},
	{"expect_body", []CheckType{CheckHTTP, CheckHTTPS}, "http/https"},
	{"tls_verify", []CheckType{CheckHTTPS}, "https"},
	{"send", []CheckType{CheckUDP}, "udp"},
	{"expect", []CheckType{CheckUDP}, "udp"},
	{"query", []CheckType{CheckDNS}, "dns"},
	{"query_type", []CheckType{CheckDNS}, "dns"},
	{"command", []CheckType{CheckExec}, "exec"},
}

// svcKey is what makes a non-fwmark service unique in IPVS.
type svcKey struct {
	addr  netip.Addr
	port  uint16
	proto Protocol
}

func (d *decoder) services(raw []map[string]any) []Service {
	var (
		out     []Service
		names   = map[string]string{} // name -> its first user
		tuples  = map[svcKey]string{}
		fwmarks = map[uint32]string{}
	)
	for i, m := range raw {
		if m == nil {
			d.skipped = true
			continue // not a table; already reported
		}
		svc, t, ok := d.service(i, m)
		// Others refer to this service by number too: names may collide.
		ref := fmt.Sprintf("service %d", i+1)
		if svc.Name != "" {
			ref = fmt.Sprintf("service %d (%q)", i+1, clip(svc.Name))
		}
		if ok.name {
			if first, dup := names[svc.Name]; dup {
				t.errorf("name", "name %q is already used by %s", svc.Name, first)
			} else {
				names[svc.Name] = fmt.Sprintf("service %d", i+1)
			}
		}
		if ok.tuple {
			k := svcKey{svc.Address, svc.Port, svc.Protocol}
			if first, dup := tuples[k]; dup {
				t.errorf("address", "address %s port %d/%s is already used by %s", svc.Address, svc.Port, svc.Protocol, first)
			} else {
				tuples[k] = ref
			}
		}
		if ok.fwmark {
			if first, dup := fwmarks[svc.FWMark]; dup {
				t.errorf("fwmark", "fwmark %d is already used by %s", svc.FWMark, first)
			} else {
				fwmarks[svc.FWMark] = ref
			}
		}
		out = append(out, svc)
	}
	return out
}

// svcOK says which identifying fields of a service were valid, so that
// cross-service checks do not pile up on top of field errors.
type svcOK struct{ name, tuple, fwmark bool }

func (d *decoder) service(i int, m map[string]any) (Service, *table, svcOK) {
	var ok svcOK
	ctx := fmt.Sprintf("service %d", i+1)
	if name, isStr := m["name"].(string); isStr && name != "" {
		ctx = fmt.Sprintf("service %q", clip(name))
	}
	t := d.table(m, []string{"service", strconv.Itoa(i)}, ctx)
	svc := Service{
		Protocol:     TCP,
		Scheduler:    DefaultScheduler,
		OnFailure:    Weight0,
		DrainTimeout: DefaultDrainTimeout,
	}

	if name, present := t.str("name"); present {
		if name == "" {
			t.errorf("name", "name must not be empty")
		} else if hasControl(name) {
			t.errorf("name", "name %q must not contain control characters", name)
		} else {
			svc.Name, ok.name = name, true
		}
	} else if !t.has("name") {
		t.errorf("", "name is required")
	}

	fwmark := t.has("fwmark")
	addrOK, portOK := false, false
	if fwmark {
		if v, good := t.intRange("fwmark", 1, maxU32); good {
			svc.FWMark, ok.fwmark = uint32(v), true
		}
		for _, key := range []string{"address", "port"} {
			if _, present := t.get(key); present {
				t.errorf(key, "%s must not be set for a fwmark service", key)
			}
		}
	} else {
		if s, present := t.str("address"); present {
			a, problem := parseAddr(s)
			if problem != "" {
				t.errorf("address", "address %q %s", s, problem)
			} else {
				svc.Address, svc.IPv6, addrOK = a, a.Is6(), true
			}
		} else if !t.has("address") {
			t.errorf("", "address (or fwmark) is required")
		}
		if v, good := t.intRange("port", 0, 65535); good {
			svc.Port, portOK = uint16(v), true
		} else if !t.has("port") {
			t.errorf("", "port is required")
		}
	}
	protoOK := true
	if v, present := t.oneOf("protocol", protocols...); present {
		svc.Protocol = Protocol(v)
	} else if t.has("protocol") {
		protoOK = false
	}
	ok.tuple = addrOK && portOK && protoOK

	schedOK := true // a bad scheduler makes no flag "only valid with" it
	if v, present := t.oneOf("scheduler", schedulers...); present {
		svc.Scheduler = v
	} else if t.has("scheduler") {
		schedOK = false
	}
	if flags, present := t.strings("scheduler_flags"); present {
		for _, f := range flags {
			switch only, limited := schedFlagsOnly[f]; {
			case slices.Contains(svc.SchedulerFlags, f):
				t.errorf("scheduler_flags", "scheduler flag %q is repeated", f)
				continue
			case limited && schedOK && svc.Scheduler != only:
				t.errorf("scheduler_flags", "scheduler flag %q is only valid with scheduler %q", f, only)
			case !limited && !slices.Contains(rawSchedFlags, f):
				t.errorf("scheduler_flags", "scheduler flag %q is not one of sh-fallback, sh-port, mh-fallback, mh-port, flag-1, flag-2 or flag-3", f)
			}
			svc.SchedulerFlags = append(svc.SchedulerFlags, f)
		}
	}

	if v, present := t.oneOf("forwarding", forwardings...); present {
		svc.Forwarding = Forwarding(v)
	} else if !t.has("forwarding") {
		t.errorf("", "forwarding is required (nat, dr or tun)")
	}

	if v, present := t.duration("persistence"); present {
		switch {
		case v < time.Second:
			t.errorf("persistence", "persistence %s must be at least 1s", v)
		case v%time.Second != 0:
			t.errorf("persistence", "persistence %s is not a whole number of seconds", v)
		case v > maxU32*time.Second:
			t.errorf("persistence", "persistence %s is too long", v)
		default:
			svc.Persistence = v
		}
	}
	if portOK && svc.Port == 0 && !t.has("persistence") {
		t.errorf("port", "port 0 (all ports) needs persistence")
	}

	if v, present := t.durationMin("drain_timeout", 0); present {
		svc.DrainTimeout = v
	}
	if v, present := t.oneOf("on_failure", onFailures...); present {
		svc.OnFailure = OnFailure(v)
	}

	if c := t.sub("check", ctx+": check"); c != nil {
		svc.Check = d.check(c)
	}

	rawBackends := t.tables("backend")
	d.backends(&svc, t, rawBackends, addrOK, portOK)

	// Known only now for fwmark services: the family comes from the backends.
	famKnown := addrOK || (fwmark && len(svc.Backends) > 0)
	if fwmark && len(svc.Backends) > 0 {
		svc.IPv6 = svc.Backends[0].Address.Is6()
	}
	if s, present := t.str("persistence_netmask"); present {
		switch {
		case !t.has("persistence"):
			t.errorf("persistence_netmask", "persistence_netmask needs persistence")
		case !famKnown:
		case svc.IPv6:
			n, err := strconv.Atoi(strings.TrimPrefix(s, "/"))
			if err != nil || n < 1 || n > 128 || strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-") {
				t.errorf("persistence_netmask", "persistence_netmask %q is not an IPv6 prefix length such as \"/64\"", s)
			} else {
				svc.PersistencePrefix = n
			}
		default:
			a, err := netip.ParseAddr(s)
			if err != nil || !a.Is4() || !contiguous(a) {
				t.errorf("persistence_netmask", "persistence_netmask %q is not a dotted IPv4 netmask such as \"255.255.255.0\"", s)
			} else {
				svc.PersistenceNetmask = a
			}
		}
	}

	if v, present := t.intRange("quorum", 0, int64(len(rawBackends))); present {
		svc.Quorum = int(v)
	}
	if s, present := t.str("sorry_server"); present {
		ap, err := netip.ParseAddrPort(s)
		_, problem := parseAddr(ap.Addr().String())
		switch {
		case err != nil || problem != "":
			t.errorf("sorry_server", "sorry_server %q is not ADDR:PORT (use [ADDR]:PORT for IPv6)", s)
		case ap.Port() == 0:
			t.errorf("sorry_server", "sorry_server %q has port 0", s)
		case famKnown && ap.Addr().Is6() != svc.IPv6 && svc.Forwarding != TUN:
			t.errorf("sorry_server", "sorry_server %s is %s but the service is %s; only tun forwarding can cross address families",
				ap.Addr(), family(ap.Addr()), familyOf(svc.IPv6))
		case !fwmark && portOK && svc.Port != 0 && (svc.Forwarding == DR || svc.Forwarding == TUN) && ap.Port() != svc.Port:
			t.errorf("sorry_server", "sorry_server port %d must equal the service port %d for %s forwarding", ap.Port(), svc.Port, svc.Forwarding)
		default:
			svc.SorryServer = ap
		}
	}
	t.finish()
	return svc, t, ok
}

func familyOf(ipv6 bool) string {
	if ipv6 {
		return "IPv6"
	}
	return "IPv4"
}

// contiguous reports whether a is a netmask: ones, then zeros.
func contiguous(a netip.Addr) bool {
	b := a.As4()
	m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	return bits.LeadingZeros32(^m)+bits.TrailingZeros32(m) >= 32 || m == 0
}

// backends converts a service's backends; addrOK and portOK say whether
// the service's own address and port were valid, to compare against.
func (d *decoder) backends(svc *Service, st *table, raw []map[string]any, addrOK, portOK bool) {
	fwmark := st.has("fwmark")
	seen := map[netip.AddrPort]int{}
	first := -1 // index of the first valid backend of a fwmark service
	for j, m := range raw {
		if m == nil {
			continue
		}
		t := d.table(m, append(st.keyPath("backend"), strconv.Itoa(j)), fmt.Sprintf("%s: backend %d", st.ctx, j+1))
		b := Backend{Port: svc.Port, Weight: 1, Forwarding: svc.Forwarding}
		good := true
		if s, present := t.str("address"); present {
			a, problem := parseAddr(s)
			if problem != "" {
				t.errorf("address", "address %q %s", s, problem)
				good = false
			}
			b.Address = a
		} else {
			if !t.has("address") {
				t.errorf("", "address is required")
			}
			good = false
		}
		if v, present := t.intRange("port", 1, 65535); present {
			b.Port = uint16(v)
		} else if t.has("port") {
			good = false
		}
		if v, present := t.intRange("weight", 0, 65535); present {
			b.Weight = int(v)
		}
		if v, present := t.oneOf("forwarding", forwardings...); present {
			b.Forwarding = Forwarding(v)
		}
		if v, present := t.intRange("upper_threshold", 0, maxU32); present {
			b.UpperThreshold = uint32(v)
		}
		if v, present := t.intRange("lower_threshold", 0, maxU32); present {
			b.LowerThreshold = uint32(v)
			if b.UpperThreshold != 0 && b.LowerThreshold > b.UpperThreshold {
				t.errorf("lower_threshold", "lower_threshold %d must not exceed upper_threshold %d", b.LowerThreshold, b.UpperThreshold)
			}
		}
		if !fwmark && portOK && t.has("port") && b.Port != svc.Port && (b.Forwarding == DR || b.Forwarding == TUN) {
			t.errorf("port", "port %d must equal the service port %d for %s forwarding", b.Port, svc.Port, b.Forwarding)
		}
		if good {
			switch {
			case !fwmark && addrOK && b.Forwarding != "" && b.Address.Is6() != svc.IPv6 && b.Forwarding != TUN:
				t.errorf("address", "address %s is %s but the service address is %s; only tun forwarding can cross address families",
					b.Address, family(b.Address), familyOf(svc.IPv6))
			case fwmark && first >= 0 && b.Address.Is6() != svc.Backends[first].Address.Is6():
				t.errorf("address", "address %s is %s but backend %d is %s; a fwmark service's backends must all be one family",
					b.Address, family(b.Address), seen[svc.Backends[first].AddrPort()]+1, family(svc.Backends[first].Address))
			}
			if k, dup := seen[b.AddrPort()]; dup {
				t.errorf("address", "%s repeats backend %d", b.AddrPort(), k+1)
			} else {
				seen[b.AddrPort()] = j
			}
			if first < 0 {
				first = len(svc.Backends)
			}
		}
		t.finish()
		svc.Backends = append(svc.Backends, b)
	}
}

func (d *decoder) check(t *table) *Check {
	c := &Check{
		Interval: DefaultCheckInterval,
		Timeout:  DefaultCheckTimeout,
		Rise:     DefaultRise,
		Fall:     DefaultFall,
	}
	if v, present := t.oneOf("type", checkTypes...); present {
		c.Type = CheckType(v)
	} else if !t.has("type") {
		t.errorf("", "type is required")
	}
	if v, present := t.durationMin("interval", time.Nanosecond); present {
		c.Interval = v
	}
	if v, present := t.durationMin("timeout", time.Nanosecond); present {
		c.Timeout = v
	}
	if c.Timeout > c.Interval {
		key := "timeout"
		if !t.has(key) {
			key = "interval"
		}
		t.errorf(key, "timeout %s must not exceed interval %s", c.Timeout, c.Interval)
	}
	for _, key := range []string{"rise", "fall"} {
		n, present := t.integer(key)
		if !present {
			continue
		}
		if n < 1 || n > 1000 {
			t.errorf(key, "%s %d is out of range 1..1000", key, n)
			continue
		}
		if key == "rise" {
			c.Rise = int(n)
		} else {
			c.Fall = int(n)
		}
	}
	if v, present := t.intRange("port", 0, 65535); present {
		c.Port = uint16(v)
	}

	// Keys of other check types are errors of their own, named as such;
	// with no valid type there is nothing to say about them.
	for _, ck := range checkKeys {
		if !t.has(ck.key) || slices.Contains(ck.types, c.Type) {
			continue
		}
		t.get(ck.key)
		if c.Type != "" {
			t.errorf(ck.key, "key %s is only valid for %s checks", ck.key, ck.names)
		}
	}

	switch c.Type {
	case CheckHTTP, CheckHTTPS:
		c.Path = "/"
		if s, present := t.str("path"); present {
			if !strings.HasPrefix(s, "/") {
				t.errorf("path", "path %q must start with \"/\"", s)
			} else if hasControl(s) {
				t.errorf("path", "path %q must not contain control characters", s)
			}
			c.Path = s
		}
		if s, present := t.str("host"); present {
			if s == "" {
				t.errorf("host", "host must not be empty")
			} else if hasControl(s) {
				t.errorf("host", "host %q must not contain control characters", s)
			}
			c.Host = s
		}
		c.ExpectStatus = []int{200}
		if codes, present := t.integers("expect_status"); present {
			if len(codes) == 0 {
				t.errorf("expect_status", "expect_status must not be empty")
			}
			c.ExpectStatus = nil
			for _, n := range codes {
				if n < 100 || n > 599 {
					t.errorf("expect_status", "expect_status %d is out of range 100..599", n)
				}
				c.ExpectStatus = append(c.ExpectStatus, int(n))
			}
		}
		if s, present := t.str("expect_body"); present {
			c.ExpectBody = s
		}
		if v, present := t.boolean("tls_verify"); present {
			c.TLSVerify = v
		}
	case CheckUDP:
		c.Send = payload(t, "send")
		c.Expect = payload(t, "expect")
	case CheckDNS:
		if s, present := t.str("query"); present {
			q := s
			if !strings.HasSuffix(q, ".") {
				q += "."
			}
			if !validHostname(q) {
				t.errorf("query", "query %q is not a domain name", s)
			}
			c.Query = q
		} else if !t.has("query") {
			t.errorf("", "query is required for dns checks")
		}
		c.QueryType = "A"
		if v, present := t.oneOf("query_type", dnsQueryTypes...); present {
			c.QueryType = v
		}
	case CheckExec:
		if argv, present := t.strings("command"); present {
			bad := slices.IndexFunc(argv, func(a string) bool { return strings.ContainsRune(a, 0) })
			switch {
			case len(argv) == 0:
				t.errorf("command", "command must not be empty")
			case pathProblem(argv[0]) != "":
				t.errorf("command", "command[0] %q %s", argv[0], desc(pathProblem(argv[0])))
			case bad >= 0:
				t.errorf("command", "command[%d] %q must not contain NUL", bad, argv[bad])
			default:
				c.Command = argv
			}
		} else if !t.has("command") {
			t.errorf("", "command is required for exec checks")
		}
	}
	t.finish()
	return c
}

// payload reads a required udp payload: text, or bytes as "hex:...".
func payload(t *table, key string) []byte {
	s, present := t.str(key)
	if !present {
		if !t.has(key) {
			t.errorf("", "%s is required for udp checks", key)
		}
		return nil
	}
	b := []byte(s)
	if h, isHex := strings.CutPrefix(s, "hex:"); isHex {
		var err error
		if b, err = hex.DecodeString(h); err != nil {
			t.errorf(key, "%s %q is not valid hex after \"hex:\"", key, s)
			return nil
		}
	}
	if len(b) == 0 {
		t.errorf(key, "%s must not be empty", key)
	}
	return b
}
