package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// addrs lets cmp compare netip values by ==.
var addrs = cmp.Options{cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{}), cmpopts.IgnoreUnexported(Topology{})}

// dir is the [director] every service case starts with; a case's own
// lines therefore start at line 3.
const dir = "[director]\ninterface = \"eth0\"\n"

// svc is a valid service at lines 3..8 to which cases append lines.
const svc = dir + `[[service]]
name = "web"
address = "192.0.2.1"
port = 80
forwarding = "nat"
`

// parseErrs parses src and returns the error lines, failing the test when
// the error is not Errors.
func parseErrs(t *testing.T, src string) []string {
	t.Helper()
	_, err := Parse("t.toml", []byte(src))
	if err == nil {
		return nil
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("Parse error is %T, not Errors: %v", err, err)
	}
	if got, want := err.Error(), strings.Join(linesOf(es), "\n"); got != want {
		t.Errorf("Errors.Error() = %q, want the errors one per line %q", got, want)
	}
	return linesOf(es)
}

func linesOf(es Errors) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Error())
	}
	return out
}

func mustParse(t *testing.T, src string) *Topology {
	t.Helper()
	topo, err := Parse("t.toml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return topo
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		// The file as a whole.
		{"syntax error", "a = 1\nb = = 2\n", []string{
			`t.toml:2:5: expected value but found '=' instead`}},
		{"unknown top-level key", "\n  foo = 1\n", []string{
			`t.toml:2:3: unknown key "foo"`}},
		{"director not a table", "director = 1\n", []string{
			`t.toml:1:1: director must be a table, not integer 1`}},
		{"service not an array of tables", dir + "[service]\nname = \"x\"\n", []string{
			`t.toml:3:1: service must be an array of tables, not table`}},
		{"service element not a table", "service = [1]\n" + dir, []string{
			`t.toml:1:12: service 1 must be a table, not integer 1`}},

		// [director]
		{"no director with services", "[[service]]\nname = \"a\"\naddress = \"192.0.2.1\"\nport = 1\nforwarding = \"nat\"\n", []string{
			`t.toml:1:1: director: interface is required when services are defined`}},
		{"director without interface", "[director]\nresync_interval = \"1s\"\n[[service]]\nname = \"a\"\naddress = \"192.0.2.1\"\nport = 1\nforwarding = \"nat\"\n", []string{
			`t.toml:1:1: director: interface is required when services are defined`}},
		{"interface too long", "[director]\ninterface = \"eth0123456789abc\"\n", []string{
			`t.toml:2:1: director: interface "eth0123456789abc" is longer than 15 bytes`}},
		{"interface empty", "[director]\ninterface = \"\"\n", []string{
			`t.toml:2:1: director: interface "" must not be empty`}},
		{"interface slash", "[director]\ninterface = \"a/b\"\n", []string{
			`t.toml:2:1: director: interface "a/b" is not a valid interface name`}},
		{"interface not a string", "[director]\ninterface = 0\n", []string{
			`t.toml:2:1: director: interface must be a string, not integer 0`}},
		{"resync zero", dir + "resync_interval = \"0s\"\n", []string{
			`t.toml:3:1: director: resync_interval 0s must be positive`}},
		{"resync garbage", dir + "resync_interval = \"soon\"\n", []string{
			`t.toml:3:1: director: resync_interval "soon" is not a duration such as "2s" or "250ms"`}},
		{"resync integer", dir + "resync_interval = 30\n", []string{
			`t.toml:3:1: director: resync_interval must be a string, not integer 30`}},
		{"control socket empty", dir + "control_socket = \"\"\n", []string{
			`t.toml:3:1: director: control_socket must not be empty`}},
		{"control socket too long", dir + "control_socket = \"/" + strings.Repeat("x", 107) + "\"\n", []string{
			`t.toml:3:1: director: control_socket is longer than a unix socket path may be (107 bytes)`}},
		{"metrics no port", dir + "metrics_address = \"127.0.0.1\"\n", []string{
			`t.toml:3:1: director: metrics_address "127.0.0.1" is not HOST:PORT (use [ADDR]:PORT for IPv6)`}},
		{"metrics port 0", dir + "metrics_address = \"127.0.0.1:0\"\n", []string{
			`t.toml:3:1: director: metrics_address "127.0.0.1:0" has a port that is not 1..65535`}},
		{"metrics bad host", dir + "metrics_address = \"a b:80\"\n", []string{
			`t.toml:3:1: director: metrics_address "a b:80" has a host that is neither an IP address nor a host name`}},
		{"state file relative", dir + "state_file = \"golvs.state\"\n", []string{
			`t.toml:3:1: director: state_file "golvs.state" must be an absolute path`}},
		{"director unknown key", dir + "interfaces = \"eth1\"\n", []string{
			`t.toml:3:1: director: unknown key "interfaces"`}},

		// [failover]
		{"failover without vrid", "[failover]\npriority = 100\n", []string{
			`t.toml:1:1: failover: virtual_router_id is required`}},
		{"vrid 0", "[failover]\nvirtual_router_id = 0\n", []string{
			`t.toml:2:1: failover: virtual_router_id 0 is out of range 1..255`}},
		{"vrid 256", "[failover]\nvirtual_router_id = 256\n", []string{
			`t.toml:2:1: failover: virtual_router_id 256 is out of range 1..255`}},
		{"priority 255 and 0", "[failover]\nvirtual_router_id = 1\npriority = 255\n[failover2]\n", []string{
			`t.toml:3:1: failover: priority 255 is out of range 1..254`,
			`t.toml:4:1: unknown key "failover2"`}},
		{"priority 0", "[failover]\nvirtual_router_id = 1\npriority = 0\n", []string{
			`t.toml:3:1: failover: priority 0 is out of range 1..254`}},
		{"advert too short", "[failover]\nvirtual_router_id = 1\nadvert_interval = \"5ms\"\n", []string{
			`t.toml:3:1: failover: advert_interval 5ms is out of range 10ms..40.95s`}},
		{"advert too long", "[failover]\nvirtual_router_id = 1\nadvert_interval = \"41s\"\n", []string{
			`t.toml:3:1: failover: advert_interval 41s is out of range 10ms..40.95s`}},
		{"advert not centiseconds", "[failover]\nvirtual_router_id = 1\nadvert_interval = \"15ms\"\n", []string{
			`t.toml:3:1: failover: advert_interval 15ms is not a multiple of 10ms`}},
		{"preempt_delay negative", "[failover]\nvirtual_router_id = 1\npreempt_delay = \"-1s\"\n", []string{
			`t.toml:3:1: failover: preempt_delay -1s must not be negative`}},
		{"preempt_delay too long", "[failover]\nvirtual_router_id = 1\npreempt_delay = \"2h\"\n", []string{
			`t.toml:3:1: failover: preempt_delay 2h0m0s is over 1h0m0s`}},
		{"preempt not bool", "[failover]\nvirtual_router_id = 1\npreempt = \"yes\"\n", []string{
			`t.toml:3:1: failover: preempt must be a boolean, not string "yes"`}},
		{"peers", "[failover]\nvirtual_router_id = 1\npeers = [\"x\", \"10.0.0.1\", \"2001:db8::1\", \"10.0.0.1\", 7]\n", []string{
			`t.toml:3:1: failover: peers[4] must be a string, not integer 7`}},
		{"peer problems", "[failover]\nvirtual_router_id = 1\npeers = [\"x\", \"10.0.0.1\", \"2001:db8::1\", \"10.0.0.1\"]\n", []string{
			`t.toml:3:1: failover: peers[0] "x" is not an IPv4 or IPv6 address`,
			`t.toml:3:1: failover: peers[2] 2001:db8::1 is IPv6 but peers[1] is IPv4; all peers must be one family`,
			`t.toml:3:1: failover: peers[3] 10.0.0.1 repeats peers[1]`}},
		{"relative key and notify", "[failover]\nvirtual_router_id = 1\nauth_key_file = \"vrrp.key\"\nnotify = \"notify.sh\"\n", []string{
			`t.toml:3:1: failover: auth_key_file "vrrp.key" must be an absolute path`,
			`t.toml:4:1: failover: notify "notify.sh" must be an absolute path`}},
		{"failover unknown key", "[failover]\nvirtual_router_id = 1\nvrid = 2\n", []string{
			`t.toml:3:1: failover: unknown key "vrid"`}},

		// [realserver]
		{"realserver", "[realserver]\nagent_address = \"9471\"\ntunnel_interface = \"\"\nx = 1\n", []string{
			`t.toml:2:1: realserver: agent_address "9471" is not HOST:PORT (use [ADDR]:PORT for IPv6)`,
			`t.toml:3:1: realserver: tunnel_interface "" must not be empty`,
			`t.toml:4:1: realserver: unknown key "x"`}},

		// [[service]] identity
		{"service without name", dir + "[[service]]\naddress = \"192.0.2.1\"\nport = 80\nforwarding = \"nat\"\n", []string{
			`t.toml:3:1: service 1: name is required`}},
		{"service empty name", dir + "[[service]]\nname = \"\"\naddress = \"192.0.2.1\"\nport = 80\nforwarding = \"nat\"\n", []string{
			`t.toml:4:1: service 1: name must not be empty`}},
		{"service without address and port", dir + "[[service]]\nname = \"web\"\nforwarding = \"nat\"\n", []string{
			`t.toml:3:1: service "web": address (or fwmark) is required`,
			`t.toml:3:1: service "web": port is required`}},
		{"address not an IP", dir + "[[service]]\nname = \"web\"\naddress = \"300.1.1.1\"\nport = 80\nforwarding = \"nat\"\n", []string{
			`t.toml:5:1: service "web": address "300.1.1.1" is not an IPv4 or IPv6 address`}},
		{"address with zone", dir + "[[service]]\nname = \"web\"\naddress = \"fe80::1%eth0\"\nport = 80\nforwarding = \"nat\"\n", []string{
			`t.toml:5:1: service "web": address "fe80::1%eth0" must not have a zone`}},
		{"address unspecified", dir + "[[service]]\nname = \"web\"\naddress = \"0.0.0.0\"\nport = 80\nforwarding = \"nat\"\n", []string{
			`t.toml:5:1: service "web": address "0.0.0.0" is not a unicast address`}},
		{"address v4-mapped", dir + "[[service]]\nname = \"web\"\naddress = \"::ffff:192.0.2.1\"\nport = 80\nforwarding = \"nat\"\n", []string{
			`t.toml:5:1: service "web": address "::ffff:192.0.2.1" is an IPv4-mapped IPv6 address; write the IPv4 form`}},
		{"port too big", dir + "[[service]]\nname = \"web\"\naddress = \"192.0.2.1\"\nport = 70000\nforwarding = \"nat\"\n", []string{
			`t.toml:6:1: service "web": port 70000 is out of range 0..65535`}},
		{"port negative", dir + "[[service]]\nname = \"web\"\naddress = \"192.0.2.1\"\nport = -1\nforwarding = \"nat\"\n", []string{
			`t.toml:6:1: service "web": port -1 is out of range 0..65535`}},
		{"port 0 without persistence", dir + "[[service]]\nname = \"web\"\naddress = \"192.0.2.1\"\nport = 0\nforwarding = \"dr\"\n", []string{
			`t.toml:6:1: service "web": port 0 (all ports) needs persistence`}},
		{"protocol", svc + "protocol = \"icmp\"\n", []string{
			`t.toml:8:1: service "web": protocol "icmp" is not one of tcp, udp or sctp`}},
		{"scheduler", svc + "scheduler = \"random\"\n", []string{
			`t.toml:8:1: service "web": scheduler "random" is not one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh or twos`}},
		{"sh flag without sh", svc + "scheduler_flags = [\"sh-port\"]\n", []string{
			`t.toml:8:1: service "web": scheduler flag "sh-port" is only valid with scheduler "sh"`}},
		{"mh flag with sh", svc + "scheduler = \"sh\"\nscheduler_flags = [\"mh-fallback\"]\n", []string{
			`t.toml:9:1: service "web": scheduler flag "mh-fallback" is only valid with scheduler "mh"`}},
		{"unknown and repeated flags", svc + "scheduler_flags = [\"bogus\", \"flag-1\", \"flag-1\"]\n", []string{
			`t.toml:8:1: service "web": scheduler flag "bogus" is not one of sh-fallback, sh-port, mh-fallback, mh-port, flag-1, flag-2 or flag-3`,
			`t.toml:8:1: service "web": scheduler flag "flag-1" is repeated`}},
		{"forwarding missing", dir + "[[service]]\nname = \"web\"\naddress = \"192.0.2.1\"\nport = 80\n", []string{
			`t.toml:3:1: service "web": forwarding is required (nat, dr or tun)`}},
		{"forwarding bad", dir + "[[service]]\nname = \"web\"\naddress = \"192.0.2.1\"\nport = 80\nforwarding = \"gre\"\n", []string{
			`t.toml:7:1: service "web": forwarding "gre" is not one of nat, dr or tun`}},
		{"persistence too short", svc + "persistence = \"500ms\"\n", []string{
			`t.toml:8:1: service "web": persistence 500ms must be at least 1s`}},
		{"persistence fraction", svc + "persistence = \"1500ms\"\n", []string{
			`t.toml:8:1: service "web": persistence 1.5s is not a whole number of seconds`}},
		{"netmask without persistence", svc + "persistence_netmask = \"255.255.255.0\"\n", []string{
			`t.toml:8:1: service "web": persistence_netmask needs persistence`}},
		{"netmask not contiguous", svc + "persistence = \"60s\"\npersistence_netmask = \"255.0.255.0\"\n", []string{
			`t.toml:9:1: service "web": persistence_netmask "255.0.255.0" is not a dotted IPv4 netmask such as "255.255.255.0"`}},
		{"prefix on IPv4", svc + "persistence = \"60s\"\npersistence_netmask = \"/24\"\n", []string{
			`t.toml:9:1: service "web": persistence_netmask "/24" is not a dotted IPv4 netmask such as "255.255.255.0"`}},
		{"IPv6 prefix too long", dir + "[[service]]\nname = \"v6\"\naddress = \"2001:db8::1\"\nport = 80\nforwarding = \"dr\"\npersistence = \"60s\"\npersistence_netmask = \"/129\"\n", []string{
			`t.toml:9:1: service "v6": persistence_netmask "/129" is not an IPv6 prefix length such as "/64"`}},
		{"IPv6 dotted netmask", dir + "[[service]]\nname = \"v6\"\naddress = \"2001:db8::1\"\nport = 80\nforwarding = \"dr\"\npersistence = \"60s\"\npersistence_netmask = \"255.255.255.0\"\n", []string{
			`t.toml:9:1: service "v6": persistence_netmask "255.255.255.0" is not an IPv6 prefix length such as "/64"`}},
		{"quorum above backends", svc + "quorum = 2\n[[service.backend]]\naddress = \"10.0.0.1\"\n", []string{
			`t.toml:8:1: service "web": quorum 2 is out of range 0..1`}},
		{"quorum negative", svc + "quorum = -1\n", []string{
			`t.toml:8:1: service "web": quorum -1 is out of range 0..0`}},
		{"sorry server without port", svc + "sorry_server = \"10.0.0.1\"\n", []string{
			`t.toml:8:1: service "web": sorry_server "10.0.0.1" is not ADDR:PORT (use [ADDR]:PORT for IPv6)`}},
		{"sorry server bare IPv6", svc + "sorry_server = \"2001:db8::1:80\"\n", []string{
			`t.toml:8:1: service "web": sorry_server "2001:db8::1:80" is not ADDR:PORT (use [ADDR]:PORT for IPv6)`}},
		{"sorry server port 0", svc + "sorry_server = \"10.0.0.1:0\"\n", []string{
			`t.toml:8:1: service "web": sorry_server "10.0.0.1:0" has port 0`}},
		{"sorry server family", svc + "sorry_server = \"[2001:db8::1]:80\"\n", []string{
			`t.toml:8:1: service "web": sorry_server 2001:db8::1 is IPv6 but the service is IPv4; only tun forwarding can cross address families`}},
		{"sorry server dr port", dir + "[[service]]\nname = \"web\"\naddress = \"192.0.2.1\"\nport = 80\nforwarding = \"dr\"\nsorry_server = \"192.0.2.9:8080\"\n", []string{
			`t.toml:8:1: service "web": sorry_server port 8080 must equal the service port 80 for dr forwarding`}},
		{"on_failure", svc + "on_failure = \"drop\"\n", []string{
			`t.toml:8:1: service "web": on_failure "drop" is not one of weight0 or remove`}},
		{"drain negative", svc + "drain_timeout = \"-1s\"\n", []string{
			`t.toml:8:1: service "web": drain_timeout -1s must not be negative`}},
		{"service unknown key", svc + "vip = \"192.0.2.1\"\n", []string{
			`t.toml:8:1: service "web": unknown key "vip"`}},

		// fwmark services
		{"fwmark with address and port", dir + "[[service]]\nname = \"m\"\nfwmark = 1\naddress = \"192.0.2.1\"\nport = 80\nforwarding = \"dr\"\n", []string{
			`t.toml:6:1: service "m": address must not be set for a fwmark service`,
			`t.toml:7:1: service "m": port must not be set for a fwmark service`}},
		{"fwmark 0", dir + "[[service]]\nname = \"m\"\nfwmark = 0\nforwarding = \"dr\"\n", []string{
			`t.toml:5:1: service "m": fwmark 0 is out of range 1..4294967295`}},
		{"fwmark too big", dir + "[[service]]\nname = \"m\"\nfwmark = 4294967296\nforwarding = \"dr\"\n", []string{
			`t.toml:5:1: service "m": fwmark 4294967296 is out of range 1..4294967295`}},
		{"fwmark mixed families", dir + "[[service]]\nname = \"m\"\nfwmark = 1\nforwarding = \"tun\"\n" +
			"[[service.backend]]\naddress = \"10.0.0.1\"\n[[service.backend]]\naddress = \"2001:db8::1\"\n", []string{
			`t.toml:10:1: service "m": backend 2: address 2001:db8::1 is IPv6 but backend 1 is IPv4; a fwmark service's backends must all be one family`}},
		{"fwmark duplicate", dir + "[[service]]\nname = \"a\"\nfwmark = 7\nforwarding = \"dr\"\n[[service]]\nname = \"b\"\nfwmark = 7\nforwarding = \"dr\"\n", []string{
			`t.toml:9:1: service "b": fwmark 7 is already used by service 1 ("a")`}},

		// Across services
		{"duplicate name", svc + "[[service]]\nname = \"web\"\naddress = \"192.0.2.2\"\nport = 80\nforwarding = \"nat\"\n", []string{
			`t.toml:9:1: service "web": name "web" is already used by service 1`}},
		{"duplicate address port protocol", svc + "[[service]]\nname = \"web2\"\naddress = \"192.0.2.1\"\nport = 80\nforwarding = \"dr\"\n", []string{
			`t.toml:10:1: service "web2": address 192.0.2.1 port 80/tcp is already used by service 1 ("web")`}},

		// [[service.backend]]
		{"backend without address", svc + "[[service.backend]]\nport = 80\n", []string{
			`t.toml:8:1: service "web": backend 1: address is required`}},
		{"backend bad address", svc + "[[service.backend]]\naddress = \"10.0.0\"\n", []string{
			`t.toml:9:1: service "web": backend 1: address "10.0.0" is not an IPv4 or IPv6 address`}},
		{"weight negative", svc + "[[service.backend]]\naddress = \"10.0.0.1\"\n[[service.backend]]\naddress = \"10.0.0.2\"\n    weight = -1\n", []string{
			`t.toml:12:5: service "web": backend 2: weight -1 is out of range 0..65535`}},
		{"weight too big", svc + "[[service.backend]]\naddress = \"10.0.0.1\"\nweight = 65536\n", []string{
			`t.toml:10:1: service "web": backend 1: weight 65536 is out of range 0..65535`}},
		{"weight string", svc + "[[service.backend]]\naddress = \"10.0.0.1\"\nweight = \"x\"\n", []string{
			`t.toml:10:1: service "web": backend 1: weight must be an integer, not string "x"`}},
		{"weight of other types", svc + "[[service.backend]]\naddress = \"10.0.0.1\"\nweight = true\n[[service.backend]]\naddress = \"10.0.0.2\"\nweight = [1]\n" +
			"[[service.backend]]\naddress = \"10.0.0.3\"\nweight = 1979-05-27\n[[service.backend]]\naddress = \"10.0.0.4\"\nweight = {}\n", []string{
			`t.toml:10:1: service "web": backend 1: weight must be an integer, not boolean true`,
			`t.toml:13:1: service "web": backend 2: weight must be an integer, not array`,
			`t.toml:16:1: service "web": backend 3: weight must be an integer, not datetime`,
			`t.toml:19:1: service "web": backend 4: weight must be an integer, not table`}},
		{"weight float", svc + "[[service.backend]]\naddress = \"10.0.0.1\"\nweight = 1.5\n", []string{
			`t.toml:10:1: service "web": backend 1: weight must be an integer, not float 1.5`}},
		{"backend port 0", svc + "[[service.backend]]\naddress = \"10.0.0.1\"\nport = 0\n", []string{
			`t.toml:10:1: service "web": backend 1: port 0 is out of range 1..65535`}},
		{"dr backend port", dir + "[[service]]\nname = \"web\"\naddress = \"192.0.2.1\"\nport = 80\nforwarding = \"dr\"\n[[service.backend]]\naddress = \"192.0.2.2\"\nport = 8080\n", []string{
			`t.toml:10:1: service "web": backend 1: port 8080 must equal the service port 80 for dr forwarding`}},
		{"tun override backend port", svc + "[[service.backend]]\naddress = \"10.0.0.1\"\nport = 8080\nforwarding = \"tun\"\n", []string{
			`t.toml:10:1: service "web": backend 1: port 8080 must equal the service port 80 for tun forwarding`}},
		{"nat across families", svc + "[[service.backend]]\naddress = \"2001:db8::2\"\n", []string{
			`t.toml:9:1: service "web": backend 1: address 2001:db8::2 is IPv6 but the service address is IPv4; only tun forwarding can cross address families`}},
		{"dr IPv4 under IPv6", dir + "[[service]]\nname = \"v6\"\naddress = \"2001:db8::1\"\nport = 80\nforwarding = \"dr\"\n[[service.backend]]\naddress = \"192.0.2.2\"\n", []string{
			`t.toml:9:1: service "v6": backend 1: address 192.0.2.2 is IPv4 but the service address is IPv6; only tun forwarding can cross address families`}},
		{"thresholds", svc + "[[service.backend]]\naddress = \"10.0.0.1\"\nupper_threshold = -1\n[[service.backend]]\naddress = \"10.0.0.2\"\nupper_threshold = 10\nlower_threshold = 11\n", []string{
			`t.toml:10:1: service "web": backend 1: upper_threshold -1 is out of range 0..4294967295`,
			`t.toml:14:1: service "web": backend 2: lower_threshold 11 must not exceed upper_threshold 10`}},
		{"duplicate backend", svc + "[[service.backend]]\naddress = \"10.0.0.1\"\n[[service.backend]]\naddress = \"10.0.0.1\"\nport = 80\n", []string{
			`t.toml:11:1: service "web": backend 2: 10.0.0.1:80 repeats backend 1`}},
		{"no follow-on errors from a bad service port or forwarding", dir + "[[service]]\nname = \"web\"\naddress = \"192.0.2.1\"\nport = 70000\nforwarding = \"dsr\"\n" +
			"[[service.backend]]\naddress = \"2001:db8::2\"\nport = 80\nforwarding = \"dr\"\n[[service.backend]]\naddress = \"2001:db8::3\"\n", []string{
			`t.toml:6:1: service "web": port 70000 is out of range 0..65535`,
			`t.toml:7:1: service "web": forwarding "dsr" is not one of nat, dr or tun`,
			`t.toml:9:1: service "web": backend 1: address 2001:db8::2 is IPv6 but the service address is IPv4; only tun forwarding can cross address families`}},
		{"backend forwarding", svc + "[[service.backend]]\naddress = \"10.0.0.1\"\nforwarding = \"masq\"\n", []string{
			`t.toml:10:1: service "web": backend 1: forwarding "masq" is not one of nat, dr or tun`}},
		{"backend unknown key", svc + "[[service.backend]]\naddress = \"10.0.0.1\"\nWeight = 2\n", []string{
			`t.toml:10:1: service "web": backend 1: unknown key "Weight"`}},

		// [service.check]
		{"check without type", svc + "[service.check]\ninterval = \"1s\"\n", []string{
			`t.toml:8:1: service "web": check: type is required`}},
		{"check bad type", svc + "[service.check]\ntype = \"icmp\"\n", []string{
			`t.toml:9:1: service "web": check: type "icmp" is not one of tcp, http, https, udp, dns, exec, agent or none`}},
		{"timeout above interval", svc + "[service.check]\ntype = \"tcp\"\ninterval = \"1s\"\ntimeout = \"2s\"\n", []string{
			`t.toml:11:1: service "web": check: timeout 2s must not exceed interval 1s`}},
		{"interval below default timeout", svc + "[service.check]\ntype = \"tcp\"\ninterval = \"500ms\"\n", []string{
			`t.toml:10:1: service "web": check: timeout 1s must not exceed interval 500ms`}},
		{"interval and timeout not positive", svc + "[service.check]\ntype = \"tcp\"\ninterval = \"0s\"\ntimeout = \"-1s\"\n", []string{
			`t.toml:10:1: service "web": check: interval 0s must be positive`,
			`t.toml:11:1: service "web": check: timeout -1s must be positive`}},
		{"rise and fall", svc + "[service.check]\ntype = \"tcp\"\nrise = 0\nfall = \"3\"\n", []string{
			`t.toml:10:1: service "web": check: rise 0 is out of range 1..1000`,
			`t.toml:11:1: service "web": check: fall must be an integer, not string "3"`}},
		{"check port", svc + "[service.check]\ntype = \"tcp\"\nport = 65536\n", []string{
			`t.toml:10:1: service "web": check: port 65536 is out of range 0..65535`}},
		{"http path and status", svc + "[service.check]\ntype = \"http\"\npath = \"healthz\"\nexpect_status = [200, 99, 600]\ntls_verify = true\n", []string{
			`t.toml:10:1: service "web": check: path "healthz" must start with "/"`,
			`t.toml:11:1: service "web": check: expect_status 99 is out of range 100..599`,
			`t.toml:11:1: service "web": check: expect_status 600 is out of range 100..599`,
			`t.toml:12:1: service "web": check: key tls_verify is only valid for https checks`}},
		{"http empty status", svc + "[service.check]\ntype = \"https\"\nexpect_status = []\nhost = \"\"\n", []string{
			`t.toml:10:1: service "web": check: expect_status must not be empty`,
			`t.toml:11:1: service "web": check: host must not be empty`}},
		{"keys of other check types", svc + "[service.check]\ntype = \"tcp\"\npath = \"/\"\nsend = \"x\"\nquery = \"a.\"\ncommand = [\"/bin/true\"]\n", []string{
			`t.toml:10:1: service "web": check: key path is only valid for http/https checks`,
			`t.toml:11:1: service "web": check: key send is only valid for udp checks`,
			`t.toml:12:1: service "web": check: key query is only valid for dns checks`,
			`t.toml:13:1: service "web": check: key command is only valid for exec checks`}},
		{"udp without payloads", svc + "[service.check]\ntype = \"udp\"\n", []string{
			`t.toml:8:1: service "web": check: send is required for udp checks`,
			`t.toml:8:1: service "web": check: expect is required for udp checks`}},
		{"udp bad payloads", svc + "[service.check]\ntype = \"udp\"\nsend = \"hex:zz\"\nexpect = \"\"\n", []string{
			`t.toml:10:1: service "web": check: send "hex:zz" is not valid hex after "hex:"`,
			`t.toml:11:1: service "web": check: expect must not be empty`}},
		{"dns without query", svc + "[service.check]\ntype = \"dns\"\nquery_type = \"a\"\n", []string{
			`t.toml:8:1: service "web": check: query is required for dns checks`,
			`t.toml:10:1: service "web": check: query_type "a" is not one of A, AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT or ANY`}},
		{"dns bad query", svc + "[service.check]\ntype = \"dns\"\nquery = \"a..b\"\n", []string{
			`t.toml:10:1: service "web": check: query "a..b" is not a domain name`}},
		{"exec without command", svc + "[service.check]\ntype = \"exec\"\n", []string{
			`t.toml:8:1: service "web": check: command is required for exec checks`}},
		{"exec empty command", svc + "[service.check]\ntype = \"exec\"\ncommand = []\n", []string{
			`t.toml:10:1: service "web": check: command must not be empty`}},
		{"exec relative command", svc + "[service.check]\ntype = \"exec\"\ncommand = [\"check-db\", \"-v\"]\n", []string{
			`t.toml:10:1: service "web": check: command[0] "check-db" must be an absolute path`}},
		{"check unknown key", svc + "[service.check]\ntype = \"none\"\nretries = 3\n", []string{
			`t.toml:10:1: service "web": check: unknown key "retries"`}},
		{"check not a table", svc + "check = \"tcp\"\n", []string{
			`t.toml:8:1: service "web": check must be a table, not string "tcp"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseErrs(t, tt.src)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAllErrorsReported checks that one file's problems are all listed,
// in file order, including several in one table and across tables.
func TestAllErrorsReported(t *testing.T) {
	src := `[director]
interface = "eth0"
bogus = 1

[[service]]
name = "web"
address = "192.0.2.1"
port = 80
forwarding = "dr"
  [service.check]
  type = "tcp"
  path = "/x"
  [[service.backend]]
  address = "192.0.2.2"
  weight = -1
  [[service.backend]]
  address = "2001:db8::1"
  port = 81
  Weight = "x"

[[service]]
name = "web"
address = "192.0.2.1"
port = 80
forwarding = "nat"
backend = [ {address = "10.0.0.1", port = 0}, { address = "x" } ]
`
	want := []string{
		`t.toml:3:1: director: unknown key "bogus"`,
		`t.toml:12:3: service "web": check: key path is only valid for http/https checks`,
		`t.toml:15:3: service "web": backend 1: weight -1 is out of range 0..65535`,
		`t.toml:17:3: service "web": backend 2: address 2001:db8::1 is IPv6 but the service address is IPv4; only tun forwarding can cross address families`,
		`t.toml:18:3: service "web": backend 2: port 81 must equal the service port 80 for dr forwarding`,
		`t.toml:19:3: service "web": backend 2: unknown key "Weight"`,
		`t.toml:22:1: service "web": name "web" is already used by service 1`,
		`t.toml:23:1: service "web": address 192.0.2.1 port 80/tcp is already used by service 1 ("web")`,
		`t.toml:26:36: service "web": backend 1: port 0 is out of range 1..65535`,
		`t.toml:26:49: service "web": backend 2: address "x" is not an IPv4 or IPv6 address`,
	}
	if diff := cmp.Diff(want, parseErrs(t, src)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

// TestPositions checks that keys are placed correctly past the TOML
// constructs the position index has to step over.
func TestPositions(t *testing.T) {
	src := `# comment with [brackets] and key = "value"
[director]
interface = "eth0"
"control_socket" = """
multi-line
weight = 1
"""
metrics_address = '''
[[service]]
'''

[[ service ]]   # spaced header
name = "a"
address = "192.0.2.1"
port = 80
forwarding = "nat"
backend = [
  { address = "10.0.0.1", weight = 1 },   # first
  # a comment between elements
  { address = "10.0.0.2", "weight" = 70000 },
]
check.type = "tcp"
check.rise = 0

[[service]]
name = 'b'
address = "192.0.2.1"
port = 81
forwarding = "nat"
[service.check]
type = "http"
path = "a\"b"
host = """x\"""y\\"""
"expect_\u0073tatus" = [1]
'expect_body' = 2

[realserver]
"agent\taddress" = "x"
tunnel_interface = """
  a\
  b"""
agent_address = 1
`
	want := []string{
		`t.toml:4:1: director: control_socket "multi-line\nweight = 1\n" must be an absolute path`,
		`t.toml:8:1: director: metrics_address "[[service]]\n" is not HOST:PORT (use [ADDR]:PORT for IPv6)`,
		`t.toml:20:27: service "a": backend 2: weight 70000 is out of range 0..65535`,
		`t.toml:23:1: service "a": check: rise 0 is out of range 1..1000`,
		`t.toml:32:1: service "b": check: path "a\"b" must start with "/"`,
		`t.toml:34:1: service "b": check: expect_status 1 is out of range 100..599`,
		`t.toml:35:1: service "b": check: expect_body must be a string, not integer 2`,
		`t.toml:38:1: realserver: unknown key "agent\taddress"`,
		`t.toml:39:1: realserver: tunnel_interface "  ab" is not a valid interface name`,
		`t.toml:42:1: realserver: agent_address must be a string, not integer 1`,
	}
	if diff := cmp.Diff(want, parseErrs(t, src)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestDefaults(t *testing.T) {
	src := dir + `[[service]]
name = "web"
address = "192.0.2.1"
port = 80
forwarding = "dr"
[service.check]
type = "http"
[[service.backend]]
address = "192.0.2.2"
[[service]]
name = "dns"
address = "2001:db8::53"
port = 53
protocol = "udp"
forwarding = "nat"
[service.check]
type = "dns"
query = "example.com"
[[service.backend]]
address = "2001:db8::54"
port = 5353
weight = 0
`
	want := &Topology{
		Path: "t.toml",
		Director: Director{
			Interface:      "eth0",
			ResyncInterval: 30 * time.Second,
			ControlSocket:  "/run/golvs/director.sock",
			StateFile:      "/run/golvs/director.state",
		},
		Services: []Service{{
			Name:         "web",
			Address:      netip.MustParseAddr("192.0.2.1"),
			Port:         80,
			Protocol:     TCP,
			Scheduler:    "wrr",
			Forwarding:   DR,
			OnFailure:    Weight0,
			DrainTimeout: 30 * time.Second,
			Check: &Check{
				Type: CheckHTTP, Interval: 2 * time.Second, Timeout: time.Second,
				Rise: 2, Fall: 3, Path: "/", ExpectStatus: []int{200},
			},
			Backends: []Backend{{Address: netip.MustParseAddr("192.0.2.2"), Port: 80, Weight: 1, Forwarding: DR}},
		}, {
			Name:         "dns",
			Address:      netip.MustParseAddr("2001:db8::53"),
			Port:         53,
			Protocol:     UDP,
			IPv6:         true,
			Scheduler:    "wrr",
			Forwarding:   NAT,
			OnFailure:    Weight0,
			DrainTimeout: 30 * time.Second,
			Check: &Check{
				Type: CheckDNS, Interval: 2 * time.Second, Timeout: time.Second,
				Rise: 2, Fall: 3, Query: "example.com.", QueryType: "A",
			},
			Backends: []Backend{{Address: netip.MustParseAddr("2001:db8::54"), Port: 5353, Weight: 0, Forwarding: NAT}},
		}},
		RealServer: RealServer{AgentAddress: ":9471", TunnelInterface: "tunl0"},
	}
	got := mustParse(t, src)
	if diff := cmp.Diff(want, got, addrs); diff != "" {
		t.Errorf("topology (-want +got):\n%s", diff)
	}
}

func TestEmptyFile(t *testing.T) {
	got := mustParse(t, "")
	want := &Topology{
		Path: "t.toml",
		Director: Director{
			ResyncInterval: DefaultResyncInterval,
			ControlSocket:  DefaultControlSocket,
			StateFile:      DefaultStateFile,
		},
		RealServer: RealServer{AgentAddress: DefaultAgentAddress, TunnelInterface: DefaultTunnelInterface},
	}
	if diff := cmp.Diff(want, got, addrs); diff != "" {
		t.Errorf("topology (-want +got):\n%s", diff)
	}
}

// TestValid covers the accepted forms of rules whose rejected forms are in
// TestParseErrors, checking what each one sets.
func TestValid(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		check func(t *testing.T, topo *Topology)
	}{
		{"full director, failover and realserver", dir + `resync_interval = "5s"
control_socket = "/tmp/d.sock"
metrics_address = "[::1]:9470"
state_file = "/var/lib/golvs/state"
[failover]
virtual_router_id = 51
priority = 254
advert_interval = "40.95s"
preempt = false
peers = ["2001:db8::2", "2001:db8::3"]
auth_key_file = "/etc/golvs/vrrp.key"
notify = "/etc/golvs/notify.sh"
[realserver]
agent_address = "10.0.0.1:9000"
tunnel_interface = "tun9"
`, func(t *testing.T, topo *Topology) {
			want := &Topology{
				Path: "t.toml",
				Director: Director{Interface: "eth0", ResyncInterval: 5 * time.Second, ControlSocket: "/tmp/d.sock",
					MetricsAddress: "[::1]:9470", StateFile: "/var/lib/golvs/state"},
				Failover: &Failover{VirtualRouterID: 51, Priority: 254, AdvertInterval: 40950 * time.Millisecond,
					Peers:       []netip.Addr{netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::3")},
					AuthKeyFile: "/etc/golvs/vrrp.key", Notify: "/etc/golvs/notify.sh"},
				RealServer: RealServer{AgentAddress: "10.0.0.1:9000", TunnelInterface: "tun9"},
			}
			if diff := cmp.Diff(want, topo, addrs); diff != "" {
				t.Errorf("topology (-want +got):\n%s", diff)
			}
		}},
		{"failover defaults", "[failover]\nvirtual_router_id = 1\n", func(t *testing.T, topo *Topology) {
			want := &Failover{VirtualRouterID: 1, Priority: 100, AdvertInterval: time.Second, Preempt: true}
			if diff := cmp.Diff(want, topo.Failover); diff != "" {
				t.Errorf("failover (-want +got):\n%s", diff)
			}
		}},
		{"port 0 with persistence", dir + "[[service]]\nname = \"all\"\naddress = \"192.0.2.1\"\nport = 0\nforwarding = \"dr\"\npersistence = \"300s\"\npersistence_netmask = \"255.255.255.0\"\n[[service.backend]]\naddress = \"192.0.2.2\"\n",
			func(t *testing.T, topo *Topology) {
				s := topo.Services[0]
				if s.Port != 0 || s.Persistence != 300*time.Second || s.PersistenceNetmask != netip.MustParseAddr("255.255.255.0") || s.Backends[0].Port != 0 {
					t.Errorf("service = %+v", s)
				}
			}},
		{"IPv6 prefix forms", dir + "[[service]]\nname = \"a\"\naddress = \"2001:db8::1\"\nport = 80\nforwarding = \"dr\"\npersistence = \"1s\"\npersistence_netmask = \"/64\"\n" +
			"[[service]]\nname = \"b\"\naddress = \"2001:db8::1\"\nport = 81\nforwarding = \"dr\"\npersistence = \"1s\"\npersistence_netmask = \"48\"\n",
			func(t *testing.T, topo *Topology) {
				if a, b := topo.Services[0].PersistencePrefix, topo.Services[1].PersistencePrefix; a != 64 || b != 48 {
					t.Errorf("prefixes = %d, %d, want 64, 48", a, b)
				}
			}},
		{"same VIP and port, other protocol", svc + "[[service]]\nname = \"web-udp\"\naddress = \"192.0.2.1\"\nport = 80\nprotocol = \"udp\"\nforwarding = \"nat\"\n",
			func(t *testing.T, topo *Topology) {
				if len(topo.Services) != 2 || topo.Services[1].Protocol != UDP {
					t.Errorf("services = %+v", topo.Services)
				}
			}},
		{"fwmark family from backends", dir + "[[service]]\nname = \"m\"\nfwmark = 3\nprotocol = \"udp\"\nforwarding = \"dr\"\npersistence = \"10s\"\npersistence_netmask = \"/56\"\n[[service.backend]]\naddress = \"2001:db8::2\"\n",
			func(t *testing.T, topo *Topology) {
				s := topo.Services[0]
				if s.FWMark != 3 || !s.IPv6 || s.Address.IsValid() || s.Port != 0 || s.Protocol != UDP || s.PersistencePrefix != 56 {
					t.Errorf("service = %+v", s)
				}
			}},
		{"tun crosses families", dir + "[[service]]\nname = \"t\"\naddress = \"192.0.2.1\"\nport = 80\nforwarding = \"nat\"\nsorry_server = \"192.0.2.9:8080\"\n" +
			"[[service.backend]]\naddress = \"2001:db8::2\"\nforwarding = \"tun\"\n[[service.backend]]\naddress = \"192.0.2.3\"\nport = 8080\n",
			func(t *testing.T, topo *Topology) {
				s := topo.Services[0]
				if s.Backends[0].Forwarding != TUN || s.Backends[1].Forwarding != NAT || s.Backends[1].Port != 8080 ||
					s.SorryServer != netip.MustParseAddrPort("192.0.2.9:8080") {
					t.Errorf("service = %+v", s)
				}
			}},
		{"all-ports dr service with sorry server", dir + "[[service]]\nname = \"all\"\naddress = \"192.0.2.1\"\nport = 0\nforwarding = \"dr\"\npersistence = \"60s\"\nsorry_server = \"192.0.2.9:80\"\n",
			func(t *testing.T, topo *Topology) {
				if s := topo.Services[0]; s.SorryServer != netip.MustParseAddrPort("192.0.2.9:80") {
					t.Errorf("service = %+v", s)
				}
			}},
		{"IPv6 sorry server", dir + "[[service]]\nname = \"v6\"\naddress = \"2001:db8::1\"\nport = 80\nforwarding = \"dr\"\nsorry_server = \"[2001:db8::9]:80\"\nquorum = 1\n[[service.backend]]\naddress = \"2001:db8::2\"\n",
			func(t *testing.T, topo *Topology) {
				s := topo.Services[0]
				if s.SorryServer != netip.MustParseAddrPort("[2001:db8::9]:80") || s.Quorum != 1 {
					t.Errorf("service = %+v", s)
				}
			}},
		{"scheduler flags", svc + "scheduler = \"mh\"\nscheduler_flags = [\"mh-port\", \"mh-fallback\", \"flag-3\"]\n",
			func(t *testing.T, topo *Topology) {
				if diff := cmp.Diff([]string{"mh-port", "mh-fallback", "flag-3"}, topo.Services[0].SchedulerFlags); diff != "" {
					t.Errorf("flags (-want +got):\n%s", diff)
				}
			}},
		{"service fields", svc + "on_failure = \"remove\"\ndrain_timeout = \"0s\"\npersistence = \"2m\"\n",
			func(t *testing.T, topo *Topology) {
				s := topo.Services[0]
				if s.OnFailure != Remove || s.DrainTimeout != 0 || s.Persistence != 2*time.Minute {
					t.Errorf("service = %+v", s)
				}
			}},
		{"backend fields", svc + "[[service.backend]]\naddress = \"10.0.0.1\"\nport = 8080\nweight = 65535\nupper_threshold = 4294967295\nlower_threshold = 5\n",
			func(t *testing.T, topo *Topology) {
				want := Backend{Address: netip.MustParseAddr("10.0.0.1"), Port: 8080, Weight: 65535, Forwarding: NAT,
					UpperThreshold: 4294967295, LowerThreshold: 5}
				if diff := cmp.Diff(want, topo.Services[0].Backends[0], addrs); diff != "" {
					t.Errorf("backend (-want +got):\n%s", diff)
				}
			}},
		{"https check", svc + "[service.check]\ntype = \"https\"\ninterval = \"5s\"\ntimeout = \"5s\"\nrise = 1\nfall = 1\nport = 8443\npath = \"/h?x=1\"\nhost = \"www.example.com\"\nexpect_status = [200, 301]\nexpect_body = \"ok\"\ntls_verify = true\n",
			func(t *testing.T, topo *Topology) {
				want := &Check{Type: CheckHTTPS, Interval: 5 * time.Second, Timeout: 5 * time.Second, Rise: 1, Fall: 1, Port: 8443,
					Path: "/h?x=1", Host: "www.example.com", ExpectStatus: []int{200, 301}, ExpectBody: "ok", TLSVerify: true}
				if diff := cmp.Diff(want, topo.Services[0].Check); diff != "" {
					t.Errorf("check (-want +got):\n%s", diff)
				}
			}},
		{"udp check payloads", svc + "[service.check]\ntype = \"udp\"\nsend = \"hex:00ff\"\nexpect = \"pong\"\n",
			func(t *testing.T, topo *Topology) {
				c := topo.Services[0].Check
				if string(c.Send) != "\x00\xff" || string(c.Expect) != "pong" {
					t.Errorf("send %q expect %q", c.Send, c.Expect)
				}
			}},
		{"dns check", svc + "[service.check]\ntype = \"dns\"\nquery = \"_sip._udp.example.com.\"\nquery_type = \"SRV\"\n",
			func(t *testing.T, topo *Topology) {
				c := topo.Services[0].Check
				if c.Query != "_sip._udp.example.com." || c.QueryType != "SRV" {
					t.Errorf("check = %+v", c)
				}
			}},
		{"exec check", svc + "[service.check]\ntype = \"exec\"\ncommand = [\"/usr/lib/golvs/check\", \"--strict\"]\n",
			func(t *testing.T, topo *Topology) {
				if diff := cmp.Diff([]string{"/usr/lib/golvs/check", "--strict"}, topo.Services[0].Check.Command); diff != "" {
					t.Errorf("command (-want +got):\n%s", diff)
				}
			}},
		{"inline tables", "service = [{ name = \"i\", address = \"192.0.2.1\", port = 80, forwarding = \"nat\", check = { type = \"agent\" }, backend = [{ address = \"10.0.0.1\" }] }]\n" + dir,
			func(t *testing.T, topo *Topology) {
				s, ok := topo.Service("i")
				if !ok || s.Check.Type != CheckAgent || len(s.Backends) != 1 {
					t.Errorf("service = %+v, %v", s, ok)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustParse(t, tt.src))
		})
	}
}

func TestServiceLookup(t *testing.T) {
	topo := mustParse(t, svc+"[[service]]\nname = \"api\"\naddress = \"192.0.2.1\"\nport = 443\nforwarding = \"nat\"\n")
	s, ok := topo.Service("api")
	if !ok || s.Port != 443 {
		t.Fatalf("Service(api) = %+v, %v", s, ok)
	}
	s.Quorum = 7 // the result points into the topology
	if topo.Services[1].Quorum != 7 {
		t.Error("Service returned a copy, not the topology's service")
	}
	if _, ok := topo.Service("nope"); ok {
		t.Error("Service(nope) found a service")
	}
}

func TestLoad(t *testing.T) {
	dirPath := t.TempDir()
	bad := filepath.Join(dirPath, "topology.toml")
	if err := os.WriteFile(bad, []byte("[director]\ninterface = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The files it names are not this test's concern (the host's
	// /run/golvs may hold anything); hostfiles_test.go checks them.
	_, err := Options{SkipFiles: true}.Load(bad)
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("Load error %v is not Errors", err)
	}
	want := Errors{{File: bad, Line: 2, Col: 1, Msg: "director: interface must be a string, not integer 1"}}
	if diff := cmp.Diff(want, es); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	if got := es.Error(); got != bad+":2:1: director: interface must be a string, not integer 1" {
		t.Errorf("Error() = %q", got)
	}

	if _, err := Load(filepath.Join(dirPath, "missing.toml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
}

// TestExamples loads every shipped example: they are documentation and
// must stay valid. The files they name (keys, scripts) are not on this
// host, so those are not checked.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../examples/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("found %d examples, want at least 4", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			topo, err := Options{SkipFiles: true}.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if f == "../examples/ha-pair.toml" && topo.Failover == nil {
				t.Error("ha-pair.toml has no [failover]")
			}
		})
	}
}

func TestErrorsSorted(t *testing.T) {
	es := Errors{{Line: 3, Col: 1, Msg: "c"}, {Line: 1, Col: 5, Msg: "b"}, {Line: 1, Col: 2, Msg: "a"}, {Line: 3, Col: 1, Msg: "d"}}
	es.sort()
	var got []string
	for _, e := range es {
		got = append(got, e.Msg)
	}
	if diff := cmp.Diff([]string{"a", "b", "c", "d"}, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func TestPreemptDelay(t *testing.T) {
	const head = "[director]\ninterface = \"eth0\"\n[failover]\nvirtual_router_id = 51\n"
	if got := mustParse(t, head).Failover.PreemptDelay; got != nil {
		t.Errorf("default preempt_delay = %v, want nil (the director's default)", *got)
	}
	for src, want := range map[string]time.Duration{"preempt_delay = \"0s\"\n": 0, "preempt_delay = \"7s\"\n": 7 * time.Second} {
		got := mustParse(t, head+src).Failover.PreemptDelay
		if got == nil || *got != want {
			t.Errorf("%q: preempt_delay = %v, want %v", src, got, want)
		}
	}
}

func TestTrackDecrement(t *testing.T) {
	src := "[director]\ninterface = \"eth0\"\n[failover]\nvirtual_router_id = 51\ntrack_decrement = 50\n"
	if got := mustParse(t, src).Failover.TrackDecrement; got != 50 {
		t.Errorf("track_decrement = %d, want 50", got)
	}
	if got := mustParse(t, "[director]\ninterface = \"eth0\"\n[failover]\nvirtual_router_id = 51\n").Failover.TrackDecrement; got != 0 {
		t.Errorf("default track_decrement = %d, want 0 (fault)", got)
	}
	errs := parseErrs(t, "[director]\ninterface = \"eth0\"\n[failover]\nvirtual_router_id = 51\ntrack_decrement = 255\n")
	if len(errs) != 1 || !strings.Contains(errs[0], "t.toml:5:1: failover: track_decrement 255 is out of range 1..254") {
		t.Errorf("errors %q", errs)
	}
}
