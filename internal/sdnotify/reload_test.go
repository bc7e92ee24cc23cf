package sdnotify

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestSignalReload: the helper ignores a record of an earlier reload and
// returns the outcome of the reload its signal caused.
func TestSignalReload(t *testing.T) {
	for _, applied := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "director.reload")
			start := time.Now()
			mono := func() time.Duration { return time.Since(start) + time.Hour }
			n := &Notifier{send: func(string) error { return nil }, mono: mono, resultPath: path}
			// A reload that finished before this one was asked for.
			n.Reloading()
			n.ReloadApplied("old")
			time.Sleep(time.Second)

			signal := func() error {
				go func() {
					time.Sleep(2 * time.Second) // the daemon takes its time
					n.Reloading()
					time.Sleep(3 * time.Second)
					if applied {
						n.ReloadApplied("new applied")
					} else {
						n.ReloadRejected(errors.New("t.toml:1:1: bad\nt.toml:2:1: worse"))
					}
				}()
				return nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			asked := time.Now()
			r, err := signalReload(ctx, path, mono, signal)
			if took := time.Since(asked); took < 5*time.Second {
				t.Fatalf("returned after %v, before the reload ended", took)
			}
			if applied {
				if err != nil || r.Status != "new applied" {
					t.Fatalf("got %+v, %v", r, err)
				}
				return
			}
			if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "t.toml:1:1: bad\nt.toml:2:1: worse") {
				t.Fatalf("rejected reload: err %v", err)
			}
		})
	}
}

func TestSignalReloadTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := signalReload(ctx, filepath.Join(t.TempDir(), "none"), func() time.Duration { return 0 }, func() error { return nil })
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
	})
}
