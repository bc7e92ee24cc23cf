// Package bench measures how fast golvs's director programs a large IPVS
// table and how little it touches the kernel afterwards, against the tools
// an operator would use instead (`ipvsadm -R`, keepalived), all in one
// kernel so that only the ratios matter. It runs as root where
// /proc/net/ip_vs exists: in the lab guest (`make bench`,
// integration/cmd/lab bench) or, for the smoke test, under `lab test`.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/golvs/golvs/director/ipvs"
	moby "github.com/moby/ipvs"
	"golang.org/x/sys/unix"
)

// benchIface is the dummy interface the director puts the VIP on.
const benchIface = "golvsb0"

// Options says what to measure.
type Options struct {
	Sizes    []int  // numbers of services
	Backends int    // real servers per service; default 4
	Director string // path of the director binary
	Work     string // scratch directory (configs, logs)
	Progress io.Writer
	// Reloads is how many unchanged SIGHUPs to time; default 3.
	Reloads int
	// Rounds is how many times each size is measured, keeping the best
	// time of each figure; default 1.
	Rounds int
	// ManyVIPs: each service on a VIP of its own (port 80) instead of
	// one VIP with a port per service; the director's cold start then
	// includes putting every VIP on its interface.
	ManyVIPs bool
}

// Result is one size's figures. Durations are wall time in this kernel.
type Result struct {
	Services, Backends int
	ManyVIPs           bool // one VIP per service (see Options)
	Rounds             int  // measured this many times; the best time of each is kept

	IpvsadmRestore  time.Duration // ipvsadm -R of the whole table
	IpvsadmRSSKB    int64
	KeepalivedCold  time.Duration // start until the kernel holds the whole table
	KeepalivedRSSKB int64         // parent + checker child

	Cold         time.Duration // director start until the kernel holds the whole table and every VIP is on the interface
	VIPsLate     time.Duration // how much of Cold the VIPs came after the table (0: already there)
	ColdPass     time.Duration // the director's own first pass (dump, plan, apply)
	ColdWrites   uint64
	Change       time.Duration // SIGHUP with one weight changed until the kernel shows it
	ChangeWrites uint64
	ChangePass   time.Duration
	Unchanged    []uint64      // writes of each unchanged SIGHUP's pass
	ReloadPass   time.Duration // median of the unchanged reloads' first passes (they overlap the reload's own work)
	NoopPass     time.Duration // median no-op periodic pass (survey + diff) over the director's table, nothing else running
	NoopFullPass time.Duration // the same with a full netlink dump (every director.FullDumpEvery-th pass)
	NoopDump     time.Duration // a full netlink dump alone
	RSSKB        int64         // director's peak RSS
}

// Run measures every size in order and returns what it measured; on an
// error it returns the sizes done so far with it.
func Run(ctx context.Context, opts Options) ([]Result, error) {
	if opts.Backends <= 0 {
		opts.Backends = 4
	}
	if opts.Reloads <= 0 {
		opts.Reloads = 3
	}
	if opts.Rounds <= 0 {
		opts.Rounds = 1
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	for _, n := range opts.Sizes {
		if opts.ManyVIPs && n > maxManyVIPs {
			return nil, fmt.Errorf("%d services: at most %d in the many-VIP layout", n, maxManyVIPs)
		}
	}
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		return nil, fmt.Errorf("no IPVS in this kernel: %w", err)
	}
	if err := os.MkdirAll(opts.Work, 0o755); err != nil {
		return nil, err
	}
	steps := []step{
		{"ipvsadm -R", measureIpvsadm},
		{"keepalived", measureKeepalived},
		{"director", measureDirector},
	}
	var out []Result
	for _, n := range opts.Sizes {
		var best Result
		for round := range opts.Rounds {
			r := Result{Services: n, Backends: opts.Backends, ManyVIPs: opts.ManyVIPs, Rounds: 1}
			// Alternate the order so that a slow patch of the host
			// does not always fall on the same contender.
			order := slices.Clone(steps)
			if round%2 == 1 {
				slices.Reverse(order)
			}
			for i, s := range order {
				fmt.Fprintf(opts.Progress, "bench: %d services (%s), round %d: %s\n", n, r.table().layout(), round+1, s.name)
				ns, err := newNetns(ctx, fmt.Sprintf("golvsb-%d-%d-%d", n, round, i))
				if err != nil {
					return out, err
				}
				// The kernel tears the last namespace down in the
				// background: start on a quiet CPU.
				waitIdle(ctx, 5*time.Second)
				err = s.fn(ctx, opts, ns, &r)
				if derr := ns.remove(ctx); err == nil {
					err = derr
				}
				if err != nil {
					return out, fmt.Errorf("%d services: %s: %w", n, s.name, err)
				}
			}
			if round == 0 {
				best = r
			} else {
				best = merge(best, r)
			}
		}
		out = append(out, best)
	}
	return out, nil
}

