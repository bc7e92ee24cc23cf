package main

// End-to-end tests: the real command, run inside network namespaces this
// test creates (`ip netns exec NS realserver ...`), with iproute2 and
// /proc/sys inside the namespace as independent witnesses. Every namespace
// has its own net.ipv4.conf.* sysctls, so nothing here touches the host's
// own network namespace. They need root and fail (never skip) without it.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const beMain = "GOLVS_REALSERVER_TEST_MAIN"

var binPath string // a copy of this test binary that anyone may execute

// TestMain lets the test binary act as the realserver command when it is
// started with beMain set: the tests run exactly the code main runs.
func TestMain(m *testing.M) {
	if os.Getenv(beMain) == "1" {
		main()
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "realserver-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if err := copyExecutable(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func copyExecutable(dir string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	b, err := os.ReadFile(self)
	if err != nil {
		return err
	}
	binPath = filepath.Join(dir, "realserver")
	if err := os.WriteFile(binPath, b, 0o755); err != nil {
		return err
	}
	return os.Chmod(dir, 0o755) // so the not-root test can run it
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("these tests need root (network namespaces, sysctls); run them as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("these tests need iproute2's ip as a witness: ", err)
	}
}

var nsSeq atomic.Int32

// newNS creates a network namespace holding a veth pair e0/e1 with the
// backend address 10.0.0.2/24 on e0, and removes it when the test ends.
func newNS(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	ns := fmt.Sprintf("golvs-rs-%d-%d", os.Getpid(), nsSeq.Add(1))
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	// lo is up on every real host (the agent does not manage it).
	sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	// No DAD: link-local addresses would change from "tentative" while
	// the test compares snapshots of the namespace.
	setSysctl(t, ns, "net.ipv6.conf.default.accept_dad", "0")
	sh(t, "ip", "-n", ns, "link", "add", "e0", "type", "veth", "peer", "name", "e1")
	sh(t, "ip", "-n", ns, "addr", "add", "10.0.0.2/24", "dev", "e0")
	sh(t, "ip", "-n", ns, "link", "set", "e0", "up")
	sh(t, "ip", "-n", ns, "link", "set", "e1", "up")
	// The kernel adds the IPv6 link-local addresses a moment after the
	// links come up: wait for them, or a test's "before" snapshot may
	// lack what its "after" has.
	for _, dev := range []string{"e0", "e1"} {
		eventually(t, 10*time.Second, dev+" link-local address", func() (bool, string) {
			out := sh(t, "ip", "-n", ns, "-6", "-o", "addr", "show", "dev", dev)
			// Seen tentative on a busy machine even with accept_dad=0:
			// wait until it settles, or the snapshots differ by the flag.
			return strings.Contains(out, " fe80::") && !strings.Contains(out, "tentative"), out
		})
	}
	return ns
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func sysctl(t *testing.T, ns, name string) string {
	t.Helper()
	path := "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
	return strings.TrimSpace(sh(t, "ip", "netns", "exec", ns, "cat", path))
}

func setSysctl(t *testing.T, ns, name, value string) {
	t.Helper()
	path := "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
	sh(t, "ip", "netns", "exec", ns, "sh", "-c", "echo "+value+" > "+path)
}

func addrs(t *testing.T, ns, dev string) string {
	t.Helper()
	return sh(t, "ip", "-n", ns, "-o", "addr", "show", "dev", dev)
}

var arpSysctls = []string{
	"net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.all.arp_announce",
	"net.ipv4.conf.lo.arp_ignore", "net.ipv4.conf.lo.arp_announce",
	"net.ipv4.conf.all.rp_filter",
}

// hostState is everything the agent may touch in ns, as text.
func hostState(t *testing.T, ns string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(sh(t, "ip", "-n", ns, "-o", "addr"))
	b.WriteString(sh(t, "ip", "-n", ns, "-o", "link"))
	for _, s := range arpSysctls {
		fmt.Fprintf(&b, "%s=%s\n", s, sysctl(t, ns, s))
	}
	return b.String()
}

// syncBuffer collects a process's output for messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

func command(ns string, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, binPath}, args...)...)
	cmd.Env = append(os.Environ(), beMain+"=1")
	return cmd
}

// start runs `realserver ARGS` in ns. ip netns exec execs the program
// itself, so the PID is realserver's and signals reach it.
func start(t *testing.T, ns string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: command(ns, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait returns the exit code, failing the test if the process outlives d.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("realserver still running after %v; output:\n%s", d, p.out)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("wait: %v", p.err)
	}
	return 0
}

