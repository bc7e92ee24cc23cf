// Command lab runs golvs's real-kernel lab: a QEMU guest booting a Debian
// kernel with IPVS, running the host's userspace (see integration/README.md).
//
//	lab prereqs                            install what the lab and the tests need
//	lab run [--timeout D] [--forward H:G] -- CMD ARGS...
//	                                       run one command in the guest as root
//	lab test [--run REGEXP] [--shards N]   build, then run the e2e suite in guests side by side
//	                                       (and the status page in Chromium on this host)
//	lab demo                               a DR topology with a short report
//	lab bench [flags]                      the IPVS programming benchmark (bench/README.md)
//	lab bench-failover [flags]             failover outage and connections kept, ours vs keepalived
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/golvs/golvs/integration/lab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code, err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "lab: FAILED: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func usage() error {
	return errors.New("usage: lab prereqs | lab run [--timeout D] [--vm] [--cpus N] [--forward HOST:GUEST] -- CMD ARGS... | lab test [--vm] [--run REGEXP] [--shards N] | lab demo [--vm] | lab bench [flags] | lab bench-failover [flags]")
}

func run(ctx context.Context, args []string) (int, error) {
	if len(args) == 0 {
		return 2, usage()
	}
	switch args[0] {
	case "bench":
		// bench.go parses its own flags.
		return cmdBench(args[1:]), nil
	case "bench-failover":
		return cmdBenchFailover(args[1:]), nil
	}
	fs := flag.NewFlagSet("lab "+args[0], flag.ContinueOnError)
	// A quiet 2-core host runs a shard in 14 minutes; with two busy
	// loops per host core one took 43, past the 40 minutes the suite
	// once had, so a guest may run twice that before it is a hang.
	timeout := fs.Duration("timeout", 90*time.Minute, "kill the guest after this long")
	forceVM := fs.Bool("vm", false, "boot the guest even if the host kernel has IPVS")
	cpus := fs.Int("cpus", 0, "guest CPUs (default 1)")
	verbose := fs.Bool("v", false, "debug logging")
	runRE := fs.String("run", "", "test: only tests matching this regexp (go test -run)")
	shards := fs.Int("shards", 2, "test: split the suite over this many guests booted side by side")
	systemd := fs.Bool("systemd", false, "boot Debian's systemd as the guest's PID 1 and run the command as a unit")
	var forwards forwardFlag
	fs.Var(&forwards, "forward", "run: forward 127.0.0.1:HOST on this host to the guest's GUEST port (HOST:GUEST, repeatable)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2, err
	}
	log := newLogger(*verbose)
	opts := lab.Options{Timeout: *timeout, ForceVM: *forceVM, CPUs: *cpus, Log: log, Systemd: *systemd, HostForward: forwards}

	switch args[0] {
	case "prereqs":
		// The unit tests need some of the same programs (keepalived and
		// tcpdump for the VRRP namespace tests), so make test runs this first.
		return 0, lab.EnsurePrereqs(ctx, log)
	case "run":
		if fs.NArg() == 0 {
			return 2, usage()
		}
		opts.Command = fs.Args()
		start := time.Now()
		code, err := lab.Run(ctx, opts)
		if err == nil {
			fmt.Fprintf(os.Stderr, "lab: exit %d in %s\n", code, time.Since(start).Round(time.Millisecond))
		}
		return code, err
	case "test":
		return labTest(ctx, log, opts, *runRE, *shards)
	case "demo":
		return labDemo(ctx, log, opts)
	}
	return 2, usage()
}

// forwardFlag is --forward HOST:GUEST, repeatable.
type forwardFlag []lab.Forward

func (f *forwardFlag) String() string { return fmt.Sprint(*f) }

func (f *forwardFlag) Set(v string) error {
	h, g, ok := strings.Cut(v, ":")
	hp, herr := strconv.Atoi(h)
	gp, gerr := strconv.Atoi(g)
	if !ok || herr != nil || gerr != nil || hp <= 0 || hp > 65535 || gp <= 0 || gp > 65535 {
		return fmt.Errorf("want HOST:GUEST ports, got %q", v)
	}
	*f = append(*f, lab.Forward{Host: hp, Guest: gp})
	return nil
}

// moduleRoot finds the directory holding go.mod, from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the golvs module (no go.mod found)")
		}
		dir = parent
	}
}

