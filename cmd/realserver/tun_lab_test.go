//go:build lab

package main

// TestTunMode needs an ipip-capable kernel, which the build hosts lack: it is
// compiled only with -tags lab and run by `lab test` inside the lab guest.

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTunMode needs the ipip module. It fails, never skips, when the
// kernel lacks it: a tun real server cannot work on such a kernel.
func TestTunMode(t *testing.T) {
	ns := newNS(t)
	state := filepath.Join(t.TempDir(), "rs.state")
	setSysctl(t, ns, "net.ipv4.conf.all.rp_filter", "1")
	before := hostState(t, ns)

	p := start(t, ns, "run", "--vip", "192.0.2.20", "--mode", "tun", "--state-file", state,
		"--agent-address=", "--drain-grace=0s")
	exited := false
	eventually(t, 10*time.Second, "VIP on tunl0 (or an early exit)", func() (bool, string) {
		select {
		case <-p.done:
			exited = true
			return true, ""
		default:
		}
		out, err := exec.Command("ip", "-n", ns, "-o", "addr", "show", "dev", "tunl0").CombinedOutput()
		return err == nil && strings.Contains(string(out), " 192.0.2.20/32 "), string(out)
	})
	if exited {
		// Whatever went wrong, nothing may be left changed.
		if after := hostState(t, ns); after != before {
			t.Errorf("a failed tun start left changes.\nbefore:\n%s\nafter:\n%s", before, after)
		}
		t.Fatalf("realserver --mode tun exited at start: this kernel cannot create an ipip device "+
			"(no ipip module / CONFIG_NET_IPIP, see /sys/module/ipip); a tun real server needs it. Output:\n%s", p.out)
	}
	link := sh(t, "ip", "-n", ns, "-o", "link", "show", "dev", "tunl0")
	if !strings.Contains(link, "ipip") || !strings.Contains(link, ",UP") {
		t.Errorf("tunl0 not an ipip device that is up:\n%s", link)
	}
	for name, want := range map[string]string{
		"net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.tunl0.rp_filter": "0",
		"net.ipv4.conf.tunl0.arp_ignore": "1", "net.ipv4.conf.all.arp_ignore": "1",
	} {
		eventually(t, 10*time.Second, name, sysctlIs(t, ns, name, want))
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out)
	}
	if got := sysctl(t, ns, "net.ipv4.conf.all.rp_filter"); got != "1" {
		t.Errorf("rp_filter after exit = %s, want the 1 from before", got)
	}
	if out := sh(t, "ip", "-n", ns, "-o", "addr"); strings.Contains(out, "192.0.2.20") {
		t.Errorf("VIP left after exit:\n%s", out)
	}
}
