// Package bench measures how fast golvs's director programs a large IPVS
// table and how little it touches the kernel afterwards, against the tools
// an operator would use instead (`ipvsadm -R`, keepalived), all in one
// kernel so that only the ratios matter. It runs as root where
// /proc/net/ip_vs exists: in the lab guest (`make bench`,
// cmd/lab bench) or, for the smoke test, under `lab test`.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

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
}

// Result is one size's figures. Durations are wall time in this kernel.
type Result struct {
	Services, Backends int

	IpvsadmRestore  time.Duration // ipvsadm -R of the whole table
	IpvsadmRSSKB    int64
	KeepalivedCold  time.Duration // start until /proc/net/ip_vs is full
	KeepalivedRSSKB int64         // parent + checker child

	Cold         time.Duration // director start until /proc/net/ip_vs is full
	ColdPass     time.Duration // the director's own first pass (dump, plan, apply)
	ColdWrites   uint64
	Change       time.Duration // SIGHUP with one weight changed until the kernel shows it
	ChangeWrites uint64
	ChangePass   time.Duration
	Unchanged    []uint64      // writes of each unchanged SIGHUP's pass
	NoopPass     time.Duration // median of the unchanged passes (dump + diff)
	NoopDump     time.Duration // the dump part of that pass
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
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		return nil, fmt.Errorf("no IPVS in this kernel: %w", err)
	}
	if err := os.MkdirAll(opts.Work, 0o755); err != nil {
		return nil, err
	}
	if err := setupIface(ctx); err != nil {
		return nil, err
	}
	var out []Result
	for _, n := range opts.Sizes {
		r := Result{Services: n, Backends: opts.Backends}
		steps := []struct {
			name string
			fn   func(context.Context, Options, *Result) error
		}{
			{"ipvsadm -R", measureIpvsadm},
			{"keepalived", measureKeepalived},
			{"director", measureDirector},
		}
		for _, s := range steps {
			fmt.Fprintf(opts.Progress, "bench: %d services: %s\n", n, s.name)
			if err := clearTable(ctx); err != nil {
				return out, err
			}
			if err := s.fn(ctx, opts, &r); err != nil {
				return out, fmt.Errorf("%d services: %s: %w", n, s.name, err)
			}
		}
		if err := clearTable(ctx); err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func setupIface(ctx context.Context) error {
	if _, err := os.Stat("/sys/class/net/" + benchIface); err == nil {
		return nil
	}
	for _, args := range [][]string{
		{"ip", "link", "add", benchIface, "type", "dummy"},
		{"ip", "link", "set", benchIface, "up"},
	} {
		if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %w: %s", args, err, out)
		}
	}
	return nil
}

// clearTable empties the kernel's table (this kernel is ours alone) and
// checks that it is empty.
func clearTable(ctx context.Context) error {
	if out, err := exec.CommandContext(ctx, "ipvsadm", "-C").CombinedOutput(); err != nil {
		return fmt.Errorf("ipvsadm -C: %w: %s", err, out)
	}
	s, d, err := countTable()
	if err == nil && s+d != 0 {
		err = fmt.Errorf("table not empty after ipvsadm -C: %d services, %d real servers", s, d)
	}
	return err
}

