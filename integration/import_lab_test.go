//go:build lab

package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/config/keepalived"
	"github.com/golvs/golvs/integration/labnet"
)

// Issue 16's lab: for every keepalived configuration of the importer's
// corpus, Debian's keepalived runs in one namespace and `director run`
// with the imported topology in another, both in front of the same real
// servers; their IPVS tables, as ipvsadm prints them, must end up equal.

const importCorpus = "../config/keepalived/testdata"

// importDown lists, per corpus file, the services whose real servers do
// not pass their checks in the lab, on either side: nothing answers DNS
// or TLS there. Every other checked real server answers and is up, with
// one exception shown on purpose: groups.conf's 192.0.2.13:5353 has weight
// 0 and its own connect_port 53, which the importer reports as not
// converted; keepalived sees it up on 53, golvs down on 5353, and both
// tables hold it at weight 0.
var importDown = map[string][]string{
	"checks.conf": {"192.0.2.140:53/udp", "192.0.2.150:443/tcp"},
}

func TestImportKeepalived(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(importCorpus, "*.conf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in %s: %v", importCorpus, err)
	}
	l := labnet.NewLab(t)
	lan, back := l.Segment("lan"), l.Segment("back")
	// Three real servers (HTTP on 80, UDP on 53, IPv4 and IPv6), and per
	// corpus file two directors on the same segments in front of them:
	// the files run in parallel, each pair in its own namespaces (IPVS
	// tables are per namespace), so their check intervals overlap.
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("rs%d", i)
		h := l.Host(name, lan, fmt.Sprintf("192.0.2.1%d/24", i), fmt.Sprintf("2001:db8::1%d/64", i))
		h.Start("ready", bin(t, "labhost"), "serve", "--name", name, "--http", ":80", "--udp", ":53")
	}
	for i, file := range files {
		abs, err := filepath.Abs(file)
		if err != nil {
			t.Fatal(err)
		}
		host := func(name string, n int) *labnet.Host {
			h := l.Host(fmt.Sprintf("%s%d", name, i), lan, fmt.Sprintf("192.0.2.%d/24", n), fmt.Sprintf("2001:db8::%d/64", n))
			h.Attach(back, fmt.Sprintf("198.51.100.%d/24", n))
			return h
		}
		ka, gl := host("ka", 21+2*i), host("gl", 22+2*i)
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			importEquivalence(t, ka, gl, abs)
		})
	}
}

