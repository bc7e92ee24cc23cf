package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/golvs/golvs/config"
)

var (
	routerAddr   = netip.MustParseAddr("127.0.0.1")
	directorAddr = netip.MustParseAddr("127.0.0.2")
	vip1         = netip.MustParseAddr("192.0.2.1")
	vip2         = netip.MustParseAddr("192.0.2.2")
)

// freePort finds a TCP port on the router's address for its listener.
func freePort(t *testing.T) int32 {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(routerAddr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

// router is a plain GoBGP server standing in for the site's router: the
// independent witness of what the Speaker announces.
func router(t *testing.T, port int32, password string) *server.BgpServer {
	t.Helper()
	r := server.NewBgpServer()
	go r.Serve()
	t.Cleanup(r.Stop)
	ctx := t.Context()
	if err := r.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: 65000, RouterId: "10.255.0.1", ListenPort: port, ListenAddresses: []string{routerAddr.String()},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := r.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: directorAddr.String(), PeerAsn: 65010, AuthPassword: password},
		Transport: &api.Transport{PassiveMode: true},
	}}); err != nil {
		t.Fatal(err)
	}
	return r
}

// routes is what the router has learnt: prefix -> next hop.
func routes(t *testing.T, r *server.BgpServer) map[netip.Prefix]netip.Addr {
	t.Helper()
	out := map[netip.Prefix]netip.Addr{}
	err := r.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgppkt.RF_IPv4_UC},
		func(nlri bgppkt.NLRI, paths []*apiutil.Path) {
			pfx, err := netip.ParsePrefix(nlri.String())
			if err != nil {
				t.Errorf("router has NLRI %q: %v", nlri, err)
				return
			}
			for _, p := range paths {
				for _, a := range p.Attrs {
					if nh, ok := a.(*bgppkt.PathAttributeNextHop); ok {
						out[pfx] = nh.Value
					}
				}
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitRoutes polls the router (an external process's state: there is no
// event to wait on that would not itself be GoBGP's) until it holds
// exactly want, each with the director as next hop.
func waitRoutes(t *testing.T, r *server.BgpServer, want ...netip.Addr) {
	t.Helper()
	exp := map[netip.Prefix]netip.Addr{}
	for _, a := range want {
		exp[netip.PrefixFrom(a, 32)] = directorAddr
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := routes(t, r)
		if fmt.Sprint(got) == fmt.Sprint(exp) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("router holds %v, want %v", got, exp)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func speaker(t *testing.T, port int32, password string) *Speaker {
	t.Helper()
	s, err := New(Config{
		ASN:      65010,
		RouterID: netip.MustParseAddr("10.255.0.2"),
		Peers: []Peer{{Address: routerAddr, ASN: 65000, Port: uint16(port), LocalAddress: directorAddr,
			HoldTime: 3 * time.Second, Password: password}},
	}, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSpeakerAnnounces peers a Speaker with a GoBGP router over loopback
// (with a TCP MD5 key) and follows the router's table through Set calls.
func TestSpeakerAnnounces(t *testing.T) {
	port := freePort(t)
	r := router(t, port, "s3cret")
	s := speaker(t, port, "s3cret")
	ctx := t.Context()

	// Set before Run is remembered and announced once the session is up.
	if err := s.Set(ctx, []netip.Addr{vip1}); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	waitRoutes(t, r, vip1)

	st, err := s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Running || len(st.Peers) != 1 || st.Peers[0].State != "established" || !slices.Equal(st.Announced, []netip.Addr{vip1}) {
		t.Errorf("status = %+v, want running, one established peer, %v announced", st, vip1)
	}
	if p := st.Peers[0]; p.Since.IsZero() || time.Since(p.Since) > time.Minute || p.Advertised != 1 || p.Received != 0 {
		t.Errorf("peer status = %+v, want established since just now, 1 route sent, none received", p)
	}

	// Idempotent, unordered, with duplicates: the full wanted set.
	for _, want := range [][]netip.Addr{{vip2, vip1, vip2}, {vip1, vip2}} {
		if err := s.Set(ctx, want); err != nil {
			t.Fatal(err)
		}
		waitRoutes(t, r, vip1, vip2)
	}
	if err := s.Set(ctx, []netip.Addr{vip2}); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, r, vip2)
	if err := s.Set(ctx, nil); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, r)

	// A graceful leave withdraws and stays withdrawn.
	if err := s.Set(ctx, []netip.Addr{vip1, vip2}); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, r, vip1, vip2)
	if err := s.WithdrawAll(ctx); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, r)
	if err := s.Set(ctx, []netip.Addr{vip1}); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Status(ctx); len(st.Announced) != 0 || !st.Leaving {
		t.Errorf("after WithdrawAll and Set, status = %+v, want leaving with nothing announced", st)
	}

	stop()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if err := s.Set(ctx, []netip.Addr{vip1}); err != nil {
		t.Errorf("Set after Run = %v, want the set remembered", err)
	}
}

// TestSpeakerStopWithdraws: when Run ends the session closes and the
// router drops the routes without waiting for the hold time.
func TestSpeakerStopWithdraws(t *testing.T) {
	port := freePort(t)
	r := router(t, port, "")
	s := speaker(t, port, "")
	runCtx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	if err := s.Set(t.Context(), []netip.Addr{vip1}); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, r, vip1)
	stop()
	<-done
	start := time.Now()
	waitRoutes(t, r)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the router dropped the route after %v; a Cease should do it well within the 3s hold time", d)
	}
}

func TestFromTopology(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "bgp.key")
	if err := os.WriteFile(key, []byte("k3y\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &config.BGP{ASN: 65010, Peers: []config.BGPPeer{{Address: routerAddr, ASN: 65000, HoldTime: 9 * time.Second, BFD: true, PasswordFile: key}}}
	c, err := FromTopology(b, netip.MustParseAddr("10.0.0.2"))
	if err != nil {
		t.Fatal(err)
	}
	want := Peer{Address: routerAddr, ASN: 65000, HoldTime: 9 * time.Second, BFD: true, Password: "k3y"}
	if c.RouterID != netip.MustParseAddr("10.0.0.2") || len(c.Peers) != 1 || c.Peers[0] != want {
		t.Errorf("FromTopology = %+v, want router id 10.0.0.2 and peer %+v", c, want)
	}

	if _, err := FromTopology(b, netip.Addr{}); err == nil || !strings.Contains(err.Error(), "router id") {
		t.Errorf("no router id: err = %v", err)
	}
	if err := os.Chmod(key, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := FromTopology(b, netip.MustParseAddr("10.0.0.2")); !errors.Is(err, ErrPasswordMode) {
		t.Errorf("group-readable key: err = %v, want ErrPasswordMode", err)
	}
}
