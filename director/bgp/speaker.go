package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// ErrNotRunning is returned by calls that need the BGP server before Run
// has started it or after it ended.
var ErrNotRunning = errors.New("bgp: speaker is not running")

// Speaker is an embedded GoBGP speaker that announces host routes for
// VIPs. New only checks the configuration; Run starts the server and the
// sessions and stops them when its context ends. Set may be called before
// Run: the wanted set is kept and announced once the server is up.
type Speaker struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	srv       *server.BgpServer // nil unless Run is serving
	want      []netip.Addr      // the last Set
	announced map[netip.Addr]bool
	leaving   bool // WithdrawAll was called: announce nothing any more
}

// New returns a Speaker for cfg; it starts nothing.
func New(cfg Config, log *slog.Logger) (*Speaker, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Speaker{cfg: cfg, log: log, announced: map[netip.Addr]bool{}}, nil
}

// Run starts GoBGP, adds the peers and announces the wanted set; it
// returns when ctx ends, after stopping the server, which closes every
// session with a Cease NOTIFICATION so the routers withdraw this
// director's routes at once.
func (s *Speaker) Run(ctx context.Context) error {
	lvl := new(slog.LevelVar)
	lvl.Set(slog.LevelWarn) // GoBGP's Info is per-message chatter
	srv := server.NewBgpServer(server.LoggerOption(s.log.With("component", "gobgp"), lvl))
	go srv.Serve()
	stop := func() {
		s.mu.Lock()
		s.srv = nil
		clear(s.announced)
		s.mu.Unlock()
		srv.Stop()
	}

	global := &api.Global{
		Asn:        s.cfg.ASN,
		RouterId:   s.cfg.RouterID.String(),
		ListenPort: s.cfg.ListenPort,
	}
	if s.cfg.ListenPort == 0 {
		global.ListenPort = -1 // GoBGP: do not listen
	}
	for _, a := range s.cfg.ListenAddresses {
		global.ListenAddresses = append(global.ListenAddresses, a.String())
	}
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: global}); err != nil {
		srv.Stop()
		return fmt.Errorf("bgp: start: %w", err)
	}
	// Routes from the routers are of no use to a director (GoBGP as a
	// library installs nothing): keep only our own. The global import
	// policy sees locally originated paths too, hence the accept.
	local := &api.Policy{Name: "golvs-own-routes-only", Statements: []*api.Statement{{
		Name:       "accept-local",
		Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
	}}}
	if err := srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: local}); err != nil {
		stop()
		return fmt.Errorf("bgp: import policy: %w", err)
	}
	if err := srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_POLICY_DIRECTION_IMPORT,
		Policies:      []*api.Policy{{Name: local.Name}},
		DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
	}}); err != nil {
		stop()
		return fmt.Errorf("bgp: import policy: %w", err)
	}
	if err := srv.WatchEvent(ctx, server.WatchEventMessageCallbacks{
		OnPeerUpdate: func(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
			if ev.Type == apiutil.PEER_EVENT_STATE {
				s.log.Info("BGP session", "peer", ev.Peer.State.NeighborAddress, "state", stateName(ev.Peer.State.SessionState))
			}
		},
	}, server.WatchPeer()); err != nil {
		stop()
		return fmt.Errorf("bgp: watch: %w", err)
	}

	s.mu.Lock()
	s.srv = srv
	want, leaving := s.want, s.leaving
	s.mu.Unlock()
	// The routes go in before the peers so that the first UPDATE of each
	// session carries them.
	var errs *multierror.Error
	if !leaving {
		errs = multierror.Append(errs, s.apply(ctx, want))
	}
	for _, p := range s.cfg.Peers {
		if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p)}); err != nil {
			errs = multierror.Append(errs, fmt.Errorf("bgp: add peer %s: %w", p.Address, err))
		}
	}
	if err := errs.ErrorOrNil(); err != nil {
		stop()
		return err
	}
	s.log.Info("BGP speaker started", "asn", s.cfg.ASN, "router_id", s.cfg.RouterID, "peers", len(s.cfg.Peers))
	<-ctx.Done()
	stop()
	return nil
}

