// Package nstest runs VRRP between real processes in network namespaces on
// this host: two golvs runners, and golvs against keepalived. It needs root
// (CI runs as root) and fails, not skips, without it.
package nstest

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	vrid    = 51
	vip4    = "192.0.2.100"
	vip6    = "2001:db8::100"
	addrA4  = "192.0.2.1/24"
	addrB4  = "192.0.2.2/24"
	devA    = "va"
	devB    = "vb"
	poll    = 10 * time.Millisecond
	startup = 10 * time.Second
)

// Master down interval for priority 100 and a 1 s advert interval:
// 3*1s + (256-100)*1s/256 = 3.609375s; skew alone is 609.375ms.
const (
	down100 = 3609375 * time.Microsecond
	skew100 = 609375 * time.Microsecond
	slack   = time.Second
)

var (
	labSeq    atomic.Int64 // newLab's namespaces, numbered
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	// Every test at once unless -parallel says otherwise: they wait on
	// timers, so the default (GOMAXPROCS) would leave most of them queued.
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		flag.Set("test.parallel", "16")
	}
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// vrrpd builds the test daemon once per test binary.
func vrrpd(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vrrpd")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "vrrpd")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/golvs/golvs/director/vrrp/internal/vrrpd").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build vrrpd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type lab struct {
	t     *testing.T
	nsA   string
	nsB   string
	dir   string
	mu    sync.Mutex
	procs []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	out  string // stdout file
	err  string // stderr file
	done chan struct{}
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newLab makes two namespaces joined by a veth pair va <-> vb, with IPv4
// addresses and IPv6 link-local addresses usable at once (no DAD). The
// names are the test's, so tests run in parallel: they spend their time
// waiting on VRRP timers, and one after another they took minutes.
func newLab(t *testing.T) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("namespace tests need root (CAP_NET_ADMIN, CAP_NET_RAW)")
	}
	n := strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-")
	n = regexp.MustCompile(`[^a-z0-9-]`).ReplaceAllString(n, "")
	if len(n) > 20 {
		n = n[:20]
	}
	// A sequence number keeps names apart that the cut makes equal
	// (tests run side by side).
	id := fmt.Sprintf("gv%d-%d-%s", os.Getpid(), labSeq.Add(1), n)
	l := &lab{t: t, nsA: id + "-a", nsB: id + "-b", dir: t.TempDir()}
	t.Cleanup(l.teardown)
	for _, ns := range []string{l.nsA, l.nsB} {
		run(t, "ip", "netns", "add", ns)
		for _, k := range []string{"all", "default"} {
			run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf."+k+".accept_dad=0")
		}
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "link", "add", devA, "netns", l.nsA, "type", "veth", "peer", "name", devB, "netns", l.nsB)
	run(t, "ip", "-n", l.nsA, "addr", "add", addrA4, "dev", devA)
	run(t, "ip", "-n", l.nsB, "addr", "add", addrB4, "dev", devB)
	run(t, "ip", "-n", l.nsA, "link", "set", devA, "up")
	run(t, "ip", "-n", l.nsB, "link", "set", devB, "up")
	return l
}

func (l *lab) teardown() {
	// Everything still running in our namespaces dies at once (keepalived's
	// children included), by PID: namespaces share the PID space.
	for _, ns := range []string{l.nsA, l.nsB} {
		l.killNS(ns)
	}
	l.mu.Lock()
	procs := l.procs
	l.mu.Unlock()
	for _, p := range procs {
		p.cmd.Process.Kill()
		<-p.done
	}
	for _, ns := range []string{l.nsA, l.nsB} {
		exec.Command("ip", "netns", "del", ns).Run()
	}
	if l.t.Failed() {
		for _, p := range procs {
			for _, f := range []string{p.out, p.err} {
				b, _ := os.ReadFile(f)
				l.t.Logf("---- %s %s ----\n%s", p.name, filepath.Base(f), tail(b, 60))
			}
		}
	}
}

func tail(b []byte, n int) []byte {
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return bytes.Join(lines, []byte("\n"))
}

// killNS SIGKILLs every process in ns at once and returns how many.
func (l *lab) killNS(ns string) int {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	n := 0
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
			n++
		}
	}
	return n
}

// start runs argv inside ns. `ip netns exec` execs the program, so the PID
// is the program's own and signals reach it.
func (l *lab) start(ns, name string, argv ...string) *proc {
	l.t.Helper()
	p := &proc{
		name: name,
		out:  filepath.Join(l.dir, name+".out"),
		err:  filepath.Join(l.dir, name+".err"),
		done: make(chan struct{}),
	}
	stdout, err := os.Create(p.out)
	if err != nil {
		l.t.Fatal(err)
	}
	stderr, err := os.Create(p.err)
	if err != nil {
		l.t.Fatal(err)
	}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	p.cmd.Stdout, p.cmd.Stderr = stdout, stderr
	if err := p.cmd.Start(); err != nil {
		l.t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.cmd.Wait()
		stdout.Close()
		stderr.Close()
		close(p.done)
	}()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p
}

func (p *proc) signal(t *testing.T, s syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		t.Fatalf("signal %s: %v", p.name, err)
	}
}

func (p *proc) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("%s did not exit within %v", p.name, d)
	}
}

func (p *proc) stdout() string { b, _ := os.ReadFile(p.out); return string(b) }
func (p *proc) stderr() string { b, _ := os.ReadFile(p.err); return string(b) }

// golvs starts the test daemon.
func (l *lab) golvs(ns, dev, name string, prio int, extra ...string) *proc {
	args := []string{vrrpd(l.t), "-iface", dev, "-vrid", strconv.Itoa(vrid), "-prio", strconv.Itoa(prio), "-interval", "1s"}
	return l.start(ns, name, append(args, extra...)...)
}

// keepalived starts keepalived (VRRP only, VRRPv3) with one instance.
func (l *lab) keepalived(ns, dev, name string, prio int, vip string) *proc {
	conf := filepath.Join(l.dir, name+".conf")
	body := fmt.Sprintf(`global_defs {
  vrrp_version 3
  router_id %s
}
vrrp_instance VI_1 {
  state BACKUP
  interface %s
  virtual_router_id %d
  priority %d
  advert_int 1
  virtual_ipaddress {
    %s
  }
}
`, name, dev, vrid, prio, vip)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		l.t.Fatal(err)
	}
	return l.start(ns, name, "keepalived", "-n", "-l", "-P", "-f", conf,
		"-p", filepath.Join(l.dir, name+".pid"), "-r", filepath.Join(l.dir, name+"-vrrp.pid"))
}

// tcpdump captures VRRP, ARP and ICMPv6 on dev in ns, verbosely, as the
// independent witness of what went on the wire.
func (l *lab) tcpdump(ns, dev string) *proc {
	l.t.Helper()
	p := l.start(ns, "tcpdump-"+ns, "tcpdump", "-nn", "-v", "-l", "-e", "-i", dev, "proto 112 or arp or icmp6")
	waitFor(l.t, 5*time.Second, "tcpdump listening", func() bool {
		return strings.Contains(p.stderr(), "listening on")
	})
	return p
}

func hasAddr(ns, dev, addr string) bool {
	out, err := exec.Command("ip", "-n", ns, "-o", "addr", "show", "dev", dev).Output()
	if err != nil {
		return false
	}
	return strings.Contains(string(out), " "+addr+"/")
}

// waitFor polls cond until it holds; it fails the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(poll)
	}
	return time.Since(start)
}

// holdsFalse checks cond stays false for all of d.
func holdsFalse(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(poll) {
		if cond() {
			t.Fatalf("%s", what)
		}
	}
}