func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// runOnce runs a short command to completion and returns its exit code
// and output.
func runOnce(t *testing.T, ns string, args ...string) (int, string) {
	t.Helper()
	p := start(t, ns, args...)
	code := p.wait(t, 30*time.Second)
	return code, p.out.String()
}

// eventually polls a witness until it holds or the deadline passes: the
// daemon reacts asynchronously, so the test waits for the observable
// result, bounded, instead of sleeping.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last seen:\n%s", d, what, last)
		}
		<-tick.C
	}
}

func writeTopology(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "topology.toml")
	if err := os.WriteFile(path, []byte("[director]\ninterface = \"eth0\"\n"+body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const drTopology = `
[[service]]
name = "web"
address = "192.0.2.10"
port = 80
forwarding = "dr"
[[service.backend]]
address = "10.0.0.2"
[[service.backend]]
address = "10.0.0.3"

[[service]]
name = "mail"
address = "192.0.2.11"
port = 25
forwarding = "dr"
[[service.backend]]
address = "10.0.0.2"

[[service]]
name = "elsewhere"
address = "192.0.2.12"
port = 80
forwarding = "dr"
[[service.backend]]
address = "10.0.0.9"
`

func hasAddr(t *testing.T, ns, dev, prefix string) func() (bool, string) {
	return func() (bool, string) {
		out := addrs(t, ns, dev)
		return strings.Contains(out, " "+prefix+" "), out
	}
}

func sysctlIs(t *testing.T, ns, name, want string) func() (bool, string) {
	return func() (bool, string) {
		got := sysctl(t, ns, name)
		return got == want, name + "=" + got
	}
}

// TestRunAppliesKeepsAndRestores is the main life cycle: run from a file,
// check reports convergence, drift is repaired, SIGTERM restores exactly
// the values from before (including non-default ones) and keeps what was
// there before.
func TestRunAppliesKeepsAndRestores(t *testing.T) {
	ns := newNS(t)
	cfg := writeTopology(t, drTopology)
	state := filepath.Join(t.TempDir(), "rs.state")
	// Non-default values from before, and a VIP the host already had.
	setSysctl(t, ns, "net.ipv4.conf.all.arp_ignore", "2")
	setSysctl(t, ns, "net.ipv4.conf.lo.arp_announce", "1")
	sh(t, "ip", "-n", ns, "addr", "add", "192.0.2.11/32", "dev", "lo")
	before := hostState(t, ns)

	// The periodic check is effectively off: the deleted VIP below must
	// come back through the address event alone.
	p := start(t, ns, "run", "-config", cfg, "--state-file", state, "--agent-address=",
		"--drain-grace=0s", "--check-interval=1h")
	eventually(t, 10*time.Second, "VIP 192.0.2.10/32 on lo", hasAddr(t, ns, "lo", "192.0.2.10/32"))
	for name, want := range map[string]string{
		"net.ipv4.conf.all.arp_ignore": "1", "net.ipv4.conf.all.arp_announce": "2",
		"net.ipv4.conf.lo.arp_ignore": "1", "net.ipv4.conf.lo.arp_announce": "2",
	} {
		eventually(t, 10*time.Second, name, sysctlIs(t, ns, name, want))
	}
	if out := addrs(t, ns, "lo"); strings.Contains(out, "192.0.2.12") {
		t.Errorf("VIP of a service without a backend here was added:\n%s", out)
	}
	if _, err := os.Stat(state); err != nil {
		t.Errorf("no state file while running: %v", err)
	}

	// Converged: check has nothing to do.
	code, out := runOnce(t, ns, "check", "--config", cfg)
	if code != 0 || strings.TrimSpace(out) != "no changes" {
		t.Errorf("check on a converged host: exit %d, output %q, want 0 and \"no changes\"", code, out)
	}

	// Drift: the VIP is deleted behind the agent's back.
	sh(t, "ip", "-n", ns, "addr", "del", "192.0.2.10/32", "dev", "lo")
	eventually(t, 10*time.Second, "deleted VIP re-added", hasAddr(t, ns, "lo", "192.0.2.10/32"))

	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM; output:\n%s", code, p.out)
	}
	if after := hostState(t, ns); after != before {
		t.Errorf("host not restored exactly.\nbefore:\n%s\nafter:\n%s\nrealserver output:\n%s", before, after, p.out)
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left after a clean exit: %v", err)
	}
}

// TestPeriodicCheckRepairsSysctl: a sysctl reset makes no netlink event;
// the periodic check finds it.
func TestPeriodicCheckRepairsSysctl(t *testing.T) {
	ns := newNS(t)
	before := hostState(t, ns)
	p := start(t, ns, "run", "--vip", "192.0.2.10", "--mode", "dr", "--state-file", filepath.Join(t.TempDir(), "rs.state"),
		"--agent-address=", "--drain-grace=0s", "--check-interval=100ms")
	eventually(t, 10*time.Second, "arp_announce", sysctlIs(t, ns, "net.ipv4.conf.all.arp_announce", "2"))
	setSysctl(t, ns, "net.ipv4.conf.all.arp_announce", "1")
	eventually(t, 10*time.Second, "reset arp_announce set again", sysctlIs(t, ns, "net.ipv4.conf.all.arp_announce", "2"))
	p.signal(t, syscall.SIGINT)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGINT:\n%s", code, p.out)
	}
	// The value from before the agent started comes back, not the 1
	// someone wrote while it ran.
	if after := hostState(t, ns); after != before {
		t.Errorf("not restored.\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestCheckChangesNothing(t *testing.T) {
	ns := newNS(t)
	cfg := writeTopology(t, drTopology)
	before := hostState(t, ns)
	code, out := runOnce(t, ns, "check", "-config", cfg)
	if code != 0 {
		t.Fatalf("check: exit %d:\n%s", code, out)
	}
	for _, want := range []string{
		"add address 192.0.2.10/32 to lo",
		"add address 192.0.2.11/32 to lo",
		"set net.ipv4.conf.all.arp_ignore = 1 (now 0)",
		"set net.ipv4.conf.all.arp_announce = 2 (now 0)",
		"set net.ipv4.conf.lo.arp_ignore = 1 (now 0)",
		"set net.ipv4.conf.lo.arp_announce = 2 (now 0)",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "192.0.2.12") {
		t.Errorf("check lists a VIP whose service has no backend here:\n%s", out)
	}
	if after := hostState(t, ns); after != before {
		t.Errorf("check changed the host.\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestCrashThenCleanup(t *testing.T) {
	ns := newNS(t)
	state := filepath.Join(t.TempDir(), "rs.state")
	setSysctl(t, ns, "net.ipv4.conf.all.arp_ignore", "2")
	before := hostState(t, ns)

	p := start(t, ns, "run", "--vip", "192.0.2.10", "--mode", "dr", "--state-file", state, "--agent-address=")
	eventually(t, 10*time.Second, "VIP on lo", hasAddr(t, ns, "lo", "192.0.2.10/32"))
	eventually(t, 10*time.Second, "lo.arp_announce", sysctlIs(t, ns, "net.ipv4.conf.lo.arp_announce", "2"))
	p.signal(t, syscall.SIGKILL)
	p.wait(t, 10*time.Second)
	if !hasAddrNow(t, ns, "192.0.2.10/32") {
		t.Fatal("the VIP vanished on SIGKILL: the crash was not a crash")
	}

	code, out := runOnce(t, ns, "run", "--cleanup", "--state-file", state)
	if code != 0 {
		t.Fatalf("run --cleanup: exit %d:\n%s", code, out)
	}
	if after := hostState(t, ns); after != before {
		t.Errorf("cleanup did not restore.\nbefore:\n%s\nafter:\n%s\ncleanup output:\n%s", before, after, out)
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left after cleanup: %v", err)
	}
}

func hasAddrNow(t *testing.T, ns, prefix string) bool {
	ok, _ := hasAddr(t, ns, "lo", prefix)()
	return ok
}

// TestCrashThenRunAdopts: a new run after a crash adopts the state file
// instead of restoring it first, so the VIP never leaves lo (`ip monitor
// address` in the namespace sees no deletion of it), and a clean exit
// afterwards still restores the values from before the first run.
func TestCrashThenRunAdopts(t *testing.T) {
	ns := newNS(t)
	state := filepath.Join(t.TempDir(), "rs.state")
	setSysctl(t, ns, "net.ipv4.conf.all.arp_ignore", "2")
	before := hostState(t, ns)
	args := []string{"run", "--vip", "192.0.2.10", "--mode", "dr", "--state-file", state, "--agent-address=", "--drain-grace=0s"}

	p := start(t, ns, args...)
	eventually(t, 10*time.Second, "VIP on lo", hasAddr(t, ns, "lo", "192.0.2.10/32"))
	eventually(t, 10*time.Second, "lo.arp_announce", sysctlIs(t, ns, "net.ipv4.conf.lo.arp_announce", "2"))
	p.signal(t, syscall.SIGKILL)
	p.wait(t, 10*time.Second)

	mon := newAddrMonitor(t, ns)
	p = start(t, ns, args...)
	eventually(t, 10*time.Second, "second run's log", func() (bool, string) {
		out := p.out.String()
		return strings.Contains(out, "adopting the state file of an earlier run"), out
	})
	eventually(t, 10*time.Second, "second run ready", func() (bool, string) {
		return strings.Contains(p.out.String(), "host prepared"), p.out.String()
	})
	if events := mon.until(t, "e1"); strings.Contains(events, "192.0.2.10") {
		t.Errorf("the restart changed the VIP on lo (ip monitor address):\n%s\nrealserver:\n%s", events, p.out)
	}
	for name, want := range map[string]string{
		"net.ipv4.conf.all.arp_ignore": "1", "net.ipv4.conf.all.arp_announce": "2",
		"net.ipv4.conf.lo.arp_ignore": "1", "net.ipv4.conf.lo.arp_announce": "2",
	} {
		if got := sysctl(t, ns, name); got != want {
			t.Errorf("after the restart %s = %s, want %s", name, got, want)
		}
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out)
	}
	if after := hostState(t, ns); after != before {
		t.Errorf("not restored to the state before the crash.\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// addrMonitor is `ip monitor address` running in a namespace: the kernel's
// own record of every address added or deleted there.
type addrMonitor struct {
	ns    string
	out   *syncBuffer
	marks int
}

// newAddrMonitor starts the monitor and returns once it hears events.
func newAddrMonitor(t *testing.T, ns string) *addrMonitor {
	t.Helper()
	cmd := exec.Command("ip", "-n", ns, "monitor", "address")
	m := &addrMonitor{ns: ns, out: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = m.out, m.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// The monitor hears nothing until it has subscribed, which a loaded
	// host may delay past a first marker: send markers until one is heard.
	deadline := time.Now().Add(20 * time.Second)
	for !m.heard(t, "e1", time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("ip monitor heard no marker in 20s:\n%s", m.out.String())
		}
	}
	return m
}

// heard adds and deletes a marker on dev and reports whether the monitor
// printed its deletion within wait; it starts the output afresh if so.
func (m *addrMonitor) heard(t *testing.T, dev string, wait time.Duration) bool {
	t.Helper()
	m.marks++
	mark := fmt.Sprintf("198.51.100.%d/32", m.marks)
	sh(t, "ip", "-n", m.ns, "addr", "add", mark, "dev", dev)
	sh(t, "ip", "-n", m.ns, "addr", "del", mark, "dev", dev)
	for end := time.Now().Add(wait); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if got := m.out.String(); strings.Contains(got, "Deleted") && strings.Contains(got, mark) {
			m.out.mu.Lock()
			m.out.b.Reset()
			m.out.mu.Unlock()
			return true
		}
	}
	return false
}

// until adds and deletes a marker address on dev and waits until the
// monitor has printed its deletion: every event before it is in the
// output. It returns the output up to the marker and starts afresh.
func (m *addrMonitor) until(t *testing.T, dev string) string {
	t.Helper()
	m.marks++
	mark := fmt.Sprintf("198.51.100.%d/32", m.marks)
	sh(t, "ip", "-n", m.ns, "addr", "add", mark, "dev", dev)
	sh(t, "ip", "-n", m.ns, "addr", "del", mark, "dev", dev)
	var got string
	eventually(t, 10*time.Second, "ip monitor hears the marker "+mark, func() (bool, string) {
		got = m.out.String()
		return strings.Contains(got, "Deleted") && strings.Contains(got, mark), got
	})
	m.out.mu.Lock()
	m.out.b.Reset()
	m.out.mu.Unlock()
	return got
}

func TestStartErrorsChangeNothing(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name  string
		setup func(t *testing.T, ns string) []string // returns the args
		want  string                                 // in the message
	}{
		{"no local backend", func(t *testing.T, ns string) []string {
			cfg := writeTopology(t, `
[[service]]
name = "web"
address = "192.0.2.10"
port = 80
forwarding = "dr"
[[service.backend]]
address = "10.0.0.9"
`)
			return []string{"run", "-config", cfg}
		}, "no dr or tun service has a backend on this host"},
		{"VIP on another interface", func(t *testing.T, ns string) []string {
			sh(t, "ip", "-n", ns, "addr", "add", "192.0.2.10/32", "dev", "e1")
			return []string{"run", "--vip", "192.0.2.10", "--mode", "dr"}
		}, "VIP 192.0.2.10 (service --vip) is on e1"},
		{"unknown mode", func(t *testing.T, ns string) []string {
			return []string{"run", "--vip", "192.0.2.10", "--mode", "nat"}
		}, `mode "nat"`},
		{"bad file", func(t *testing.T, ns string) []string {
			cfg := writeTopology(t, "[[service]]\nname = \"web\"\naddress = \"192.0.2.10\"\nport = 80\nforwarding = \"dr\"\n[[service.backend]]\naddress = \"10.0.0.2\"\nweight = -1\n")
			return []string{"run", "-config", cfg}
		}, "topology.toml:10:"},
		{"symlinked state file", func(t *testing.T, ns string) []string {
			dir := t.TempDir()
			link := filepath.Join(dir, "rs.state")
			if err := os.Symlink(filepath.Join(dir, "target"), link); err != nil {
				t.Fatal(err)
			}
			return []string{"run", "--vip", "192.0.2.10", "--mode", "dr", "--state-file", link}
		}, "symbolic link"},
		{"check: VIP on another interface", func(t *testing.T, ns string) []string {
			sh(t, "ip", "-n", ns, "addr", "add", "192.0.2.10/32", "dev", "e1")
			return []string{"check", "--vip", "192.0.2.10", "--mode", "dr"}
		}, "is on e1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNS(t)
			args := tc.setup(t, ns)
			state := filepath.Join(t.TempDir(), "rs.state")
			if args[0] == "run" && !strings.Contains(strings.Join(args, " "), "--state-file") {
				args = append(args, "--state-file", state)
			}
			if args[0] == "run" {
				args = append(args, "--agent-address=")
			}
			before := hostState(t, ns)
			code, out := runOnce(t, ns, args...)
			if code != 1 {
				t.Errorf("exit %d, want 1; output:\n%s", code, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("message lacks %q:\n%s", tc.want, out)
			}
			if after := hostState(t, ns); after != before {
				t.Errorf("a failed start changed the host.\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed start wrote a state file: %v", err)
			}
		})
	}
}

// TestNotRoot runs the command as nobody, in a network namespace of its own
// (so even a broken root check could not touch the host).
func TestNotRoot(t *testing.T) {
	requireRoot(t)
	cmd := exec.Command(binPath, "run", "--vip", "192.0.2.10", "--mode", "dr",
		"--state-file", filepath.Join(t.TempDir(), "rs.state"), "--agent-address=")
	cmd.Env = append(os.Environ(), beMain+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Unshareflags: syscall.CLONE_NEWNET,
		Credential:   &syscall.Credential{Uid: 65534, Gid: 65534},
	}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("as nobody: %v, want exit 1; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "must run as root") {
		t.Errorf("message does not say root is needed:\n%s", out)
	}

	// check only reads, so it works without root.
	cmd = exec.Command(binPath, "check", "--vip", "192.0.2.10", "--mode", "dr")
	cmd.Env = append(os.Environ(), beMain+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Unshareflags: syscall.CLONE_NEWNET,
		Credential:   &syscall.Credential{Uid: 65534, Gid: 65534},
	}
	out, err = cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "add address 192.0.2.10/32 to lo") {
		t.Errorf("check as nobody: %v\n%s", err, out)
	}
}

// TestReload: SIGHUP applies a changed file as a diff, and a bad file
// keeps the running state.
func TestReload(t *testing.T) {
	ns := newNS(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "topology.toml")
	write := func(body string) {
		if err := os.WriteFile(cfg, []byte("[director]\ninterface = \"eth0\"\n"+body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	svc := func(name, vip string) string {
		return fmt.Sprintf("[[service]]\nname = %q\naddress = %q\nport = 80\nforwarding = \"dr\"\n[[service.backend]]\naddress = \"10.0.0.2\"\n", name, vip)
	}
	write(svc("a", "192.0.2.10") + svc("b", "192.0.2.11"))
	p := start(t, ns, "run", "-config", cfg, "--state-file", filepath.Join(dir, "rs.state"),
		"--agent-address=", "--drain-grace=0s")
	eventually(t, 10*time.Second, "both VIPs", func() (bool, string) {
		out := addrs(t, ns, "lo")
		return strings.Contains(out, "192.0.2.10/32") && strings.Contains(out, "192.0.2.11/32"), out
	})

	write(svc("b", "192.0.2.11") + svc("c", "192.0.2.12"))
	p.signal(t, syscall.SIGHUP)
	eventually(t, 10*time.Second, "a's VIP gone, c's added, b's kept", func() (bool, string) {
		out := addrs(t, ns, "lo")
		return !strings.Contains(out, "192.0.2.10/32") && strings.Contains(out, "192.0.2.11/32") &&
			strings.Contains(out, "192.0.2.12/32"), out
	})
	if n := strings.Count(p.out.String(), "add address 192.0.2.11/32"); n != 1 {
		t.Errorf("an unchanged VIP was re-added on reload:\n%s", p.out)
	}

	write("[[service]]\nname = 1\n")
	p.signal(t, syscall.SIGHUP)
	eventually(t, 10*time.Second, "reload error logged", func() (bool, string) {
		out := p.out.String()
		return strings.Contains(out, "reload failed"), out
	})
	if out := addrs(t, ns, "lo"); !strings.Contains(out, "192.0.2.11/32") || !strings.Contains(out, "192.0.2.12/32") {
		t.Errorf("a bad file changed the running state:\n%s", out)
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out)
	}
	if out := addrs(t, ns, "lo"); strings.Contains(out, "192.0.2.1") {
		t.Errorf("VIPs left after exit:\n%s", out)
	}
}

// inNS runs f on a thread switched into the named network namespace; the
// thread is never unlocked, so Go discards it instead of reusing it in the
// wrong namespace. Sockets made in f stay in that namespace.
func inNS[T any](ns string, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var zero T
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{zero, err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- result{zero, err}
			return
		}
		v, err := f()
		ch <- result{v, err}
	}()
	r := <-ch
	return r.v, r.err
}

func agentClient(ns string) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return inNS(ns, func() (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, network, addr)
				})
			},
		},
	}
}

