//go:build lab

package integration

import (
	"fmt"
	"strings"
	"testing"
)

// service returns a [[service]] table for the VIP with the cluster's
// real servers as backends, no health check (backends always up).
func (c *cluster) service(name, proto string, port int, forwarding, sched string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[[service]]\nname = %q\naddress = %q\nport = %d\nprotocol = %q\nscheduler = %q\nforwarding = %q\n\n",
		name, vip, port, proto, sched, forwarding)
	for _, a := range c.rsAddrs {
		fmt.Fprintf(&b, "[[service.backend]]\naddress = %q\nport = %d\nweight = 1\n\n", a, port)
	}
	return b.String()
}

// wantBackends is the expected ipvsadm backend column for every real
// server: "Route 1" and so on.
func (c *cluster) wantBackends(port int, fwd string) map[string]string {
	m := map[string]string{}
	for _, a := range c.rsAddrs {
		m[fmt.Sprintf("%s:%d", a, port)] = fwd + " 1"
	}
	return m
}

// testForwarding runs the director with one TCP and one UDP rr service in
// the given mode and checks the kernel table, the spread, and that the
// client reaches the VIP through the director.
//
// dr and tun real servers are prepared by the real realserver agent,
// run on each of them with the director's own topology file.
func testForwarding(t *testing.T, mode, ipvsFwd string) {
	c := newClusterPrep(t, mode, false)
	services := c.service("web", "tcp", 80, mode, "rr") + c.service("dns", "udp", 53, mode, "rr")
	forward := func() string { return strings.TrimSpace(c.director.MustExec("cat", "/proc/sys/net/ipv4/ip_forward")) }
	if mode == "nat" && forward() != "0" {
		t.Fatalf("the NAT topology starts with ip_forward=%s; the test needs 0 to show the director sets it", forward())
	}
	c.startDirector(services, hasBackends(3, "TCP "+vip+":80", "UDP "+vip+":53"))
	if mode == "nat" && forward() != "1" {
		t.Fatalf("the director of a NAT service left ip_forward=%s in its namespace", forward())
	}
	if dev := map[string]string{"dr": "lo", "tun": "tunl0"}[mode]; dev != "" {
		c.startAgents(c.config, vip, dev)
		for _, h := range c.rs {
			assertAgentPrepared(t, h, mode)
		}
	}

	c.assertService("TCP "+vip+":80", "rr", c.wantBackends(80, ipvsFwd))
	c.assertService("UDP "+vip+":53", "rr", c.wantBackends(53, ipvsFwd))
	if out := c.director.IP("-4", "addr", "show", "dev", "eth0"); !strings.Contains(out, " "+vip+"/") {
		t.Fatalf("director did not put the VIP %s on its interface eth0:\n%s", vip, out)
	}

	c.assertEven(c.requests("http://"+vip+"/", 30), 30)
	c.assertEven(c.udpRequests(vip+":53", 30), 30)
	c.assertVIPOnDirector()
}

func TestDirectorNAT(t *testing.T) { testForwarding(t, "nat", "Masq") }

func TestDirectorDR(t *testing.T) { testForwarding(t, "dr", "Route") }

func TestDirectorTUN(t *testing.T) { testForwarding(t, "tun", "Tunnel") }