func apiPeer(p Peer) *api.Peer {
	ap := &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: p.Address.String(), PeerAsn: p.ASN, AuthPassword: p.Password},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry: uint64(connectRetry / time.Second),
			// GoBGP waits this long after a reset (a BFD down, a hold
			// timer expiry) before it reconnects.
			IdleHoldTimeAfterReset: uint64(connectRetry / time.Second),
		}},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
	}
	if p.HoldTime > 0 {
		ap.Timers.Config.HoldTime = uint64(p.HoldTime / time.Second)
		ap.Timers.Config.KeepaliveInterval = max(1, ap.Timers.Config.HoldTime/3)
	}
	if p.LocalAddress.IsValid() {
		ap.Transport.LocalAddress = p.LocalAddress.String()
	}
	if p.BFD {
		ap.Bfd = &api.BfdPeerConfig{
			Enabled:                  true,
			DesiredMinimumTxInterval: uint32(BFDInterval / time.Microsecond),
			RequiredMinimumReceive:   uint32(BFDInterval / time.Microsecond),
			DetectionMultiplier:      BFDMultiplier,
		}
	}
	return ap
}

// Set announces a host route for every address in want and withdraws the
// others this speaker announced. It is idempotent and announces before
// it withdraws. Before Run (or after it) the set is only remembered.
func (s *Speaker) Set(ctx context.Context, want []netip.Addr) error {
	want = normalize(want)
	s.mu.Lock()
	s.want = want
	running, leaving := s.srv != nil, s.leaving
	s.mu.Unlock()
	if !running {
		return nil
	}
	if leaving {
		want = nil
	}
	return s.apply(ctx, want)
}

// WithdrawAll withdraws every route and keeps them withdrawn whatever Set
// is called with afterwards: the graceful leave before a director stops,
// while IPVS keeps forwarding the flows the routers still send.
func (s *Speaker) WithdrawAll(ctx context.Context) error {
	s.mu.Lock()
	s.leaving = true
	running := s.srv != nil
	s.mu.Unlock()
	if !running {
		return nil
	}
	return s.apply(ctx, nil)
}

// apply makes the announced set equal to want: additions first.
func (s *Speaker) apply(ctx context.Context, want []netip.Addr) error {
	s.mu.Lock()
	srv := s.srv
	var add, del []netip.Addr
	keep := map[netip.Addr]bool{}
	for _, a := range want {
		keep[a] = true
		if !s.announced[a] {
			add = append(add, a)
		}
	}
	for a := range s.announced {
		if !keep[a] {
			del = append(del, a)
		}
	}
	s.mu.Unlock()
	if srv == nil {
		return ErrNotRunning
	}
	slices.SortFunc(del, netip.Addr.Compare)
	var errs *multierror.Error
	for _, a := range add {
		if err := ctx.Err(); err != nil {
			return multierror.Append(errs, err).ErrorOrNil()
		}
		if _, err := srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{s.path(a)}}); err != nil {
			errs = multierror.Append(errs, fmt.Errorf("bgp: announce %s: %w", a, err))
			continue
		}
		s.mark(a, true)
		s.log.Info("VIP announced", "address", a)
	}
	for _, a := range del {
		if err := ctx.Err(); err != nil {
			return multierror.Append(errs, err).ErrorOrNil()
		}
		p := s.path(a)
		p.Withdrawal = true
		if err := srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{p}}); err != nil {
			errs = multierror.Append(errs, fmt.Errorf("bgp: withdraw %s: %w", a, err))
			continue
		}
		s.mark(a, false)
		s.log.Info("VIP withdrawn", "address", a)
	}
	return errs.ErrorOrNil()
}

func (s *Speaker) mark(a netip.Addr, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return // stopped meanwhile: nothing is announced
	}
	if on {
		s.announced[a] = true
	} else {
		delete(s.announced, a)
	}
}

