// Package labnet builds network topologies out of namespaces for the
// end-to-end tests, which run as root inside the lab guest: L2 segments
// (bridges in a dedicated "switch" namespace) and hosts (one namespace
// each, attached to segments by veth pairs). Everything a Lab creates is
// removed by t.Cleanup.
//
// The tests use iproute2 here on purpose: it is the independent witness and
// tool, not the code under test.
package labnet

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Lab is one topology. Namespace and interface names carry a random
// prefix, so labs never collide with each other or with leftovers.
type Lab struct {
	t      testing.TB
	prefix string
	sw     string // the switch namespace holding the bridges
	nextIf int

	mu     sync.Mutex
	hosts  []*Host
	swHost *Host // Switch, once asked for
}

// NewLab creates the switch namespace and registers cleanup.
func NewLab(t testing.TB) *Lab {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	l := &Lab{t: t, prefix: hex.EncodeToString(b)}
	l.sw = "gl" + l.prefix + "sw"
	l.ip("netns", "add", l.sw)
	t.Cleanup(l.cleanup)
	l.ip("-n", l.sw, "link", "set", "lo", "up")
	return l
}

// ip runs iproute2 and fails the test on error.
func (l *Lab) ip(args ...string) string {
	l.t.Helper()
	return mustRun(l.t, "ip", args...)
}

func mustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (l *Lab) cleanup() {
	l.mu.Lock()
	hosts := l.hosts
	l.mu.Unlock()
	for _, h := range hosts {
		h.stopAll()
	}
	for _, h := range hosts {
		killNS(h.NS)
		exec.Command("ip", "netns", "del", h.NS).Run()
	}
	exec.Command("ip", "netns", "del", l.sw).Run()
}

// KillAll SIGKILLs every process in the host's namespace at once, as a
// crash would (one by one, a parent could notice and shut down cleanly).
func (h *Host) KillAll() { killNS(h.NS) }

// killNS SIGKILLs every process left in a namespace, by PID: `ip netns
// exec NS pkill` would match processes in every namespace.
func killNS(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Switch is the namespace holding the segments' bridges, as a Host: a
// capture there (tcpdump -i any) sees every frame of every segment, at
// the port it entered by and the one it left by. Its processes are
// stopped at cleanup like any host's.
func (l *Lab) Switch() *Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.swHost == nil {
		l.swHost = &Host{lab: l, Name: "switch", NS: l.sw}
		l.hosts = append(l.hosts, l.swHost)
	}
	return l.swHost
}

// Segment is one L2 broadcast domain: a bridge in the switch namespace.
type Segment struct {
	lab    *Lab
	Name   string
	Bridge string
}

