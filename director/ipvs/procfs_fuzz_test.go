package ipvs

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

// FuzzParseProc feeds /proc/net/ip_vs's parser arbitrary text. Beyond not
// panicking: every service it keeps has a key the kernel could print (a
// fwmark, or TCP/UDP/SCTP with an address of its family); what it read,
// printed back the way ip_vs_info_seq_show prints it, reads back the same;
// and merge gives each netlink service exactly its own /proc
// destinations, whatever order netlink listed them in.
func FuzzParseProc(f *testing.F) {
	f.Add([]byte(procSample), uint8(0))
	f.Add([]byte(procSample), uint8(3))
	f.Add([]byte("TCP  C0000201:2710 rr \n  -> 0A020002:2710      Masq    1      0          0         \n"+
		"TCP  C0000201:2710 rr \n  -> 0A020003:2710      Route   1      0          0         \n"), uint8(1))
	f.Add([]byte("  -> 0A020002:2710      Masq    1      0          0\nFWM  00000000 rr\nUDP  [::ffff:1.2.3.4]:0035 rr\n"+
		"TCP  [fe80::1%eth0]:0050 rr\n  -> 0A020002:2710 Masq 4294967296 0 0\n"), uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, rot uint8) {
		got := parseProc(b)
		for _, p := range got {
			if p.key == (ServiceKey{}) {
				continue // dropped: unreadable
			}
			if err := kernelKey(p.key); err != nil {
				t.Fatalf("parsed service %v: %v", p.key, err)
			}
			for _, d := range p.dests {
				if !d.Address.IsValid() || d.Weight < 0 || d.ActiveConns < 0 || d.InactiveConns < 0 {
					t.Fatalf("parsed destination %+v of %v", d, p.key)
				}
			}
		}
		kept := slices.DeleteFunc(slices.Clone(got), func(p procService) bool { return p.key == (ServiceKey{}) })
		again := parseProc([]byte(printProc(kept)))
		opts := cmp.Options{cmp.AllowUnexported(procService{}), cmpopts.EquateComparable(netip.Addr{}), cmpopts.EquateEmpty()}
		if diff := cmp.Diff(kept, again, opts); diff != "" {
			t.Fatalf("parsed, printed and parsed again (-first +again):\n%s", diff)
		}

		// merge, with netlink's list rotated so that the zip parts and
		// the map is used. Duplicate keys do not happen in a real table.
		seen := map[ServiceKey]bool{}
		var svcs []Entry
		for _, p := range kept {
			if seen[p.key] {
				return
			}
			seen[p.key] = true
			svcs = append(svcs, Entry{Service: Service{ServiceKey: p.key}})
		}
		if len(svcs) > 0 {
			r := int(rot) % len(svcs)
			svcs = append(svcs[r:], svcs[:r]...)
		}
		want := map[ServiceKey][]Destination{}
		for _, p := range kept {
			want[p.key] = slices.Clone(p.dests)
			SortDestinations(want[p.key])
		}
		entries, inexact := merge(slices.Clone(svcs), kept)
		if len(entries) != len(svcs) {
			t.Fatalf("merge returned %d entries for %d services", len(entries), len(svcs))
		}
		for _, e := range entries {
			k := e.Service.ServiceKey
			if k.FWMark != 0 {
				if !slices.Contains(inexact, k) || len(e.Destinations) != 0 {
					t.Fatalf("fwmark service %v: exact, or given destinations %v", k, e.Destinations)
				}
				continue
			}
			if slices.Contains(inexact, k) {
				t.Fatalf("service %v listed by /proc is inexact", k)
			}
			if diff := cmp.Diff(want[k], e.Destinations, opts); diff != "" {
				t.Fatalf("merged destinations of %v (-proc +merged):\n%s", k, diff)
			}
		}
	})
}

// kernelKey says why k is not a key ip_vs_info_seq_show could print.
func kernelKey(k ServiceKey) error {
	if k.FWMark != 0 {
		if k.Family != 0 || k.Address.IsValid() || k.Port != 0 || k.Protocol != 0 {
			return fmt.Errorf("fwmark service with address fields")
		}
		return nil
	}
	switch k.Protocol {
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_SCTP:
	default:
		return fmt.Errorf("protocol %d", k.Protocol)
	}
	switch {
	case k.Family == unix.AF_INET && k.Address.Is4():
	case k.Family == unix.AF_INET6 && k.Address.Is6() && k.Address.Zone() == "":
	default:
		return fmt.Errorf("family %d with address %v", k.Family, k.Address)
	}
	return nil
}

// printProc prints services as ip_vs_info_seq_show does.
func printProc(ps []procService) string {
	var b strings.Builder
	b.WriteString("IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n")
	for _, p := range ps {
		k := p.key
		switch {
		case k.FWMark != 0:
			fmt.Fprintf(&b, "FWM  %08X rr \n", k.FWMark)
		default:
			proto := map[uint16]string{unix.IPPROTO_TCP: "TCP ", unix.IPPROTO_UDP: "UDP ", unix.IPPROTO_SCTP: "SCTP"}[k.Protocol]
			fmt.Fprintf(&b, "%s %s rr \n", proto, procAddr(k.Address, k.Port))
		}
		for _, d := range p.dests {
			fwd := map[Forwarding]string{Masq: "Masq", 1: "Local", Tunnel: "Tunnel", Route: "Route"}[d.Forwarding]
			fmt.Fprintf(&b, "  -> %s      %-7s %-6d %-10d %-10d\n", procAddr(d.Address, d.Port), fwd, d.Weight, d.ActiveConns, d.InactiveConns)
		}
	}
	return b.String()
}

func procAddr(a netip.Addr, port uint16) string {
	if a.Is4() {
		v := a.As4()
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", v[0], v[1], v[2], v[3], port)
	}
	return fmt.Sprintf("[%s]:%04X", a.StringExpanded(), port)
}