// table is the layout r measures.
func (r *Result) table() table {
	return table{n: r.Services, backends: r.Backends, manyVIPs: r.ManyVIPs}
}

// step is one contender's measurement.
type step struct {
	name string
	fn   func(context.Context, Options, netns, *Result) error
}

// merge keeps the best (smallest) time of two rounds: other work on the
// host only ever adds time. Write counts of every round are kept (each
// round must show the same); peak RSS is the larger.
func merge(a, b Result) Result {
	m := a
	for _, f := range []struct {
		dst *time.Duration
		v   time.Duration
	}{
		{&m.IpvsadmRestore, b.IpvsadmRestore}, {&m.KeepalivedCold, b.KeepalivedCold},
		{&m.ColdPass, b.ColdPass}, {&m.Change, b.Change},
		{&m.ChangePass, b.ChangePass},
	} {
		*f.dst = min(*f.dst, f.v)
	}
	if b.Cold < m.Cold {
		m.Cold, m.VIPsLate = b.Cold, b.VIPsLate
	}
	m.ReloadPass = min(m.ReloadPass, b.ReloadPass)
	if b.NoopFullPass < m.NoopFullPass {
		m.NoopFullPass = b.NoopFullPass
	}
	if b.NoopPass < m.NoopPass {
		m.NoopPass, m.NoopDump = b.NoopPass, b.NoopDump
	}
	m.ColdWrites = max(a.ColdWrites, b.ColdWrites)
	m.ChangeWrites = max(a.ChangeWrites, b.ChangeWrites)
	m.Unchanged = append(slices.Clone(a.Unchanged), b.Unchanged...)
	m.IpvsadmRSSKB = max(a.IpvsadmRSSKB, b.IpvsadmRSSKB)
	m.KeepalivedRSSKB = max(a.KeepalivedRSSKB, b.KeepalivedRSSKB)
	m.RSSKB = max(a.RSSKB, b.RSSKB)
	m.Rounds = a.Rounds + b.Rounds
	return m
}

// netns is a network namespace of its own for one contender. Each starts
// from a kernel IPVS table nobody has used: a flushed table is not clean,
// since the kernel keeps deleted real servers in a per-namespace trash
// list for minutes and every new real server is first looked up in it, so
// whoever came after a flush of N services would pay O(N) per add.
type netns struct{ name string }

func newNetns(ctx context.Context, name string) (netns, error) {
	ns := netns{name: name}
	if err := run(ctx, "ip", "netns", "add", name); err != nil {
		return ns, err
	}
	return ns, run(ctx, "ip", "-n", name, "link", "set", "lo", "up")
}

// path is the namespace's file, for netlink handles opened in it.
func (ns netns) path() string { return "/run/netns/" + ns.name }

// command runs a program inside the namespace.
func (ns netns) command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.name, prog}, args...)...)
}

// remove empties the namespace's table (so the kernel's clean-up of the
// namespace has little left to do) and deletes it.
func (ns netns) remove(ctx context.Context) error {
	return errors.Join(run(ctx, "ip", "netns", "exec", ns.name, "ipvsadm", "-C"),
		run(ctx, "ip", "netns", "del", ns.name))
}

