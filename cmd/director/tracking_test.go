package main

import (
	"net/netip"
	"testing"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director"
)

type stateMap map[netip.AddrPort]director.BackendState

func (m stateMap) Backend(_ string, b netip.AddrPort) director.BackendState { return m[b] }

func TestNoHealthyBackend(t *testing.T) {
	a := netip.MustParseAddrPort("10.0.1.1:80")
	b := netip.MustParseAddrPort("10.0.1.2:80")
	topo := &config.Topology{Services: []config.Service{
		{Name: "web", Backends: []config.Backend{{Address: a.Addr(), Port: 80}}},
		{Name: "api", Backends: []config.Backend{{Address: b.Addr(), Port: 80}}},
	}}
	down := director.BackendState{WeightPercent: -1}
	for _, tc := range []struct {
		name   string
		states stateMap
		want   bool
	}{
		{"all down", stateMap{a: down, b: down}, true},
		{"one service up", stateMap{a: down, b: {Up: true, WeightPercent: -1}}, false},
		{"not checked yet counts as up", stateMap{a: down, b: {Unknown: true, WeightPercent: -1}}, false},
	} {
		if got := noHealthyBackend(topo, tc.states); got != tc.want {
			t.Errorf("%s: noHealthyBackend = %v, want %v", tc.name, got, tc.want)
		}
	}
	if noHealthyBackend(&config.Topology{}, stateMap{}) {
		t.Error("a file with no backends is not a fault")
	}
}
