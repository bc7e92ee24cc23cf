package realserver

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/golvs/golvs/config"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const topoTOML = `
[director]
interface = "eth0"

[realserver]
tunnel_interface = "tunvip"

[[service]]
name = "web"
address = "192.0.2.10"
port = 80
forwarding = "dr"
[[service.backend]]
address = "10.0.0.2"
[[service.backend]]
address = "10.0.0.3"

[[service]]
name = "web-tls"
address = "192.0.2.10"
port = 443
forwarding = "dr"
[[service.backend]]
address = "10.0.0.2"

[[service]]
name = "api"
address = "192.0.2.20"
port = 443
forwarding = "nat"
[[service.backend]]
address = "10.0.0.2"        # nat: nothing to do on this host
[[service.backend]]
address = "10.0.0.3"
forwarding = "tun"          # override: but 10.0.0.3 is not ours

[[service]]
name = "tunnelled"
address = "192.0.2.30"
port = 53
protocol = "udp"
forwarding = "nat"
[[service.backend]]
address = "10.0.0.2"
forwarding = "tun"          # override makes it ours

[[service]]
name = "marked"
fwmark = 7
forwarding = "dr"
[[service.backend]]
address = "10.0.0.2"

[[service]]
name = "v6"
address = "2001:db8::10"
port = 80
forwarding = "dr"
[[service.backend]]
address = "2001:db8:1::2"
`

func mustParse(t *testing.T, src string) *config.Topology {
	t.Helper()
	topo, err := config.Parse("test.toml", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return topo
}

func TestLocalVIPs(t *testing.T) {
	topo := mustParse(t, topoTOML)
	local := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("2001:db8:1::2")}
	vips, skipped := LocalVIPs(topo, local)
	want := []VIP{
		{Addr: netip.MustParseAddr("192.0.2.10"), Mode: config.DR, Services: []string{"web", "web-tls"}, Backend: netip.MustParseAddr("10.0.0.2")},
		{Addr: netip.MustParseAddr("192.0.2.30"), Mode: config.TUN, Services: []string{"tunnelled"}, Backend: netip.MustParseAddr("10.0.0.2")},
		{Addr: netip.MustParseAddr("2001:db8::10"), Mode: config.DR, Services: []string{"v6"}, Backend: netip.MustParseAddr("2001:db8:1::2")},
	}
	if diff := cmp.Diff(want, vips, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("LocalVIPs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"marked"}, skipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}

	if vips, _ := LocalVIPs(topo, []netip.Addr{netip.MustParseAddr("10.9.9.9")}); len(vips) != 0 {
		t.Errorf("host with no backend address got %v", vips)
	}
}

func TestFromTopology(t *testing.T) {
	topo := mustParse(t, topoTOML)
	d, err := FromTopology(topo, []netip.Addr{netip.MustParseAddr("10.0.0.2")}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	wantAddrs := []Assign{
		{Dev: "lo", Prefix: netip.MustParsePrefix("192.0.2.10/32"), Services: []string{"web", "web-tls"}},
		{Dev: "tunvip", Prefix: netip.MustParsePrefix("192.0.2.30/32"), Services: []string{"tunnelled"}},
	}
	if diff := cmp.Diff(wantAddrs, d.Addrs, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
		t.Errorf("addrs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]LinkWant{{Name: "tunvip", Tunnel: true}}, d.Links); diff != "" {
		t.Errorf("links (-want +got):\n%s", diff)
	}

	_, err = FromTopology(topo, []netip.Addr{netip.MustParseAddr("10.9.9.9")}, quiet)
	if !errors.Is(err, ErrNoLocalBackend) {
		t.Errorf("no local backend: got %v, want ErrNoLocalBackend", err)
	}
}

func sysctlMap(ss []Sysctl) map[string]string {
	m := map[string]string{}
	for _, s := range ss {
		m[s.Name()] = s.Value
	}
	return m
}

func TestBuild(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.10")
	v6 := netip.MustParseAddr("2001:db8::10")
	arp := map[string]string{
		"net.ipv4.conf.all.arp_ignore":   "1",
		"net.ipv4.conf.all.arp_announce": "2",
		"net.ipv4.conf.lo.arp_ignore":    "1",
		"net.ipv4.conf.lo.arp_announce":  "2",
	}
	tun := map[string]string{
		"net.ipv4.conf.all.rp_filter":      "0",
		"net.ipv4.conf.tunl0.rp_filter":    "0",
		"net.ipv4.conf.tunl0.arp_ignore":   "1",
		"net.ipv4.conf.tunl0.arp_announce": "2",
	}
	both := map[string]string{}
	for k, v := range arp {
		both[k] = v
	}
	for k, v := range tun {
		both[k] = v
	}
	tests := []struct {
		name      string
		vips      []VIP
		wantAddrs []string // dev prefix
		wantSys   map[string]string
		wantErr   error
	}{
		{"dr v4", []VIP{{Addr: v4, Mode: config.DR}}, []string{"lo 192.0.2.10/32"}, arp, nil},
		// No ARP for IPv6: nothing to set.
		{"dr v6", []VIP{{Addr: v6, Mode: config.DR}}, []string{"lo 2001:db8::10/128"}, map[string]string{}, nil},
		{"tun v4", []VIP{{Addr: v4, Mode: config.TUN}}, []string{"tunl0 192.0.2.10/32"}, both, nil},
		{"tun v6 VIP", []VIP{{Addr: v6, Mode: config.TUN}}, nil, nil, ErrUnsupported},
		{"tun v4 VIP to v6 backend", []VIP{{Addr: v4, Mode: config.TUN, Backend: v6}}, nil, nil, ErrUnsupported},
		{"nat", []VIP{{Addr: v4, Mode: config.NAT}}, nil, nil, ErrBadMode},
		{"none", nil, nil, nil, ErrNoLocalBackend},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Build(tc.vips, "tunl0")
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			var got []string
			for _, a := range d.Addrs {
				got = append(got, a.Dev+" "+a.Prefix.String())
			}
			if diff := cmp.Diff(tc.wantAddrs, got); diff != "" {
				t.Errorf("addrs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantSys, sysctlMap(d.Sysctls)); diff != "" {
				t.Errorf("sysctls (-want +got):\n%s", diff)
			}
			for _, s := range d.Sysctls {
				if s.Why == "" {
					t.Errorf("%s has no reason", s.Name())
				}
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"dr", "tun"} {
		if m, err := ParseMode(s); err != nil || string(m) != s {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	for _, s := range []string{"nat", "DR", ""} {
		if _, err := ParseMode(s); !errors.Is(err, ErrBadMode) {
			t.Errorf("ParseMode(%q) err = %v, want ErrBadMode", s, err)
		}
	}
}

func TestSysctlName(t *testing.T) {
	s := Sysctl{Path: "net/ipv4/conf/eth0.100/rp_filter"}
	if got, want := s.Name(), "net.ipv4.conf.eth0/100.rp_filter"; got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}
}

func opStrings(ops []Op) []string {
	out := make([]string, len(ops))
	for i, o := range ops {
		out[i] = o.String()
	}
	return out
}

func drDesired(t *testing.T) Desired {
	t.Helper()
	d, err := Build([]VIP{{Addr: netip.MustParseAddr("192.0.2.10"), Mode: config.DR, Services: []string{"web"}}}, "tunl0")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func fresh() HostState {
	return HostState{
		Links: map[string]LinkState{"lo": {Up: false, Kind: "device"}, "eth0": {Up: true, Kind: "veth"}},
		Addrs: []HostAddr{{Dev: "eth0", Prefix: netip.MustParsePrefix("10.0.0.2/24")}},
		Sysctls: map[string]string{
			"net/ipv4/conf/all/arp_ignore": "2", "net/ipv4/conf/all/arp_announce": "0",
			"net/ipv4/conf/lo/arp_ignore": "0", "net/ipv4/conf/lo/arp_announce": "0",
			"net/ipv4/conf/all/rp_filter": "1",
		},
	}
}

func converged() HostState {
	h := fresh()
	h.Links["lo"] = LinkState{Up: true, Kind: "device"}
	h.Addrs = append(h.Addrs, HostAddr{Dev: "lo", Prefix: netip.MustParsePrefix("192.0.2.10/32")})
	h.Sysctls = map[string]string{
		"net/ipv4/conf/all/arp_ignore": "1", "net/ipv4/conf/all/arp_announce": "2",
		"net/ipv4/conf/lo/arp_ignore": "1", "net/ipv4/conf/lo/arp_announce": "2",
		"net/ipv4/conf/all/rp_filter": "1",
	}
	return h
}

func TestPlan(t *testing.T) {
	dr := drDesired(t)
	tun, err := Build([]VIP{{Addr: netip.MustParseAddr("192.0.2.20"), Mode: config.TUN, Services: []string{"api"}}}, "tunl0")
	if err != nil {
		t.Fatal(err)
	}
	withVeth := fresh()
	withVeth.Links["tunl0"] = LinkState{Up: true, Kind: "veth"}
	elsewhere := fresh()
	elsewhere.Addrs = append(elsewhere.Addrs, HostAddr{Dev: "eth0", Prefix: netip.MustParsePrefix("192.0.2.10/32")})
	// The VIP already on lo with a different prefix length counts as there.
	onLoWide := converged()
	onLoWide.Addrs[1].Prefix = netip.MustParsePrefix("192.0.2.10/24")
	ownedTun := []Change{
		{Kind: ChangeLinkUp, Dev: "tunl0"},
		{Kind: ChangeAddr, Dev: "tunl0", Prefix: netip.MustParsePrefix("192.0.2.20/32")},
		{Kind: ChangeSysctl, Path: "net/ipv4/conf/all/rp_filter", Old: "1", New: "0"},
		{Kind: ChangeSysctl, Path: "net/ipv4/conf/all/arp_ignore", Old: "2", New: "1"},
	}

	tests := []struct {
		name    string
		desired Desired
		actual  HostState
		owned   []Change
		want    []string
		wantErr error
	}{
		{
			name: "fresh host, dr", desired: dr, actual: fresh(),
			want: []string{
				"add address 192.0.2.10/32 to lo",
				"set net.ipv4.conf.all.arp_ignore = 1 (now 2)",
				"set net.ipv4.conf.all.arp_announce = 2 (now 0)",
				"set net.ipv4.conf.lo.arp_ignore = 1 (now 0)",
				"set net.ipv4.conf.lo.arp_announce = 2 (now 0)",
			},
		},
		{name: "converged", desired: dr, actual: converged(), want: nil},
		{name: "VIP on lo with another prefix length", desired: dr, actual: onLoWide, want: nil},
		{
			name: "fresh host, tun: device first, its sysctls last", desired: tun, actual: fresh(),
			want: []string{
				"create ipip device tunl0 (loads the ipip module)",
				"set link tunl0 up",
				"add address 192.0.2.20/32 to tunl0",
				"set net.ipv4.conf.all.arp_ignore = 1 (now 2)",
				"set net.ipv4.conf.all.arp_announce = 2 (now 0)",
				"set net.ipv4.conf.lo.arp_ignore = 1 (now 0)",
				"set net.ipv4.conf.lo.arp_announce = 2 (now 0)",
				"set net.ipv4.conf.all.rp_filter = 0 (now 1)",
				"set net.ipv4.conf.tunl0.rp_filter = 0 (now ?)",
				"set net.ipv4.conf.tunl0.arp_ignore = 1 (now ?)",
				"set net.ipv4.conf.tunl0.arp_announce = 2 (now ?)",
			},
		},
		{
			name: "reload from tun to dr undoes the tun-only changes, newest first", desired: dr, actual: converged(), owned: ownedTun,
			want: []string{
				"undo: set net.ipv4.conf.all.rp_filter back to 1",
				"undo: remove address 192.0.2.20/32 from tunl0",
				"undo: set link tunl0 down",
			},
		},
		{name: "VIP on another interface", desired: dr, actual: elsewhere, wantErr: ErrVIPElsewhere},
		{name: "tunnel name taken by another kind of device", desired: tun, actual: withVeth, wantErr: ErrNotTunnel},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ops, err := Plan(tc.desired, tc.actual, tc.owned)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil && ops != nil {
				t.Fatalf("a failed plan asked for changes: %v", opStrings(ops))
			}
			if diff := cmp.Diff(tc.want, opStrings(ops), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ops (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanErrorNamesServiceAndDevice(t *testing.T) {
	elsewhere := fresh()
	elsewhere.Addrs = append(elsewhere.Addrs, HostAddr{Dev: "eth0", Prefix: netip.MustParsePrefix("192.0.2.10/32")})
	_, err := Plan(drDesired(t), elsewhere, nil)
	if err == nil || !strings.Contains(err.Error(), "eth0") || !strings.Contains(err.Error(), `web`) {
		t.Errorf("error %v should name the device and the service", err)
	}
}
