package director

import (
	"net/netip"
	"slices"

	"github.com/golvs/golvs/director/bgp"
	"github.com/golvs/golvs/director/status"
)

// routedStatus assembles what `director status` and /metrics show of a
// routed director: the speaker's sessions and routes (sp, or why they
// could not be read), and for each VIP of the topology whether it is
// announced, and if not, why, from the decision d in force.
func routedStatus(vips []netip.Addr, d Decision, drained bool, sp bgp.Status, spErr error) *status.BGP {
	st := &status.BGP{ASN: sp.ASN, RouterID: sp.RouterID, Running: sp.Running, SelfDrained: drained, Leaving: sp.Leaving,
		Peers: []status.BGPPeer{}, VIPs: []status.BGPVIP{}}
	if spErr != nil {
		st.Error = spErr.Error()
	}
	for _, p := range sp.Peers {
		st.Peers = append(st.Peers, status.BGPPeer{Address: p.Address, ASN: p.ASN, State: p.State, Since: p.Since,
			BFD: p.BFD, Advertised: p.Advertised, Received: p.Received})
	}
	for _, a := range vips {
		v := status.BGPVIP{Address: a, Announced: slices.Contains(sp.Announced, a)}
		switch {
		case v.Announced:
		case sp.Leaving:
			v.Reason = "leaving: the director is stopping"
		case !slices.Contains(d.Hold, a):
			v.Reason = ReasonTooFewBackends
		case drained:
			v.Reason = ReasonSelfDrained
		case slices.Contains(d.Waiting, a):
			v.Reason = ReasonTableNotReady
		case !slices.Contains(d.Routes, a):
			v.Reason = ReasonBackendsDrained
		case !sp.Running:
			v.Reason = "BGP speaker not running"
		default:
			v.Reason = "to be announced (retrying)"
		}
		st.VIPs = append(st.VIPs, v)
	}
	return st
}

// ReasonTooFewBackends, ReasonSelfDrained and ReasonBackendsDrained say
// why a VIP is not announced.
const (
	ReasonTooFewBackends  = "no service of it has enough serving backends"
	ReasonSelfDrained     = "drain-self"
	ReasonBackendsDrained = "its serving backends are drained by the operator (director drain)"
	ReasonTableNotReady   = "waiting for the IPVS table to give its service a destination with weight"
)

// PlannedRoutes is, for each VIP, whether the decision d announces it
// and, if not, why: what `director plan` shows.
func PlannedRoutes(vips []netip.Addr, d Decision, drained bool) []status.BGPVIP {
	out := make([]status.BGPVIP, 0, len(vips))
	for _, a := range vips {
		v := status.BGPVIP{Address: a, Announced: slices.Contains(d.Routes, a)}
		switch {
		case v.Announced:
		case !slices.Contains(d.Hold, a):
			v.Reason = ReasonTooFewBackends
		case drained:
			v.Reason = ReasonSelfDrained
		default:
			v.Reason = ReasonBackendsDrained
		}
		out = append(out, v)
	}
	return out
}
