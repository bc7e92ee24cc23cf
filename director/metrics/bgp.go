package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/golvs/golvs/director/status"
)

// bgpStates are the BGP FSM states, exported one series each (as the
// VRRP states) so a dashboard can alert on "peer not established".
var bgpStates = []string{"idle", "connect", "active", "opensent", "openconfirm", "established"}

// bgpCollector exports a routed director's sessions and announcements at
// scrape time.
type bgpCollector struct {
	read    func(ctx context.Context) *status.BGP
	timeout time.Duration

	peerState, peerSince, peerBFD, peerSent, announced, drained, readErr *prometheus.Desc
}

func newBGPCollector(read func(ctx context.Context) *status.BGP, timeout time.Duration) *bgpCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("golvs_bgp_"+name, help, labels, nil)
	}
	return &bgpCollector{read: read, timeout: timeout,
		peerState: d("peer_state", "1 for the BGP session's current state with this peer.", "peer", "state"),
		peerSince: d("peer_state_since_seconds", "Unix time the session was last established (while it is) or last went down.", "peer"),
		peerBFD:   d("peer_bfd_up", "1 while the BFD session with this peer is up; absent without BFD.", "peer"),
		peerSent:  d("peer_advertised_routes", "Routes sent to this peer.", "peer"),
		announced: d("announced", "1 while this VIP is announced to the routers.", "vip"),
		drained:   d("self_drained", "1 while director drain-self is in force (nothing announced, still forwarding)."),
		readErr:   d("status_error", "1 if reading the BGP sessions for this scrape failed."),
	}
}

func (c *bgpCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.peerState, c.peerSince, c.peerBFD, c.peerSent, c.announced, c.drained, c.readErr} {
		ch <- d
	}
}

func (c *bgpCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st := c.read(ctx)
	if st == nil {
		return
	}
	gauge(c.readErr, b2f(st.Error != ""))
	gauge(c.drained, b2f(st.SelfDrained))
	for _, p := range st.Peers {
		peer := p.Address.String()
		for _, s := range bgpStates {
			gauge(c.peerState, b2f(s == p.State), peer, s)
		}
		if !p.Since.IsZero() {
			gauge(c.peerSince, float64(p.Since.Unix()), peer)
		}
		if p.BFD != "" {
			gauge(c.peerBFD, b2f(p.BFD == "up"), peer)
		}
		gauge(c.peerSent, float64(p.Advertised), peer)
	}
	for _, v := range st.VIPs {
		gauge(c.announced, b2f(v.Announced), v.Address.String())
	}
}
