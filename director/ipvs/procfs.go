package ipvs

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"

	"golang.org/x/sys/unix"
)

// Parsing /proc/net/ip_vs, the kernel's one-pass text listing of every
// service and destination (see Kernel.Survey).

// procService is one service of /proc/net/ip_vs with its destinations.
type procService struct {
	key   ServiceKey // Family 0 for a fwmark service: /proc omits it
	dests []Destination
}

// merge gives each netlink service its /proc destinations; fwmark
// services and services /proc did not list are inexact. Both lists walk
// the kernel's service hash table in the same order, so they are zipped;
// a map is built only if they part.
func merge(svcs []Entry, procs []procService) ([]Entry, []ServiceKey) {
	var inexact []ServiceKey
	var byKey map[ServiceKey]int
	j := 0
	for i := range svcs {
		k := svcs[i].Service.ServiceKey
		if k.FWMark != 0 {
			inexact = append(inexact, k)
			if j < len(procs) && procs[j].key.FWMark == k.FWMark {
				j++
			}
			continue
		}
		at := -1
		if j < len(procs) && procs[j].key == k {
			at = j
			j++
		} else {
			if byKey == nil {
				byKey = make(map[ServiceKey]int, len(procs))
				for x := range procs {
					if procs[x].key.FWMark == 0 {
						byKey[procs[x].key] = x
					}
				}
			}
			if x, ok := byKey[k]; ok {
				at = x
			}
		}
		if at < 0 {
			inexact = append(inexact, k)
			continue
		}
		svcs[i].Destinations = procs[at].dests
		// /proc lists each service's destinations in list order.
		svcs[i].Order = OrderOf(svcs[i].Service.Scheduler, svcs[i].Destinations)
		if !slices.IsSortedFunc(svcs[i].Destinations, CompareDests) {
			SortDestinations(svcs[i].Destinations)
		}
	}
	return svcs, inexact
}

// parseProc reads /proc/net/ip_vs (ip_vs_info_seq_show):
//
//	TCP  C0000201:2710 rr
//	  -> 0A020001:2710      Masq    1      0          0
//	UDP  [2001:0db8:0000:0000:0000:0000:0000:0001]:0035 rr persistent 300 FFFFFFFF
//	FWM  00000004 wlc
//
// Lines it cannot read are skipped, with the destinations under them:
// their service is then missing, hence inexact.
func parseProc(b []byte) []procService {
	var out []procService
	cur := -1 // index of the service the next destinations belong to
	all := make([]Destination, 0, bytes.Count(b, []byte("->")))
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		if bytes.HasPrefix(line, []byte("  -> ")) {
			if cur < 0 {
				continue
			}
			d, ok := parseProcDest(line[5:])
			if !ok {
				out[cur].key = ServiceKey{} // unreadable: drop the service
				cur = -1
				continue
			}
			all = append(all, d)
			out[cur].dests = all[len(all)-len(out[cur].dests)-1 : len(all) : len(all)]
			continue
		}
		cur = -1
		key, ok := parseProcService(line)
		if ok {
			out = append(out, procService{key: key})
			cur = len(out) - 1
		}
	}
	return out
}

func parseProcService(line []byte) (ServiceKey, bool) {
	sc := scanner{b: line}
	proto := sc.token()
	var k ServiceKey
	switch string(proto) {
	case "TCP":
		k.Protocol = unix.IPPROTO_TCP
	case "UDP":
		k.Protocol = unix.IPPROTO_UDP
	case "SCTP":
		k.Protocol = unix.IPPROTO_SCTP
	case "FWM":
		v, ok := hexNum(sc.token(), 8)
		if !ok || v == 0 {
			return ServiceKey{}, false
		}
		return ServiceKey{FWMark: uint32(v)}, true
	default:
		return ServiceKey{}, false // a header line
	}
	a, port, ok := parseProcAddrPort(sc.token())
	if !ok {
		return ServiceKey{}, false
	}
	k.Address, k.Port = a, port
	k.Family = unix.AF_INET
	if a.Is6() {
		k.Family = unix.AF_INET6
	}
	return k, true
}

func parseProcDest(line []byte) (Destination, bool) {
	sc := scanner{b: line}
	a, port, ok := parseProcAddrPort(sc.token())
	if !ok {
		return Destination{}, false
	}
	d := Destination{Address: a, Port: port}
	switch string(sc.token()) {
	case "Masq":
		d.Forwarding = Masq
	case "Local":
		d.Forwarding = 1 // IP_VS_CONN_F_LOCALNODE, as netlink reports it
	case "Tunnel":
		d.Forwarding = Tunnel
	case "Route":
		d.Forwarding = Route
	default:
		return Destination{}, false
	}
	var nums [3]int
	for i := range nums {
		v, ok := decNum(sc.token())
		if !ok {
			return Destination{}, false
		}
		nums[i] = v
	}
	d.Weight, d.ActiveConns, d.InactiveConns = nums[0], nums[1], nums[2]
	return d, true
}

// parseProcAddrPort reads "0A020001:2710" or "[2001:0db8:...:0001]:01BB".
func parseProcAddrPort(b []byte) (netip.Addr, uint16, bool) {
	i := bytes.LastIndexByte(b, ':')
	if i < 0 {
		return netip.Addr{}, 0, false
	}
	port, ok := hexNum(b[i+1:], 4)
	if !ok {
		return netip.Addr{}, 0, false
	}
	h := b[:i]
	if len(h) > 2 && h[0] == '[' && h[len(h)-1] == ']' {
		// %pI6 prints no zone: one is not the kernel's line.
		a, err := netip.ParseAddr(string(h[1 : len(h)-1]))
		if err != nil || !a.Is6() || a.Zone() != "" {
			return netip.Addr{}, 0, false
		}
		return a, uint16(port), true
	}
	v, ok := hexNum(h, 8)
	if !ok || len(h) != 8 {
		return netip.Addr{}, 0, false
	}
	var a4 [4]byte
	binary.BigEndian.PutUint32(a4[:], uint32(v))
	return netip.AddrFrom4(a4), uint16(port), true
}

// scanner splits a line into space-separated tokens without allocating:
// this parser reads tens of thousands of lines per pass.
type scanner struct{ b []byte }

func (s *scanner) token() []byte {
	i := 0
	for i < len(s.b) && s.b[i] == ' ' {
		i++
	}
	j := i
	for j < len(s.b) && s.b[j] != ' ' {
		j++
	}
	t := s.b[i:j]
	s.b = s.b[j:]
	return t
}

// hexNum parses 1..max hex digits.
func hexNum(b []byte, max int) (uint64, bool) {
	if len(b) == 0 || len(b) > max {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(c)
	}
	return v, true
}

// decNum parses a non-negative decimal of at most 10 digits.
func decNum(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}
