package director

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/health"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// The decision table: VRRP state x health x quorum x tracking -> the
// addresses to hold and whether VRRP should give up the VIPs.
func TestAnnounce(t *testing.T) {
	vipB := netip.MustParseAddr("10.0.0.11")
	a, b := ap(be1), netip.AddrPortFrom(be2, 80)
	chk := &config.Check{Type: config.CheckTCP}
	web := webService(backend(be1, 1))
	web.Check = chk
	api := webService(backend(be2, 1))
	api.Name, api.Address, api.Check = "api", vipB, chk
	quorum := api
	quorum.Quorum = 2
	sorryAPI := quorum
	sorryAPI.SorryServer = sorry
	unchecked := api
	unchecked.Check = nil

	down := health.Status{Checked: true, WeightPercent: health.WeightNotReported}
	up := health.Status{Checked: true, Up: true, WeightPercent: health.WeightNotReported}
	drained := up
	drained.Drain = true
	notYet := health.Status{WeightPercent: health.WeightNotReported}

	both := []netip.Addr{vipA, vipB}
	for _, tc := range []struct {
		name   string
		svcs   []config.Service
		mode   Mode
		master bool
		view   mapView
		hold   []netip.Addr
		fault  bool
	}{
		{"static holds all, healthy", []config.Service{web, api}, Static, false, mapView{a: up, b: up}, both, false},
		{"static holds all even with none healthy", []config.Service{web, api}, Static, false, mapView{a: down, b: down}, both, true},
		{"vrrp master holds all", []config.Service{web, api}, VRRP, true, mapView{a: up, b: down}, both, false},
		{"vrrp backup holds none", []config.Service{web, api}, VRRP, false, mapView{a: up, b: up}, nil, false},
		{"vrrp master, all down: fault", []config.Service{web, api}, VRRP, true, mapView{a: down, b: down}, both, true},
		{"not checked yet is no fault", []config.Service{web, api}, VRRP, true, mapView{a: down, b: notYet}, both, false},
		{"a drained backend is still healthy for tracking", []config.Service{web}, VRRP, true, mapView{a: drained}, []netip.Addr{vipA}, false},
		{"no backends at all is no fault", []config.Service{webService()}, VRRP, true, mapView{}, []netip.Addr{vipA}, false},
		{"unchecked service is always healthy", []config.Service{web, unchecked}, VRRP, true, mapView{a: down}, both, false},
		{"routed: only servable VIPs", []config.Service{web, api}, Routed, false, mapView{a: up, b: down}, []netip.Addr{vipA}, false},
		{"routed: drained backend does not serve", []config.Service{web, api}, Routed, false, mapView{a: drained, b: up}, []netip.Addr{vipB}, false},
		{"routed: quorum not met withdraws", []config.Service{web, quorum}, Routed, false, mapView{a: up, b: up}, []netip.Addr{vipA}, false},
		{"routed: sorry server keeps it", []config.Service{web, sorryAPI}, Routed, false, mapView{a: up, b: down}, both, false},
		{"routed: none servable", []config.Service{web, api}, Routed, false, mapView{a: down, b: down}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Announce(Situation{Topo: topo(tc.svcs...), Health: tc.view, Mode: tc.mode, Master: tc.master})
			if diff := cmp.Diff(tc.hold, got.Hold, cmpopts.EquateEmpty(), cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
				t.Errorf("Hold (-want +got):\n%s", diff)
			}
			if got.Fault != tc.fault {
				t.Errorf("Fault = %v (%s), want %v", got.Fault, got.Reason, tc.fault)
			}
		})
	}
	if d := Announce(Situation{Mode: Static}); len(d.Hold) != 0 || d.Fault {
		t.Errorf("no topology: %+v", d)
	}
}

