package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/golvs/golvs/internal/sdnotify"
)

// cmdReload is the unit's ExecReload: SIGHUP to the realserver, then wait
// for its record of that reload, so that `systemctl reload` returns once
// the host is prepared for the new file and fails with the file's errors.
func cmdReload(args []string) error {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	mainPID, _ := strconv.Atoi(os.Getenv("MAINPID"))
	pid := fs.Int("pid", mainPID, "the realserver's pid (the unit passes $MAINPID)")
	record := fs.String("record", sdnotify.ResultPath("realserver"), "the reload record (default $RUNTIME_DIRECTORY/realserver.reload)")
	timeout := fs.Duration("timeout", 90*time.Second, "give up waiting after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *pid <= 0 {
		return errors.New("usage: realserver reload --pid PID [--record FILE] [--timeout D]")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	r, err := sdnotify.SignalReload(ctx, *pid, *record)
	if err != nil {
		return err
	}
	fmt.Println(r.Status)
	return nil
}
