package director

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/director/ipvs/ipvsfake"
	"golang.org/x/sys/unix"
)

// topologyFile writes a topology file: one NAT service on 192.0.2.10:80
// (no checks, so backends are up at once) with the given backend weights.
func topologyFile(t *testing.T, dir, iface string, weights ...int) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `[director]
interface = %q
resync_interval = "1h"
control_socket = %q
state_file = %q

[[service]]
name = "web"
address = "192.0.2.10"
port = 80
forwarding = "nat"
`, iface, filepath.Join(dir, "ctl", "d.sock"), filepath.Join(dir, "state", "d.state"))
	for i, w := range weights {
		fmt.Fprintf(&b, "\n[[service.backend]]\naddress = \"10.0.1.%d\"\nport = 8080\nweight = %d\n", i+1, w)
	}
	p := filepath.Join(dir, "topology.toml")
	writeAtomic(t, p, b.String())
	return p
}

// writeAtomic replaces a file the way editors and config management do,
// so a reload never reads half a file.
func writeAtomic(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p+".tmp", []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
}

// TestRuntime runs the whole director against the fake kernel, with its VIP
// interface in a network namespace: start, a rejected reload, a good
// reload, stop leaving state, and stop with cleanup.
func TestRuntime(t *testing.T) {
	ns := fmt.Sprintf("golvs-dir-%d", os.Getpid())
	witness := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	witness("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	witness("ip", "-n", ns, "link", "add", "vip0", "type", "veth", "peer", "name", "vip0p")
	witness("ip", "-n", ns, "link", "set", "vip0", "up")
	addrs := func() string { return witness("ip", "-n", ns, "-o", "addr", "show", "dev", "vip0") }

	dir := t.TempDir()
	path := topologyFile(t, dir, "vip0", 1, 2)
	procSys := t.TempDir()
	if err := os.MkdirAll(filepath.Join(procSys, "net/ipv4"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(procSys, "net/ipv4/ip_forward"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fake := ipvsfake.New()
	key := ipvs.ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Address: netip.MustParseAddr("192.0.2.10"), Port: 80}
	weights := func() []int {
		es, err := fake.Dump(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Service.ServiceKey == key {
				ws := []int{}
				for _, d := range e.Destinations {
					ws = append(ws, d.Weight)
				}
				return ws
			}
		}
		return nil
	}
	// eventually polls a condition the daemon reaches on its own goroutines.
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	start := func(cleanup bool) (*Runtime, chan<- os.Signal, func() error, *syncBuffer) {
		logs := &syncBuffer{}
		topo, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		ready := make(chan struct{})
		d := &Runtime{
			Log:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Path: path, Kernel: fake, ProcSys: procSys, CleanupOnExit: cleanup,
			NetnsPath: "/var/run/netns/" + ns, Ready: func() { close(ready) },
		}
		ctx, cancel := context.WithCancel(context.Background())
		hup := make(chan os.Signal, 1)
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx, topo, hup) }()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("daemon did not start: %v\n%s", err, logs.String())
		}
		return d, hup, func() error { cancel(); return <-done }, logs
	}

	d, hup, stop, logs := start(false)
	eventually("first pass", func() bool { return fmt.Sprint(weights()) == "[1 2]" })
	if !strings.Contains(addrs(), "192.0.2.10/32") {
		t.Errorf("VIP not held:\n%s", addrs())
	}
	if b, _ := os.ReadFile(filepath.Join(procSys, "net/ipv4/ip_forward")); strings.TrimSpace(string(b)) != "1" {
		t.Errorf("ip_forward not set for a NAT service: %q", b)
	}

	// A bad file is rejected; the running config stays.
	writeAtomic(t, path, "[director]\ninterface = 7\n")
	hup <- unix.SIGHUP
	eventually("rejection", func() bool { return strings.Contains(logs.String(), "new configuration rejected") })
	if l := logs.String(); !strings.Contains(l, "topology.toml:2:") {
		t.Errorf("bad reload not reported with its errors:\n%s", l)
	}
	if tp := d.Reconciler().Config(); len(tp.Services) != 1 || tp.Services[0].Backends[1].Weight != 2 {
		t.Errorf("rejected reload replaced the config: %+v", tp.Services)
	}
	// A good file with one weight changed is applied.
	topologyFile(t, dir, "vip0", 1, 5)
	hup <- unix.SIGHUP
	eventually("reload", func() bool { return fmt.Sprint(weights()) == "[1 5]" })

	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	// Stopping leaves IPVS and the VIP in place.
	if fmt.Sprint(weights()) != "[1 5]" || !strings.Contains(addrs(), "192.0.2.10/32") {
		t.Errorf("stop changed state: weights %v\n%s", weights(), addrs())
	}

	// A restart adopts the table without a write; --cleanup-on-exit then
	// removes everything it owns.
	fake.ResetWrites()
	_, _, stop, logs = start(true)
	eventually("in sync", func() bool { return strings.Contains(logs.String(), "ipvs in sync") })
	if m, n := fake.WritesByKind(); n != 0 {
		t.Errorf("restart wrote %v", m)
	}
	if err := stop(); err != nil {
		t.Fatalf("run with cleanup: %v", err)
	}
	if w := weights(); w != nil {
		t.Errorf("cleanup left the service: %v", w)
	}
	if strings.Contains(addrs(), "192.0.2.10") {
		t.Errorf("cleanup left the VIP:\n%s", addrs())
	}
}

