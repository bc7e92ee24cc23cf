// Command benchguest runs golvs's scale benchmark inside a kernel with IPVS
// (the lab guest): for each size it times `ipvsadm -R`, keepalived and the
// director on the same table, prints the table and writes the raw figures.
// `go run ./integration/cmd/lab bench` (make bench) builds and boots it.
//
//	benchguest -director bin/director [-sizes 100,1000,5000] [-backends 4] [-rounds 3] [-many-vips] [-out FILE|-]
//
// -many-vips puts each service on a VIP of its own (port 80) instead of
// one VIP with a port per service: the director then also puts every VIP
// on its interface during its cold start (keepalived, LVS only, adds none).
//
// With -out - the raw figures go to stdout between marker lines, for a host
// that cannot see the guest's files.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/golvs/golvs/integration/bench"
)

// Markers around the raw figures on stdout (integration/cmd/lab bench looks for them).
const (
	RawBegin = "GOLVS-BENCH-RAW-BEGIN"
	RawEnd   = "GOLVS-BENCH-RAW-END"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx)
	stop()
	os.Exit(code)
}

func run(ctx context.Context) int {
	sizes := flag.String("sizes", "100,1000,5000", "comma-separated numbers of services")
	backends := flag.Int("backends", 4, "NAT real servers per service")
	rounds := flag.Int("rounds", 3, "measure each size this many times and keep the best times")
	dirBin := flag.String("director", "", "the director binary (required)")
	work := flag.String("work", "/var/tmp/golvs-bench", "scratch directory")
	out := flag.String("out", "-", "raw figures: a file, or - for stdout between markers")
	probe := flag.Bool("probe", false, "time the director's parts in-process instead")
	manyVIPs := flag.Bool("many-vips", false, "each service on a VIP of its own (port 80) instead of one VIP with a port per service")
	flag.Parse()
	if *dirBin == "" && !*probe {
		fmt.Fprintln(os.Stderr, "benchguest: -director is required")
		return 2
	}
	var ns []int
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "benchguest: bad size %q\n", f)
			return 2
		}
		ns = append(ns, n)
	}
	if *probe {
		var prof bytes.Buffer
		for _, n := range ns {
			if err := bench.Probe(ctx, os.Stdout, &prof, *work, n, *backends, *manyVIPs); err != nil {
				fmt.Fprintf(os.Stderr, "benchguest: probe: %v\n", err)
				return 1
			}
		}
		fmt.Println("PROFILE " + base64.StdEncoding.EncodeToString(prof.Bytes()))
		return 0
	}
	rs, err := bench.Run(ctx, bench.Options{Sizes: ns, Backends: *backends, Director: *dirBin, Work: *work, Progress: os.Stderr, Rounds: *rounds, ManyVIPs: *manyVIPs})
	if len(rs) > 0 {
		if werr := writeRaw(*out, rs); werr != nil {
			fmt.Fprintf(os.Stderr, "benchguest: %v\n", werr)
			return 1
		}
		fmt.Println()
		bench.Table(os.Stdout, rs)
		fmt.Println()
		for _, v := range bench.Verdicts(rs) {
			fmt.Println(v)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchguest: FAILED: %v\n", err)
		return 1
	}
	return 0
}

func writeRaw(path string, rs []bench.Result) error {
	if path == "-" {
		fmt.Println(RawBegin)
		if err := bench.WriteRaw(os.Stdout, rs); err != nil {
			return err
		}
		fmt.Println(RawEnd)
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := bench.WriteRaw(f, rs); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
