package sdnotify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Result is the record of one reload, written by the daemon and read by the
// ExecReload helper.
type Result struct {
	StartUsec int64    `json:"start_usec"` // CLOCK_MONOTONIC when the reload began
	Applied   bool     `json:"applied"`
	Status    string   `json:"status"`
	Errors    []string `json:"errors,omitempty"`
}

// writeResult replaces the record atomically, so a reader never sees half.
func writeResult(path string, r Result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("reload record: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("reload record: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("reload record: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("reload record: %w", err)
	}
	return os.Rename(tmp.Name(), path)
}

func readResult(path string) (Result, error) {
	var r Result
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	err = json.Unmarshal(b, &r)
	return r, err
}

// ErrRejected is returned by SignalReload when the daemon refused the file.
var ErrRejected = errors.New("reload rejected")

// pollEvery is how often the helper looks for the record: a reload takes
// at least a file read and a kernel dump, so finer is wasted.
const pollEvery = 50 * time.Millisecond

// SignalReload is the ExecReload helper: it sends SIGHUP to the daemon pid
// and waits until the daemon has recorded at path the result of a reload
// that began after the signal. A rejected file returns an error wrapping
// ErrRejected with the file's errors, one a line.
func SignalReload(ctx context.Context, pid int, path string) (Result, error) {
	return signalReload(ctx, path, monotonic, func() error { return syscall.Kill(pid, syscall.SIGHUP) })
}

func signalReload(ctx context.Context, path string, mono func() time.Duration, signal func() error) (Result, error) {
	if path == "" {
		return Result{}, errors.New("no reload record path: run it as the unit's ExecReload (RuntimeDirectory=) or give one")
	}
	// A reload that began before this instant may have read the old file.
	since := mono().Microseconds()
	if err := signal(); err != nil {
		return Result{}, fmt.Errorf("signal the daemon: %w", err)
	}
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		if r, err := readResult(path); err == nil && r.StartUsec >= since {
			if !r.Applied {
				return r, fmt.Errorf("%w: %s", ErrRejected, strings.Join(r.Errors, "\n"))
			}
			return r, nil
		}
		select {
		case <-ctx.Done():
			return Result{}, fmt.Errorf("no reload result in %s: %w", path, ctx.Err())
		case <-t.C:
		}
	}
}
