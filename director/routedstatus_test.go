package director

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/golvs/golvs/director/bgp"
	"github.com/golvs/golvs/director/status"
	"github.com/google/go-cmp/cmp"
)

// Each VIP of the file is reported announced or not, with why not.
func TestRoutedStatus(t *testing.T) {
	a, b, c := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("203.0.113.3")
	peer := netip.MustParseAddr("10.0.0.1")
	since := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	sp := bgp.Status{ASN: 65010, RouterID: netip.MustParseAddr("10.0.0.2"), Running: true, Announced: []netip.Addr{a},
		Peers: []bgp.PeerStatus{{Address: peer, ASN: 65000, State: "established", BFD: "up", Since: since, Advertised: 1}}}
	vips := []netip.Addr{a, b, c}
	d := Decision{Hold: []netip.Addr{a, b}, Routes: []netip.Addr{a, b}}
	reasons := func(st *status.BGP) []string {
		var out []string
		for _, v := range st.VIPs {
			out = append(out, v.Reason)
		}
		return out
	}

	st := routedStatus(vips, d, false, sp, nil)
	want := &status.BGP{ASN: 65010, RouterID: sp.RouterID, Running: true,
		Peers: []status.BGPPeer{{Address: peer, ASN: 65000, State: "established", BFD: "up", Since: since, Advertised: 1}},
		VIPs: []status.BGPVIP{{Address: a, Announced: true}, {Address: b, Reason: "to be announced (retrying)"},
			{Address: c, Reason: "no service of it has enough serving backends"}}}
	if diff := cmp.Diff(want, st, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}

	sp.Announced = nil
	st = routedStatus(vips, Decision{Hold: d.Hold}, true, sp, nil)
	if got := reasons(st); !cmp.Equal(got, []string{"drain-self", "drain-self", "no service of it has enough serving backends"}) || !st.SelfDrained {
		t.Errorf("drained: %v %+v", got, st)
	}
	sp.Leaving = true
	if got := reasons(routedStatus(vips, d, false, sp, nil)); got[0] != "leaving: the director is stopping" {
		t.Errorf("leaving: %v", got)
	}
	sp.Leaving, sp.Running = false, false
	st = routedStatus(vips, d, false, sp, errors.New("bgp: list peers: closed"))
	if got := reasons(st); got[0] != "BGP speaker not running" || st.Error == "" {
		t.Errorf("not running: %v, error %q", got, st.Error)
	}
}