func importEquivalence(t *testing.T, ka, gl *labnet.Host, conf string) {
	dir := t.TempDir()
	// The corpus is real keepalived syntax: its own config test passes
	// (in the namespace, where the interfaces it names exist).
	if out, err := ka.Exec("keepalived", "-t", "-f", conf); err != nil {
		t.Fatalf("keepalived -t rejects the corpus file: %v\n%s", err, out)
	}

	// Import (the command itself is covered by cmd/director's tests; here
	// the same code runs in-process, which saves process starts that are
	// slow under emulation).
	nodes, _, err := keepalived.Read(conf)
	if err != nil {
		t.Fatal(err)
	}
	res, err := keepalived.Convert(conf, nodes)
	if err != nil {
		t.Fatal(err)
	}
	var notes strings.Builder
	for _, n := range res.Notes {
		notes.WriteString(n.String() + "\n")
	}
	t.Logf("imported; complete=%v:\n%s", res.Complete(), notes.String())
	// Namespaces share the file system: this director's own socket and
	// state file.
	topo := filepath.Join(dir, "topology.toml")
	text := strings.Replace(res.TOML, "[director]\n", fmt.Sprintf("[director]\ncontrol_socket = %q\nstate_file = %q\n",
		filepath.Join(dir, "director.sock"), filepath.Join(dir, "director.state")), 1)
	writeFile(t, topo, text)
	want, err := config.Load(topo)
	if err != nil {
		t.Fatalf("config rejects the imported topology: %v\n%s", err, text)
	}

	start := time.Now()
	log := filepath.Join(dir, "keepalived.log")
	kp := ka.Start("", "sh", "-c", fmt.Sprintf("exec keepalived -n -l -G -f %s -p %s -c %s -r %s >%s 2>&1",
		conf, filepath.Join(dir, "k.pid"), filepath.Join(dir, "c.pid"), filepath.Join(dir, "v.pid"), log))
	gp := gl.Start("", bin(t, "director"), "run", "-config", topo)
	t.Cleanup(func() {
		stop(t, kp, "keepalived")
		stop(t, gp, "director")
		if t.Failed() {
			kl, _ := os.ReadFile(log)
			t.Logf("keepalived output:\n%s\ndirector output:\n%s\nimported topology:\n%s", kl, gp.Output(), text)
		}
	})

	down := importDown[filepath.Base(conf)]
	if len(down) > 0 {
		t.Logf("down on both sides (nothing answers their checks in the lab): %v; every other checked real server is up on both", down)
	} else {
		t.Logf("every checked real server answers: up on both sides")
	}
	expect := expectedTable(want, down)

	// First both sides must have programmed every service; from the moment
	// ipvsadm shows that, the checks have a bound derived from their
	// intervals to settle the weights.
	alive := func() {
		for _, p := range []*labnet.Proc{kp, gp} {
			if done, err := p.Exited(); done {
				t.Fatalf("%s exited: %v\n%s", p.Name, err, p.Output())
			}
		}
	}
	// ipvsadm (netlink) is the witness: equal tables, with the backends the
	// checks predict. Process starts are slow under emulation, so it runs
	// when each side's /proc/PID/net/ip_vs agrees, and every fifth poll
	// regardless: /proc only hints, since its walk of the kernel's global
	// hash tables is not reliable with several namespaces (seen missing
	// an IPv4 fwmark service that ipvsadm listed). The first bound is for
	// the processes to start and program IPVS; from the moment both
	// tables are complete, the checks get a bound from their intervals.
	var kt, gt ipvsTable
	var kp1, gp1 procSnapshot
	deadline := time.Now().Add(120 * time.Second) // a loaded emulated guest; only a failure waits this long
	programmed := false
	bound := settleBound(want)
	for i := 0; ; i++ {
		alive()
		kp1, gp1 = procTable(kp), procTable(gp)
		// ipvsadm when the cheap view says the sides agree, and every
		// few polls regardless.
		if kp1.text == gp1.text || i%5 == 0 {
			kt, gt = readTable(ka), readTable(gl)
			if !programmed && len(kt.byKey().common(expect)) == len(expect) && len(gt.byKey().common(expect)) == len(expect) {
				programmed = true
				t.Logf("every service programmed on both sides %s after the start", time.Since(start).Round(time.Millisecond))
				if kp1.text != gp1.text {
					t.Logf("the /proc views differ where ipvsadm agrees:\n%s\n--\n%s", kp1.text, gp1.text)
				}
				deadline = time.Now().Add(bound)
			}
			if programmed && gt.diff(kt) == "" && gt.byKey().diff(expect) == "" {
				break
			}
		}
		if time.Now().After(deadline) {
			kt, gt = readTable(ka), readTable(gl)
			what := "every service programmed within 120s"
			if programmed {
				what = fmt.Sprintf("equal tables %s after every service appeared (the checks' bound)", bound)
			}
			t.Fatalf("not %s:\ngolvs vs keepalived: %s\ngolvs vs expected: %s\nkeepalived:\n%s\ngolvs:\n%s\n/proc views (%d, %d services):\n%s\n--\n%s",
				what, gt.diff(kt), gt.byKey().diff(expect), kt, gt, kp1.services, gp1.services, kp1.text, gp1.text)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("equal IPVS tables (%d services) %s after the start:\n%s", len(gt), time.Since(start).Round(time.Millisecond), gt)
}

// procSnapshot is /proc/PID/net/ip_vs without the connection counters,
// destinations sorted: enough to see when two tables agree.
type procSnapshot struct {
	text     string
	services int
}

func procTable(p *labnet.Proc) procSnapshot {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/ip_vs", p.Cmd.Process.Pid))
	if err != nil {
		return procSnapshot{text: err.Error()}
	}
	// Service order follows the kernel's hash: sort the blocks too.
	var blocks []string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			slices.Sort(cur[1:])
			blocks = append(blocks, strings.Join(cur, "\n"))
		}
		cur = nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 4 && f[0] == "->" && f[1] != "RemoteAddress:Port" && cur != nil:
			cur = append(cur, strings.Join(f[:4], " "))
		case len(f) >= 3 && slices.Contains([]string{"TCP", "UDP", "SCTP", "FWM"}, f[0]):
			flush()
			cur = []string{strings.Join(f, " ")}
		}
	}
	flush()
	slices.Sort(blocks)
	n := len(blocks)
	out := blocks
	return procSnapshot{text: strings.Join(out, "\n"), services: n}
}

// stop ends a process with SIGTERM (keepalived then stops its children)
// and waits for it.
func stop(t *testing.T, p *labnet.Proc, what string) {
	if done, _ := p.Exited(); done {
		return
	}
	p.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Wait(ctx); errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%s did not stop on SIGTERM", what)
		p.Signal(syscall.SIGKILL)
	}
}

// settleBound is the time the checks need to reach their verdicts: the
// slowest check's fall+rise intervals plus its timeout, twice, and slack
// for process starts under emulation.
func settleBound(topo *config.Topology) time.Duration {
	b := time.Duration(0)
	for _, s := range topo.Services {
		if c := s.Check; c != nil {
			b = max(b, time.Duration(c.Fall+c.Rise)*c.Interval+c.Timeout)
		}
	}
	return 2*b + 10*time.Second
}

