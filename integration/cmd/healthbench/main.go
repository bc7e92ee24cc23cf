// Command healthbench runs the health monitor's load benchmark:
// many TCP-checked backends against local listeners.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"time"

	"github.com/golvs/golvs/integration/healthbench"
)

func main() {
	n := flag.Int("n", 10000, "backends")
	interval := flag.Duration("interval", time.Second, "check interval")
	d := flag.Duration("duration", 15*time.Second, "how long to measure (plus one warm-up interval)")
	accept := flag.Bool("accept", false, "listeners accept every connection (the default defers: see healthbench.LoadConfig)")
	wait := flag.Bool("wait", false, "every probe waits for its handshake, as with remote backends (see healthbench.LoadConfig)")
	prof := flag.String("cpuprofile", "", "write a CPU profile here")
	flag.Parse()
	if err := run(healthbench.LoadConfig{Backends: *n, Interval: *interval, Accept: *accept, Wait: *wait}, *d, *prof); err != nil {
		fmt.Fprintln(os.Stderr, "healthbench:", err)
		os.Exit(1)
	}
}

func run(cfg healthbench.LoadConfig, d time.Duration, prof string) error {
	if prof != "" {
		f, err := os.Create(prof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, d+cfg.Interval)
	defer cancel()
	rep, err := healthbench.RunLoadBench(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Println(rep)
	return nil
}
