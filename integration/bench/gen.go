package bench

import (
	"bytes"
	"fmt"
)

// The benchmark table: n TCP services on one VIP (so the director adds a
// single address, as keepalived adds none) on ports firstPort.., each with
// `backends` NAT real servers of weight 1 on the same port.
const (
	vip        = "192.0.2.1"
	firstPort  = 10000
	backendFmt = "10.2.0.%d"
)

func port(i int) int { return firstPort + i }

func backend(j int) string { return fmt.Sprintf(backendFmt, j+1) }

// ipvsadmRules is the table as `ipvsadm -R` input.
func ipvsadmRules(n, backends int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "-A -t %s:%d -s rr\n", vip, port(i))
		for j := range backends {
			fmt.Fprintf(&b, "-a -t %s:%d -r %s:%d -m -w 1\n", vip, port(i), backend(j), port(i))
		}
	}
	return b.Bytes()
}

// keepalivedConf is the table as keepalived virtual servers without
// checkers (keepalived then adds every real server at start).
func keepalivedConf(n, backends int) []byte {
	var b bytes.Buffer
	b.WriteString("global_defs {\n  router_id golvs_bench\n}\n")
	for i := range n {
		fmt.Fprintf(&b, "virtual_server %s %d {\n  delay_loop 3600\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n", vip, port(i))
		for j := range backends {
			fmt.Fprintf(&b, "  real_server %s %d {\n    weight 1\n  }\n", backend(j), port(i))
		}
		b.WriteString("}\n")
	}
	return b.Bytes()
}

// topology is the table as a golvs topology file. changed, when >= 0, is
// the service whose first backend gets weight 2 instead of 1.
func topology(work string, n, backends, changed int) []byte {
	return topologyWeight(work, n, backends, changed, 2)
}

// topologyWeight is topology with the changed backend's weight given.
func topologyWeight(work string, n, backends, changed, weight int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "[director]\ninterface = %q\nresync_interval = \"1h\"\ncontrol_socket = %q\nstate_file = %q\n",
		benchIface, work+"/director.sock", work+"/director.state")
	for i := range n {
		fmt.Fprintf(&b, "\n[[service]]\nname = \"s%d\"\naddress = %q\nport = %d\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"nat\"\n",
			i, vip, port(i))
		for j := range backends {
			w := 1
			if i == changed && j == 0 {
				w = weight
			}
			fmt.Fprintf(&b, "[[service.backend]]\naddress = %q\nport = %d\nweight = %d\n", backend(j), port(i), w)
		}
	}
	return b.Bytes()
}
