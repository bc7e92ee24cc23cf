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

func TestSet(t *testing.T) {
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
		if err := h.Set(ctx, []netip.Addr{v4, v6}); err != nil {
			t.Fatalf("Set #%d: %v", i+1, err)
		}
	}
	out := addrs(t, ns)
	for _, want := range []string{"inet 192.0.2.10/32", "inet6 2001:db8::10/128"} {
		if !strings.Contains(out, want) {
			t.Errorf("after Set, %q missing:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "2001:db8::10/128") && (strings.Contains(line, "tentative") || !strings.Contains(line, "nodad")) {
			t.Errorf("IPv6 VIP not usable at once (DAD not skipped): %s", line)
		}
	}

	// One left out is removed; the operator's address stays even when
	// "wanted" then not: it was never ours.
	if err := h.Set(ctx, []netip.Addr{v6}); err != nil {
		t.Fatalf("Set v6: %v", err)
	}
	if out := addrs(t, ns); strings.Contains(out, "192.0.2.10/") || !strings.Contains(out, "2001:db8::10/") {
		t.Errorf("after Set(v6):\n%s", out)
	}
	if err := h.Set(ctx, nil); err != nil {
		t.Fatalf("Set(nil): %v", err)
	}
	out = addrs(t, ns)
	if strings.Contains(out, "192.0.2.10/") || strings.Contains(out, "2001:db8::10/") {
		t.Errorf("after Set(nil), VIPs still there:\n%s", out)
	}
	if !strings.Contains(out, other.String()+"/32") {
		t.Errorf("Set removed an address that was not ours:\n%s", out)
	}
	if got := h.Added(); len(got) != 0 {
		t.Errorf("Added after Set(nil) = %v", got)
	}
}

// A thousand addresses go on and off in one batch each.
func TestSetMany(t *testing.T) {
	ns := testNetns(t)
	ctx := context.Background()
	h := New("vip0", nil)
	h.NetnsPath = "/var/run/netns/" + ns
	var want []netip.Addr
	for i := range 1000 {
		want = append(want, netip.AddrFrom4([4]byte{198, 18, byte(i / 250), byte(1 + i%250)}))
	}
	if err := h.Set(ctx, want); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(addrs(t, ns), "inet 198.18."); n != 1000 {
		t.Errorf("%d addresses on the interface, want 1000", n)
	}
	if err := h.Set(ctx, want[:10]); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(addrs(t, ns), "inet 198.18."); n != 10 {
		t.Errorf("%d addresses on the interface, want 10", n)
	}
}

// A claimed VIP (one from the file, there before a restart) is removed
// by a Set that does not want it, though this process did not add it.
func TestSetRemovesClaimed(t *testing.T) {
	ns := testNetns(t)
	run(t, "ip", "-n", ns, "addr", "add", "192.0.2.20/32", "dev", "vip0")
	h := New("vip0", nil)
	h.NetnsPath = "/var/run/netns/" + ns
	h.Claim([]netip.Addr{netip.MustParseAddr("192.0.2.20")})
	if err := h.Set(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if out := addrs(t, ns); strings.Contains(out, "192.0.2.20") {
		t.Errorf("claimed VIP not removed:\n%s", out)
	}
}

func TestMissingInterface(t *testing.T) {
	ns := testNetns(t)
	h := New("nope0", nil)
	h.NetnsPath = "/var/run/netns/" + ns
	if err := h.Set(context.Background(), []netip.Addr{netip.MustParseAddr("192.0.2.1")}); err == nil {
		t.Error("Set on a missing interface succeeded")
	}
}
