//go:build lab

package integration

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golvs/golvs/integration/labnet"
)

// Issue 14 over IPv6: the same router, BIRD 2 with an IPv6 channel,
// peering with two real directors over IPv6; each announces an IPv6 VIP
// as a /128 with itself as next hop.
const (
	bgpVIP6      = "2001:db8:113::80"
	routerEdge6  = "2001:db8:10::1"
	routerOut6   = "2001:db8:20::1"
	bgpClientIP6 = "2001:db8:20::2"
)

// TestBGPIPv6: two `director run`s peer with BIRD over IPv6 and announce
// an IPv6 VIP (an mh service over three IPv6 real servers, DR): the
// router's FIB holds one /128 multipath route via both (`ip -6 route`,
// `birdc`), a client behind the router is served through it, and a
// SIGTERM'd director's path leaves the FIB while the client goes on being
// served.
func TestBGPIPv6(t *testing.T) {
	l := labnet.NewLab(t)
	edge, out := l.Segment("edge"), l.Segment("out")
	router := l.Host("router", edge, routerEdge+"/24", routerEdge6+"/64")
	router.Attach(out, routerOut+"/24", routerOut6+"/64")
	router.EnableForwarding()
	// Flows spread on their L4 headers (see newBGPLabOf).
	router.Sysctl("net.ipv6.fib_multipath_hash_policy", "3")
	router.Sysctl("net.ipv6.fib_multipath_hash_fields", "0x0037")
	client := l.Host("client", out, bgpClientIP6+"/64")
	client.DefaultRoute(routerOut6)

	for i := 1; i <= 3; i++ {
		h := l.Host(fmt.Sprintf("rs%d", i), edge, fmt.Sprintf("2001:db8:10::%d/64", 20+i))
		h.DefaultRoute(routerEdge6)
		h.IP("addr", "add", bgpVIP6+"/128", "dev", "lo")
		h.Start("ready", bin(t, "labhost"), "serve", "--name", fmt.Sprintf("rs%d", i), "--http", ":80")
	}

	dir := t.TempDir()
	sock := filepath.Join(dir, "bird.ctl")
	var peers strings.Builder
	var dirAddrs []string
	for i := range 2 {
		a := fmt.Sprintf("2001:db8:10::%d", 11+i)
		dirAddrs = append(dirAddrs, a)
		fmt.Fprintf(&peers, "protocol bgp d%d from director { neighbor %s as %d; }\n", i+1, a, directorASN)
	}
	conf := labnet.TempFile(t, dir, "bird.conf", fmt.Sprintf(`log "%s" all;
router id %s;
protocol device { scan time 1; }
protocol kernel {
  ipv6 { import none; export all; };
  merge paths on;
}
template bgp director {
  local as %d;
  hold time 9;
  keepalive time 1;
  connect retry time 1;
  error wait time 1, 5;
  ipv6 { import all; export none; };
}
%s`, filepath.Join(dir, "bird.log"), routerEdge, routerASN, peers.String()))
	router.Start("", "bird", "-f", "-c", conf, "-s", sock, "-P", filepath.Join(dir, "bird.pid"))
	eventually(t, 20*time.Second, "BIRD answers on its socket", func() error {
		_, err := router.Exec("birdc", "-s", sock, "show", "status")
		return err
	})

	var procs []*labnet.Proc
	for i, a := range dirAddrs {
		h := l.Host(fmt.Sprintf("d%d", i+1), edge, fmt.Sprintf("10.10.0.%d/24", 11+i), a+"/64")
		h.DefaultRoute(routerEdge6)
		d := t.TempDir()
		var b strings.Builder
		fmt.Fprintf(&b, "[director]\ninterface = \"eth0\"\nresync_interval = \"5s\"\ncontrol_socket = %q\nstate_file = %q\n\n",
			filepath.Join(d, "d.sock"), filepath.Join(d, "d.state"))
		fmt.Fprintf(&b, "[bgp]\nasn = %d\nleave_grace = \"1s\"\n\n[[bgp.peer]]\naddress = %q\nasn = %d\nhold_time = \"9s\"\n\n",
			directorASN, routerEdge6, routerASN)
		fmt.Fprintf(&b, "[[service]]\nname = \"web6\"\naddress = %q\nport = 80\nscheduler = \"mh\"\nscheduler_flags = [\"mh-port\", \"mh-fallback\"]\nforwarding = \"dr\"\n", bgpVIP6)
		for j := 1; j <= 3; j++ {
			fmt.Fprintf(&b, "\n[[service.backend]]\naddress = \"2001:db8:10::%d\"\nport = 80\nweight = 1\n", 20+j)
		}
		p := h.Start("", bin(t, "director"), "run", "-config", labnet.TempFile(t, d, "topology.toml", b.String()))
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("director %s output:\n%s", a, p.Output())
			}
		})
		procs = append(procs, p)
	}

	fib := func() []string { return routeGateways(t, router, bgpVIP6+"/128") }
	waitFIB := func(want []string, within time.Duration) {
		t.Helper()
		eventually(t, within, fmt.Sprintf("router routes %s/128 via %v", bgpVIP6, want), func() error {
			if got := fib(); !slices.Equal(got, want) {
				protos, _ := router.Exec("birdc", "-s", sock, "show", "protocols")
				return fmt.Errorf("ip -6 route: via %v\n%s", got, protos)
			}
			birdOut := router.MustExec("birdc", "-s", sock, "show", "route", "for", bgpVIP6, "all")
			for _, a := range want {
				if !strings.Contains(birdOut, "via "+a+" ") {
					return fmt.Errorf("birdc lacks via %s:\n%s", a, birdOut)
				}
			}
			return nil
		})
	}
	waitFIB(dirAddrs, 30*time.Second)
	t.Logf("router: ip -6 route for %s/128 via %v", bgpVIP6, fib())

	served := func(what string) {
		t.Helper()
		var r clientResult
		out := client.MustExec(bin(t, "labhost"), "client", "--url", "http://["+bgpVIP6+"]/", "--count", "30", "--timeout", requestTimeout)
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("labhost client output %q: %v", out, err)
		}
		t.Logf("%s: answers %v", what, r.Counts)
		if r.Failures != 0 {
			t.Errorf("%s: %d of 30 requests failed: %v", what, r.Failures, r.Errors)
		}
	}
	served("both announcing")

	// SIGTERM: d2 withdraws its /128 first; the router drops its path.
	term := time.Now()
	if err := procs[1].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFIB(dirAddrs[:1], 10*time.Second)
	t.Logf("SIGTERM: %s's path gone from the router's FIB %v after the signal", dirAddrs[1], time.Since(term).Round(time.Millisecond))
	served("one announcing")
}