func agentSays(t *testing.T, c *http.Client, want string) func() (bool, string) {
	return func() (bool, string) {
		resp, err := c.Get("http://127.0.0.1:9471/")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got := strings.TrimSpace(string(b))
		return resp.StatusCode == 200 && got == want, fmt.Sprintf("%d %q", resp.StatusCode, got)
	}
}

func TestAgentEndpoint(t *testing.T) {
	ns := newNS(t)
	dir := t.TempDir()
	drainFile := filepath.Join(dir, "drain")
	weightFile := filepath.Join(dir, "weight")
	p := start(t, ns, "run", "--vip", "192.0.2.10", "--mode", "dr", "--state-file", filepath.Join(dir, "rs.state"),
		"--agent-address", "127.0.0.1:9471", "--drain-file", drainFile, "--weight-file", weightFile, "--drain-grace", "3s")
	c := agentClient(ns)
	eventually(t, 10*time.Second, "agent says up", func() (bool, string) {
		ok, last := agentSays(t, c, "up")()
		return ok, last + "\nrealserver output:\n" + p.out.String()
	})

	if code, out := runOnce(t, ns, "drain", "--drain-file", drainFile); code != 0 {
		t.Fatalf("drain: exit %d:\n%s", code, out)
	}
	eventually(t, 5*time.Second, "agent says drain", agentSays(t, c, "drain"))
	if code, out := runOnce(t, ns, "undrain", "--drain-file", drainFile); code != 0 {
		t.Fatalf("undrain: exit %d:\n%s", code, out)
	}
	eventually(t, 5*time.Second, "agent says up again", agentSays(t, c, "up"))
	if err := os.WriteFile(weightFile, []byte("50\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "agent says 50%", agentSays(t, c, "50%"))

	// SIGTERM: drain is reported while the VIP is still there, so the
	// director stops new connections before the host lets go of the VIP.
	p.signal(t, syscall.SIGTERM)
	eventually(t, 5*time.Second, "agent says drain during the grace", agentSays(t, c, "drain"))
	if !hasAddrNow(t, ns, "192.0.2.10/32") {
		t.Error("VIP removed before the drain grace ended")
	}
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out)
	}
	if hasAddrNow(t, ns, "192.0.2.10/32") {
		t.Error("VIP left after exit")
	}
}

