package director

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/ipvs/ipvsfake"
	"golang.org/x/sys/unix"
)

// The scale of the health flap storm at host speed (integration
// TestChaosHealthFlapStorm runs it against the real kernel in an
// emulated guest): 1,000 TCP-checked backends,
// real listeners on loopback flipped every second, real probes, the
// whole Runtime, and the fake kernel in place of IPVS. It shows the
// pipeline's logic at that scale: passes coalesced, no change lost,
// memory bounded; the kernel side is the lab's.

const (
	stormServices = 4 // two weight0, two remove
	stormPer      = 250
	stormBackends = stormServices * stormPer
	stormInterval = 500 * time.Millisecond
	stormTimeout  = 400 * time.Millisecond
	stormFor      = 10 * time.Second
)

// stormFinal is backend i's health once the storm is over.
func stormFinal(i int) bool { return (i*7)%10 >= 4 }

// loopListeners are TCP listeners on 127.0.0.1, one per port, that the
// test opens and closes: a closed one refuses (RST), an open one accepts
// the probe's handshake (never read: the listener's close resets them).
type loopListeners struct {
	ports []int
	fds   []int
}

// newLoopListeners binds n ports below the ephemeral range (no probe's
// outgoing connection can take one while it is closed), skipping ports in
// use.
func newLoopListeners(t *testing.T, n int) *loopListeners {
	t.Helper()
	l := &loopListeners{}
	for port := 20000; len(l.ports) < n && port < 32000; port++ {
		fd, err := listenLoop(port)
		if err != nil {
			continue
		}
		l.ports = append(l.ports, port)
		l.fds = append(l.fds, fd)
	}
	if len(l.ports) < n {
		t.Fatalf("only %d free ports in 20000-31999", len(l.ports))
	}
	t.Cleanup(func() {
		for _, fd := range l.fds {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	})
	return l
}

func listenLoop(port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Listen(fd, 64); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// set opens or closes listener i.
func (l *loopListeners) set(t *testing.T, i int, up bool) {
	switch {
	case up && l.fds[i] < 0:
		fd, err := listenLoop(l.ports[i])
		if err != nil {
			t.Fatalf("listen on %d again: %v", l.ports[i], err)
		}
		l.fds[i] = fd
	case !up && l.fds[i] >= 0:
		unix.Close(l.fds[i])
		l.fds[i] = -1
	}
}

// TestRuntimeHealthStorm flaps 1,000 backends every second for 10 s.
//   - Coalesced: passes start at least DefaultPassGap apart, so at most
//     one per gap, each carrying many transitions; once health is still,
//     no more passes.
//   - No change lost: frozen in a known state, the (fake) kernel equals
//     it within interval + timeout + the gap + two passes; the resync is
//     1h, so only the passes the changes asked for can get it there.
//   - Memory: the heap in use after the storm is within 16 MB of before.
func TestRuntimeHealthStorm(t *testing.T) {
	ns := fmt.Sprintf("golvs-storm-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "-n", ns, "link", "add", "vip0", "type", "veth", "peer", "name", "vip0p").CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v\n%s", err, out)
	}

	ln := newLoopListeners(t, stormBackends)
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = \"vip0\"\nresync_interval = \"1h\"\ncontrol_socket = %q\nstate_file = %q\n",
		filepath.Join(dir, "d.sock"), filepath.Join(dir, "d.state"))
	for s := range stormServices {
		onFailure := "weight0"
		if s >= stormServices/2 {
			onFailure = "remove"
		}
		fmt.Fprintf(&b, "\n[[service]]\nname = \"flap%d\"\naddress = \"192.0.2.10\"\nport = %d\nforwarding = \"nat\"\non_failure = %q\n", s, 8001+s, onFailure)
		fmt.Fprintf(&b, "[service.check]\ntype = \"tcp\"\ninterval = %q\ntimeout = %q\nrise = 1\nfall = 1\n", stormInterval, stormTimeout)
		for j := range stormPer {
			fmt.Fprintf(&b, "[[service.backend]]\naddress = \"127.0.0.1\"\nport = %d\nweight = %d\n", ln.ports[s*stormPer+j], 1+j%5)
		}
	}
	path := filepath.Join(dir, "topology.toml")
	writeAtomic(t, path, b.String())
	topo, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}

	// want is the table health up(i) calls for, as "service port/backend port" -> weight.
	want := func(up func(int) bool) map[string]int {
		m := map[string]int{}
		for s := range stormServices {
			for j := range stormPer {
				i := s*stormPer + j
				k := fmt.Sprintf("%d/%d", 8001+s, ln.ports[i])
				switch {
				case up(i):
					m[k] = 1 + j%5
				case s < stormServices/2:
					m[k] = 0
				}
			}
		}
		return m
	}
	fake := ipvsfake.New()
	kernel := func() map[string]int {
		es, err := fake.Dump(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]int{}
		for _, e := range es {
			for _, d := range e.Destinations {
				m[fmt.Sprintf("%d/%d", e.Service.Port, d.Port)] = d.Weight
			}
		}
		return m
	}
	differs := func(want, got map[string]int) int {
		n := 0
		for k, w := range want {
			if g, ok := got[k]; !ok || g != w {
				n++
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				n++
			}
		}
		return n
	}

	logs := runInNetns(t, path, topo, fake, ns)
	waitFor := func(what string, limit time.Duration, up func(int) bool) time.Duration {
		t.Helper()
		start := time.Now()
		w := want(up)
		for {
			n := differs(w, kernel())
			if n == 0 {
				return time.Since(start)
			}
			if time.Since(start) > limit {
				t.Fatalf("%s: %d differences after %v", what, n, limit)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("every backend up", 30*time.Second, func(int) bool { return true })

	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	var ru0 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	logAt := len(logs.String())

	// The storm: every backend flips every second.
	flips := 0
	stormStart := time.Now()
	for tick := 0; time.Since(stormStart) < stormFor; tick++ {
		for i := range stormBackends {
			ln.set(t, i, tick%2 == 1)
		}
		flips += stormBackends
		time.Sleep(time.Until(stormStart.Add(time.Duration(tick+1) * time.Second)))
	}
	for i := range stormBackends {
		ln.set(t, i, stormFinal(i))
	}
	frozen := time.Now()
	stormLog := logs.String()[logAt:]
	transitions := strings.Count(stormLog, `msg="backend health changed"`)
	passes := regexp.MustCompile(`msg="ipvs (pass|in sync)".* took=(\S+)`).FindAllStringSubmatch(stormLog, -1)
	var longest time.Duration
	for _, p := range passes {
		if d, err := time.ParseDuration(p[2]); err == nil && d > longest {
			longest = d
		}
	}
	var ru1 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	cpu := float64(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) / float64(frozen.Sub(stormStart))
	t.Logf("storm: %d flips in %v, %d transitions, %d passes (%.1f transitions a pass), longest pass %v; this process (director, listeners, flips) %.0f%% of a core",
		flips, frozen.Sub(stormStart).Round(time.Millisecond), transitions, len(passes), float64(transitions)/float64(max(1, len(passes))), longest,
		100*cpu)

	bound := stormInterval + stormTimeout + DefaultPassGap + 2*longest
	took := waitFor("the final health", max(30*time.Second, 4*bound), stormFinal)
	t.Logf("final health in the kernel %v after it was set (bound %v = interval + timeout + pass gap + 2 x longest pass)", took.Round(time.Millisecond), bound)
	if took > bound {
		t.Errorf("the final health reached the kernel %v after it was set, want within %v", took.Round(time.Millisecond), bound)
	}
	if transitions < flips/4 {
		t.Errorf("%d transitions for %d flips: the storm did not reach the director", transitions, flips)
	}
	if most := int(stormFor/DefaultPassGap) + 2; len(passes) > most {
		t.Errorf("%d passes in the %v storm, want at most %d (one per %v)", len(passes), stormFor, most, DefaultPassGap)
	}
	if len(passes) == 0 || transitions < 2*len(passes) {
		t.Errorf("%d passes for %d transitions: not coalesced", len(passes), transitions)
	}

	// Still: no pass once health is still.
	time.Sleep(2 * stormInterval) // probes confirm the frozen state
	quietAt := len(logs.String())
	time.Sleep(3 * time.Second) // a measuring window
	if n := strings.Count(logs.String()[quietAt:], `msg="ipvs pass"`); n > 0 {
		t.Errorf("%d passes with health still", n)
	}
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	t.Logf("heap in use: %d kB before the storm, %d kB after", m0.HeapInuse>>10, m1.HeapInuse>>10)
	if grown := int64(m1.HeapInuse) - int64(m0.HeapInuse); grown > 16<<20 {
		t.Errorf("the heap grew by %d kB in the storm, want at most 16 MB", grown>>10)
	}
}
