package main

import (
	"bytes"
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director"
	"github.com/golvs/golvs/director/ipvs/ipvsfake"
	"github.com/golvs/golvs/director/status"
)

// selfFake is a routed director behind the control socket.
type selfFake struct{ drained bool }

func (s *selfFake) BGPStatus(context.Context) *status.BGP {
	v := status.BGPVIP{Address: netip.MustParseAddr("192.0.2.10"), Announced: !s.drained}
	if s.drained {
		v.Reason = director.ReasonSelfDrained
	}
	return &status.BGP{ASN: 65010, RouterID: netip.MustParseAddr("10.0.0.2"), Running: true, SelfDrained: s.drained,
		Peers: []status.BGPPeer{{Address: netip.MustParseAddr("10.0.0.1"), ASN: 65000, State: "established"}},
		VIPs:  []status.BGPVIP{v}}
}

func (s *selfFake) DrainSelf(_ context.Context, on bool) error { s.drained = on; return nil }

func TestDrainSelfCommands(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.sock")
	self := &selfFake{}
	srv := &director.ControlServer{Path: path, Controller: director.NewReconciler(director.Options{Kernel: ipvsfake.New()}, nil), Self: self}
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })

	if code, out, errs := runCmd("drain-self", "--socket", path); code != 0 || !self.drained || !strings.Contains(out, "routes withdrawn") {
		t.Fatalf("drain-self: code %d %q %q, drained %v", code, out, errs, self.drained)
	}
	code, out, _ := runCmd("status", "--socket", path)
	for _, want := range []string{"bgp: AS 65010", "DRAINED by operator", "10.0.0.1  65000  established", "not announced: 192.0.2.10 (drain-self)"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status lacks %q (code %d):\n%s", want, code, out)
		}
	}
	if code, _, errs := runCmd("undrain-self", "--socket", path); code != 0 || self.drained {
		t.Fatalf("undrain-self: code %d %q", code, errs)
	}
	if _, out, _ := runCmd("status", "--socket", path); !strings.Contains(out, "announced: 192.0.2.10\n") {
		t.Errorf("status after undrain-self:\n%s", out)
	}
	if code, _, _ := runCmd("drain-self", "--socket", path, "extra"); code != 2 {
		t.Errorf("drain-self with an argument: code %d", code)
	}
}

// plan with [bgp]: the VIPs a starting director would announce, with
// health as at a start (not checked yet = serving).
func TestPlanRoutes(t *testing.T) {
	chk := &config.Check{Type: config.CheckTCP}
	be := func(a string) config.Backend {
		return config.Backend{Address: netip.MustParseAddr(a), Port: 80, Weight: 1}
	}
	topo := &config.Topology{BGP: &config.BGP{ASN: 65010}, Services: []config.Service{
		{Name: "web", Address: netip.MustParseAddr("203.0.113.80"), Port: 80, Protocol: "tcp", Check: chk, Backends: []config.Backend{be("10.0.0.21")}},
		{Name: "api", Address: netip.MustParseAddr("203.0.113.81"), Port: 80, Protocol: "tcp", Check: chk, Quorum: 2, Backends: []config.Backend{be("10.0.0.22")}},
	}}
	var b bytes.Buffer
	planRoutes(&b, topo, false)
	for _, want := range []string{"bgp: announce 203.0.113.80\n", "bgp: not announced 203.0.113.81: " + director.ReasonTooFewBackends + "\n", "not checked yet counts as serving"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	planRoutes(&b, topo, true)
	if !strings.Contains(b.String(), "bgp: not announced 203.0.113.80: drain-self\n") || !strings.Contains(b.String(), "undrain-self") {
		t.Errorf("drained plan:\n%s", b.String())
	}
}
