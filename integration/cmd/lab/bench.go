package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/golvs/golvs/integration/lab"
)

// Markers around the raw figures in benchguest's output.
const (
	benchRawBegin = "GOLVS-BENCH-RAW-BEGIN"
	benchRawEnd   = "GOLVS-BENCH-RAW-END"
)

// cmdBench is `lab bench`: build the director and benchguest, run the
// benchmark in one guest boot, print its table and keep the figures in
// bench/results/<UTC time>.txt (the guest's own writes stay in the guest,
// so the raw figures come back over the console between markers).
func cmdBench(args []string) int {
	fs := flag.NewFlagSet("lab bench", flag.ContinueOnError)
	sizes := fs.String("sizes", "100,1000,5000", "comma-separated numbers of services (10000 takes about 5 more minutes)")
	rounds := fs.Int("rounds", 3, "measure each size this many times, keeping the best times")
	timeout := fs.Duration("timeout", 45*time.Minute, "kill the guest after this long")
	forceVM := fs.Bool("vm", false, "boot the guest even if the host kernel has IPVS")
	cpus := fs.Int("cpus", 0, "guest CPUs (default 1)")
	save := fs.Bool("save", true, "write the figures to bench/results/")
	manyVIPs := fs.Bool("many-vips", false, "each service on a VIP of its own (port 80): the director also puts every VIP on its interface")
	verbose := fs.Bool("v", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := newLogger(*verbose)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runBench(ctx, log, *sizes, *rounds, *manyVIPs, *save, lab.Options{Timeout: *timeout, ForceVM: *forceVM, CPUs: *cpus, Log: log}); err != nil {
		fmt.Fprintf(os.Stderr, "lab bench: FAILED: %v\n", err)
		return 1
	}
	return 0
}

func runBench(ctx context.Context, log *slog.Logger, sizes string, rounds int, manyVIPs, save bool, opts lab.Options) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	bin := filepath.Join(root, "bin")
	if err := runSteps(ctx, log, root, [][]string{
		{"go", "build", "-o", filepath.Join(bin, "director"), "./cmd/director"},
		{"go", "build", "-o", filepath.Join(bin, "benchguest"), "./integration/cmd/benchguest"},
	}); err != nil {
		return err
	}
	var out bytes.Buffer
	opts.Dir = root
	opts.Stdout = io.MultiWriter(&out, &rawFilter{w: os.Stdout})
	opts.Command = []string{filepath.Join(bin, "benchguest"), "-director", filepath.Join(bin, "director"),
		"-sizes", sizes, "-rounds", strconv.Itoa(rounds), "-out", "-"}
	if manyVIPs {
		opts.Command = append(opts.Command, "-many-vips")
	}
	start := time.Now()
	code, err := lab.Run(ctx, opts)
	if err != nil {
		return err
	}
	log.Info("bench guest done", "exit", code, "took", time.Since(start).Round(time.Second))
	raw, report := splitRaw(out.String())
	if save && raw != "" {
		dir := filepath.Join(root, "bench", "results")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		name, layout := resultsName(dir, time.Now(), manyVIPs)
		content := "# make bench, sizes " + sizes + ", " + layout + ", best of " + strconv.Itoa(rounds) + " rounds, one guest boot; read the ratios, not the times\n" +
			report + "\n# raw (JSON, durations in ns)\n" + raw
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "lab bench: figures saved in %s\n", name)
	}
	if code != 0 {
		return fmt.Errorf("benchguest exited %d", code)
	}
	if raw == "" {
		return fmt.Errorf("benchguest printed no figures")
	}
	return nil
}

// resultsName is the results file for a run at now, and the layout as the
// file's header says it: many-VIP runs are kept apart (-manyvip).
func resultsName(dir string, now time.Time, manyVIPs bool) (name, layout string) {
	stamp := now.UTC().Format("2006-01-02T1504Z")
	if manyVIPs {
		return filepath.Join(dir, stamp+"-manyvip.txt"), "one VIP per service (port 80; the director's cold start includes putting every VIP on its interface)"
	}
	return filepath.Join(dir, stamp+".txt"), "one VIP, one port per service"
}

// splitRaw separates the raw figures from the printed table and verdicts
// (the lines after the raw block); progress lines are dropped.
func splitRaw(s string) (raw, report string) {
	_, rest, ok := strings.Cut(s, benchRawBegin+"\n")
	if !ok {
		return "", ""
	}
	raw, report, _ = strings.Cut(rest, benchRawEnd+"\n")
	return raw, report
}

// rawFilter passes console output through, except the raw block, which
// goes to the results file instead. Writes come line by line from lab.
type rawFilter struct {
	w     io.Writer
	inRaw bool
}

func (f *rawFilter) Write(p []byte) (int, error) {
	line := string(p)
	switch {
	case strings.HasPrefix(line, benchRawBegin):
		f.inRaw = true
	case strings.HasPrefix(line, benchRawEnd):
		f.inRaw = false
	case !f.inRaw:
		return f.w.Write(p)
	}
	return len(p), nil
}
