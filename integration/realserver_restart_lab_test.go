//go:build lab

package integration

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golvs/golvs/integration/labnet"
)

// TestRealserverRestartAdopts kills the realserver agent of one dr real
// server with SIGKILL while a client polls the VIP through the director,
// and starts it again: the new agent adopts what its state file records
// instead of restoring it first, so the VIP never leaves lo (`ip monitor
// address` in the real server's namespace records no event for it) and
// the client sees no failed request. A clean stop then restores the host
// exactly as it was before the first agent started.
func TestRealserverRestartAdopts(t *testing.T) {
	c := newClusterPrep(t, "dr", false)
	services := c.service("web", "tcp", 80, "dr", "rr")
	c.startDirector(services, hasBackends(3, "TCP "+vip+":80"))
	h := c.rs[0]
	before := rsHostState(h)
	agents := c.startAgents(c.config, vip, "lo")
	c.assertEven(c.requests("http://"+vip+"/", 30), 30)

	mon := startAddrMonitor(t, h)
	poll := c.startPoll()
	if err := agents[0].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitExit(t, agents[0])
	if out := h.IP("-4", "addr", "show", "dev", "lo"); !strings.Contains(out, " "+vip+"/32 ") {
		t.Fatalf("the VIP went with the killed agent: not a crash\n%s", out)
	}

	// The same command line again; ip netns exec NS realserver ARGS...
	args := agents[0].Cmd.Args[4:]
	restarted := time.Now()
	agent := h.Start("host prepared", args[0], args[1:]...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("restarted agent output:\n%s", agent.Output())
		}
	})
	t.Logf("restarted agent prepared the host %v after its start", time.Since(restarted).Round(time.Millisecond))
	if !strings.Contains(agent.Output(), "adopting the state file of an earlier run") {
		t.Errorf("the restarted agent did not adopt the state file:\n%s", agent.Output())
	}
	events := mon.until(t)
	if strings.Contains(events, vip+"/") {
		t.Errorf("the VIP on lo changed across the restart (ip monitor address):\n%s", events)
	}
	// Requests keep reaching rs1 after the restart: the poll goes on until
	// rs1 has answered a new connection since, as ipvsadm counts them.
	base := rsConns(c, c.rsAddrs[0])
	eventually(t, 20*eventuallyScale, "rs1 gets new connections after the restart", func() error {
		if n := rsConns(c, c.rsAddrs[0]); n < base+3 {
			return fmt.Errorf("%d connections to rs1, want %d", n, base+3)
		}
		return nil
	})
	r := c.stopPoll(poll)
	t.Logf("poller across kill -9 and restart of rs1's agent: %d requests, %d failed, counts %v, errors %q",
		r.Total, r.Failures, r.Counts, r.Errors)
	if r.Failures != 0 {
		t.Errorf("%d of %d requests failed across the agent's restart: %q", r.Failures, r.Total, r.Errors)
	}
	for _, name := range c.names {
		if r.Counts[name] == 0 {
			t.Errorf("%s answered none of the poller's %d requests: %v", name, r.Total, r.Counts)
		}
	}

	// A clean stop restores the host exactly.
	if err := agent.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, agent)
	if done, err := agent.Exited(); done && err != nil {
		t.Errorf("restarted agent exited with %v", err)
	}
	if after := rsHostState(h); after != before {
		t.Errorf("the host is not restored after the clean stop.\nbefore the first agent:\n%s\nafter:\n%s", before, after)
	}
}

// rsHostState is what the agent may touch on a real server, as text.
func rsHostState(h *labnet.Host) string {
	var b strings.Builder
	b.WriteString(mustOut(h.Exec("ip", "-o", "-4", "addr")))
	b.WriteString(mustOut(h.Exec("ip", "-o", "link")))
	for _, s := range []string{
		"net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.all.arp_announce",
		"net.ipv4.conf.lo.arp_ignore", "net.ipv4.conf.lo.arp_announce",
		"net.ipv4.conf.all.rp_filter",
	} {
		b.WriteString(mustOut(h.Exec("sysctl", s)))
	}
	return b.String()
}

