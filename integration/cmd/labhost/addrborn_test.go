package main

import (
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestAddrBorn adds an address in a namespace of its own, well after a
// first one, and reads back when each was created: the kernel's stamps
// must fall between the wall-clock times taken around each add, within
// their 10 ms resolution.
func TestAddrBorn(t *testing.T) {
	runtime.LockOSThread() // the namespace is this thread's; never unlocked, so the thread dies with the test
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		t.Fatalf("a network namespace (the test needs root): %v", err)
	}
	defer ns.Close()
	defer netns.Set(orig)
	// A veth pair: the host kernel may have no link driver.
	link := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "d0"}, PeerName: "d1"}
	if err := netlink.LinkAdd(link); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	add := func(a string) (before, after time.Time) {
		before = time.Now()
		err := netlink.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(a), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD})
		after = time.Now()
		if err != nil {
			t.Fatal(err)
		}
		return before, after
	}
	const res = 10 * time.Millisecond
	b1, a1 := add("2001:db8::1")
	time.Sleep(300 * time.Millisecond)
	b2, a2 := add("2001:db8::2")
	for _, c := range []struct {
		addr          string
		before, after time.Time
	}{{"2001:db8::1", b1, a1}, {"2001:db8::2", b2, a2}} {
		born, err := addrBorn("d0", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: born %s after the add began, which took %s", c.addr, born.Sub(c.before), c.after.Sub(c.before))
		if born.Before(c.before.Add(-2*res)) || born.After(c.after.Add(2*res)) {
			t.Errorf("%s born at %s, want between %s and %s (±%s)", c.addr, born.Format(time.StampMicro), c.before.Format(time.StampMicro), c.after.Format(time.StampMicro), 2*res)
		}
	}
	if _, err := addrBorn("d0", "2001:db8::3"); err == nil {
		t.Error("an address not on the link: no error")
	}
}

func TestJiffiesOffset(t *testing.T) {
	// From a host with HZ=250 up 80,480 s.
	off, err := jiffiesOffset("Timer List Version: v0.10\nnow at 80480627150550 nsecs\n\ncpu: 0\n  .idle_jiffies   : 4314975648\njiffies: 4315012389\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := 80480627150550*time.Nanosecond - (4315012389-4294892296)*time.Second/250; off != want {
		t.Errorf("offset %s, want %s", off, want)
	}
	if _, err := jiffiesOffset("now at 5 nsecs\n"); err == nil {
		t.Error("no jiffies line: no error")
	}
}
