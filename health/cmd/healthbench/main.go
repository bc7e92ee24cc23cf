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

	"github.com/golvs/golvs/health"
)

func main() {
	n := flag.Int("n", 10000, "backends")
	interval := flag.Duration("interval", time.Second, "check interval")
	d := flag.Duration("duration", 15*time.Second, "how long to measure (plus one warm-up interval)")
	prof := flag.String("cpuprofile", "", "write a CPU profile here")
	flag.Parse()
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			fmt.Fprintln(os.Stderr, "healthbench:", err)
			os.Exit(1)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "healthbench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *d+*interval)
	defer cancel()
	rep, err := health.RunLoadBench(ctx, *n, *interval)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthbench:", err)
		return
	}
	fmt.Println(rep)
}