// [[failover.address]] follows the VRRP master with the VIPs, its
// interface defaulted to [director] interface; no other mode holds it.
func TestAnnounceFailoverAddresses(t *testing.T) {
	gw := config.FailoverAddress{Prefix: netip.MustParsePrefix("198.51.100.1/24"), Interface: "eth1"}
	outer := config.FailoverAddress{Prefix: netip.MustParsePrefix("203.0.113.1/24")}
	outerDefaulted := outer
	outerDefaulted.Interface = "eth0"
	withAddrs := func() *config.Topology {
		tp := topo(webService(backend(be1, 1)))
		tp.Failover = &config.Failover{VirtualRouterID: 51, Priority: 100, Addresses: []config.FailoverAddress{gw, outer}}
		return tp
	}
	down := mapView{ap(be1): {Checked: true, WeightPercent: health.WeightNotReported}}
	for _, tc := range []struct {
		name   string
		topo   *config.Topology
		mode   Mode
		master bool
		view   mapView
		want   []config.FailoverAddress
	}{
		{"master holds them", withAddrs(), VRRP, true, mapView{}, []config.FailoverAddress{gw, outerDefaulted}},
		{"backup holds none", withAddrs(), VRRP, false, mapView{}, nil},
		{"master in fault still holds until VRRP moves", withAddrs(), VRRP, true, down, []config.FailoverAddress{gw, outerDefaulted}},
		{"master without any", topo(webService(backend(be1, 1))), VRRP, true, mapView{}, nil},
		{"routed holds none", withAddrs(), Routed, false, mapView{}, nil},
		{"static holds none", withAddrs(), Static, false, mapView{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Announce(Situation{Topo: tc.topo, Health: tc.view, Mode: tc.mode, Master: tc.master})
			if diff := cmp.Diff(tc.want, got.Extra, cmpopts.EquateEmpty(), cmp.Comparer(func(x, y netip.Prefix) bool { return x == y })); diff != "" {
				t.Errorf("Extra (-want +got):\n%s", diff)
			}
		})
	}
	// The decision never writes the file's model.
	tp := withAddrs()
	Announce(Situation{Topo: tp, Mode: VRRP, Master: true})
	if tp.Failover.Addresses[1].Interface != "" {
		t.Error("Announce defaulted the interface in the topology itself")
	}
}

// Routed, the routes follow the held VIPs unless the operator drained
// the director (drain-self): then nothing is announced, the VIPs stay
// held so what the routers still send is forwarded. Other modes announce
// no routes.
func TestAnnounceRoutes(t *testing.T) {
	vipB := netip.MustParseAddr("10.0.0.11")
	chk := &config.Check{Type: config.CheckTCP}
	web := webService(backend(be1, 1))
	web.Check = chk
	api := webService(backend(be2, 1))
	api.Name, api.Address, api.Check = "api", vipB, chk
	up := health.Status{Checked: true, Up: true, WeightPercent: health.WeightNotReported}
	down := health.Status{Checked: true, WeightPercent: health.WeightNotReported}
	view := mapView{ap(be1): up, netip.AddrPortFrom(be2, 80): down}
	eq := cmp.Comparer(func(x, y netip.Addr) bool { return x == y })
	for _, tc := range []struct {
		name         string
		mode         Mode
		drained      bool
		hold, routes []netip.Addr
	}{
		{"routed announces the servable", Routed, false, []netip.Addr{vipA}, []netip.Addr{vipA}},
		{"backends drained: held, not announced", Routed, false, []netip.Addr{vipA}, nil},
		{"drained announces none, holds on", Routed, true, []netip.Addr{vipA}, nil},
		{"static has no routes", Static, false, []netip.Addr{vipA, vipB}, nil},
		{"vrrp has no routes", VRRP, true, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Situation{Topo: topo(web, api), Health: view, Mode: tc.mode, SelfDrained: tc.drained}
			if strings.HasPrefix(tc.name, "backends drained") {
				s.Drains = drainView{base: view, drains: map[drainKey]bool{{"web", ap(be1)}: true}}
			}
			d := Announce(s)
			if diff := cmp.Diff(tc.hold, d.Hold, cmpopts.EquateEmpty(), eq); diff != "" {
				t.Errorf("Hold (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.routes, d.Routes, cmpopts.EquateEmpty(), eq); diff != "" {
				t.Errorf("Routes (-want +got):\n%s", diff)
			}
		})
	}
}
