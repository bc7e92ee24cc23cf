//go:build lab

package integration

import (
	"fmt"
	"strings"
	"testing"
)

// TestDirectorWRR gives the three real servers weights 3:1:1 under wrr:
// 50 new connections must split 30/10/10 (wrr is deterministic for
// sequential connections).
func TestDirectorWRR(t *testing.T) {
	c := newCluster(t, "nat")
	key := "TCP " + vip + ":80"
	weights := []int{3, 1, 1}
	var b strings.Builder
	fmt.Fprintf(&b, "[[service]]\nname = \"web\"\naddress = %q\nport = 80\nprotocol = \"tcp\"\nscheduler = \"wrr\"\nforwarding = \"nat\"\n\n", vip)
	want := map[string]string{}
	for i, a := range c.rsAddrs {
		fmt.Fprintf(&b, "[[service.backend]]\naddress = %q\nport = 80\nweight = %d\n\n", a, weights[i])
		want[a+":80"] = fmt.Sprintf("Masq %d", weights[i])
	}
	c.startDirector(b.String(), hasBackends(3, key))
	c.assertService(key, "wrr", want)

	const n = 50
	r := c.requests("http://"+vip+"/", n)
	if r.Failures != 0 {
		t.Errorf("%d of %d requests failed: %v", r.Failures, n, r.Errors)
	}
	for i, name := range c.names {
		if got, w := r.Counts[name], n*weights[i]/5; got != w {
			t.Errorf("real server %s (weight %d) answered %d of %d requests, want %d (all: %v)", name, weights[i], got, n, w, r.Counts)
		}
	}
}

// TestDirectorPersistence: with persistence = "60s" every new connection
// from one client goes to the same real server, where plain rr would
// spread them; the kernel holds a persistence template for the client.
func TestDirectorPersistence(t *testing.T) {
	c := newCluster(t, "nat")
	key := "TCP " + vip + ":80"
	svc := strings.Replace(c.service("web", "tcp", 80, "nat", "rr"),
		"forwarding = \"nat\"\n", "forwarding = \"nat\"\npersistence = \"60s\"\n", 1)
	c.startDirector(svc, hasBackends(3, key))
	s := c.ipvsTable()[key]
	if s.Flags != "persistent 60" {
		t.Errorf("ipvsadm -Ln flags for %s = %q, want \"persistent 60\"", key, s.Flags)
	}

	const n = 20
	r := c.requests("http://"+vip+"/", n)
	if r.Failures != 0 {
		t.Errorf("%d of %d requests failed: %v", r.Failures, n, r.Errors)
	}
	if len(r.Counts) != 1 {
		t.Fatalf("one client's %d connections went to %d real servers, want 1: %v", n, len(r.Counts), r.Counts)
	}
	var server string
	for name, got := range r.Counts {
		server = name
		if got != n {
			t.Errorf("%s answered %d of %d requests", name, got, n)
		}
	}
	// The template: a connection entry from the client with source port
	// 0 to the VIP, pointing at the chosen real server (its state column
	// varies with the kernel's conntrack setting).
	rsAddr := c.rsAddrs[nameIndex(c.names, server)]
	conns := c.director.MustExec("ipvsadm", "-Lnc")
	var template bool
	for _, l := range strings.Split(conns, "\n") {
		f := strings.Fields(l)
		if len(f) >= 6 && f[3] == clientIP+":0" && f[4] == vip+":80" && f[5] == rsAddr+":80" {
			template = true
		}
	}
	if !template {
		t.Errorf("no persistence template %s -> %s -> %s in ipvsadm -Lnc:\n%s", clientIP, vip, rsAddr, conns)
	}
	// Still the same server on a second round.
	if r := c.requests("http://"+vip+"/", 5); r.Counts[server] != 5 {
		t.Errorf("second round went elsewhere: %+v, want all 5 on %s", r, server)
	}
}

func nameIndex(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

// IPv6 documentation addresses for the v6 DR test, on the same segment.
const (
	v6Prefix   = "2001:db8::"
	vip6       = "2001:db8::100"
	director6  = "2001:db8::1"
	client6    = "2001:db8::2"
	v6PrefixLn = "/64"
)

// TestDirectorIPv6DR runs an IPv6 dr service: the director holds the VIP
// as /128 on eth0, the realserver agent puts it on each real server's lo
// (/128, nodad) from the same topology file, and the client reaches it
// through the director (its neighbour entry for the VIP is the
// director's MAC).
func TestDirectorIPv6DR(t *testing.T) {
	c := newClusterPrep(t, "dr", false)
	// Static IPv6 addresses beside the IPv4 ones; nodad so they are usable
	// at once.
	c.client.IP("addr", "add", client6+v6PrefixLn, "dev", "eth0", "nodad")
	c.director.IP("addr", "add", director6+v6PrefixLn, "dev", "eth0", "nodad")
	var rs6 []string
	for i, h := range c.rs {
		a := fmt.Sprintf("%s%d", v6Prefix, 11+i)
		h.IP("addr", "add", a+v6PrefixLn, "dev", "eth0", "nodad")
		rs6 = append(rs6, a)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[[service]]\nname = \"web6\"\naddress = %q\nport = 80\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"dr\"\n\n", vip6)
	want := map[string]string{}
	for _, a := range rs6 {
		fmt.Fprintf(&b, "[[service.backend]]\naddress = %q\nport = 80\nweight = 1\n\n", a)
		want["["+a+"]:80"] = "Route 1"
	}
	key := "TCP [" + vip6 + "]:80"
	c.startDirector(b.String(), hasBackends(3, key))
	c.startAgents(c.config, vip6, "lo")
	c.assertService(key, "rr", want)
	if out := c.director.IP("-6", "addr", "show", "dev", "eth0"); !strings.Contains(out, " "+vip6+"/128 ") {
		t.Fatalf("director did not put the VIP %s/128 on eth0:\n%s", vip6, out)
	}

	c.assertEven(c.requests("http://["+vip6+"]/", 30), 30)
	if got, want := mustNeighbour6(c), c.director.MAC("eth0"); got != want {
		t.Errorf("client's neighbour entry for %s = %q, want the director's MAC %s", vip6, got, want)
	}
}

func mustNeighbour6(c *cluster) string {
	mac, _ := c.client.Neighbour(vip6)
	return mac
}
