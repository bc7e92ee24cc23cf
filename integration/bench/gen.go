package bench

import (
	"bytes"
	"fmt"
	"net/netip"
)

// The benchmark table: n TCP services, each with `backends` NAT real
// servers of weight 1 on the service's port. In the default layout every
// service is on one VIP (so the director adds a single address, as
// keepalived adds none) on ports firstPort..; in the many-VIP layout each
// service has a VIP of its own, on port 80, so the director also puts n
// addresses on its interface.
const (
	oneVIP     = "192.0.2.1"
	firstPort  = 10000
	backendFmt = "10.2.0.%d"
	// maxManyVIPs: 198.18.0.0/15 (benchmarking's own range), 250
	// addresses per /24.
	maxManyVIPs = 2 * 256 * 250
)

// table is the layout of one benchmark table.
type table struct {
	n, backends int
	manyVIPs    bool
}

// addr is service i's VIP: one for all, or 198.18.0.1, .2, ... .250,
// 198.18.1.1, ... in service order, so that every contender's order of
// programming (file order, or the director's sorted keys) ends with the
// last service.
func (t table) addr(i int) netip.Addr {
	if !t.manyVIPs {
		return netip.MustParseAddr(oneVIP)
	}
	hi := i / 250
	return netip.AddrFrom4([4]byte{198, byte(18 + hi/256), byte(hi % 256), byte(1 + i%250)})
}

// port is service i's port.
func (t table) port(i int) int {
	if t.manyVIPs {
		return 80
	}
	return firstPort + i
}

// vips lists the table's distinct VIPs in service order.
func (t table) vips() []netip.Addr {
	if !t.manyVIPs {
		return []netip.Addr{t.addr(0)}
	}
	out := make([]netip.Addr, t.n)
	for i := range out {
		out[i] = t.addr(i)
	}
	return out
}

// layout names the layout for reports.
func (t table) layout() string {
	if t.manyVIPs {
		return "one VIP per service, port 80"
	}
	return "one VIP, one port per service"
}

func backend(j int) string { return fmt.Sprintf(backendFmt, j+1) }

// ipvsadmRules is the table as `ipvsadm -R` input.
func ipvsadmRules(t table) []byte {
	var b bytes.Buffer
	for i := range t.n {
		a, p := t.addr(i), t.port(i)
		fmt.Fprintf(&b, "-A -t %s:%d -s rr\n", a, p)
		for j := range t.backends {
			fmt.Fprintf(&b, "-a -t %s:%d -r %s:%d -m -w 1\n", a, p, backend(j), p)
		}
	}
	return b.Bytes()
}

// keepalivedConf is the table as keepalived virtual servers without
// checkers (keepalived then adds every real server at start). keepalived
// adds no addresses: an LVS-only keepalived leaves them to its VRRP
// process or to the operator.
func keepalivedConf(t table) []byte {
	var b bytes.Buffer
	b.WriteString("global_defs {\n  router_id golvs_bench\n}\n")
	for i := range t.n {
		a, p := t.addr(i), t.port(i)
		fmt.Fprintf(&b, "virtual_server %s %d {\n  delay_loop 3600\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n", a, p)
		for j := range t.backends {
			fmt.Fprintf(&b, "  real_server %s %d {\n    weight 1\n  }\n", backend(j), p)
		}
		b.WriteString("}\n")
	}
	return b.Bytes()
}

// topology is the table as a golvs topology file. changed, when >= 0, is
// the service whose first backend gets weight 2 instead of 1.
func topology(work string, t table, changed int) []byte {
	return topologyWeight(work, t, changed, 2)
}

// topologyWeight is topology with the changed backend's weight given.
func topologyWeight(work string, t table, changed, weight int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "[director]\ninterface = %q\nresync_interval = \"1h\"\ncontrol_socket = %q\nstate_file = %q\n",
		benchIface, work+"/director.sock", work+"/director.state")
	for i := range t.n {
		a, p := t.addr(i), t.port(i)
		fmt.Fprintf(&b, "\n[[service]]\nname = \"s%d\"\naddress = %q\nport = %d\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"nat\"\n",
			i, a, p)
		for j := range t.backends {
			w := 1
			if i == changed && j == 0 {
				w = weight
			}
			fmt.Fprintf(&b, "[[service.backend]]\naddress = %q\nport = %d\nweight = %d\n", backend(j), p, w)
		}
	}
	return b.Bytes()
}
