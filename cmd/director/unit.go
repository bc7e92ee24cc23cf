package main

// What the systemd unit runs besides `director run`: the start condition
// and the synchronous reload.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/internal/sdnotify"
)

// execCondition is `check --exec-condition`: the shipped topology file is
// a commented example with no service, and a director started on it would
// only hold an empty table, so the unit is skipped (exit 1) until the
// operator adds one; an invalid file fails the unit (255) loudly instead.
func execCondition(path string, topo *config.Topology, ok bool, stdout, stderr io.Writer) int {
	if !ok {
		return 255
	}
	if len(topo.Services) == 0 {
		fmt.Fprintf(stderr, "%s: no [[service]] yet: not starting (add one, then systemctl start)\n", path)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok, %d services\n", path, len(topo.Services))
	return 0
}

// cmdReload is the unit's ExecReload: SIGHUP to the director, then wait
// for its record of that reload, so that `systemctl reload` returns once
// the file is applied and fails with the file's errors when it is not.
// systemd 252 has no Type=notify-reload, and a bare `kill -HUP` returns
// before the director has even read the file.
func cmdReload(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("reload", stderr)
	pid := fs.Int("pid", envInt("MAINPID"), "the director's pid (the unit passes $MAINPID)")
	record := fs.String("record", sdnotify.ResultPath("director"), "the director's reload record (default $RUNTIME_DIRECTORY/director.reload)")
	timeout := fs.Duration("timeout", 90*time.Second, "give up waiting after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 || *pid <= 0 {
		fmt.Fprintln(stderr, "usage: director reload --pid PID [--record FILE] [--timeout D]")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	r, err := sdnotify.SignalReload(ctx, *pid, *record)
	if errors.Is(err, sdnotify.ErrRejected) {
		fmt.Fprintln(stderr, "director reload: the new file was rejected; the previous one stays in force:")
		for _, e := range r.Errors {
			fmt.Fprintln(stderr, e)
		}
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "director reload: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, r.Status)
	return 0
}

func envInt(name string) int {
	n, _ := strconv.Atoi(os.Getenv(name))
	return n
}