// build compiles the binaries the lab runs into root/bin.
func build(ctx context.Context, log *slog.Logger, root string) (string, error) {
	bin := filepath.Join(root, "bin")
	steps := [][]string{
		{"go", "build", "-o", filepath.Join(bin, "director"), "./cmd/director"},
		{"go", "build", "-o", filepath.Join(bin, "labhost"), "./integration/cmd/labhost"},
		{"go", "build", "-o", filepath.Join(bin, "bgpspeaker"), "./integration/cmd/bgpspeaker"},
		{"go", "test", "-c", "-tags", "lab", "-o", filepath.Join(bin, "integration.test"), "./integration"},
		// Package tests that need the lab kernel (ipip) are built with -tags lab.
		{"go", "test", "-c", "-tags", "lab", "-o", filepath.Join(bin, "realserver-lab.test"), "./cmd/realserver"},
		// The host half of the status page's browser test.
		{"go", "test", "-c", "-tags", "browser", "-o", filepath.Join(bin, "browser.test"), "./integration"},
	}
	// The package the systemd tests install (bin/golvs_*.deb, one).
	old, _ := filepath.Glob(filepath.Join(bin, "golvs_*.deb"))
	for _, f := range old {
		os.Remove(f)
	}
	steps = append(steps, []string{"go", "run", "./packaging/cmd/mkdeb", "-o", bin})
	if _, err := os.Stat(filepath.Join(root, "cmd", "realserver")); err == nil {
		steps = append(steps, []string{"go", "build", "-o", filepath.Join(bin, "realserver"), "./cmd/realserver"})
	}
	if err := runSteps(ctx, log, root, steps); err != nil {
		return "", err
	}
	return bin, nil
}

