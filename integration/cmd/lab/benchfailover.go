package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/golvs/golvs/integration/lab"
)

// The failover benchmarks' sections in the guest's output: the raw
// figures between each pair of markers, the table right after the end
// marker (integration/failover_bench_test.go and
// failover_conns_bench_test.go).
var failoverSections = []struct{ title, begin, end string }{
	{"Failover outage (TestFailoverBench)", "GOLVS-FAILOVER-BENCH-RAW-BEGIN", "GOLVS-FAILOVER-BENCH-RAW-END"},
	{"Connections kept at failover and failback (TestFailoverConnsBench)", "GOLVS-FAILOVER-CONNS-RAW-BEGIN", "GOLVS-FAILOVER-CONNS-RAW-END"},
}

// cmdBenchFailover is `lab bench-failover`: build the director, labhost
// and the benchmark test binary, run the failover benchmarks in one guest
// boot, and keep their tables, raw figures and the host's load in
// bench/results/<UTC time>-failover.txt.
func cmdBenchFailover(args []string) int {
	fs := flag.NewFlagSet("lab bench-failover", flag.ContinueOnError)
	run := fs.String("run", "^TestFailover(Conns)?Bench$", "the benchmarks to run (go test -run)")
	conns := fs.Int("conns", 0, "connections per run of the connection benchmark (default 1000)")
	runs := fs.Int("runs", 0, "runs per implementation of the connection benchmark (default 5)")
	interval := fs.Duration("interval", 0, "each connection's exchange interval (default 5s)")
	timeout := fs.Duration("timeout", 90*time.Minute, "kill the guest after this long")
	forceVM := fs.Bool("vm", false, "boot the guest even if the host kernel has IPVS")
	cpus := fs.Int("cpus", 0, "guest CPUs (default 1)")
	save := fs.Bool("save", true, "write the figures to bench/results/")
	binDir := fs.String("bin", "", "build into this directory (default bin/ of the module)")
	verbose := fs.Bool("v", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := newLogger(*verbose)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var env []string
	if *conns > 0 {
		env = append(env, "GOLVS_LAB_CONNS="+strconv.Itoa(*conns))
	}
	if *runs > 0 {
		env = append(env, "GOLVS_BENCH_RUNS="+strconv.Itoa(*runs))
	}
	if v := os.Getenv("GOLVS_LAB_BACKLOG"); v != "" {
		env = append(env, "GOLVS_LAB_BACKLOG="+v)
	}
	if *interval > 0 {
		env = append(env, "GOLVS_BENCH_CONNS_INTERVAL="+interval.String())
	}
	opts := lab.Options{Timeout: *timeout, ForceVM: *forceVM, CPUs: *cpus, Log: log, Env: env}
	if err := runBenchFailover(ctx, log, *run, *binDir, *save, opts); err != nil {
		fmt.Fprintf(os.Stderr, "lab bench-failover: FAILED: %v\n", err)
		return 1
	}
	return 0
}

func runBenchFailover(ctx context.Context, log *slog.Logger, runRE, bin string, save bool, opts lab.Options) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if bin == "" {
		bin = filepath.Join(root, "bin")
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	test := filepath.Join(bin, "failover-bench.test")
	if err := runSteps(ctx, log, root, [][]string{
		{"go", "build", "-o", filepath.Join(bin, "director"), "./cmd/director"},
		{"go", "build", "-o", filepath.Join(bin, "labhost"), "./integration/cmd/labhost"},
		{"go", "test", "-c", "-tags", "lab bench", "-o", test, "./integration"},
	}); err != nil {
		return err
	}
	commit := gitDescribe(ctx, root)

	var out bytes.Buffer
	opts.Dir = filepath.Join(root, "integration")
	opts.Env = append(opts.Env, "GOLVS_BIN="+bin)
	opts.Stdout = io.MultiWriter(&out, os.Stdout)
	opts.Command = []string{test, "-test.run", runRE, "-test.v", "-test.timeout", opts.Timeout.String()}

	load := startLoadSampler(15 * time.Second)
	start := time.Now()
	code, err := lab.Run(ctx, opts)
	samples := load()
	if err != nil {
		return err
	}
	log.Info("bench guest done", "exit", code, "took", time.Since(start).Round(time.Second))
	// The whole console, for reading the runs' logs afterwards.
	if err := os.WriteFile(filepath.Join(bin, "bench-failover-console.log"), out.Bytes(), 0o644); err != nil {
		return err
	}

	var report, raw strings.Builder
	found := 0
	for _, sec := range failoverSections {
		r, table, ok := failoverSection(out.String(), sec.begin, sec.end)
		if !ok {
			continue
		}
		found++
		fmt.Fprintf(&report, "## %s\n\n%s\n", sec.title, table)
		fmt.Fprintf(&raw, "## %s\n%s", sec.title, r)
	}
	if save && found > 0 {
		dir := filepath.Join(root, "bench", "results")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		name := filepath.Join(dir, start.UTC().Format("2006-01-02T1504Z")+"-failover.txt")
		content := fmt.Sprintf("# make bench-failover, %s, one guest boot (1 emulated CPU, TCG), %s; read the columns side by side, not absolute times\n",
			start.UTC().Format(time.RFC3339), commit) +
			"# " + loadSummary(samples) + "\n" +
			"# guest exit code " + strconv.Itoa(code) + ", " + time.Since(start).Round(time.Second).String() + "\n\n" +
			report.String() + "# raw (JSON lines)\n" + raw.String()
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "lab bench-failover: figures saved in %s\n", name)
	}
	if code != 0 {
		return fmt.Errorf("benchmark exited %d (console in %s)", code, filepath.Join(bin, "bench-failover-console.log"))
	}
	if found == 0 {
		return fmt.Errorf("the benchmark printed no figures")
	}
	return nil
}

