package vip

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A batch asks only its window's last request for a reply; the kernel
// replies to the others only when they fail. Each failure must still
// land on its own address, first, middle and last of a window alike, and
// every other request must have been applied.
func TestBatchErrorsPerAddress(t *testing.T) {
	ns := testNetns(t)
	h := New("vip0", nil)
	h.NetnsPath = "/var/run/netns/" + ns
	var all []netip.Addr
	for i := range 300 { // windows [0,128) [128,256) [256,300)
		all = append(all, netip.AddrFrom4([4]byte{198, 18, byte(i / 250), byte(1 + i%250)}))
	}
	check := func(what string, errs []error, bad map[int]bool, want error) {
		t.Helper()
		for i, err := range errs {
			if bad[i] != errors.Is(err, want) || (!bad[i] && err != nil) {
				t.Errorf("%s %d (%s): %v", what, i, all[i], err)
			}
		}
	}
	there := map[int]bool{0: true, 5: true, 127: true, 128: true, 200: true, 299: true}
	for i := range there {
		run(t, "ip", "-n", ns, "addr", "add", all[i].String()+"/32", "dev", "vip0")
	}
	s, index, _, err := h.socket(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check("add", batch(s, unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, index, hosts(all)), there, unix.EEXIST)
	if n := strings.Count(addrs(t, ns), "inet 198.18."); n != 300 {
		t.Fatalf("%d addresses after the add batch, want 300", n)
	}

	gone := map[int]bool{1: true, 127: true, 128: true, 255: true, 256: true}
	for i := range gone {
		run(t, "ip", "-n", ns, "addr", "del", all[i].String()+"/32", "dev", "vip0")
	}
	check("delete", batch(s, unix.RTM_DELADDR, 0, index, hosts(all)), gone, unix.EADDRNOTAVAIL)
	if out := addrs(t, ns); strings.Contains(out, "inet 198.18.") {
		t.Fatalf("addresses left after the delete batch:\n%s", out)
	}
}

// Set works from what the interface holds (it sends only the difference): an
// address removed behind its back is put back by the next Set, one found
// there is not added again (the summary line counts only real adds), and
// one to drop that is gone already is forgotten.
func TestSetRepairsAndForgets(t *testing.T) {
	ns := testNetns(t)
	var logged strings.Builder
	h := New("vip0", slog.New(slog.NewTextHandler(&logged, nil)))
	h.NetnsPath = "/var/run/netns/" + ns
	ctx := context.Background()
	a, b, c := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	if err := h.Set(ctx, []netip.Addr{a, b, c}); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "-n", ns, "addr", "del", "198.18.0.2/32", "dev", "vip0")
	logged.Reset()
	if err := h.Set(ctx, []netip.Addr{a, b, c}); err != nil {
		t.Fatal(err)
	}
	if out := addrs(t, ns); !strings.Contains(out, "inet 198.18.0.2/32") {
		t.Errorf("a VIP removed behind the holder's back was not put back:\n%s", out)
	}
	if !strings.Contains(logged.String(), "added=1 removed=0 held=3") {
		t.Errorf("want one add of three held, logged:\n%s", logged.String())
	}
	// c is gone when it is no longer wanted: nothing to remove, and it is
	// no longer the holder's.
	run(t, "ip", "-n", ns, "addr", "del", "198.18.0.3/32", "dev", "vip0")
	logged.Reset()
	if err := h.Set(ctx, []netip.Addr{a, b}); err != nil {
		t.Fatal(err)
	}
	if logged.Len() != 0 {
		t.Errorf("a Set with nothing to change logged:\n%s", logged.String())
	}
	if got := h.Added(); len(got) != 2 || got[0] != a || got[1] != b {
		t.Errorf("Added() = %v, want [%s %s]", got, a, b)
	}
}