// TestNeighbourDiscovery checks on the wire what the README claims: with
// the agent running, a neighbour on the LAN cannot resolve the VIP, IPv4
// (arp_ignore) nor IPv6 (the kernel answers solicitations only for
// addresses on the receiving interface), while the host's own address
// still resolves.
func TestNeighbourDiscovery(t *testing.T) {
	requireRoot(t)
	client := newNS(t)
	server := newNS(t)
	// A veth between the two namespaces.
	sh(t, "ip", "-n", client, "link", "add", "c0", "type", "veth", "peer", "name", "s0", "netns", server)
	sh(t, "ip", "-n", client, "addr", "add", "10.9.0.1/24", "dev", "c0")
	sh(t, "ip", "-n", client, "addr", "add", "2001:db8:9::1/64", "dev", "c0", "nodad")
	sh(t, "ip", "-n", server, "addr", "add", "10.9.0.2/24", "dev", "s0")
	sh(t, "ip", "-n", server, "addr", "add", "2001:db8:9::2/64", "dev", "s0", "nodad")
	sh(t, "ip", "-n", client, "link", "set", "c0", "up")
	sh(t, "ip", "-n", server, "link", "set", "s0", "up")
	// The client believes the VIPs are on the link, as a router in front
	// of a DR cluster would if the real servers answered for them.
	sh(t, "ip", "-n", client, "route", "add", "192.0.2.10/32", "dev", "c0")
	sh(t, "ip", "-n", client, "-6", "route", "add", "2001:db8::10/128", "dev", "c0")

	cfg := writeTopology(t, `
[[service]]
name = "v4"
address = "192.0.2.10"
port = 80
forwarding = "dr"
[[service.backend]]
address = "10.9.0.2"

[[service]]
name = "v6"
address = "2001:db8::10"
port = 80
forwarding = "dr"
[[service.backend]]
address = "2001:db8:9::2"
`)
	p := start(t, server, "run", "-config", cfg, "--state-file", filepath.Join(t.TempDir(), "rs.state"),
		"--agent-address=", "--drain-grace=0s")
	eventually(t, 10*time.Second, "IPv4 VIP", hasAddr(t, server, "lo", "192.0.2.10/32"))
	eventually(t, 10*time.Second, "IPv6 VIP", hasAddr(t, server, "lo", "2001:db8::10/128"))
	if out := addrs(t, server, "lo"); !strings.Contains(out, "2001:db8::10/128 scope global nodad") {
		t.Errorf("IPv6 VIP not added with nodad:\n%s", out)
	}
	eventually(t, 10*time.Second, "arp_ignore", sysctlIs(t, server, "net.ipv4.conf.all.arp_ignore", "1"))

	send := func(addr string) {
		t.Helper()
		_, err := inNS(client, func() (struct{}, error) {
			c, err := net.Dial("udp", net.JoinHostPort(addr, "9"))
			if err != nil {
				return struct{}{}, err
			}
			defer c.Close()
			_, err = c.Write([]byte("x"))
			return struct{}{}, err
		})
		if err != nil {
			t.Fatalf("send to %s: %v", addr, err)
		}
	}
	neigh := func(addr string) string {
		return strings.TrimSpace(sh(t, "ip", "-n", client, "neigh", "show", addr))
	}
	for _, a := range []string{"10.9.0.2", "2001:db8:9::2", "192.0.2.10", "2001:db8::10"} {
		send(a)
	}
	for _, a := range []string{"10.9.0.2", "2001:db8:9::2"} {
		eventually(t, 10*time.Second, "own address "+a+" resolves (control)", func() (bool, string) {
			n := neigh(a)
			return strings.Contains(n, "lladdr"), n
		})
	}
	for _, a := range []string{"192.0.2.10", "2001:db8::10"} {
		// Resolution gives up after the kernel's probes (about 3 s).
		eventually(t, 15*time.Second, "VIP "+a+" never resolves", func() (bool, string) {
			n := neigh(a)
			if strings.Contains(n, "lladdr") {
				t.Fatalf("the client resolved the VIP %s: %s", a, n)
			}
			return strings.Contains(n, "FAILED"), n
		})
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out)
	}
}
