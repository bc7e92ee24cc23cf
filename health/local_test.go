package health

import (
	"fmt"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/sys/unix"

	"github.com/golvs/golvs/health/check"
)

// TestMonitorLocalErrorKeepsState (issue 18.3): probes that fail for the
// director's own reasons (EMFILE, ENOBUFS) leave an up backend up and a
// down one down, are counted, and are logged at most once per
// localLogEvery; a real failure afterwards still counts.
func TestMonitorLocalErrorKeepsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, 3)
		up, down := backend(1), backend(2)
		h.fake.set(down, refused)
		h.m.Update([]Target{
			{Service: "web", Backend: up, Check: tcpCheck(time.Second, 1, 1)},
			{Service: "web", Backend: down, Check: tcpCheck(time.Second, 1, 1)},
		})
		h.start(t)
		advance(time.Second)
		if !h.m.Backend("web", up).Up || h.m.Backend("web", down).Up {
			t.Fatalf("before: up %+v, down %+v", h.m.Backend("web", up), h.m.Backend("web", down))
		}
		changes := h.changes.Load()
		// As the checkers return them: classified by check.Up, and raw.
		h.fake.set(up, check.Up(fmt.Errorf("socket: %w", unix.EMFILE)))
		h.fake.set(down, check.Result{Err: fmt.Errorf("connect: %w", unix.ENOBUFS), WeightPercent: -1})
		advance(30 * time.Second)
		if st := h.m.Backend("web", up); !st.Up {
			t.Errorf("healthy backend went down on a local error: %+v", st)
		}
		if st := h.m.Backend("web", down); st.Up || st.Reason != "connect: connection refused" {
			t.Errorf("down backend changed on a local error: %+v", st)
		}
		if got := h.m.LocalErrors(); got != 60 {
			t.Errorf("LocalErrors() = %d, want 60 (2 backends x 30 intervals)", got)
		}
		for _, b := range []netip.AddrPort{up, down} {
			if got := h.m.Backend("web", b).Excused; got != 30 {
				t.Errorf("%s: Excused = %d, want its 30 local errors", b, got)
			}
		}
		if got := h.changes.Load(); got != changes {
			t.Errorf("onChange called %d times for local errors", got-changes)
		}
		// 30 s of errors, one line per 10 s.
		if got := h.logLines("backend keeps its state"); got < 3 || got > 4 {
			t.Errorf("%d local-error log lines in 30 s, want 3 or 4", got)
		}
		h.fake.set(up, refused)
		advance(time.Second)
		if st := h.m.Backend("web", up); st.Up {
			t.Errorf("a real failure after local errors did not count: %+v", st)
		}
		h.stop(t)
	})
}
