package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director"
	"github.com/golvs/golvs/internal/logflag"
	"github.com/golvs/golvs/internal/rlimit"
	"github.com/golvs/golvs/internal/sdnotify"
)

// cmdRun is `director run`: flags, the file, signals; the director itself
// is director.Runtime.
func cmdRun(args []string, stderr io.Writer) int {
	fs := newFlags("run", stderr)
	path := fs.String("config", config.DefaultPath, "topology file")
	priority := fs.Int("priority", 0, "VRRP priority 1..254, overriding the file's")
	logFormat := fs.String("log-format", "text", "text or json")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	cleanup := fs.Bool("cleanup-on-exit", false, "on exit, remove the IPVS services and VIPs this director owns")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "director run: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	log, err := logflag.New(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "director run: %v\n", err)
		return 2
	}
	if *priority != 0 && (*priority < 1 || *priority > 254) {
		fmt.Fprintf(stderr, "director run: --priority %d is out of range 1..254\n", *priority)
		return 2
	}
	topo, ok := loadConfig(*path, stderr)
	if !ok {
		return 1
	}
	// Checks open a socket each: the default soft limit of 1,024 would
	// make thousands of them fail on the director's side.
	if old, raised, err := rlimit.RaiseFileLimit(); err != nil {
		log.Warn("could not raise the open-file limit", "err", err, "limit", old)
	} else if raised != old {
		log.Info("open-file limit raised", "from", old, "to", raised)
	}
	// systemd (Type=notify, WatchdogSec=): no-ops outside a unit.
	notify := sdnotify.New("director")
	rt := &director.Runtime{Path: *path, Priority: *priority, CleanupOnExit: *cleanup, Log: log,
		Notify: notify, Watchdog: sdnotify.NewWatchdog(notify, log.With("part", "watchdog"))}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := rt.Run(ctx, topo, hup); err != nil {
		log.Error("director failed", "err", err)
		return 1
	}
	return 0
}
