package metrics

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/golvs/golvs/director/status"
)

func fixedBGP(context.Context) *status.BGP {
	return &status.BGP{ASN: 65010, RouterID: netip.MustParseAddr("10.10.0.13"), Running: true, SelfDrained: true,
		Peers: []status.BGPPeer{
			{Address: netip.MustParseAddr("10.10.0.1"), ASN: 65000, State: "established", BFD: "up",
				Since: time.Unix(1800000000, 0), Advertised: 1},
			{Address: netip.MustParseAddr("10.10.0.2"), ASN: 65000, State: "active"},
		},
		VIPs: []status.BGPVIP{{Address: netip.MustParseAddr("203.0.113.80"), Announced: true},
			{Address: netip.MustParseAddr("203.0.113.81"), Reason: "drain-self"}}}
}

func TestBGPMetrics(t *testing.T) {
	_, body := get(t, Source{Status: fixedStatus, BGP: fixedBGP}, "/metrics")
	for _, want := range []string{
		`golvs_bgp_peer_state{peer="10.10.0.1",state="established"} 1`,
		`golvs_bgp_peer_state{peer="10.10.0.1",state="idle"} 0`,
		`golvs_bgp_peer_state{peer="10.10.0.2",state="active"} 1`,
		`golvs_bgp_peer_state{peer="10.10.0.2",state="established"} 0`,
		`golvs_bgp_peer_state_since_seconds{peer="10.10.0.1"} 1.8e+09`,
		`golvs_bgp_peer_bfd_up{peer="10.10.0.1"} 1`,
		`golvs_bgp_peer_advertised_routes{peer="10.10.0.1"} 1`,
		`golvs_bgp_announced{vip="203.0.113.80"} 1`,
		`golvs_bgp_announced{vip="203.0.113.81"} 0`,
		`golvs_bgp_self_drained 1`,
		`golvs_bgp_status_error 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("missing %q", want)
		}
	}
	if strings.Contains(body, `golvs_bgp_peer_bfd_up{peer="10.10.0.2"}`) {
		t.Error("a peer without BFD has a BFD series")
	}
	// Without [bgp], no BGP series at all.
	if _, body := get(t, Source{Status: fixedStatus}, "/metrics"); strings.Contains(body, "golvs_bgp_") {
		t.Error("BGP series without [bgp]")
	}
}

// The page, its JSON and the plain table show the sessions and the VIPs.
func TestBGPPage(t *testing.T) {
	h := Handler(Source{Status: fixedStatus, BGP: fixedBGP}, nil)
	body := readBody(t, getAccept(t, h, "/", chromeAccept))
	for _, want := range []string{
		`<section id="bgp">`,
		`<tr data-peer="10.10.0.1" data-state="established">`,
		`<li data-vip="203.0.113.80" data-announced="true">203.0.113.80: announced</li>`,
		`203.0.113.81: not announced (drain-self)`,
		`drained by operator (drain-self)`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	var pg struct {
		BGP *status.BGP `json:"bgp"`
	}
	js := readBody(t, getAccept(t, h, "/status.json", ""))
	if err := json.Unmarshal([]byte(js), &pg); err != nil || pg.BGP == nil || len(pg.BGP.Peers) != 2 || pg.BGP.Peers[0].State != "established" {
		t.Errorf("status.json bgp: %v\n%s", err, js)
	}
	text := readBody(t, getAccept(t, h, "/", ""))
	for _, want := range []string{"bgp: AS 65010, router id 10.10.0.13, DRAINED", "10.10.0.1  65000  established", "announced: 203.0.113.80\n", "not announced: 203.0.113.81 (drain-self)"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	// Without [bgp] the section is there for the script, hidden.
	if body := readBody(t, getAccept(t, Handler(Source{Status: fixedStatus}, nil), "/", chromeAccept)); !strings.Contains(body, `<section id="bgp" hidden>`) {
		t.Error("BGP section not hidden without [bgp]")
	}
}
