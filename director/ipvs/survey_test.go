package ipvs

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

// A /proc/net/ip_vs as Linux 6.x writes it (ip_vs_info_seq_show).
const procSample = `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  C0000201:2710 rr 
  -> 0A020002:2710      Masq    1      0          0         
  -> 0A020001:2710      Route   7      3          12        
UDP  [2001:0db8:0000:0000:0000:0000:0000:0077]:0035 sh persistent 300 00000040
  -> [2001:0db8:0001:0000:0000:0000:0000:0001]:0035 Tunnel  5      0          1         
TCP  C6336477:0050 wrr persistent 300 FFFFFF00
FWM  0000004D lc 
  -> 0A090004:0000      Route   2      0          0         
TCP  C6336478:0050 wrr 
  -> 0A090004:00ZZ      Route   2      0          0         
SCTP C6336479:0050 rr 
  -> 7F000001:0050      Local   1      0          0         
`

func TestParseProc(t *testing.T) {
	v4 := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	got := parseProc([]byte(procSample))
	want := []procService{
		{key: ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Address: v4("192.0.2.1"), Port: 10000},
			dests: []Destination{
				{Address: v4("10.2.0.2"), Port: 10000, Weight: 1, Forwarding: Masq},
				{Address: v4("10.2.0.1"), Port: 10000, Weight: 7, Forwarding: Route, ActiveConns: 3, InactiveConns: 12},
			}},
		{key: ServiceKey{Family: unix.AF_INET6, Protocol: unix.IPPROTO_UDP, Address: v4("2001:db8::77"), Port: 53},
			dests: []Destination{{Address: v4("2001:db8:1::1"), Port: 53, Weight: 5, Forwarding: Tunnel, InactiveConns: 1}}},
		{key: ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Address: v4("198.51.100.119"), Port: 80}},
		{key: ServiceKey{FWMark: 77}, dests: []Destination{{Address: v4("10.9.0.4"), Weight: 2, Forwarding: Route}}},
		{}, // 198.51.100.120: a destination line it cannot read drops the service
		{key: ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_SCTP, Address: v4("198.51.100.121"), Port: 80},
			dests: []Destination{{Address: v4("127.0.0.1"), Port: 80, Weight: 1, Forwarding: 1}}},
	}
	opts := cmp.Options{cmp.AllowUnexported(procService{}), cmpopts.EquateComparable(netip.Addr{}), cmpopts.EquateEmpty()}
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Fatalf("parseProc (-want +got):\n%s", diff)
	}

	// merge: netlink's services get /proc's destinations (sorted);
	// fwmark services and those /proc lacks are inexact.
	svcs := []Entry{
		{Service: Service{ServiceKey: want[0].key, Scheduler: "rr"}},
		{Service: Service{ServiceKey: ServiceKey{Family: unix.AF_INET6, FWMark: 77}, Scheduler: "lc"}},
		{Service: Service{ServiceKey: ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Address: v4("198.51.100.120"), Port: 80}}},
	}
	entries, inexact := merge(svcs, got)
	if diff := cmp.Diff([]ServiceKey{svcs[1].Service.ServiceKey, svcs[2].Service.ServiceKey}, inexact, opts); diff != "" {
		t.Errorf("inexact (-want +got):\n%s", diff)
	}
	if d := entries[0].Destinations; len(d) != 2 || d[0].Address != v4("10.2.0.1") {
		t.Errorf("merged destinations %v, want both, sorted", d)
	}
	if entries[0].Order != nil {
		t.Errorf("rr service with an order %v", entries[0].Order)
	}

	// An mh service keeps /proc's list order (head first) in Order.
	got = parseProc([]byte(procSample))
	mh := []Entry{{Service: Service{ServiceKey: want[0].key, Scheduler: "mh"}}}
	entries, _ = merge(mh, got)
	wantOrder := []netip.AddrPort{netip.MustParseAddrPort("10.2.0.2:10000"), netip.MustParseAddrPort("10.2.0.1:10000")}
	if !slices.Equal(entries[0].Order, wantOrder) {
		t.Errorf("mh order %v, want %v", entries[0].Order, wantOrder)
	}
	if d := entries[0].Destinations; len(d) != 2 || d[0].Address != v4("10.2.0.1") {
		t.Errorf("merged mh destinations %v, want both, sorted", d)
	}
}

// The packed-key sort of IPv4 tables orders like KeyCompare.
func TestSortEntriesPacked(t *testing.T) {
	var es []Entry
	for i := range 300 {
		a := netip.AddrFrom4([4]byte{10, byte(i % 3), byte(i * 7), byte(i * 13)})
		es = append(es, Entry{Service: Service{ServiceKey: ServiceKey{Family: unix.AF_INET,
			Protocol: []uint16{unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_SCTP}[i%3], Address: a, Port: uint16(i * 31 % 7)}}})
	}
	want := append([]Entry(nil), es...)
	if !sortEntries4(es) {
		t.Fatal("an IPv4 table was not sorted by the packed key")
	}
	for i := 1; i < len(es); i++ {
		if KeyCompare(es[i-1].Service.ServiceKey, es[i].Service.ServiceKey) > 0 {
			t.Fatalf("out of order at %d: %v then %v", i, es[i-1].Service.ServiceKey, es[i].Service.ServiceKey)
		}
	}
	if len(es) != len(want) {
		t.Fatal("entries lost")
	}
	want[5].Service.Family, want[5].Service.Address = unix.AF_INET6, netip.MustParseAddr("2001:db8::1")
	if sortEntries4(want) {
		t.Error("a table with an IPv6 service took the IPv4 sort")
	}
}
