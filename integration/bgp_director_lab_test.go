//go:build lab

package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golvs/golvs/integration/labnet"
)

// TestBGPDirector runs the real `director run` with [bgp] as the third of
// three directors behind BIRD (the other two hand-made, as in
// TestBGPECMP): it announces the VIP while its service can serve it,
// withdraws it when every backend of its own fails its check (an exec
// check of a flag file, so only this director sees them fail) and
// announces it again when they return; on SIGTERM it withdraws its route
// first and goes on running for leave_grace before it exits. The router's
// FIB and `birdc` are the witnesses; a client's requests through the VIP
// keep succeeding throughout. Its session is signed with TCP MD5, as BIRD
// requires of it.
func TestBGPDirector(t *testing.T) {
	const hold = 9 * time.Second
	// BIRD signs this director's session with TCP MD5 (RFC 2385): the
	// route via it only appears if the director signs with the same key.
	const md5Key = "golvs-lab-md5"
	b := newBGPLabMD5(t, 2, 3, hold, false, "mh", false, map[int]string{2: md5Key})
	addr := "10.10.0.13"
	h := b.lab.Host("d3", nil)
	h.Attach(b.segment(), addr+"/24")
	h.DefaultRoute(routerEdge)
	dir := t.TempDir()
	flag := filepath.Join(dir, "backends-up")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "bgp.key")
	if err := os.WriteFile(keyFile, []byte(md5Key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var backends strings.Builder
	for j := range b.rs {
		fmt.Fprintf(&backends, "[[service.backend]]\naddress = \"10.10.0.%d\"\nport = 80\nweight = 1\n\n", 21+j)
	}
	conf := labnet.TempFile(t, dir, "topology.toml", fmt.Sprintf(`[director]
interface = "eth0"
resync_interval = "5s"
control_socket = %q
state_file = %q

[bgp]
asn = %d
leave_grace = "2s"

[[bgp.peer]]
address = %q
asn = %d
hold_time = "%s"
password_file = %q

[[service]]
name = "web"
address = %q
port = 80
scheduler = "mh"
scheduler_flags = ["mh-port", "mh-fallback"]
forwarding = "dr"

[service.check]
type = "exec"
command = ["/usr/bin/test", "-e", %q]
# Starting a process in the loaded emulated guest took over 500 ms (the
# checks timed out and flapped): a 2 s interval and timeout.
interval = "2s"
timeout = "2s"
rise = 1
fall = 3

%s`, filepath.Join(dir, "d.sock"), filepath.Join(dir, "d.state"), directorASN, routerEdge, routerASN, hold, keyFile, bgpVIP, flag, backends.String()))
	p := h.Start("", bin(t, "director"), "run", "-config", conf)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("director output:\n%s", p.Output())
		}
	})
	all := append(append([]string(nil), b.dirAddrs...), addr)
	b.waitNexthops(all, 30*time.Second)
	if got := strings.TrimSpace(h.MustExec("cat", "/proc/sys/net/ipv4/vs/sloppy_tcp")); got != "1" {
		t.Errorf("the director left sloppy_tcp=%s", got)
	}
	if out := h.IP("-4", "addr", "show", "dev", "lo"); !strings.Contains(out, bgpVIP+"/32") {
		t.Errorf("the VIP is not on lo:\n%s", out)
	}
	if out := h.IP("-4", "addr", "show", "dev", "eth0"); strings.Contains(out, bgpVIP) {
		t.Errorf("the VIP is on eth0, where it would answer ARP:\n%s", out)
	}
	served := func(what string) {
		t.Helper()
		var r clientResult
		out := b.client.MustExec(bin(t, "labhost"), "client", "--url", "http://"+bgpVIP+"/", "--count", "30", "--timeout", requestTimeout)
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("labhost client output %q: %v", out, err)
		}
		if r.Failures != 0 {
			t.Errorf("%s: %d of 30 requests failed: %v", what, r.Failures, r.Errors)
		}
	}
	served("all three announcing")

	// No healthy backend here: the route goes, the others stay.
	down := time.Now()
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	b.waitNexthops(b.dirAddrs, 20*time.Second)
	if at, _, ok := b.routeSeen.firstWithout(down, addr); ok {
		t.Logf("backends down: the router dropped %s %v after the flag went (check interval 2s, fall 3)", addr, at.Sub(down).Round(time.Millisecond))
	}
	served("two announcing")
	// The route must come back only once this director's table can
	// serve it: read the table the moment the router's FIB has the route
	// via it again. Read after the route, a table with a weight cannot
	// have got it after (no false alarm on a slow guest).
	var back struct {
		sync.Mutex
		seen bool
		at   time.Time
		tab  map[string]map[string]procDest
		err  error
	}
	ipvsPath := fmt.Sprintf("/proc/%d/net/ip_vs", p.Cmd.Process.Pid)
	b.routeSeen.onChange(func(c routeChange) {
		if !slices.Contains(c.gws, addr) {
			return
		}
		back.Lock()
		defer back.Unlock()
		if back.seen {
			return
		}
		back.seen, back.at = true, c.at
		raw, err := os.ReadFile(ipvsPath)
		if err == nil {
			back.tab, err = parseProcIPVS(string(raw))
		}
		back.err = err
	})
	restored := time.Now()
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b.waitNexthops(all, 20*time.Second)
	b.routeSeen.onChange(nil)
	back.Lock()
	switch {
	case !back.seen:
		t.Errorf("ip monitor route on the router saw no route via %s after the backends returned", addr)
	case back.err != nil:
		t.Errorf("reading the director's table as its route returned: %v", back.err)
	default:
		var weights []string
		serving := false
		for a, d := range back.tab["TCP "+bgpVIP+":80"] {
			weights = append(weights, fmt.Sprintf("%s=%d", a, d.Weight))
			serving = serving || d.Weight > 0
		}
		slices.Sort(weights)
		if !serving {
			t.Errorf("the router had the route via %s again %v after the backends returned while that director's table had no destination with weight: %v",
				addr, back.at.Sub(restored).Round(time.Millisecond), weights)
		} else {
			t.Logf("backends back: the router had the route via %s again %v after the flag returned; that director's table then: %v",
				addr, back.at.Sub(restored).Round(time.Millisecond), weights)
		}
	}
	back.Unlock()
	// The route comes back with the first backend whose check passes;
	// the others follow within a check interval. Until then this
	// director's mh table differs from the others', and a flow the
	// leave below moves off it would reach another real server, which
	// resets it. The leave is timed from the steady table.
	eventually(t, 2*hold, "d3's backends all back at weight 1 (ipvsadm -Ln)", func() error {
		s, ok := parseIPVSADM(h.MustExec("ipvsadm", "-Ln", "-t", bgpVIP+":80"))["TCP "+bgpVIP+":80"]
		if !ok {
			return fmt.Errorf("no service")
		}
		for j := range b.rs {
			a := fmt.Sprintf("10.10.0.%d:80", 21+j)
			if got := s.Backends[a]; got != "Route 1" {
				return fmt.Errorf("%s is %q", a, got)
			}
		}
		return nil
	})
	t.Logf("all three of its backends at weight 1 %v after the flag returned", time.Since(restored).Round(time.Millisecond))

	// SIGTERM: withdraw, forward on for leave_grace, then exit. A client
	// polling through the VIP across it loses nothing: flows the router
	// still sends this director are forwarded until the route is gone.
	poll := b.client.Start("ready", bin(t, "labhost"), "poll", "--url", "http://"+bgpVIP+"/",
		"--interval", "50ms", "--duration", "8s", "--timeout", "5s")
	// The director's exit, timed as it happens: polling the router's
	// FIB (an `ip route` and `birdc` per try) can see the route gone
	// only after the director has exited on a loaded guest, although
	// the router dropped it well before (seen in CI: 2.8 s).
	exited := make(chan time.Time, 1)
	go func() {
		<-p.Done()
		exited <- time.Now()
	}()
	term := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	b.waitNexthops(b.dirAddrs, 10*time.Second)
	if err := p.Wait(t.Context()); err != nil {
		t.Errorf("director exit: %v", err)
	}
	exitAt := <-exited
	// The witness: the router's route change as `ip monitor route`
	// reported it (routeSeen), against the exit.
	if gone, _, ok := b.routeSeen.firstWithout(term, addr); !ok {
		t.Errorf("ip monitor route on the router saw no route without %s after SIGTERM", addr)
	} else if !gone.Before(exitAt) {
		t.Errorf("the director exited %v after SIGTERM, before the router dropped its route (%v after)", exitAt.Sub(term).Round(time.Millisecond), gone.Sub(term).Round(time.Millisecond))
	} else {
		t.Logf("SIGTERM: the router dropped the route %v after the signal (ip monitor); the director exited %v after", gone.Sub(term).Round(time.Millisecond), exitAt.Sub(term).Round(time.Millisecond))
	}
	if !strings.Contains(p.Output(), "routes withdrawn; forwarding on") {
		t.Errorf("no graceful leave in the director's log")
	}
	res := waitPollResult(t, poll)
	t.Logf("poll through the VIP across the SIGTERM leave: %d requests, %d failed, answers %v", res.Total, res.Failures, res.Counts)
	if res.Failures != 0 {
		t.Errorf("%d of %d requests failed across the SIGTERM leave: %v", res.Failures, res.Total, res.Errors)
		// Each director's entries name the real server it sent each
		// client port to: a flow two directors sent to different real
		// servers is one that was reset.
		for i, d := range append(append([]*labnet.Host(nil), b.dirs...), h) {
			out, err := d.Exec("ipvsadm", "-Lnc")
			t.Logf("director %d's connection entries (ipvsadm -Lnc, %v):\n%s", i+1, err, out)
		}
	}
	served("after the leave")
}
