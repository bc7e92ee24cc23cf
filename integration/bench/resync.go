package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director"
	"github.com/golvs/golvs/director/ipvs"
	"golang.org/x/sys/unix"
)

// measureResync times the director's periodic no-op passes over the
// table the director left in ns, with nothing else running: the
// reconciler runs in this process, with the director's file and state
// file, on a kernel handle opened in ns, for director.FullDumpEvery+1
// passes. The first and last read the table with a full netlink dump,
// the others survey it (services over netlink, destinations from
// /proc/net/ip_vs); each must write nothing. NoopPass is the median
// survey pass, NoopFullPass the faster full one.
func measureResync(ctx context.Context, opts Options, ns netns, r *Result, conf string) error {
	topo, err := config.Load(conf)
	if err != nil {
		return err
	}
	k := ipvs.NewKernel()
	defer k.Close()
	if err := openIn(ns, k); err != nil {
		return err
	}
	rec := director.NewReconciler(director.Options{Kernel: k,
		StateFile: filepath.Join(filepath.Dir(conf), "director.state")}, topo)
	var surveys, full []time.Duration
	for i := range director.FullDumpEvery + 1 {
		w := k.Writes()
		start := time.Now()
		if err := rec.Sync(ctx); err != nil {
			return fmt.Errorf("resync pass: %w", err)
		}
		took := time.Since(start)
		if n := k.Writes() - w; n != 0 {
			return fmt.Errorf("a no-op resync pass wrote %d times", n)
		}
		if i%director.FullDumpEvery == 0 {
			full = append(full, took)
		} else {
			surveys = append(surveys, took)
		}
	}
	t0 := time.Now()
	if _, err := k.Dump(ctx); err != nil {
		return err
	}
	dump := time.Since(t0)
	slices.Sort(surveys)
	r.NoopPass, r.NoopFullPass, r.NoopDump = surveys[len(surveys)/2], slices.Min(full), dump
	return nil
}

// openIn opens k's netlink socket inside ns (a socket stays in the
// namespace it was made in).
func openIn(ns netns, k *ipvs.Kernel) error {
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	target, err := os.Open(ns.path())
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns: %w", err)
	}
	openErr := k.Open()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with this goroutine rather
		// than run other code in the wrong namespace.
		return errors.Join(openErr, fmt.Errorf("setns back: %w", err))
	}
	runtime.UnlockOSThread()
	return openErr
}
