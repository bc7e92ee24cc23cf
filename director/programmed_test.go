package director

import (
	"net/netip"
	"testing"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/bgp"
	"github.com/golvs/golvs/health"
)

// TestAnnounceRouteWaitsForTable: a servable VIP is held at once but
// announced only once the kernel's table can serve it.
func TestAnnounceRouteWaitsForTable(t *testing.T) {
	web := webService(backend(be1, 1))
	web.Check = &config.Check{Type: config.CheckTCP}
	view := mapView{ap(be1): {Checked: true, Up: true, WeightPercent: health.WeightNotReported}}
	s := Situation{Topo: topo(web), Health: view, Mode: Routed, Programmed: map[netip.Addr]bool{}}
	d := Announce(s)
	if len(d.Hold) != 1 || len(d.Routes) != 0 || len(d.Waiting) != 1 {
		t.Errorf("table not programmed: hold %v routes %v waiting %v, want the VIP held and waiting, no route", d.Hold, d.Routes, d.Waiting)
	}
	if st := routedStatus([]netip.Addr{vipA}, d, false, bgp.Status{Running: true}, nil); st.VIPs[0].Reason != ReasonTableNotReady {
		t.Errorf("status reason %q, want %q", st.VIPs[0].Reason, ReasonTableNotReady)
	}
	s.Programmed = map[netip.Addr]bool{vipA: true}
	if d := Announce(s); len(d.Routes) != 1 || d.Routes[0] != vipA {
		t.Errorf("table programmed: routes %v, want %v", d.Routes, vipA)
	}
}

// TestProgrammedVIPs: the reconciler reports a VIP as programmed after a
// pass that gave its service a destination with weight, not while every
// weight is 0, and calls OnProgrammed on each change only.
func TestProgrammedVIPs(t *testing.T) {
	f := newFixture(t)
	down := mapView{ap(be1): {Checked: true, WeightPercent: health.WeightNotReported}}
	up := mapView{ap(be1): {Checked: true, Up: true, WeightPercent: health.WeightNotReported}}
	var h HealthView = down
	calls := 0
	r := NewReconciler(Options{Kernel: f.fake, Health: viewFunc(func() HealthView { return h }), Now: f.clock.now, StateFile: f.state,
		OnProgrammed: func() { calls++ }}, topo(webService(backend(be1, 1))))
	if got := r.ProgrammedVIPs(); len(got) != 0 {
		t.Errorf("before any pass: %v", got)
	}
	f.sync(r)
	if got := r.ProgrammedVIPs(); len(got) != 0 {
		t.Errorf("every weight 0: %v, want none", got)
	}
	h = up
	if got := r.ProgrammedVIPs(); len(got) != 0 {
		t.Errorf("health up, no pass yet: %v, want none", got)
	}
	before := calls
	f.sync(r)
	if got := r.ProgrammedVIPs(); !got[vipA] || len(got) != 1 {
		t.Errorf("after the pass: %v, want %v", got, vipA)
	}
	if calls != before+1 {
		t.Errorf("OnProgrammed called %d times for one change", calls-before)
	}
	f.sync(r)
	if calls != before+1 {
		t.Errorf("OnProgrammed called on a pass that changed nothing")
	}
	h = down
	f.sync(r)
	if got := r.ProgrammedVIPs(); len(got) != 0 {
		t.Errorf("down again: %v, want none", got)
	}
}

// viewFunc is a HealthView that reads another one each time.
type viewFunc func() HealthView

func (v viewFunc) Backend(s string, b netip.AddrPort) health.Status { return v().Backend(s, b) }