// path is a's host route with origin IGP and the configured next hop
// (unspecified = GoBGP puts the session's local address).
func (s *Speaker) path(a netip.Addr) *apiutil.Path {
	nlri, _ := bgppkt.NewIPAddrPrefix(netip.PrefixFrom(a, a.BitLen()))
	origin := bgppkt.NewPathAttributeOrigin(bgppkt.BGP_ORIGIN_ATTR_TYPE_IGP)
	if a.Is4() {
		nh := s.cfg.NextHop4
		if !nh.IsValid() {
			nh = netip.IPv4Unspecified()
		}
		nhAttr, _ := bgppkt.NewPathAttributeNextHop(nh)
		return &apiutil.Path{Family: bgppkt.RF_IPv4_UC, Nlri: nlri, Attrs: []bgppkt.PathAttributeInterface{origin, nhAttr}}
	}
	nh := s.cfg.NextHop6
	if !nh.IsValid() {
		nh = netip.IPv6Unspecified()
	}
	mp, _ := bgppkt.NewPathAttributeMpReachNLRI(bgppkt.RF_IPv6_UC, []bgppkt.PathNLRI{{NLRI: nlri}}, nh)
	return &apiutil.Path{Family: bgppkt.RF_IPv6_UC, Nlri: nlri, Attrs: []bgppkt.PathAttributeInterface{origin, mp}}
}

// normalize unmaps, drops invalid addresses and duplicates, and sorts.
func normalize(in []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(in))
	for _, a := range in {
		if a = a.Unmap(); a.IsValid() {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// PeerStatus is one session as GoBGP sees it.
type PeerStatus struct {
	Address netip.Addr
	ASN     uint32
	// State is the BGP FSM state in lower case: idle, connect, active,
	// opensent, openconfirm, established.
	State string
	// BFD is the BFD session state (up, down, init, admin_down), "" when
	// BFD is off for the peer.
	BFD string
	// Since is when the session was last established (while it is) or
	// last went down; zero when it never was.
	Since time.Time
	// Advertised counts the routes sent to the peer; Received those it
	// sent (all rejected: a director installs none).
	Advertised, Received uint64
}

// Status is what status pages and metrics show.
type Status struct {
	ASN       uint32
	RouterID  netip.Addr
	Running   bool
	Leaving   bool         // WithdrawAll was called
	Announced []netip.Addr // sorted
	Peers     []PeerStatus // in configuration order
}

// Status reports the sessions and the announced routes.
func (s *Speaker) Status(ctx context.Context) (Status, error) {
	s.mu.Lock()
	st := Status{ASN: s.cfg.ASN, RouterID: s.cfg.RouterID, Running: s.srv != nil, Leaving: s.leaving}
	for a := range s.announced {
		st.Announced = append(st.Announced, a)
	}
	srv := s.srv
	s.mu.Unlock()
	slices.SortFunc(st.Announced, netip.Addr.Compare)
	states := map[string]*api.Peer{}
	if srv != nil {
		if err := srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
			states[p.GetConf().GetNeighborAddress()] = p
		}); err != nil {
			return st, fmt.Errorf("bgp: list peers: %w", err)
		}
	}
	for _, p := range s.cfg.Peers {
		ps := PeerStatus{Address: p.Address, ASN: p.ASN, State: "idle"}
		if ap, ok := states[p.Address.String()]; ok {
			ps.State = strings.ToLower(strings.TrimPrefix(ap.GetState().GetSessionState().String(), "SESSION_STATE_"))
			if p.BFD {
				ps.BFD = strings.ToLower(strings.TrimPrefix(ap.GetState().GetBfdState().GetSessionState().String(), "BFD_SESSION_STATE_"))
			}
			ts := ap.GetTimers().GetState()
			if ps.State == "established" {
				ps.Since = timestamp(ts.GetUptime().AsTime(), ts.GetUptime() != nil)
				for _, af := range ap.GetAfiSafis() {
					ps.Advertised += af.GetState().GetAdvertised()
					ps.Received += af.GetState().GetReceived()
				}
			} else {
				ps.Since = timestamp(ts.GetDowntime().AsTime(), ts.GetDowntime() != nil)
			}
		}
		st.Peers = append(st.Peers, ps)
	}
	return st, nil
}

// timestamp is t, or zero when GoBGP sent none.
func timestamp(t time.Time, ok bool) time.Time {
	if !ok {
		return time.Time{}
	}
	return t
}

func stateName(s bgppkt.FSMState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "BGP_FSM_"))
}
