package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/golvs/golvs/integration/lab"
)

// labDemo builds everything and runs the DR demo test in one guest, which
// prints the IPVS table and the request distribution.
func labDemo(ctx context.Context, log *slog.Logger, opts lab.Options) (int, error) {
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
	opts.Env = []string{"GOLVS_BIN=" + bin, "GOLVS_DEMO=1"}
	opts.Command = []string{filepath.Join(bin, "integration.test"), "-test.run", "^TestDemoDR$", "-test.timeout", "5m"}
	code, err := lab.Run(ctx, opts)
	fmt.Fprintf(os.Stderr, "lab demo: exit %d, total %s (build, boot, demo)\n", code, time.Since(start).Round(time.Millisecond))
	if err == nil && code != 0 {
		err = fmt.Errorf("demo failed (exit %d)", code)
	}
	return code, err
}
