package director

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"testing"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/bgp"
	"github.com/golvs/golvs/health"
)

// routedFakes stand in for the VIP device and the BGP speaker: each
// keeps the whole set last given, as vip.Holder and bgp.Speaker do.
type routedFakes struct {
	device, routes []netip.Addr
	routesSet      int
}

type fakeDev struct{ f *routedFakes }

func (d fakeDev) Set(_ context.Context, a []netip.Addr) error {
	d.f.device = slices.Clone(a)
	return nil
}

type fakeRoutes struct{ f *routedFakes }

func (r fakeRoutes) Set(_ context.Context, a []netip.Addr) error {
	r.f.routes = slices.Clone(a)
	r.f.routesSet++
	return nil
}

func (r fakeRoutes) WithdrawAll(context.Context) error { r.f.routes = nil; return nil }

func (r fakeRoutes) Status(context.Context) (bgp.Status, error) {
	return bgp.Status{ASN: 65010, Running: true, Announced: r.f.routes}, nil
}

// routedRuntime is a routed director's Runtime on the fakes, as Run
// would wire it, without starting anything.
func routedRuntime(f *fixture, fk *routedFakes, tp *config.Topology) *Runtime {
	rt := &Runtime{Log: slog.New(slog.DiscardHandler), topo: tp, rec: f.reconciler(tp, nil),
		monitor: health.New(slog.New(slog.DiscardHandler), func() {}),
		bgp:     &bgp.Announcer{Device: fakeDev{fk}, Routes: fakeRoutes{fk}}, speaker: fakeRoutes{fk}}
	return rt
}

// drain-self withdraws every route and keeps the VIPs on the device (the
// director forwards on); it survives a restart; undrain-self announces
// again. Status says which VIPs are announced and why not.
func TestDrainSelf(t *testing.T) {
	f := newFixture(t)
	tp := topo(webService(backend(be1, 1)))
	fk := &routedFakes{}
	rt := routedRuntime(f, fk, tp)
	ctx := t.Context()
	vips := []netip.Addr{vipA}
	expect := func(step string, routes []netip.Addr, drained bool) {
		t.Helper()
		if !slices.Equal(fk.device, vips) || !slices.Equal(fk.routes, routes) {
			t.Errorf("%s: device %v routes %v; want device %v routes %v", step, fk.device, fk.routes, vips, routes)
		}
		st := rt.BGPStatus(ctx)
		if st.SelfDrained != drained || len(st.VIPs) != 1 || st.VIPs[0].Announced != (len(routes) > 0) {
			t.Errorf("%s: status %+v", step, st)
		}
		if drained && st.VIPs[0].Reason != "drain-self" {
			t.Errorf("%s: reason %q", step, st.VIPs[0].Reason)
		}
	}
	f.sync(rt.rec) // Run's first pass: a route waits for its table
	rt.hold(ctx)
	expect("start", vips, false)
	if err := rt.DrainSelf(ctx, true); err != nil {
		t.Fatal(err)
	}
	expect("drain-self", nil, true)
	rt.hold(ctx) // a health change or reload decides again: still drained
	expect("drained, decided again", nil, true)

	// Restart: the new director never announces before undrain-self.
	fk = &routedFakes{}
	rt = routedRuntime(f, fk, tp)
	f.sync(rt.rec)
	rt.hold(ctx)
	if fk.routesSet == 0 || len(fk.routes) != 0 {
		t.Errorf("restarted drained director: routes %v after %d sets", fk.routes, fk.routesSet)
	}
	expect("restarted drained", nil, true)
	if err := rt.DrainSelf(ctx, false); err != nil {
		t.Fatal(err)
	}
	expect("undrain-self", vips, false)

	plain := &Runtime{Log: slog.New(slog.DiscardHandler), rec: f.reconciler(tp, nil)}
	if err := plain.DrainSelf(ctx, true); !errors.Is(err, ErrNotRouted) {
		t.Errorf("drain-self without [bgp]: %v", err)
	}
	if plain.BGPStatus(ctx) != nil {
		t.Error("BGP status without [bgp]")
	}
}
