package labnet

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestSegmentHosts runs on the host itself (namespaces, veth and bridges
// need no IPVS): two hosts on one segment reach each other, the neighbour
// entry is the peer's MAC, and cleanup removes every namespace.
func TestSegmentHosts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("labnet needs root to create network namespaces")
	}
	var nsNames []string
	t.Run("topology", func(t *testing.T) {
		l := NewLab(t)
		lan := l.Segment("lan")
		a := l.Host("a", lan, "192.0.2.1/24", "2001:db8::1/64")
		b := l.Host("b", lan, "192.0.2.2/24")
		nsNames = append(nsNames, l.sw, a.NS, b.NS)
		for _, n := range nsNames {
			if len(n) > 15 {
				t.Errorf("name %q longer than 15", n)
			}
		}
		// busybox-static is a lab prerequisite; iputils ping may be absent.
		a.MustExec("/bin/busybox", "ping", "-c", "1", "-W", "5", "192.0.2.2")
		mac, state := a.Neighbour("192.0.2.2")
		if want := b.MAC("eth0"); mac != want {
			t.Errorf("a's neighbour entry for b = %q %v, want %s", mac, state, want)
		}
		p := b.Start("", "sleep", "600")
		if done, _ := p.Exited(); done {
			t.Fatalf("sleep exited at once: %s", p.Output())
		}
		back := l.Segment("back")
		if dev := a.Attach(back, "198.51.100.1/24"); dev != "eth1" {
			t.Errorf("second interface = %s, want eth1", dev)
		}
		a.EnableForwarding()
		if got := strings.TrimSpace(a.MustExec("sysctl", "-n", "net.ipv4.ip_forward")); got != "1" {
			t.Errorf("ip_forward = %s", got)
		}
	})
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nsNames {
		if strings.Contains(string(out), n) {
			t.Errorf("namespace %s left after cleanup", n)
		}
	}
}

// A process's output keeps a line longer than bufio's default 64 KiB
// (labhost conns reports 1,000 connections on one ~150 KB line).
func TestStartLongLine(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("labnet needs root to create network namespaces")
	}
	l := NewLab(t)
	h := l.Host("a", l.Segment("lan"), "192.0.2.1/24")
	p := h.Start("", "/bin/busybox", "sh", "-c", "/bin/busybox head -c 200000 /dev/zero | /bin/busybox tr '\\0' x; echo; echo end")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(p.Output()), "\n")
	if len(lines) != 2 || len(lines[0]) != 200000 || lines[1] != "end" {
		t.Errorf("got %d lines, the first %d bytes", len(lines), len(lines[0]))
	}
}
