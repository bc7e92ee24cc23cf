//go:build lab

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golvs/golvs/integration/labnet"
)

// Addresses inside the lab's namespaces: documentation ranges only.
const (
	lanPrefix  = "192.0.2."    // client, director, DR/TUN real servers
	backPrefix = "198.51.100." // NAT real servers behind the director
	vip        = "192.0.2.100"
	directorIP = "192.0.2.1"
	clientIP   = "192.0.2.2"
)

// cluster is the usual LVS picture: a client and a director on one
// segment, three real servers either on that segment (dr, tun) or on a
// second one behind the director, which is their default gateway (nat).
type cluster struct {
	t        *testing.T
	lab      *labnet.Lab
	lan      *labnet.Segment
	back     *labnet.Segment // nat: the real servers' segment
	mode     string          // nat | dr | tun
	client   *labnet.Host
	director *labnet.Host
	rs       []*labnet.Host
	rsAddrs  []string
	names    []string
	servers  []*labnet.Proc // labhost serve, per real server
	config   string         // the director's topology file, once started
}

func newCluster(t *testing.T, mode string) *cluster {
	t.Helper()
	return newClusterPrep(t, mode, true)
}

// newClusterPrep is newCluster; with prepare false, dr and tun real
// servers are left for the realserver agent to prepare.
func newClusterPrep(t *testing.T, mode string, prepare bool) *cluster {
	t.Helper()
	l := labnet.NewLab(t)
	lan := l.Segment("lan")
	c := &cluster{t: t, lab: l, lan: lan, mode: mode}
	c.client = l.Host("client", lan, clientIP+"/24")
	c.director = l.Host("dir", lan, directorIP+"/24")
	var rsSeg *labnet.Segment
	prefix := lanPrefix
	if mode == "nat" {
		rsSeg = l.Segment("back")
		c.back = rsSeg
		// Replies come back through the director, which must forward:
		// the director enables that itself (NeededSysctls), so the
		// topology leaves it off.
		c.director.Attach(rsSeg, backPrefix+"1/24")
		c.director.Sysctl("net.ipv4.ip_forward", "0")
		prefix = backPrefix
	} else {
		rsSeg = lan
	}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("rs%d", i)
		addr := fmt.Sprintf("%s%d", prefix, 10+i)
		h := l.Host(name, rsSeg, addr+"/24")
		if mode == "nat" {
			h.DefaultRoute(backPrefix + "1")
		}
		c.rs = append(c.rs, h)
		c.rsAddrs = append(c.rsAddrs, addr)
		c.names = append(c.names, name)
	}
	switch {
	case !prepare:
	case mode == "dr":
		for _, h := range c.rs {
			prepareDR(t, h, vip)
		}
	case mode == "tun":
		for _, h := range c.rs {
			prepareTUN(t, h, vip)
		}
	}
	c.servers = make([]*labnet.Proc, len(c.rs))
	for i := range c.rs {
		c.startServer(i)
	}
	return c
}

// lanSegment is the client's segment.
func (c *cluster) lanSegment() *labnet.Segment { return c.lan }

// startServer starts real server i's HTTP and UDP servers.
func (c *cluster) startServer(i int) {
	c.t.Helper()
	c.servers[i] = c.rs[i].Start("ready", bin(c.t, "labhost"), "serve", "--name", c.names[i], "--http", ":80", "--udp", ":53")
}

// stopServer kills real server i's servers, as a crash would.
func (c *cluster) stopServer(i int) {
	c.t.Helper()
	p := c.servers[i]
	if err := p.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Wait(ctx); errors.Is(err, context.DeadlineExceeded) {
		c.t.Fatalf("%s did not die", p.Name)
	}
}

// prepareDR does by hand what the realserver agent does for dr, for the
// tests that must not depend on the agent (TestSmokeIPVS proves the lab
// itself). The director's dr/tun traffic tests (TestDirectorDR/TUN) run
// the real agent instead: see startAgents in agent_traffic_test.go.
func prepareDR(t *testing.T, h *labnet.Host, vip string) {
	t.Helper()
	h.IP("addr", "add", vip+"/32", "dev", "lo")
	noARPForVIP(h)
}