// runSteps runs build commands in root, one after another, their output
// on stderr, and logs what each took.
func runSteps(ctx context.Context, log *slog.Logger, root string, steps [][]string) error {
	for _, s := range steps {
		start := time.Now()
		cmd := exec.CommandContext(ctx, s[0], s[1:]...)
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%v: %w", s, err)
		}
		log.Info("built", "target", s[len(s)-1], "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// newLogger is the lab command's logger on stderr, at debug with -v.
func newLogger(verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// systemdTests are the end-to-end tests that run under systemd as PID 1.
var systemdTests = regexp.MustCompile(`^TestSystemd`)

// browserGuest is the guest half of the status page's browser test: the
// host half (browser.test) boots it, with ports forwarded to this host.
const browserGuest = "TestStatusPageLabGuest"

// wideTests are end-to-end tests that boot a guest of their own with this
// many CPUs. The health flap storm probes 1,000 backends: in a one-CPU
// guest that shares a busy host the probes alone took 70-90% of the
// guest's CPU before the storm began, and the storm then fell seconds
// behind its bounds. QEMU runs each emulated CPU on a host thread of its
// own (multi-threaded TCG), so a second CPU is a second share of the host.
var wideTests = map[string]int{
	"TestChaosHealthFlapStorm": 2,
}

// labTest builds, then runs the end-to-end tests matching runRE (all when
// empty) in guests: the suite is split over up to `shards` guests booted
// side by side, and the systemd tests get a guest with systemd as PID 1.
// Every shard runs to its end; the exit code is the first failure's.
func labTest(ctx context.Context, log *slog.Logger, opts lab.Options, runRE string, shards int) (int, error) {
	start := time.Now()
	root, err := moduleRoot()
	if err != nil {
		return 1, err
	}
	bin, err := build(ctx, log, root)
	if err != nil {
		return 1, err
	}
	opts.Dir = filepath.Join(root, "integration")
	opts.Env = []string{"GOLVS_BIN=" + bin}
	// Sizes a test may take from the caller (see integration/connsync_lab_test.go).
	if v := os.Getenv("GOLVS_LAB_CONNS"); v != "" {
		opts.Env = append(opts.Env, "GOLVS_LAB_CONNS="+v)
	}
	suite := filepath.Join(bin, "integration.test")
	list := runRE
	if list == "" {
		list = "^Test"
	}
	cmd := exec.CommandContext(ctx, suite, "-test.list", list)
	cmd.Dir = opts.Dir
	out, err := cmd.Output()
	if err != nil {
		return 1, fmt.Errorf("listing the end-to-end tests: %w", err)
	}
	var plain, sd, wide []string
	browser := false
	for _, t := range listedTests(out) {
		switch {
		case t == browserGuest:
			browser = true
		case systemdTests.MatchString(t) && !opts.Systemd:
			sd = append(sd, t)
		case wideTests[t] > 1 && opts.CPUs <= 1:
			wide = append(wide, wideJob(t))
		default:
			plain = append(plain, t)
		}
	}
	jobs := slices.Clone(plain)
	if len(sd) > 0 {
		jobs = append(jobs, jobSystemd)
	}
	jobs = append(jobs, wide...)
	if runRE == "" {
		jobs = append(jobs, jobTunMode)
	}
	if browser {
		jobs = append(jobs, jobBrowser)
	}
	if len(jobs) == 0 {
		return 1, fmt.Errorf("no end-to-end test matches %q", runRE)
	}
	if opts, err = lab.Prepare(ctx, opts); err != nil {
		return 1, err
	}
	if opts.Image == nil {
		shards = 1 // native: one kernel, and the tests' namespaces are not meant to run side by side
	}
	shards = min(max(shards, 1), len(jobs))
	parts := partition(jobs, shards, weight)

	var mu sync.Mutex
	codes := make([]int, len(parts))
	errs := make([]error, len(parts))
	writers := make([]*prefixWriter, len(parts))
	var wg sync.WaitGroup
	for i, part := range parts {
		o := opts
		pw := &prefixWriter{mu: &mu, w: os.Stdout}
		if len(parts) > 1 {
			pw.prefix = fmt.Sprintf("[%d] ", i+1)
		}
		o.Stdout = pw
		writers[i] = pw
		log.Info("shard", "n", i+1, "jobs", part)
		wg.Go(func() {
			t0 := time.Now()
			codes[i], errs[i] = runShard(ctx, log, o, bin, part)
			pw.Flush()
			log.Info("shard done", "n", i+1, "exit", codes[i], "err", errs[i], "took", time.Since(t0).Round(time.Second))
		})
	}
	wg.Wait()
	code := 0
	for i := range parts {
		if errs[i] != nil {
			err = errors.Join(err, fmt.Errorf("shard %d: %w", i+1, errs[i]))
		} else if code == 0 && codes[i] != 0 {
			code = codes[i]
		}
	}
	prefixes := make([]string, len(parts))
	failed := make([][]failure, len(parts))
	for i, w := range writers {
		prefixes[i], failed[i] = w.prefix, w.failed
	}
	fmt.Fprintf(os.Stderr, "lab test: exit %d, total %s\n", code, time.Since(start).Round(time.Millisecond))
	fmt.Fprint(os.Stderr, failureSummary(prefixes, failed))
	if err == nil && code != 0 {
		err = fmt.Errorf("end-to-end tests failed (exit %d)", code)
	}
	return code, err
}

// runShard boots a guest for the shard's tests (and cmd/realserver's lab
// test when it has it), then a systemd guest when it holds the systemd
// tests. Both boots run even if the first fails.
func runShard(ctx context.Context, log *slog.Logger, opts lab.Options, bin string, jobs []string) (int, error) {
	var tests, wide []string
	tun, sd, browser := false, false, false
	for _, j := range jobs {
		switch t, ok := wideTest(j); {
		case j == jobTunMode:
			tun = true
		case j == jobBrowser:
			browser = true
		case j == jobSystemd:
			sd = true
		case ok:
			wide = append(wide, t)
		default:
			tests = append(tests, j)
		}
	}
	// The suite's own timeout comes first, so a hang ends with the Go
	// test's stacks rather than a killed guest.
	suite := lab.ShellQuote(filepath.Join(bin, "integration.test")) + " -test.v -test.timeout " + max(opts.Timeout-2*time.Minute, time.Minute).String()
	code := 0
	var err error
	if len(tests) > 0 || tun {
		var script []string
		if len(tests) > 0 {
			script = append(script, "cd "+lab.ShellQuote(opts.Dir)+" && "+suite+" -test.run "+lab.ShellQuote(runRegexp(tests))+"; a=$?")
		} else {
			script = append(script, "a=0")
		}
		if tun {
			script = append(script, lab.ShellQuote(filepath.Join(bin, "realserver-lab.test"))+" -test.v -test.timeout 5m -test.run '^TestTunMode$'; b=$?")
		} else {
			script = append(script, "b=0")
		}
		script = append(script, "[ $a -ne 0 ] && exit $a; exit $b")
		o := opts
		o.Command = []string{"/bin/sh", "-c", strings.Join(script, "; ")}
		code, err = lab.Run(ctx, o)
	}
	if sd {
		o := opts
		o.Systemd = true
		o.Command = []string{"/bin/sh", "-c", suite + " -test.run " + lab.ShellQuote(systemdTests.String())}
		log.Info("booting a guest with systemd as PID 1 for " + systemdTests.String())
		sdCode, sdErr := lab.Run(ctx, o)
		if err == nil && code == 0 {
			code, err = sdCode, sdErr
		}
	}
	for _, t := range wide {
		o := opts
		o.CPUs = wideTests[t]
		o.Command = []string{"/bin/sh", "-c", "cd " + lab.ShellQuote(opts.Dir) + " && " + suite + " -test.run " + lab.ShellQuote(runRegexp([]string{t}))}
		log.Info("booting a guest of its own", "test", t, "cpus", o.CPUs)
		wCode, wErr := lab.Run(ctx, o)
		if err == nil && code == 0 {
			code, err = wCode, wErr
		}
	}
	if browser {
		log.Info("the status page in Chromium on this host, its director in a guest of its own")
		bCode, bErr := runBrowser(ctx, opts, bin)
		if err == nil && code == 0 {
			code, err = bCode, bErr
		}
	}
	return code, err
}

// runBrowser runs the host half of the status page's browser test, which
// boots its guest itself (with forwarded ports) and drives Chromium here.
func runBrowser(ctx context.Context, opts lab.Options, bin string) (int, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "browser.test"), "-test.v", "-test.timeout", "20m",
		"-test.run", "^TestStatusPageLabChromium$")
	cmd.Dir = opts.Dir
	cmd.Env = append(os.Environ(), opts.Env...)
	cmd.Stdout = opts.Stdout
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	cmd.Stderr = cmd.Stdout
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	return 0, err
}
