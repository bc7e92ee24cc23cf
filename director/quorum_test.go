package director

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/golvs/golvs/health"
)

// A quorum lost without a sorry server changes nothing in the kernel, so
// it must be said: logged once per transition, shown in status.
func TestQuorumLostWithoutSorryServer(t *testing.T) {
	f := newFixture(t)
	svc := webService(backend(be1, 1), backend(be2, 1), backend(be3, 1))
	svc.Quorum = 2
	view := mapView{}
	var logs bytes.Buffer
	r := NewReconciler(Options{Kernel: f.fake, Health: view, StateFile: f.state,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}, topo(svc))
	f.sync(r)
	down := health.Status{Checked: true, WeightPercent: health.WeightNotReported}
	view[ap(be1)], view[ap(be2)] = down, down
	f.sync(r)
	f.sync(r) // a second pass must not log it again
	if n := strings.Count(logs.String(), `msg="quorum lost"`); n != 1 {
		t.Errorf("quorum lost logged %d times, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "serving=1 quorum=2 sorry_server=none") {
		t.Errorf("quorum log line lacks the figures:\n%s", logs.String())
	}
	r.shareRead(nil, true)
	st, err := r.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Services[0]; !s.QuorumLost || s.Serving != 1 || s.Quorum != 2 {
		t.Errorf("status: %+v", s)
	}
	var text bytes.Buffer
	st.WriteText(&text)
	if !strings.Contains(text.String(), "QUORUM LOST (1 of 2 serving)") {
		t.Errorf("status text:\n%s", text.String())
	}
	delete(view, ap(be1))
	f.sync(r)
	if !strings.Contains(logs.String(), `msg="quorum regained" service=web serving=2`) {
		t.Errorf("quorum return not logged:\n%s", logs.String())
	}
}