// prepareTUN does by hand what the realserver agent does for tun (see
// prepareDR).
func prepareTUN(t *testing.T, h *labnet.Host, vip string) {
	t.Helper()
	// tunl0 exists in every namespace once the ipip module is loaded (the
	// lab loads it at boot).
	h.IP("link", "set", "tunl0", "up")
	h.IP("addr", "add", vip+"/32", "dev", "tunl0")
	for _, dev := range []string{"all", "default", "tunl0", "eth0"} {
		h.Sysctl("net.ipv4.conf."+dev+".rp_filter", "0")
	}
	noARPForVIP(h)
}

func noARPForVIP(h *labnet.Host) {
	for _, dev := range []string{"all", "eth0"} {
		h.Sysctl("net.ipv4.conf."+dev+".arp_ignore", "1")
		h.Sysctl("net.ipv4.conf."+dev+".arp_announce", "2")
	}
}

// clientResult is labhost client's JSON.
type clientResult struct {
	Counts   map[string]int `json:"counts"`
	Failures int            `json:"failures"`
	Errors   []string       `json:"errors"`
}

// requestTimeout is labhost client's per-request timeout where every
// request must succeed: a request may wait out a TCP retransmission or two
// (1 s, then 2 s more) when the emulated machine stalls under load, and
// a CI run saw one of 60 pass the 2 s default awaiting its headers. A
// reset or a refusal still fails a request at once.
const requestTimeout = "8s"

// requests makes n HTTP requests (one connection each) from the client
// to url and returns the answers per real server.
func (c *cluster) requests(url string, n int) clientResult {
	c.t.Helper()
	out := c.client.MustExec(bin(c.t, "labhost"), "client", "--url", url, "--count", fmt.Sprint(n), "--timeout", requestTimeout)
	var r clientResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		c.t.Fatalf("labhost client output %q: %v", out, err)
	}
	return r
}

// udpRequests is requests over UDP to addr (host:port).
func (c *cluster) udpRequests(addr string, n int) clientResult {
	c.t.Helper()
	out := c.client.MustExec(bin(c.t, "labhost"), "udp", "--addr", addr, "--count", fmt.Sprint(n), "--sport", "40000")
	var r clientResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		c.t.Fatalf("labhost udp output %q: %v", out, err)
	}
	return r
}

// assertEven checks that all n requests succeeded, spread equally over
// the real servers (what rr must do with one connection per request).
func (c *cluster) assertEven(r clientResult, n int) {
	c.t.Helper()
	if r.Failures != 0 {
		c.t.Errorf("%d of %d requests failed: %v", r.Failures, n, r.Errors)
	}
	even := true
	for _, name := range c.names {
		if got, want := r.Counts[name], n/len(c.names); got != want {
			c.t.Errorf("real server %s answered %d requests, want %d (all: %v)", name, got, want, r.Counts)
			even = false
		}
	}
	if !even {
		// Which client port went where, as the kernel recorded it: a
		// port used twice, or one connection missing, shows here.
		out, err := c.director.Exec("ipvsadm", "-Lnc")
		c.t.Logf("the director's connection entries (ipvsadm -Lnc, %v):\n%s", err, out)
	}
}

// assertVIPOnDirector checks that the client reached the VIP through the
// director: its neighbour entry for the VIP is the director's MAC.
func (c *cluster) assertVIPOnDirector() {
	c.t.Helper()
	want := c.director.MAC("eth0")
	got, state := c.client.Neighbour(vip)
	if got != want {
		c.t.Errorf("client's neighbour entry for VIP %s = %q %v, want the director's MAC %s", vip, got, state, want)
	}
}

// ipvsService is one service in `ipvsadm -Ln` output.
type ipvsService struct {
	Scheduler string
	Flags     string
	// Backends maps "ADDR:PORT" to "Forward Weight", e.g. "Route 1".
	Backends map[string]string
}

// ipvsTable reads the director's IPVS table with ipvsadm, an independent
// witness of what the director programmed. Keys are "TCP 192.0.2.100:80".
func (c *cluster) ipvsTable() map[string]ipvsService {
	c.t.Helper()
	return parseIPVSADM(c.director.MustExec("ipvsadm", "-Ln"))
}