// Segment creates a bridge.
func (l *Lab) Segment(name string) *Segment {
	l.t.Helper()
	s := &Segment{lab: l, Name: name, Bridge: l.ifName("b")}
	l.ip("-n", l.sw, "link", "add", s.Bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0")
	l.ip("-n", l.sw, "link", "set", s.Bridge, "up")
	return s
}

// ifName returns a fresh interface name of at most 15 bytes.
func (l *Lab) ifName(kind string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nextIf++
	return fmt.Sprintf("%s%s%d", kind, l.prefix, l.nextIf)
}

// Host is one network namespace.
type Host struct {
	lab  *Lab
	Name string // the name the test gave it
	NS   string // the namespace name (ip netns)
	ifs  int

	mu    sync.Mutex
	procs []*Proc
}

// Host creates a namespace with lo up and attaches it to seg with the
// given addresses (CIDR) on its eth0. Attach adds more interfaces.
func (l *Lab) Host(name string, seg *Segment, addrs ...string) *Host {
	l.t.Helper()
	h := &Host{lab: l, Name: name, NS: "gl" + l.prefix + "-" + name}
	l.ip("netns", "add", h.NS)
	l.mu.Lock()
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	l.ip("-n", h.NS, "link", "set", "lo", "up")
	if seg != nil {
		h.Attach(seg, addrs...)
	}
	return h
}

// Attach connects the host to a segment with a new interface ethN (N from
// 0 in attach order) and returns its name.
func (h *Host) Attach(seg *Segment, addrs ...string) string {
	l := h.lab
	l.t.Helper()
	dev := fmt.Sprintf("eth%d", h.ifs)
	h.ifs++
	port := l.ifName("p")
	l.ip("-n", l.sw, "link", "add", port, "type", "veth", "peer", "name", dev, "netns", h.NS)
	l.ip("-n", l.sw, "link", "set", port, "master", seg.Bridge, "up")
	for _, a := range addrs {
		args := []string{"-n", h.NS, "addr", "add", a, "dev", dev}
		if strings.Contains(a, ":") {
			args = append(args, "nodad") // usable at once
		}
		l.ip(args...)
	}
	l.ip("-n", h.NS, "link", "set", dev, "up")
	return dev
}

// Exec runs a command in the host's namespace and returns its combined
// output.
func (h *Host) Exec(name string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("[%s] %s %s: %w\n%s", h.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// MustExec is Exec that fails the test on error.
func (h *Host) MustExec(name string, args ...string) string {
	h.lab.t.Helper()
	out, err := h.Exec(name, args...)
	if err != nil {
		h.lab.t.Fatal(err)
	}
	return out
}

// IP runs `ip ARGS` in the host's namespace, failing the test on error.
func (h *Host) IP(args ...string) string {
	h.lab.t.Helper()
	return h.lab.ip(append([]string{"-n", h.NS}, args...)...)
}

// Sysctl sets a sysctl in the host's namespace, e.g.
// Sysctl("net.ipv4.ip_forward", "1").
func (h *Host) Sysctl(key, value string) {
	h.lab.t.Helper()
	h.MustExec("sysctl", "-q", "-w", key+"="+value)
}

// EnableForwarding turns on IPv4 and IPv6 forwarding.
func (h *Host) EnableForwarding() {
	h.lab.t.Helper()
	h.Sysctl("net.ipv4.ip_forward", "1")
	h.Sysctl("net.ipv6.conf.all.forwarding", "1")
}

// DefaultRoute makes gw the host's default gateway.
func (h *Host) DefaultRoute(gw string) {
	h.lab.t.Helper()
	h.IP("route", "replace", "default", "via", gw)
}

// MAC returns the hardware address of one of the host's interfaces.
func (h *Host) MAC(dev string) string {
	h.lab.t.Helper()
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(h.IP("-j", "link", "show", "dev", dev)), &links); err != nil || len(links) != 1 {
		h.lab.t.Fatalf("[%s] MAC of %s: %v", h.Name, dev, err)
	}
	return links[0].Address
}

// Neighbour returns the host's neighbour (ARP/NDP) entry for addr: the
// MAC ("" when none) and the states such as REACHABLE or STALE.
func (h *Host) Neighbour(addr string) (mac string, state []string) {
	h.lab.t.Helper()
	var entries []struct {
		LLAddr string   `json:"lladdr"`
		State  []string `json:"state"`
	}
	if err := json.Unmarshal([]byte(h.IP("-j", "neigh", "show", "to", addr)), &entries); err != nil {
		h.lab.t.Fatalf("[%s] neighbour %s: %v", h.Name, addr, err)
	}
	if len(entries) == 0 {
		return "", nil
	}
	return entries[0].LLAddr, entries[0].State
}

// Proc is a background process in a host.
type Proc struct {
	Cmd  *exec.Cmd
	Name string
	out  *syncBuffer
	done chan struct{}
	err  error
}

// Output returns what the process has written so far (stdout and stderr).
func (p *Proc) Output() string { return p.out.String() }

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended, and its error.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Wait waits for the process to end.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Signal sends sig to the process (it was started directly under `ip
// netns exec`, which execs, so the PID is the program's).
func (p *Proc) Signal(sig syscall.Signal) error { return p.Cmd.Process.Signal(sig) }

// Start starts a background process in the host; it is killed at cleanup.
// When ready is not empty, Start waits (up to 30s) until a line of the
// process's output contains it.
func (h *Host) Start(ready string, name string, args ...string) *Proc {
	t := h.lab.t
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	p := &Proc{Cmd: cmd, Name: h.Name + ":" + name, out: &syncBuffer{}, done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("[%s] start %s: %v", h.Name, name, err)
	}
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	readyc := make(chan struct{})
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		// A report may be one long JSON line (labhost conns: ~150 bytes a
		// connection), past the scanner's 64 KiB default.
		sc.Buffer(make([]byte, 64*1024), 64<<20)
		seen := ready == ""
		if seen {
			close(readyc)
		}
		for sc.Scan() {
			p.out.WriteString(sc.Text() + "\n")
			if !seen && strings.Contains(sc.Text(), ready) {
				seen = true
				close(readyc)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		<-scanned // all output is in p.out before Exited reports true
		close(p.done)
	}()
	select {
	case <-readyc:
	case <-p.done:
		t.Fatalf("[%s] %s exited before ready: %v\n%s", h.Name, name, p.err, p.Output())
	case <-time.After(30 * time.Second):
		t.Fatalf("[%s] %s not ready after 30s\n%s", h.Name, name, p.Output())
	}
	return p
}

func (h *Host) stopAll() {
	h.mu.Lock()
	procs := h.procs
	h.mu.Unlock()
	for _, p := range procs {
		if done, _ := p.Exited(); !done {
			p.Cmd.Process.Kill()
			<-p.done
		}
	}
}

// syncBuffer is a strings.Builder safe for one writer and many readers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) WriteString(x string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(x)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TempFile writes content to a file in dir and returns its path.
func TempFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := dir + "/" + name
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