// TestRuntimeLinkFlap: the director's interface goes down and up. The
// kernel keeps IPv4 addresses over that but removes the IPv6 ones; the
// director puts its IPv6 VIP back when the link returns. Then a VIP
// removed behind its back comes back within a resync interval.
func TestRuntimeLinkFlap(t *testing.T) {
	ns := fmt.Sprintf("golvs-flap-%d", os.Getpid())
	ip := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ip("link", "add", "vip0", "type", "veth", "peer", "name", "vip0p")
	ip("link", "set", "vip0", "up")
	ip("link", "set", "vip0p", "up")

	dir := t.TempDir()
	path := filepath.Join(dir, "topology.toml")
	writeAtomic(t, path, fmt.Sprintf(`[director]
interface = "vip0"
resync_interval = "1s"
control_socket = %q
state_file = %q

[[service]]
name = "web4"
address = "192.0.2.10"
port = 80
forwarding = "nat"
[[service.backend]]
address = "10.0.1.1"
port = 8080

[[service]]
name = "web6"
address = "2001:db8::10"
port = 80
forwarding = "nat"
[[service.backend]]
address = "2001:db8:1::1"
port = 8080
`, filepath.Join(dir, "d.sock"), filepath.Join(dir, "d.state")))
	topo, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := runInNetns(t, path, topo, ipvsfake.New(), ns)
	held := func() error {
		out := ip("-o", "addr", "show", "dev", "vip0")
		for _, a := range []string{" 192.0.2.10/32 ", " 2001:db8::10/128 "} {
			if !strings.Contains(out, a) {
				return fmt.Errorf("%s missing:\n%s", a, out)
			}
		}
		return nil
	}
	eventuallyNil := func(what string, cond func() error) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for err := cond(); err != nil; err = cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v\n%s", what, err, logs.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	eventuallyNil("VIPs held", held)

	ip("link", "set", "vip0", "down")
	if out := ip("-o", "addr", "show", "dev", "vip0"); strings.Contains(out, "2001:db8::10") || !strings.Contains(out, "192.0.2.10/32") {
		t.Fatalf("link down: the kernel kept the IPv6 VIP or dropped the IPv4 one; this test assumes otherwise:\n%s", out)
	}
	ip("link", "set", "vip0", "up")
	eventuallyNil("VIPs back after the link returned", held)
	if !strings.Contains(logs.String(), `msg="link state changed" interface=vip0 up=true`) {
		t.Errorf("link change not logged:\n%s", logs.String())
	}

	// No health change comes (no checks): only the periodic full apply
	// can put it back.
	ip("addr", "del", "192.0.2.10/32", "dev", "vip0")
	eventuallyNil("the IPv4 VIP back after ip addr del behind the director's back", held)
}

// runInNetns runs the director on path (already loaded as topo) against
// kernel, its VIP interface in the namespace ns, until the test ends; it
// returns once the director is ready, with its log.
func runInNetns(t *testing.T, path string, topo *config.Topology, kernel ipvs.IPVS, ns string) *syncBuffer {
	t.Helper()
	logs := &syncBuffer{}
	ready := make(chan struct{})
	d := &Runtime{
		Log:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Path: path, Kernel: kernel, ProcSys: t.TempDir(),
		NetnsPath: "/var/run/netns/" + ns, Ready: func() { close(ready) },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, topo, make(chan os.Signal)) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("daemon did not start: %v\n%s", err, logs.String())
	}
	return logs
}