// rsConns is the director's count of connections (active and inactive)
// to backend addr of the web service.
func rsConns(c *cluster, addr string) int {
	var n int
	for _, l := range strings.Split(mustOut(c.director.Exec("ipvsadm", "-Ln")), "\n") {
		f := strings.Fields(l)
		if len(f) == 6 && f[1] == addr+":80" {
			var act, inact int
			fmt.Sscan(f[4], &act)
			fmt.Sscan(f[5], &inact)
			n += act + inact
		}
	}
	return n
}

func waitExit(t *testing.T, p *labnet.Proc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*eventuallyScale)
	defer cancel()
	if err := p.Wait(ctx); errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s did not exit\n%s", p.Name, p.Output())
	}
}

// addrMonitor is `ip monitor address` in a namespace: the kernel's own
// record of every address added to or deleted from it.
type addrMonitor struct {
	output func() string        // what the monitor printed so far
	ip     func(args ...string) // ip ARGS in the monitored namespace
	dev    string               // where the markers go
	seen   int                  // bytes of output already returned
	marks  int
}

// startAddrMonitor starts the monitor in a lab host and returns once it
// hears events.
func startAddrMonitor(t *testing.T, h *labnet.Host) *addrMonitor {
	t.Helper()
	p := h.Start("", "ip", "monitor", "address")
	m := &addrMonitor{output: p.Output, ip: func(args ...string) { h.IP(args...) }, dev: "eth0"}
	m.live(t)
	return m
}

// startRootAddrMonitor is startAddrMonitor in the guest's own namespace
// (where systemd runs the units), with markers on dev.
func startRootAddrMonitor(t *testing.T, dev string) *addrMonitor {
	t.Helper()
	var mu sync.Mutex
	var buf strings.Builder
	cmd := exec.Command("ip", "monitor", "address")
	w := writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(b)
	})
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	m := &addrMonitor{
		output: func() string { mu.Lock(); defer mu.Unlock(); return buf.String() },
		ip:     func(args ...string) { must(t, "ip", args...) },
		dev:    dev,
	}
	m.live(t)
	return m
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// until adds and deletes a marker address and waits until the monitor
// has printed the deletion: every event before it is then in the output.
// It returns the output since the last call.
func (m *addrMonitor) until(t *testing.T) string {
	t.Helper()
	mark := m.mark()
	var out string
	eventually(t, 10*eventuallyScale, "ip monitor hears the marker "+mark, func() error {
		var ok bool
		if out, ok = m.heard(mark); !ok {
			return fmt.Errorf("no deletion of %s yet:\n%s", mark, out)
		}
		return nil
	})
	m.seen += len(out)
	return out
}

// live returns once the monitor hears: it has subscribed only some time
// after it started (seen: later than a first marker on a loaded guest),
// so a marker goes out every second until one is heard.
func (m *addrMonitor) live(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * eventuallyScale)
	for {
		mark := m.mark()
		for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if out, ok := m.heard(mark); ok {
				m.seen += len(out)
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ip monitor heard none of %d markers:\n%s", m.marks, m.output())
		}
	}
}

// mark adds and deletes a new marker address and returns it.
func (m *addrMonitor) mark() string {
	m.marks++
	mark := fmt.Sprintf("203.0.113.%d/32", m.marks)
	m.ip("addr", "add", mark, "dev", m.dev)
	m.ip("addr", "del", mark, "dev", m.dev)
	return mark
}

// heard is the output since the last call's and whether it holds the
// deletion of mark.
func (m *addrMonitor) heard(mark string) (string, bool) {
	out := m.output()[m.seen:]
	_, ok := deletion(out, mark)
	return out, ok
}

// deletion is the line of `ip monitor address` output that reports
// addr (ADDRESS/PREFIX) deleted, if one does.
func deletion(out, addr string) (string, bool) {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Deleted") && strings.Contains(l, " "+addr+" ") {
			return l, true
		}
	}
	return "", false
}
