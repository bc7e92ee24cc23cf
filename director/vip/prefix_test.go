package vip

import (
	"context"
	"net/netip"
	"strings"
	"testing"
)

// A failover address goes on with its prefix (the gateway of a NAT pair's
// inner segment, next to the director's own address there), idempotently;
// it comes off alone, leaving the operator's address and its route; a
// restarted holder that claims it removes it too.
func TestSetPrefixes(t *testing.T) {
	ns := testNetns(t)
	ctx := context.Background()
	run(t, "ip", "-n", ns, "addr", "add", "198.51.100.3/24", "dev", "vip0")
	gw := netip.MustParsePrefix("198.51.100.1/24")
	gw6 := netip.MustParsePrefix("2001:db8:1::1/64")

	h := New("vip0", nil)
	h.NetnsPath = "/var/run/netns/" + ns
	for i := range 2 {
		if err := h.SetPrefixes(ctx, []netip.Prefix{gw, gw6}); err != nil {
			t.Fatalf("SetPrefixes #%d: %v", i+1, err)
		}
	}
	out := addrs(t, ns)
	for _, want := range []string{"inet 198.51.100.1/24", "inet6 2001:db8:1::1/64", "inet 198.51.100.3/24"} {
		if !strings.Contains(out, want) {
			t.Errorf("%q missing:\n%s", want, out)
		}
	}
	if err := h.SetPrefixes(ctx, nil); err != nil {
		t.Fatal(err)
	}
	out = addrs(t, ns)
	if strings.Contains(out, "198.51.100.1/") || strings.Contains(out, "2001:db8:1::1/") {
		t.Errorf("after SetPrefixes(nil), still there:\n%s", out)
	}
	if !strings.Contains(out, "inet 198.51.100.3/24") {
		t.Errorf("the operator's address went too:\n%s", out)
	}
	if r := run(t, "ip", "-n", ns, "route", "show", "198.51.100.0/24"); !strings.Contains(r, "dev vip0") {
		t.Errorf("the segment's route went with the failover address: %q", r)
	}

	run(t, "ip", "-n", ns, "addr", "add", "198.51.100.1/24", "dev", "vip0")
	again := New("vip0", nil)
	again.NetnsPath = h.NetnsPath
	again.ClaimPrefixes([]netip.Prefix{gw})
	if err := again.SetPrefixes(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if out := addrs(t, ns); strings.Contains(out, "198.51.100.1/") {
		t.Errorf("claimed address not removed:\n%s", out)
	}
}
