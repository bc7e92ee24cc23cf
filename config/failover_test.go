package config

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fo is a valid [failover] at lines 3..4 after dir; cases append from line 5.
const fo = dir + "[failover]\nvirtual_router_id = 51\n"

func TestFailoverSyncAndAddressErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"sync ranges", fo + "[failover.sync]\nsync_id = 256\nport = 0\nttl = 0\nmax_len = 1000\n", []string{
			`t.toml:6:1: failover: sync: sync_id 256 is out of range 0..255`,
			`t.toml:7:1: failover: sync: port 0 is out of range 1..65535`,
			`t.toml:8:1: failover: sync: ttl 0 is out of range 1..255`,
			`t.toml:9:1: failover: sync: max_len 1000 is out of range 1024..65507`}},
		{"sync max_len over an IPv6 group", fo + "[failover.sync]\ngroup = \"ff02::81\"\nmax_len = 65500\n", []string{
			`t.toml:7:1: failover: sync: max_len 65500 is out of range 1024..65487`}},
		{"sync group not multicast", fo + "[failover.sync]\ngroup = \"10.0.0.1\"\n", []string{
			`t.toml:6:1: failover: sync: group 10.0.0.1 is not a multicast address`}},
		{"sync group not an address", fo + "[failover.sync]\ngroup = \"x\"\n", []string{
			`t.toml:6:1: failover: sync: group "x" is not an IPv4 or IPv6 address`}},
		{"sync bad interface and unknown key", fo + "[failover.sync]\ninterface = \"a/b\"\nsyncid = 3\n", []string{
			`t.toml:6:1: failover: sync: interface "a/b" is not a valid interface name`,
			`t.toml:7:1: failover: sync: unknown key "syncid"`}},
		{"sync not a table", fo + "sync = 1\n", []string{
			`t.toml:5:1: failover: sync must be a table, not integer 1`}},
		{"sync without any interface", "[failover]\nvirtual_router_id = 51\n[failover.sync]\n", []string{
			`t.toml:3:1: failover: sync: interface is required when [director] has none`}},
		{"address problems", fo + `[[failover.address]]
address = "10.0.1.1"
[[failover.address]]
address = "10.0.1.1/33"
[[failover.address]]
address = "224.0.0.1/24"
[[failover.address]]
interface = "eth1"
[[failover.address]]
address = "10.0.1.2/24"
interface = ""
gateway = true
[[failover.address]]
address = "10.0.1.2/28"
`, []string{
			`t.toml:6:1: failover: address 1: address "10.0.1.1" has no prefix length (write it as ADDR/LEN, e.g. "10.0.1.1/24")`,
			`t.toml:8:1: failover: address 2: address "10.0.1.1/33" is not an address with a prefix length such as "10.0.1.1/24"`,
			`t.toml:10:1: failover: address 3: address "224.0.0.1/24" is not a unicast address`,
			`t.toml:11:1: failover: address 4: address is required`,
			`t.toml:15:1: failover: address 5: interface "" must not be empty`,
			`t.toml:16:1: failover: address 5: unknown key "gateway"`,
			`t.toml:18:1: failover: address 6: address 10.0.1.2 repeats address 5`}},
		{"address is a VIP", fo + "[[failover.address]]\naddress = \"192.0.2.1/24\"\n" +
			"[[service]]\nname = \"web\"\naddress = \"192.0.2.1\"\nport = 80\nforwarding = \"dr\"\n", []string{
			`t.toml:6:1: failover: address 1: address 192.0.2.1 is the VIP of service "web", which follows the master already`}},
		{"address without any interface", "[failover]\nvirtual_router_id = 51\n[[failover.address]]\naddress = \"10.0.1.1/24\"\n", []string{
			`t.toml:3:1: failover: address 1: interface is required when [director] has none`}},
		{"address not a table", fo + "address = [1]\n", []string{
			`t.toml:5:12: failover: address 1 must be a table, not integer 1`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, parseErrs(t, tt.src)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFailoverSyncAndAddressValid(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		topo := mustParse(t, fo+"[failover.sync]\n[[failover.address]]\naddress = \"10.0.1.1/24\"\n")
		want := &Sync{Interface: "eth0", SyncID: 51, Group: DefaultSyncGroup, Port: 8848, TTL: 1}
		if diff := cmp.Diff(want, topo.Failover.Sync, addrs); diff != "" {
			t.Errorf("sync (-want +got):\n%s", diff)
		}
		wantAddr := []FailoverAddress{{Prefix: netip.MustParsePrefix("10.0.1.1/24"), Interface: "eth0"}}
		if diff := cmp.Diff(wantAddr, topo.Failover.Addresses, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
			t.Errorf("addresses (-want +got):\n%s", diff)
		}
	})
	t.Run("everything set", func(t *testing.T) {
		topo := mustParse(t, fo+`[[failover.address]]
address = "10.0.1.1/24"
interface = "eth1"
[[failover.address]]
address = "2001:db8:1::1/64"
interface = "eth1"
[failover.sync]
interface = "eth2"
sync_id = 0
group = "ff02::81"
port = 9000
ttl = 3
max_len = 8952
`)
		want := &Sync{Interface: "eth2", SyncID: 0, Group: netip.MustParseAddr("ff02::81"), Port: 9000, TTL: 3, MaxLen: 8952}
		if diff := cmp.Diff(want, topo.Failover.Sync, addrs); diff != "" {
			t.Errorf("sync (-want +got):\n%s", diff)
		}
		got := topo.Failover.Addresses
		if len(got) != 2 || got[0].Prefix.String() != "10.0.1.1/24" || got[1].Prefix.String() != "2001:db8:1::1/64" ||
			got[0].Interface != "eth1" || got[1].Interface != "eth1" {
			t.Errorf("addresses = %+v", got)
		}
	})
	t.Run("no sync", func(t *testing.T) {
		if topo := mustParse(t, fo); topo.Failover.Sync != nil || topo.Failover.Addresses != nil {
			t.Errorf("failover = %+v, want no sync and no addresses", topo.Failover)
		}
	})
}

// The new tables are plain TOML: the fast decoder takes them (and agrees
// with BurntSushi), whichever order they come in.
func TestFastDecodeFailoverTables(t *testing.T) {
	for _, src := range []string{
		fo + "[failover.sync]\nsync_id = 7\ngroup = \"224.0.0.81\"\n[[failover.address]]\naddress = \"10.0.1.1/24\"\ninterface = \"eth1\"\n",
		fo + "[[failover.address]]\naddress = \"10.0.1.1/24\"\n[[failover.address]]\naddress = \"10.0.1.2/24\"\n[failover.sync]\n",
	} {
		if !checkFast(t, []byte(src)) {
			t.Errorf("fastDecode gave up on %q", src)
		}
	}
	// [failover] after [failover.sync] is valid TOML that the fast path
	// leaves to BurntSushi; the result is the same.
	topo := mustParse(t, dir+"[failover.sync]\nttl = 2\n[failover]\nvirtual_router_id = 9\n")
	if topo.Failover.Sync == nil || topo.Failover.Sync.TTL != 2 || topo.Failover.Sync.SyncID != 9 {
		t.Errorf("failover = %+v", topo.Failover)
	}
}
