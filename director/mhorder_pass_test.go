package director

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/health"
)

var be4 = netip.MustParseAddr("10.0.1.4")

func mhService(backends ...config.Backend) config.Service {
	s := webService(backends...)
	s.Scheduler, s.SchedulerFlags = "mh", []string{"mh-port", "mh-fallback"}
	return s
}

// kernelOrder is the fake kernel's list of web's destinations, head first.
func (f *fixture) kernelOrder() []netip.AddrPort {
	f.t.Helper()
	es, err := f.fake.DumpServices(context.Background(), []ipvs.ServiceKey{web})
	if err != nil || len(es) != 1 {
		f.t.Fatalf("dump of web: %v %v", es, err)
	}
	return es[0].Order
}

// mhStep is one thing that happens to a director: it starts (or
// restarts: a new Reconciler over the same kernel) with a file, a SIGHUP
// reload brings in a file, or an operator adds a destination with
// ipvsadm behind its back.
type mhStep struct {
	do       string // "start", "reload", "ipvsadm"
	backends []netip.Addr
}

// Every history of adds, reloads and restarts ends with the same kernel
// list, the canonical one, and a pass after that writes nothing.
func TestMHOrderSameWhateverTheHistory(t *testing.T) {
	a, b, c, d := be1, be2, be3, be4
	canonical := []netip.AddrPort{ap(d), ap(c), ap(b), ap(a)}
	tests := []struct {
		name  string
		steps []mhStep
	}{
		{"file order A,B,C,D", []mhStep{{"start", []netip.Addr{a, b, c, d}}}},
		{"file order C,A,D,B", []mhStep{{"start", []netip.Addr{c, a, d, b}}}},
		{"reloads adding A, B, C, D one by one", []mhStep{
			{"start", []netip.Addr{a}}, {"reload", []netip.Addr{a, b}}, {"reload", []netip.Addr{a, b, c}}, {"reload", []netip.Addr{a, b, c, d}}}},
		{"reloads adding D, C, B, A one by one", []mhStep{
			{"start", []netip.Addr{d}}, {"reload", []netip.Addr{d, c}}, {"reload", []netip.Addr{d, c, b}}, {"reload", []netip.Addr{d, c, b, a}}}},
		{"C,A,B then a reload adding D later", []mhStep{
			{"start", []netip.Addr{c, a, b}}, {"reload", []netip.Addr{c, a, b, d}}}},
		{"B, restart with A and D, reload adding C", []mhStep{
			{"start", []netip.Addr{b}}, {"start", []netip.Addr{b, a, d}}, {"reload", []netip.Addr{a, b, c, d}}}},
		{"B removed and added back by reloads", []mhStep{
			{"start", []netip.Addr{a, b, c, d}}, {"reload", []netip.Addr{a, c, d}}, {"reload", []netip.Addr{a, b, c, d}}}},
		{"a list made by hand in ascending order, then the director starts", []mhStep{
			{"ipvsadm", []netip.Addr{d, c, b, a}}, {"start", []netip.Addr{a, b, c, d}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			var r *Reconciler
			for _, st := range tt.steps {
				var bs []config.Backend
				for _, x := range st.backends {
					bs = append(bs, backend(x, 1))
				}
				tp := topo(mhService(bs...))
				switch st.do {
				case "start":
					r = f.reconciler(tp, nil)
					f.sync(r)
				case "reload":
					if err := r.ReloadServices(ctx, tp, []int{0}, []ipvs.ServiceKey{web}); err != nil {
						t.Fatal(err)
					}
				case "ipvsadm":
					if err := f.fake.AddService(ctx, desiredService(&tp.Services[0])); err != nil {
						t.Fatal(err)
					}
					for _, x := range st.backends {
						if err := f.fake.AddDestination(ctx, web, dst(x, 1)); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			if got := f.kernelOrder(); !slices.Equal(got, canonical) {
				t.Errorf("kernel list %v, want %v", got, canonical)
			}
			f.writes()
			f.sync(r)
			if m, n := f.writes(); n != 0 {
				t.Errorf("a pass over the canonical list wrote %v", m)
			}
		})
	}
}

// A move keeps the destination's connections, says so in `director
// plan` and logs one line for its service.
func TestMHOrderMoveKeepsConnections(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var logs bytes.Buffer
	tp := topo(mhService(backend(be2, 1), backend(be3, 1)))
	r := NewReconciler(Options{Kernel: f.fake, Now: f.clock.now, StateFile: f.state,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}, tp)
	f.sync(r)
	if err := f.fake.SetConns(web, ap(be2), 5, 2); err != nil {
		t.Fatal(err)
	}
	if err := f.fake.SetConns(web, ap(be3), 7, 0); err != nil {
		t.Fatal(err)
	}
	// be1 is lower than both: added at the head, where be3 and be2 must go.
	r.SetConfig(topo(mhService(backend(be1, 1), backend(be2, 1), backend(be3, 1))))
	pending, err := r.Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, w := range pending {
		lines = append(lines, w.String())
	}
	want := []string{
		"delete destination tcp:10.0.0.10:80 -> 10.0.1.3:80 (to reorder the list)",
		"delete destination tcp:10.0.0.10:80 -> 10.0.1.2:80 (to reorder the list)",
		"add destination tcp:10.0.0.10:80 -> 10.0.1.1:80 dr weight 1",
		"add destination tcp:10.0.0.10:80 -> 10.0.1.2:80 dr weight 1 (to reorder the list)",
		"add destination tcp:10.0.0.10:80 -> 10.0.1.3:80 dr weight 1 (to reorder the list)",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("director plan:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	f.sync(r)
	if got, want := f.kernelOrder(), []netip.AddrPort{ap(be3), ap(be2), ap(be1)}; !slices.Equal(got, want) {
		t.Errorf("kernel list %v, want %v", got, want)
	}
	es, _ := f.fake.Dump(ctx)
	for _, d := range es[0].Destinations {
		want := map[netip.Addr][2]int{be1: {0, 0}, be2: {5, 2}, be3: {7, 0}}[d.Address]
		if [2]int{d.ActiveConns, d.InactiveConns} != want {
			t.Errorf("%v: connections %d/%d after the move, want %v", d.Address, d.ActiveConns, d.InactiveConns, want)
		}
	}
	if n := strings.Count(logs.String(), "mh destinations reordered"); n != 1 || !strings.Contains(logs.String(), `moved="[10.0.1.3:80 10.0.1.2:80]"`) {
		t.Errorf("%d reorder lines in the log, want one naming both moves:\n%s", n, logs.String())
	}
}

// A backend that is down when the director adds it goes in at its
// configured weight and is then set to 0, so the kernel gives it the
// share in the table that a director that saw it up gives it.
func TestMHOrderDownBackendAddedAtNominal(t *testing.T) {
	f := newFixture(t)
	down := health.Status{Checked: true, WeightPercent: health.WeightNotReported}
	r := f.reconciler(topo(mhService(backend(be1, 1), backend(be2, 3))), mapView{ap(be2): down})
	pending, err := r.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, w := range pending {
		lines = append(lines, w.String())
	}
	want := []string{
		"add service tcp:10.0.0.10:80 mh flags 0x18",
		"add destination tcp:10.0.0.10:80 -> 10.0.1.1:80 dr weight 1",
		"add destination tcp:10.0.0.10:80 -> 10.0.1.2:80 dr weight 3",
		"update destination tcp:10.0.0.10:80 -> 10.0.1.2:80 weight 3 -> 0",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("director plan:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}
