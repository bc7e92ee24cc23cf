package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const bgpOK = dir + `[bgp]
asn = 65010
router_id = "10.0.0.2"
vip_interface = "dummy0"

[[bgp.peer]]
address = "10.0.0.1"
asn = 65000
hold_time = "9s"
bfd = true
password_file = "/etc/golvs/bgp.key"

[[bgp.peer]]
address = "2001:db8::1"
asn = 4200000000
`

func TestBGPValid(t *testing.T) {
	topo := mustParse(t, bgpOK)
	want := &BGP{
		ASN:          65010,
		RouterID:     netip.MustParseAddr("10.0.0.2"),
		VIPInterface: "dummy0",
		LeaveGrace:   DefaultLeaveGrace,
		Peers: []BGPPeer{
			{Address: netip.MustParseAddr("10.0.0.1"), ASN: 65000, HoldTime: 9 * time.Second, BFD: true, PasswordFile: "/etc/golvs/bgp.key"},
			{Address: netip.MustParseAddr("2001:db8::1"), ASN: 4200000000},
		},
	}
	if diff := cmp.Diff(want, topo.BGP, addrs); diff != "" {
		t.Errorf("BGP (-want +got):\n%s", diff)
	}
	if !checkFast(t, []byte(bgpOK)) {
		t.Error("fastDecode gave up on [bgp] with [[bgp.peer]]")
	}
}

func TestBGPDefaults(t *testing.T) {
	topo := mustParse(t, dir+"[bgp]\nasn = 1\n[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 2\n")
	b := topo.BGP
	if b.VIPInterface != "lo" || b.RouterID.IsValid() || b.Peers[0].HoldTime != 0 || b.Peers[0].BFD {
		t.Errorf("defaults = %+v, want vip_interface lo, no router_id, hold_time 0, no bfd", b)
	}
	if mustParse(t, dir).BGP != nil {
		t.Error("a file without [bgp] has a BGP")
	}
}

func TestBGPErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"no asn, no peer", dir + "[bgp]\n", []string{
			`t.toml:3:1: bgp: asn is required`,
			`t.toml:3:1: bgp: at least one [[bgp.peer]] is required`,
		}},
		{"bad values", dir + `[bgp]
asn = 0
router_id = "2001:db8::1"
vip_interface = "a/b"
speed = 1
[[bgp.peer]]
address = "10.0.0.300"
asn = -1
hold_time = "2s"
bfd = "yes"
password_file = "bgp.key"
colour = "red"
[[bgp.peer]]
hold_time = "3500ms"
`, []string{
			`t.toml:4:1: bgp: asn 0 is out of range 1..4294967295`,
			`t.toml:5:1: bgp: router_id "2001:db8::1" is not a non-zero IPv4 address`,
			`t.toml:6:1: bgp: vip_interface "a/b" is not a valid interface name`,
			`t.toml:7:1: bgp: unknown key "speed"`,
			`t.toml:9:1: bgp: peer 1: address "10.0.0.300" is not an IPv4 or IPv6 address`,
			`t.toml:10:1: bgp: peer 1: asn -1 is out of range 1..4294967295`,
			`t.toml:11:1: bgp: peer 1: hold_time 2s is out of range 3s..65535s`,
			`t.toml:12:1: bgp: peer 1: bfd must be a boolean, not string "yes"`,
			`t.toml:13:1: bgp: peer 1: password_file "bgp.key" must be an absolute path`,
			`t.toml:14:1: bgp: peer 1: unknown key "colour"`,
			`t.toml:15:1: bgp: peer 2: address is required`,
			`t.toml:15:1: bgp: peer 2: asn is required`,
			`t.toml:16:1: bgp: peer 2: hold_time 3.5s is not a whole number of seconds`,
		}},
		{"duplicate peer", dir + `[bgp]
asn = 1
[[bgp.peer]]
address = "10.0.0.1"
asn = 2
[[bgp.peer]]
address = "10.0.0.1"
asn = 3
`, []string{`t.toml:9:1: bgp: peer 2: address 10.0.0.1 is already used by peer 1`}},
		{"router id needs an interface", "[bgp]\nasn = 1\n[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 2\n", []string{
			`t.toml:1:1: bgp: router_id is required when [director] names no interface to take it from`,
		}},
		{"failover and bgp for one VIP", svc + `[failover]
virtual_router_id = 1
[bgp]
asn = 1
[[bgp.peer]]
address = "10.0.0.1"
asn = 2
`, []string{`t.toml:10:1: bgp: [bgp] and [failover] would both carry VIP 192.0.2.1 (service "web"): a VIP is either moved by VRRP or announced by BGP`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseErrs(t, tt.src)
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestBGPReload: a reload keeps [bgp] and gives what a fresh load gives,
// also when it adds a service to a file with both [failover] and [bgp].
func TestBGPReload(t *testing.T) {
	const web = "[[service]]\nname = \"web\"\naddress = \"192.0.2.1\"\nport = 80\nforwarding = \"dr\"\n"
	const web2 = "[[service]]\nname = \"web2\"\naddress = \"192.0.2.2\"\nport = 80\nforwarding = \"dr\"\n"
	path := filepath.Join(t.TempDir(), "t.toml")
	for _, head := range []string{bgpOK, dir + "[failover]\nvirtual_router_id = 1\n[bgp]\nasn = 1\n[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 2\n" +
		// A fwmark service has no VIP of its own: allowed with both.
		"[[service]]\nname = \"mark\"\nfwmark = 7\nforwarding = \"dr\"\n[[service.backend]]\naddress = \"10.0.1.1\"\n"} {
		if err := os.WriteFile(path, []byte(head), 0o644); err != nil {
			t.Fatal(err)
		}
		prev, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		next, err := reloadVsLoad(t, path, prev, head+web)
		if err == nil {
			if next.BGP == nil {
				t.Fatal("reload lost [bgp]")
			}
			reloadVsLoad(t, path, next, head+web+web2)
		}
	}
}