func parseIPVSADM(out string) map[string]ipvsService {
	table := map[string]ipvsService{}
	var cur string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && (f[0] == "TCP" || f[0] == "UDP" || f[0] == "SCTP" || f[0] == "FWM"):
			cur = f[0] + " " + f[1]
			table[cur] = ipvsService{Scheduler: f[2], Flags: strings.Join(f[3:], " "), Backends: map[string]string{}}
		case len(f) >= 4 && f[0] == "->" && cur != "" && f[1] != "RemoteAddress:Port":
			table[cur].Backends[f[1]] = f[2] + " " + f[3]
		}
	}
	return table
}

// assertService checks one service and its backends in the table.
func (c *cluster) assertService(key, sched string, backends map[string]string) {
	c.t.Helper()
	table := c.ipvsTable()
	s, ok := table[key]
	if !ok {
		c.t.Errorf("ipvsadm -Ln has no service %s; table: %+v", key, table)
		return
	}
	if s.Scheduler != sched {
		c.t.Errorf("service %s scheduler = %s, want %s", key, s.Scheduler, sched)
	}
	for addr, want := range backends {
		if got := s.Backends[addr]; got != want {
			c.t.Errorf("service %s backend %s = %q, want %q (all: %v)", key, addr, got, want, s.Backends)
		}
	}
	if len(s.Backends) != len(backends) {
		c.t.Errorf("service %s has %d backends, want %d: %v", key, len(s.Backends), len(backends), s.Backends)
	}
}

// eventually polls cond until it returns nil or the timeout passes. It
// waits for an observable condition with a deadline; it is not a sleep.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startDirector writes a topology file with this test's own control
// socket and state file, runs the real director binary in the director's
// namespace, and waits until ready accepts the kernel's IPVS table.
func (c *cluster) startDirector(services string, ready func(map[string]ipvsService) error) *labnet.Proc {
	c.t.Helper()
	p, file := c.startDirectorOn(c.director, "", services, ready)
	c.config = file
	return p
}

// startDirectorOn is startDirector for any host, with extra tables (such
// as [failover]) after [director]. It returns the topology file too.
func (c *cluster) startDirectorOn(h *labnet.Host, extra, services string, ready func(map[string]ipvsService) error) (*labnet.Proc, string) {
	c.t.Helper()
	dir := c.t.TempDir()
	topo := fmt.Sprintf(`[director]
interface = "eth0"
resync_interval = "5s"
control_socket = %q
state_file = %q

%s
%s`, filepath.Join(dir, "director.sock"), filepath.Join(dir, "director.state"), extra, services)
	file := labnet.TempFile(c.t, dir, "topology.toml", topo)
	director := bin(c.t, "director")
	if out, err := h.Exec(director, "check", "-config", file); err != nil {
		c.t.Fatalf("director check rejected the test topology: %v\n%s\n%s", err, out, topo)
	}
	p := h.Start("", director, "run", "-config", file, "--log-level", "debug")
	c.t.Cleanup(func() {
		if c.t.Failed() {
			c.t.Logf("%s output:\n%s", p.Name, p.Output())
		}
	})
	eventually(c.t, 30*time.Second, h.Name+" programs IPVS", func() error {
		if done, err := p.Exited(); done {
			c.t.Fatalf("%s exited: %v\n%s", p.Name, err, p.Output())
		}
		return ready(parseIPVSADM(mustOut(h.Exec("ipvsadm", "-Ln"))))
	})
	return p, file
}

// hasBackends is a ready func for startDirector: every service in keys
// ("TCP 192.0.2.100:80") is in the table with n backends.
func hasBackends(n int, keys ...string) func(map[string]ipvsService) error {
	return func(table map[string]ipvsService) error {
		for _, k := range keys {
			if s, ok := table[k]; !ok || len(s.Backends) != n {
				return fmt.Errorf("service %s: %+v", k, table[k])
			}
		}
		return nil
	}
}

func mustOut(out string, err error) string {
	if err != nil {
		return ""
	}
	return out
}

// writeFile is a small helper for tests that need files in the guest.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
