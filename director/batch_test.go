package director

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/director/ipvs/ipvsfake"
	"golang.org/x/sys/unix"
)

// batchKernel is the fake that counts its batches
// and writes, as the kernel adapter does; fail makes one change fail.
type batchKernel struct {
	*ipvsfake.Fake
	batches int
	writes  uint64
	fail    func(ipvs.Write) error
}

func (k *batchKernel) WriteBatch(ctx context.Context, ws []ipvs.Write) []error {
	k.batches++
	k.writes += uint64(len(ws))
	errs := make([]error, len(ws))
	for i, w := range ws {
		if k.fail != nil {
			if errs[i] = k.fail(w); errs[i] != nil {
				continue
			}
		}
		errs[i] = k.Fake.WriteBatch(ctx, []ipvs.Write{w})[0]
	}
	return errs
}

func (k *batchKernel) Writes() uint64 { return k.writes }

// A pass hands all its changes to a BatchWriter at once, keeps the
// per-change errors, and logs its write count; an unchanged pass writes
// nothing.
func TestSyncBatchesWrites(t *testing.T) {
	f := newFixture(t)
	k := &batchKernel{Fake: f.fake}
	k.fail = func(w ipvs.Write) error {
		if w.Kind == ipvs.WriteAddDest && w.Dest.Address == be2 {
			return unix.EINVAL
		}
		return nil
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := NewReconciler(Options{Kernel: k, Logger: log, StateFile: f.state},
		topo(webService(backend(be1, 1), backend(be2, 1), backend(be3, 1))))

	err := r.Sync(context.Background())
	if !errors.Is(err, unix.EINVAL) {
		t.Fatalf("Sync: %v, want the failed change's EINVAL", err)
	}
	if k.batches != 1 || k.writes != 4 {
		t.Errorf("%d batches, %d writes; want 1 batch of 4", k.batches, k.writes)
	}
	f.expect("be2 failed, the rest applied", ipvsEntry(webSvc, dst(be1, 1), dst(be3, 1)))
	if !strings.Contains(logs.String(), "writes=4") {
		t.Errorf("pass line without writes=4:\n%s", logs.String())
	}

	// The next pass retries only the failed change.
	k.fail = nil
	if err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if k.batches != 2 || k.writes != 5 {
		t.Errorf("retry: %d batches, %d writes; want 2 and 5", k.batches, k.writes)
	}
	f.expect("retried", ipvsEntry(webSvc, dst(be1, 1), dst(be2, 1), dst(be3, 1)))

	logs.Reset()
	if err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if k.writes != 5 || !strings.Contains(logs.String(), `msg="ipvs in sync"`) || !strings.Contains(logs.String(), "writes=0") {
		t.Errorf("unchanged pass wrote: %d writes, log:\n%s", k.writes, logs.String())
	}
}

func ipvsEntry(s ipvs.Service, ds ...ipvs.Destination) ipvs.Entry {
	return ipvs.Entry{Service: s, Destinations: ds}
}