// ipvsTable is `ipvsadm -Ln` and `ipvsadm -Ln --thresholds` merged: each
// service line (protocol, address, scheduler, flags, persistence) maps to
// its real servers' "forward weight uthreshold lthreshold" lines, sorted.
type ipvsTable map[string][]string

func (tb ipvsTable) String() string {
	keys := make([]string, 0, len(tb))
	for k := range tb {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "\n")
		for _, d := range tb[k] {
			b.WriteString("  -> " + d + "\n")
		}
	}
	return b.String()
}

func (tb ipvsTable) diff(want ipvsTable) string {
	var out []string
	for k, ds := range want {
		got, ok := tb[k]
		switch {
		case !ok:
			out = append(out, "missing "+k)
		case !slices.Equal(got, ds):
			out = append(out, fmt.Sprintf("%s: %v, want %v", k, got, ds))
		}
	}
	for k := range tb {
		if _, ok := want[k]; !ok {
			out = append(out, "extra "+k)
		}
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

func readTable(h *labnet.Host) ipvsTable {
	// One process start for both listings.
	both, err := h.Exec("sh", "-c", "ipvsadm -Ln && echo ==== && ipvsadm -Ln --thresholds")
	plain, thr, ok := strings.Cut(both, "====\n")
	if err != nil || !ok {
		return ipvsTable{"ipvsadm failed: " + both: nil}
	}
	dests := map[string]map[string][]string{} // service -> dest -> fields
	var order []string
	for i, out := range []string{plain, thr} {
		cur := ""
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) >= 3 && slices.Contains([]string{"TCP", "UDP", "SCTP", "FWM"}, f[0]):
				cur = strings.Join(f, " ")
				if i == 0 {
					dests[cur] = map[string][]string{}
					order = append(order, cur)
				}
			case len(f) >= 4 && f[0] == "->" && cur != "" && f[1] != "RemoteAddress:Port":
				if m := dests[cur]; m != nil {
					m[f[1]] = append(m[f[1]], f[2], f[3])
				}
			}
		}
	}
	tb := ipvsTable{}
	for _, s := range order {
		lines := []string{}
		for addr, fields := range dests[s] {
			lines = append(lines, addr+" "+strings.Join(fields, " "))
		}
		slices.Sort(lines)
		tb[s] = lines
	}
	return tb
}

// common lists the keys of tb that want has too.
func (tb ipvsTable) common(want ipvsTable) []string {
	var out []string
	for k := range tb {
		if _, ok := want[k]; ok {
			out = append(out, k)
		}
	}
	return out
}

// byKey keys the table by protocol and address (or FWM and mark) only.
func (tb ipvsTable) byKey() ipvsTable {
	out := ipvsTable{}
	for line, ds := range tb {
		f := strings.Fields(line)
		out[f[0]+" "+f[1]] = ds
	}
	return out
}

// expectedTable is what ipvsadm must show once the checks settled, keyed
// as byKey: every service of the topology, every backend at its weight,
// or for the down services at weight 0 (on_failure weight0) or absent
// (remove).
func expectedTable(topo *config.Topology, down []string) ipvsTable {
	tb := ipvsTable{}
	for _, s := range topo.Services {
		key := serviceKey(&s)
		lines := []string{}
		isDown := slices.Contains(down, s.Name)
		for _, b := range s.Backends {
			w := b.Weight
			if isDown {
				if s.OnFailure == config.Remove {
					continue
				}
				w = 0
			}
			fwd := b.Forwarding
			if fwd == "" {
				fwd = s.Forwarding
			}
			port := b.Port
			addr := b.Address.String()
			if b.Address.Is6() {
				addr = "[" + addr + "]"
			}
			lines = append(lines, fmt.Sprintf("%s:%d %s %d %d %d", addr, port,
				map[config.Forwarding]string{config.NAT: "Masq", config.DR: "Route", config.TUN: "Tunnel"}[fwd],
				w, b.UpperThreshold, b.LowerThreshold))
		}
		slices.Sort(lines)
		tb[key] = lines
	}
	return tb
}

// serviceKey is a service's protocol and address as ipvsadm -Ln prints
// them.
func serviceKey(s *config.Service) string {
	if s.FWMark != 0 {
		return fmt.Sprintf("FWM %d", s.FWMark)
	}
	addr := s.Address.String()
	if s.IPv6 {
		addr = "[" + addr + "]"
	}
	return fmt.Sprintf("%s %s:%d", strings.ToUpper(string(s.Protocol)), addr, s.Port)
}
