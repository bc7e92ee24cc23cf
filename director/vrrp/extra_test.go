package vrrp

import (
	"context"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/google/go-cmp/cmp"
)

// Addresses that follow the master besides the VIPs are announced with
// them, each on its own interface, every round; a backup announces none.
func TestExtraAddressesAnnounced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn := newFakeConn()
		own := &fakeAnn{start: conn.start}
		inner := &fakeAnn{start: conn.start}
		gw := netip.MustParseAddr("198.51.100.1")
		sameLink := netip.MustParseAddr("203.0.113.9")
		hl := &hookLog{start: conn.start}
		r, err := NewRunner(Config{
			Interface: "fake0",
			Failover: config.Failover{
				VirtualRouterID: 51, Priority: 100, AdvertInterval: time.Second,
			},
			VIPs:            []netip.Addr{testVI},
			Extra:           []ExtraAddress{{Interface: "inner0", Addr: gw}, {Interface: "fake0", Addr: sameLink}},
			GratuitousCount: 2,
		}, hl.hooks())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.serve(ctx, env{
			conn: conn, ann: own, ifIndex: 2, local: me,
			dsts: []netip.Addr{GroupV4}, multicast: true, addrs: []netip.Addr{testVI},
			extra: map[string]gratuitous{"inner0": inner},
		})
		synctest.Wait()
		if len(own.take())+len(inner.take()) != 0 {
			t.Fatal("a backup announced")
		}
		time.Sleep(5 * time.Second) // past the master down interval
		synctest.Wait()
		if r.Status().State != Master {
			t.Fatalf("state %v, want master", r.Status().State)
		}
		own.mu.Lock()
		inner.mu.Lock()
		defer own.mu.Unlock()
		defer inner.mu.Unlock()
		if diff := cmp.Diff([][]netip.Addr{{testVI, sameLink}, {testVI, sameLink}}, own.sent, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
			t.Errorf("own interface rounds (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([][]netip.Addr{{gw}, {gw}}, inner.sent, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
			t.Errorf("inner interface rounds (-want +got):\n%s", diff)
		}
	})
}
