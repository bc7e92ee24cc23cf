package director

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/director/ipvs/ipvsfake"
)

// Many status readers at once cost one kernel read, and a reader that
// gives up cancels nothing for the others: observability must never
// queue dumps behind the reconciler's writes (a scrape storm once made a
// pass 20 times slower).
func TestStatusReadersShareOneRead(t *testing.T) {
	f := newFixture(t)
	r := f.reconciler(topo(webService(backend(be1, 1), backend(be2, 1))), nil)
	f.sync(r)
	var reads atomic.Int64
	release := make(chan struct{})
	f.fake.Fail = func(op string, _ ipvs.ServiceKey, _ *ipvs.Destination) error {
		if op == ipvsfake.OpDump {
			reads.Add(1)
			<-release // a slow kernel
		}
		return nil
	}
	r.shareRead(nil, true) // the last pass's read is out of date

	// One reader gives up at once.
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Status(gone); err == nil {
		t.Error("a cancelled reader got a status")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := r.Status(ctx)
			if err == nil && (len(st.Services) != 1 || len(st.Services[0].Backends) != 2) {
				t.Errorf("status %+v", st)
			}
			errs <- err
		})
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := reads.Load(); n != 1 {
		t.Errorf("50 readers made %d kernel reads, want 1", n)
	}
	// Within StatusMaxAge, no read at all.
	if _, err := r.Status(context.Background()); err != nil || reads.Load() != 1 {
		t.Errorf("a fresh table was read again: %d reads, err %v", reads.Load(), err)
	}
}