func run(ctx context.Context, args ...string) error {
	if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %w: %s", args, err, out)
	}
	return nil
}

// clearTable empties the kernel's table (this kernel is ours alone) and
// checks that it is empty.
func clearTable(ctx context.Context) error {
	if out, err := exec.CommandContext(ctx, "ipvsadm", "-C").CombinedOutput(); err != nil {
		return fmt.Errorf("ipvsadm -C: %w: %s", err, out)
	}
	s, d, err := countTable("/proc/net/ip_vs")
	if err == nil && s+d != 0 {
		err = fmt.Errorf("table not empty after ipvsadm -C: %d services, %d real servers", s, d)
	}
	return err
}

// countTable counts services and real servers in an ip_vs proc file
// (/proc/PID/net/ip_vs is the table of PID's namespace): the same witness
// for every contender.
func countTable(file string) (services, dests int, err error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, 0, err
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		switch {
		case bytes.HasPrefix(line, []byte("  -> RemoteAddress")):
		case bytes.HasPrefix(line, []byte("  -> ")):
			dests++
		case bytes.HasPrefix(line, []byte("TCP ")), bytes.HasPrefix(line, []byte("UDP ")),
			bytes.HasPrefix(line, []byte("SCTP ")), bytes.HasPrefix(line, []byte("FWM ")):
			services++
		}
	}
	return services, dests, nil
}

// waitFull waits until the kernel holds the whole table and returns the
// time since start when it first did. Every contender programs services
// in table order (file order; the director's sorted keys), so the cheap
// witness is the last service's destinations (one netlink request per
// poll, so that watching costs the one guest CPU almost nothing);
// /proc/net/ip_vs then confirms the whole table.
func waitFull(ctx context.Context, ns netns, pid int, start time.Time, t table, exited <-chan error) (time.Duration, error) {
	h, err := moby.New(ns.path())
	if err != nil {
		return 0, err
	}
	defer h.Close()
	n, backends := t.n, t.backends
	last := &moby.Service{AddressFamily: unix.AF_INET, Protocol: unix.IPPROTO_TCP,
		Address: t.addr(n - 1).AsSlice(), Port: uint16(t.port(n - 1))}
	deadline := time.After(10 * time.Minute)
	s, d := 0, 0
	for {
		if ds, err := h.GetDestinations(last); err == nil && len(ds) == backends {
			at := time.Since(start)
			if s, d, err = countTable(fmt.Sprintf("/proc/%d/net/ip_vs", pid)); err != nil {
				return 0, err
			}
			if s == n && d == n*backends {
				return at, nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-deadline:
			return 0, fmt.Errorf("table never filled: %d/%d services, %d/%d real servers", s, n, d, n*backends)
		case err := <-exited:
			return 0, fmt.Errorf("exited before the table was full: %v", err)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func measureIpvsadm(ctx context.Context, opts Options, ns netns, r *Result) error {
	rules := ipvsadmRules(r.table())
	cmd := ns.command(ctx, "ipvsadm", "-R")
	cmd.Stdin = bytes.NewReader(rules)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	r.IpvsadmRestore = time.Since(start)
	if err != nil {
		return fmt.Errorf("%w: %s", err, out.Bytes())
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.IpvsadmRSSKB = ru.Maxrss
	}
	// A process in the namespace reads its table for us.
	list, err := ns.command(ctx, "cat", "/proc/net/ip_vs").Output()
	if err != nil {
		return fmt.Errorf("reading the table: %w", err)
	}
	f := filepath.Join(opts.Work, "ipvsadm-table")
	if err := os.WriteFile(f, list, 0o644); err != nil {
		return err
	}
	s, d, err := countTable(f)
	if err == nil && (s != r.Services || d != r.Services*r.Backends) {
		err = fmt.Errorf("after ipvsadm -R: %d services, %d real servers", s, d)
	}
	return err
}

func measureKeepalived(ctx context.Context, opts Options, ns netns, r *Result) error {
	dir := filepath.Join(opts.Work, "keepalived")
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	conf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(conf, keepalivedConf(r.table()), 0o644); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "keepalived.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	// -C: the checker (IPVS) process only, as an LVS-only keepalived runs;
	// -n: the parent stays in the foreground so we can wait for it.
	cmd := ns.command(ctx, "keepalived", "-n", "-C", "-f", conf,
		"-p", filepath.Join(dir, "keepalived.pid"), "-c", filepath.Join(dir, "checkers.pid"),
		"-r", filepath.Join(dir, "vrrp.pid"))
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	r.KeepalivedCold, err = waitFull(ctx, ns, cmd.Process.Pid, start, r.table(), exited)
	if err == nil {
		r.KeepalivedRSSKB = peakRSS(cmd.Process.Pid)
		if b, rerr := os.ReadFile(filepath.Join(dir, "checkers.pid")); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				r.KeepalivedRSSKB += peakRSS(pid)
			}
		}
	}
	cmd.Process.Signal(unix.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		<-exited
	}
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "keepalived.log"))
		return fmt.Errorf("%w\nkeepalived log tail:\n%s", err, tail(log, 20))
	}
	return nil
}