// countTable counts services and real servers in /proc/net/ip_vs: the
// same witness for every contender.
func countTable() (services, dests int, err error) {
	data, err := os.ReadFile("/proc/net/ip_vs")
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

// waitFull polls /proc/net/ip_vs until it holds the whole table and
// returns the time since start when it first did.
func waitFull(ctx context.Context, start time.Time, n, backends int, exited <-chan error) (time.Duration, error) {
	deadline := time.After(10 * time.Minute)
	for {
		s, d, err := countTable()
		if err != nil {
			return 0, err
		}
		if s == n && d == n*backends {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-deadline:
			return 0, fmt.Errorf("table never filled: %d/%d services, %d/%d real servers", s, n, d, n*backends)
		case err := <-exited:
			return 0, fmt.Errorf("exited before the table was full (%d/%d real servers): %v", d, n*backends, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func measureIpvsadm(ctx context.Context, opts Options, r *Result) error {
	rules := ipvsadmRules(r.Services, r.Backends)
	cmd := exec.CommandContext(ctx, "ipvsadm", "-R")
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
	s, d, err := countTable()
	if err == nil && (s != r.Services || d != r.Services*r.Backends) {
		err = fmt.Errorf("after ipvsadm -R: %d services, %d real servers", s, d)
	}
	return err
}

func measureKeepalived(ctx context.Context, opts Options, r *Result) error {
	dir := filepath.Join(opts.Work, "keepalived")
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	conf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(conf, keepalivedConf(r.Services, r.Backends), 0o644); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "keepalived.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	// -C: the checker (IPVS) process only, as an LVS-only keepalived runs;
	// -n: the parent stays in the foreground so we can wait for it.
	cmd := exec.CommandContext(ctx, "keepalived", "-n", "-C", "-l", "-f", conf,
		"-p", filepath.Join(dir, "keepalived.pid"), "-c", filepath.Join(dir, "checkers.pid"),
		"-r", filepath.Join(dir, "vrrp.pid"))
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	r.KeepalivedCold, err = waitFull(ctx, start, r.Services, r.Backends, exited)
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

// director is a running `director run`.
type director struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan error
}

func (d *director) passes() []passLine {
	b, _ := os.ReadFile(d.logPath)
	return passes(b)
}

// waitPass waits until the log holds more than n pass lines and returns
// line n.
func (d *director) waitPass(ctx context.Context, n int) (passLine, error) {
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

func measureDirector(ctx context.Context, opts Options, r *Result) error {
	dir := filepath.Join(opts.Work, "director")
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	conf := filepath.Join(dir, "topology.toml")
	if err := os.WriteFile(conf, topology(dir, r.Services, r.Backends, -1), 0o644); err != nil {
		return err
	}
	logPath := filepath.Join(dir, "director.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, opts.Director, "run", "-config", conf, "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = logf, logf
	d := &director{cmd: cmd, logPath: logPath, exited: make(chan error, 1)}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { d.exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(unix.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
		}
	}()
	err = measureDirectorRunning(ctx, opts, r, d, conf, start)
	if err != nil {
		log, _ := os.ReadFile(logPath)
		return fmt.Errorf("%w\ndirector log tail:\n%s", err, tail(log, 20))
	}
	return nil
}

func measureDirectorRunning(ctx context.Context, opts Options, r *Result, d *director, conf string, start time.Time) error {
	var err error
	if r.Cold, err = waitFull(ctx, start, r.Services, r.Backends, d.exited); err != nil {
		return err
	}
	p, err := d.waitPass(ctx, 0)
	if err != nil {
		return err
	}
	r.ColdPass, r.ColdWrites = p.took, p.writes
	seen := 1

	// Unchanged reloads: the same file again.
	var noop []passLine
	for range opts.Reloads {
		d.cmd.Process.Signal(unix.SIGHUP)
		p, err := d.waitPass(ctx, seen)
		if err != nil {
			return err
		}
		seen++
		r.Unchanged = append(r.Unchanged, p.writes)
		noop = append(noop, p)
	}
	sort.Slice(noop, func(i, j int) bool { return noop[i].took < noop[j].took })
	r.NoopPass, r.NoopDump = noop[len(noop)/2].took, noop[len(noop)/2].dump

	// One backend's weight changes.
	changed := r.Services / 2
	if err := os.WriteFile(conf, topology(filepath.Dir(conf), r.Services, r.Backends, changed), 0o644); err != nil {
		return err
	}
	h, err := moby.New("")
	if err != nil {
		return err
	}
	defer h.Close()
	svc := &moby.Service{AddressFamily: unix.AF_INET, Protocol: unix.IPPROTO_TCP,
		Address: []byte{192, 0, 2, 1}, Port: uint16(port(changed))}
	t0 := time.Now()
	d.cmd.Process.Signal(unix.SIGHUP)
	for {
		ds, err := h.GetDestinations(svc)
		if err != nil {
			return fmt.Errorf("get destinations: %w", err)
		}
		if weightOf(ds, backend(0)) == 2 {
			r.Change = time.Since(t0)
			break
		}
		if time.Since(t0) > 5*time.Minute {
			return errors.New("the changed weight never reached the kernel")
		}
		time.Sleep(time.Millisecond)
	}
	if p, err = d.waitPass(ctx, seen); err != nil {
		return err
	}
	r.ChangePass, r.ChangeWrites = p.took, p.writes
	r.RSSKB = peakRSS(d.cmd.Process.Pid)
	return nil
}

func weightOf(ds []*moby.Destination, addr string) int {
	for _, d := range ds {
		if d.Address.String() == addr {
			return d.Weight
		}
	}
	return -1
}
