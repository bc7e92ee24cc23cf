package vip

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// run is the test's independent witness: iproute2, not our code.
func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// testNetns makes a namespace with an up interface "vip0" (a veth pair:
// this host's kernel has no dummy driver); the test
// needs root (CAP_NET_ADMIN) and fails, not skips, without it.
func testNetns(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("iproute2 is needed as a witness: %v", err)
	}
	name := fmt.Sprintf("golvs-vip-%d", os.Getpid())
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	run(t, "ip", "-n", name, "link", "add", "vip0", "type", "veth", "peer", "name", "vip0p")
	run(t, "ip", "-n", name, "link", "set", "vip0p", "up")
	run(t, "ip", "-n", name, "link", "set", "vip0", "up")
	return name
}

func addrs(t *testing.T, ns string) string {
	return run(t, "ip", "-n", ns, "-o", "addr", "show", "dev", "vip0")
}

func TestHoldRelease(t *testing.T) {
	ns := testNetns(t)
	ctx := context.Background()
	// An operator's own address on the interface: never ours to remove.
	run(t, "ip", "-n", ns, "addr", "add", "192.0.2.99/32", "dev", "vip0")

	h := New("vip0", nil)
	h.NetnsPath = "/var/run/netns/" + ns
	v4 := netip.MustParseAddr("192.0.2.10")
	v6 := netip.MustParseAddr("2001:db8::10")
	other := netip.MustParseAddr("192.0.2.99")

	for i := range 2 { // idempotent
		if err := h.Hold(ctx, []netip.Addr{v4, v6}); err != nil {
			t.Fatalf("Hold #%d: %v", i+1, err)
		}
	}
	out := addrs(t, ns)
	for _, want := range []string{"inet 192.0.2.10/32", "inet6 2001:db8::10/128"} {
		if !strings.Contains(out, want) {
			t.Errorf("after Hold, %q missing:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "2001:db8::10/128") && (strings.Contains(line, "tentative") || !strings.Contains(line, "nodad")) {
			t.Errorf("IPv6 VIP not usable at once (DAD not skipped): %s", line)
		}
	}

	if err := h.Release(ctx, []netip.Addr{v4, v6, other}); err != nil {
		t.Fatalf("Release: %v", err)
	}
	out = addrs(t, ns)
	if strings.Contains(out, "192.0.2.10/") || strings.Contains(out, "2001:db8::10/") {
		t.Errorf("after Release, VIPs still there:\n%s", out)
	}
	if !strings.Contains(out, "192.0.2.99/32") {
		t.Errorf("Release removed an address that was not ours:\n%s", out)
	}
	// Releasing again is fine.
	if err := h.Release(ctx, []netip.Addr{v4}); err != nil {
		t.Errorf("second Release: %v", err)
	}
}

// A VIP from the file is released even if this process did not add it (it
// was there before a restart).
func TestReleaseFileVIPAddedBefore(t *testing.T) {
	ns := testNetns(t)
	run(t, "ip", "-n", ns, "addr", "add", "192.0.2.20/32", "dev", "vip0")
	h := New("vip0", nil)
	h.NetnsPath = "/var/run/netns/" + ns
	h.SetVIPs([]netip.Addr{netip.MustParseAddr("192.0.2.20")})
	if err := h.Release(context.Background(), []netip.Addr{netip.MustParseAddr("192.0.2.20")}); err != nil {
		t.Fatal(err)
	}
	if out := addrs(t, ns); strings.Contains(out, "192.0.2.20") {
		t.Errorf("file VIP not released:\n%s", out)
	}
}

func TestMissingInterface(t *testing.T) {
	ns := testNetns(t)
	h := New("nope0", nil)
	h.NetnsPath = "/var/run/netns/" + ns
	if err := h.Hold(context.Background(), []netip.Addr{netip.MustParseAddr("192.0.2.1")}); err == nil {
		t.Error("Hold on a missing interface succeeded")
	}
}