// peakRSS is a process's VmHWM in KiB, 0 if unknown.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// passLine is one "ipvs pass" / "ipvs in sync" line of the director's log.
type passLine struct {
	ops, writes uint64
	dump, took  time.Duration
}

// passes parses the director's pass lines from its text log.
func passes(log []byte) []passLine {
	var out []passLine
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `msg="ipvs pass"`) && !strings.Contains(line, `msg="ipvs in sync"`) {
			continue
		}
		var p passLine
		for _, f := range strings.Fields(line) {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				continue
			}
			switch k {
			case "ops":
				p.ops, _ = strconv.ParseUint(v, 10, 64)
			case "writes":
				p.writes, _ = strconv.ParseUint(v, 10, 64)
			case "dump":
				p.dump, _ = time.ParseDuration(v)
			case "took":
				p.took, _ = time.ParseDuration(v)
			}
		}
		out = append(out, p)
	}
	return out
}

// runningDirector is a running `director run`.
type runningDirector struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan error
}

func (d *runningDirector) passes() []passLine {
	b, _ := os.ReadFile(d.logPath)
	return passes(b)
}

// waitReloaded waits until the log holds n "configuration reloaded" lines.
func (d *runningDirector) waitReloaded(ctx context.Context, n int) error {
	deadline := time.After(10 * time.Minute)
	for {
		b, _ := os.ReadFile(d.logPath)
		if bytes.Count(b, []byte(`msg="configuration reloaded"`)) >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-d.exited:
			return fmt.Errorf("director exited: %v", err)
		case <-deadline:
			return errors.New("the director did not finish a reload in 10 minutes")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitPass waits until the log holds more than n pass lines and returns
// line n.
func (d *runningDirector) waitPass(ctx context.Context, n int) (passLine, error) {
	deadline := time.After(10 * time.Minute)
	for {
		if ps := d.passes(); len(ps) > n {
			return ps[n], nil
		}
		select {
		case <-ctx.Done():
			return passLine{}, ctx.Err()
		case <-deadline:
			return passLine{}, errors.New("no reconcile pass logged")
		case err := <-d.exited:
			return passLine{}, fmt.Errorf("director exited: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func measureDirector(ctx context.Context, opts Options, ns netns, r *Result) error {
	dir := filepath.Join(opts.Work, "director")
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	conf := filepath.Join(dir, "topology.toml")
	if err := os.WriteFile(conf, topology(dir, r.table(), -1), 0o644); err != nil {
		return err
	}
	logPath := filepath.Join(dir, "director.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	if err := run(ctx, "ip", "-n", ns.name, "link", "add", benchIface, "type", "dummy"); err != nil {
		return err
	}
	if err := run(ctx, "ip", "-n", ns.name, "link", "set", benchIface, "up"); err != nil {
		return err
	}
	cmd := ns.command(ctx, opts.Director, "run", "-config", conf, "--log-level", "info")
	cmd.Stdout, cmd.Stderr = logf, logf
	d := &runningDirector{cmd: cmd, logPath: logPath, exited: make(chan error, 1)}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { d.exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState != nil {
			return
		}
		cmd.Process.Signal(unix.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
		}
	}()
	err = measureDirectorRunning(ctx, opts, ns, r, d, conf, start)
	if err != nil {
		log, _ := os.ReadFile(logPath)
		return fmt.Errorf("%w\ndirector log tail:\n%s", err, tail(log, 20))
	}
	// SIGTERM leaves the table in place: time resync passes over it.
	cmd.Process.Signal(unix.SIGTERM)
	<-d.exited
	return measureResync(ctx, opts, ns, r, conf)
}

func measureDirectorRunning(ctx context.Context, opts Options, ns netns, r *Result, d *runningDirector, conf string, start time.Time) error {
	tab := r.table()
	full, err := waitFull(ctx, ns, d.cmd.Process.Pid, start, tab, d.exited)
	if err != nil {
		return err
	}
	// Putting the VIPs on the interface is part of the director's cold
	// start: it is done when both are.
	vips, err := waitAddrs(ctx, ns, start, full, tab.vips(), d.exited)
	if err != nil {
		return err
	}
	r.Cold, r.VIPsLate = max(full, vips), max(0, vips-full)
	p, err := d.waitPass(ctx, 0)
	if err != nil {
		return err
	}
	r.ColdPass, r.ColdWrites = p.took, p.writes
	seen := 1
	// Where the cold start went, from the director's own log.
	if b, err := os.ReadFile(d.logPath); err == nil {
		fmt.Fprint(opts.Progress, coldTimeline(b, start))
	}

	// Unchanged reloads: the same file again. Each reload's window is
	// every pass logged from its signal to the next one (a reload may
	// cause more than one pass); its no-op time is its first pass.
	var noop []passLine
	bounds := []int{seen}
	for k := range opts.Reloads {
		d.cmd.Process.Signal(unix.SIGHUP)
		p, err := d.waitPass(ctx, bounds[len(bounds)-1])
		if err != nil {
			return err
		}
		// One reload at a time: the next signal waits for this reload's
		// end, so no measurement queues behind another's bookkeeping.
		if err := d.waitReloaded(ctx, k+1); err != nil {
			return err
		}
		noop = append(noop, p)
		bounds = append(bounds, len(d.passes()))
	}
	all := d.passes()
	for k := 0; k+1 < len(bounds); k++ {
		var w uint64
		for _, p := range all[bounds[k]:bounds[k+1]] {
			w += p.writes
		}
		r.Unchanged = append(r.Unchanged, w)
	}
	seen = bounds[len(bounds)-1]
	sort.Slice(noop, func(i, j int) bool { return noop[i].took < noop[j].took })
	r.ReloadPass = noop[len(noop)/2].took

	// One backend's weight changes, three times (2, 3, 4), each waited
	// for before the next; the best time is kept, as across rounds. The
	// first change in a fresh process also pays for the emulator
	// translating code no earlier step ran; a director runs for months.
	changed := r.Services / 2
	// Watched through our own netlink client opened in ns: one get and
	// one destination dump per poll, light enough not to slow the
	// director it shares the guest's one CPU with.
	watch := ipvs.NewKernel()
	defer watch.Close()
	if err := openIn(ns, watch); err != nil {
		return err
	}
	key := ipvs.ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP,
		Address: tab.addr(changed), Port: uint16(tab.port(changed))}
	want := netip.MustParseAddr(backend(0))
	// The kernel is asked each time the director's log grows (it logs
	// each change right after making it), and every 20 ms regardless:
	// polling every millisecond instead took a third of the guest's one
	// CPU from the director and made the change several times slower.
	logged, err := watchFile(d.logPath)
	if err != nil {
		return err
	}
	defer unix.Close(logged)
	reloads := opts.Reloads
	for weight := 2; weight <= 4; weight++ {
		if err := os.WriteFile(conf, topologyWeight(filepath.Dir(conf), tab, changed, weight), 0o644); err != nil {
			return err
		}
		// Nor may this process's garbage collector run in the window:
		// it would take the CPU from the director.
		runtime.GC()
		waitIdle(ctx, 5*time.Second)
		waitFile(logged, 0)
		t0 := time.Now()
		d.cmd.Process.Signal(unix.SIGHUP)
		var took time.Duration
		for {
			// First wait: a look at the kernel right after the signal
			// would only compete with the director for the CPU.
			waitFile(logged, 20*time.Millisecond)
			es, err := watch.DumpServices(ctx, []ipvs.ServiceKey{key})
			if err != nil {
				return fmt.Errorf("get destinations: %w", err)
			}
			if weightIn(es, want) == weight {
				took = time.Since(t0)
				break
			}
			if time.Since(t0) > 5*time.Minute {
				return errors.New("the changed weight never reached the kernel")
			}
		}
		// The pass that made the change, and every write since the signal.
		var writes uint64
		var pass time.Duration
		for k := seen; ; k++ {
			if p, err = d.waitPass(ctx, k); err != nil {
				return err
			}
			writes += p.writes
			if p.ops > 0 {
				pass, seen = p.took, k+1
				break
			}
		}
		reloads++
		if err := d.waitReloaded(ctx, reloads); err != nil {
			return err
		}
		r.ChangeWrites = max(r.ChangeWrites, writes)
		if weight == 2 || took < r.Change {
			r.Change, r.ChangePass = took, pass
		}
	}
	r.RSSKB = peakRSS(d.cmd.Process.Pid)
	if os.Getenv("GOLVS_BENCH_DEBUG") != "" {
		time.Sleep(200 * time.Millisecond)
		b, _ := os.ReadFile(d.logPath)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		fmt.Fprintf(opts.Progress, "bench: change seen after %v; director log:\n%s\n", r.Change, strings.Join(lines[max(0, len(lines)-14):], "\n"))
	}
	return nil
}

// waitIdle waits (at most max) until the machine's CPUs were at least
// 90% idle over 100 ms: IPVS's rate estimators and the clean-up of a
// deleted namespace run in kernel threads that would otherwise land in a
// measurement of a few milliseconds.
func waitIdle(ctx context.Context, max time.Duration) {
	deadline := time.Now().Add(max)
	idle, total := cpuTicks()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		i2, t2 := cpuTicks()
		if t2 > total && float64(i2-idle) >= 0.9*float64(t2-total) {
			return
		}
		idle, total = i2, t2
	}
}

// cpuTicks reads the idle and total jiffies of all CPUs from /proc/stat.
func cpuTicks() (idle, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseUint(f, 10, 64)
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return idle, total
}

// watchFile returns an inotify descriptor that turns readable when path
// is written to.
func watchFile(path string) (int, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_MODIFY); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("inotify %s: %w", path, err)
	}
	return fd, nil
}

// waitFile waits until fd (from watchFile) reports a write, or timeout,
// and drains its events.
func waitFile(fd int, timeout time.Duration) {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	unix.Poll(pfd, int(timeout/time.Millisecond))
	var buf [4096]byte
	for {
		if n, err := unix.Read(fd, buf[:]); n <= 0 || err != nil {
			return
		}
	}
}

func weightIn(es []ipvs.Entry, a netip.Addr) int {
	for _, e := range es {
		for _, d := range e.Destinations {
			if d.Address == a {
				return d.Weight
			}
		}
	}
	return -1
}

// coldTimeline is the director's log up to its first pass, each line
// prefixed with its time since start (the log's times have millisecond
// precision).
func coldTimeline(log []byte, start time.Time) string {
	var b strings.Builder
	for _, line := range strings.Split(string(log), "\n") {
		ts, rest, ok := strings.Cut(line, " ")
		v, found := strings.CutPrefix(ts, "time=")
		if !ok || !found {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "bench: director +%v %s\n", at.Sub(start).Round(time.Millisecond), rest)
		if strings.Contains(rest, `msg="ipvs pass"`) {
			break
		}
	}
	return b.String()
}
