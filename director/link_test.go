package director

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/golvs/golvs/config"
)

func TestWatchedLinks(t *testing.T) {
	topo := &config.Topology{
		Director: config.Director{Interface: "eth0"},
		Failover: &config.Failover{Addresses: []config.FailoverAddress{
			{Interface: "eth1", Prefix: netip.MustParsePrefix("10.0.1.1/24")},
			{Interface: "eth0", Prefix: netip.MustParsePrefix("2001:db8:f::1/64")},
		}},
	}
	if diff := cmp.Diff([]string{"eth0", "eth1"}, watchedLinks(topo)); diff != "" {
		t.Errorf("watched (-want +got):\n%s", diff)
	}
}

// TestLinkTracker steps the tracker through what rtnetlink sends around a
// flap: the listing at start, repeated messages with no change of state
// (address or MTU events), admin down, carrier loss, up, deletion.
func TestLinkTracker(t *testing.T) {
	const up, admin = unix.IFF_UP | unix.IFF_RUNNING | unix.IFF_BROADCAST, unix.IFF_UP | unix.IFF_BROADCAST
	type ev struct {
		name        string
		flags       uint32
		up, changed bool
	}
	lt := newLinkTracker([]string{"eth0", "eth1"})
	for i, e := range []ev{
		{"eth0", up, true, false},    // listed at start: as assumed
		{"eth1", admin, false, true}, // listed at start without carrier: news
		{"lo", 0, false, false},      // not watched
		{"eth0", up, true, false},    // no change
		{"eth0", unix.IFF_BROADCAST, false, true},
		{"eth0", unix.IFF_BROADCAST, false, false},
		{"eth0", up, true, true},
		{"eth1", up, true, true},
		{"eth1", 0, false, true}, // deleted
	} {
		gotUp, gotChanged := lt.update(e.name, e.flags)
		if gotUp != e.up || gotChanged != e.changed {
			t.Errorf("step %d %s %#x: up %v changed %v, want %v %v", i, e.name, e.flags, gotUp, gotChanged, e.up, e.changed)
		}
	}
}