// failoverSection returns the raw lines between begin and end and the
// table printed right after end (up to go test's own lines).
func failoverSection(s, begin, end string) (raw, table string, ok bool) {
	_, rest, ok := strings.Cut(s, begin+"\n")
	if !ok {
		return "", "", false
	}
	raw, rest, ok = strings.Cut(rest, end+"\n")
	if !ok {
		return "", "", false
	}
	var lines []string
	for _, l := range strings.SplitAfter(rest, "\n") {
		if l == "" || strings.HasPrefix(l, "--- ") || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "PASS") ||
			strings.HasPrefix(l, "FAIL") || strings.HasPrefix(l, "ok ") || strings.HasPrefix(l, "GOLVS-") {
			break
		}
		lines = append(lines, l)
	}
	return raw, strings.Join(lines, ""), true
}

// loadSample is the host's 1-minute load average and how many QEMU guests
// ran (other work on the machine) at one moment.
type loadSample struct {
	load   float64
	guests int
}

// startLoadSampler samples the host every period until the returned
// function is called, which returns the samples (one at once, one at the
// end).
func startLoadSampler(period time.Duration) func() []loadSample {
	var mu sync.Mutex
	samples := []loadSample{sampleLoad()}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				s := sampleLoad()
				mu.Lock()
				samples = append(samples, s)
				mu.Unlock()
			}
		}
	})
	return func() []loadSample {
		close(done)
		wg.Wait()
		return append(samples, sampleLoad())
	}
}

func sampleLoad() loadSample {
	var s loadSample
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 0 {
			s.load, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if c, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm")); err == nil && strings.HasPrefix(string(c), "qemu-system") {
			s.guests++
		}
	}
	return s
}

// loadSummary says what else the host was doing during the run.
func loadSummary(ss []loadSample) string {
	if len(ss) == 0 {
		return "host load: not sampled"
	}
	loads := make([]float64, len(ss))
	maxGuests := 0
	for i, s := range ss {
		loads[i] = s.load
		maxGuests = max(maxGuests, s.guests)
	}
	sorted := slices.Clone(loads)
	slices.Sort(sorted)
	return fmt.Sprintf("host: %d CPUs; 1-min load average at start %.2f, at end %.2f, over %d samples every 15s min %.2f / median %.2f / max %.2f; QEMU guests running (ours included) at start %d, at most %d",
		runtime.NumCPU(), loads[0], loads[len(loads)-1], len(loads), sorted[0], sorted[len(sorted)/2], sorted[len(sorted)-1], ss[0].guests, maxGuests)
}

// gitDescribe names the commit the benchmark was built from.
func gitDescribe(ctx context.Context, root string) string {
	cmd := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty")
	cmd.Dir = root
	b, err := cmd.Output()
	if err != nil {
		return "commit unknown"
	}
	return "commit " + strings.TrimSpace(string(b))
}
