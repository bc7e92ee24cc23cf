//go:build lab

package integration

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golvs/golvs/integration/labnet"
)

// startAgents runs the real realserver agent (`realserver run -config
// FILE`) on every real server with the director's own topology file, and
// waits until each has put addr (the VIP, as /32 or /128) on dev. Each
// agent gets its own state and drain file (the namespaces share one
// filesystem) and no agent endpoint.
func (c *cluster) startAgents(file, addr, dev string) []*labnet.Proc {
	c.t.Helper()
	t := c.t
	dir := t.TempDir()
	agents := make([]*labnet.Proc, len(c.rs))
	for i, h := range c.rs {
		agents[i] = h.Start("", bin(t, "realserver"), "run", "-config", file,
			"--state-file", filepath.Join(dir, fmt.Sprintf("rs%d.state", i)),
			"--drain-file", filepath.Join(dir, fmt.Sprintf("rs%d.drain", i)),
			"--agent-address", "", "--drain-grace", "0s")
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s output:\n%s", agents[i].Name, agents[i].Output())
			}
		})
	}
	bits := "/32"
	family := "-4"
	if netip.MustParseAddr(addr).Is6() {
		bits, family = "/128", "-6"
	}
	for i, h := range c.rs {
		eventually(t, 20*eventuallyScale, h.Name+": the agent puts "+addr+" on "+dev, func() error {
			if done, err := agents[i].Exited(); done {
				t.Fatalf("%s exited: %v\n%s", agents[i].Name, err, agents[i].Output())
			}
			if out, _ := h.Exec("ip", family, "addr", "show", "dev", dev); !strings.Contains(out, " "+addr+bits+" ") {
				return fmt.Errorf("no %s%s on %s:\n%s", addr, bits, dev, out)
			} else if family == "-6" && !strings.Contains(out, "nodad") {
				// The VIP exists on every real server at once: duplicate
				// address detection would mark it dadfailed.
				t.Fatalf("%s: %s on %s without nodad:\n%s", h.Name, addr, dev, out)
			}
			return nil
		})
	}
	return agents
}

// assertAgentPrepared checks, with sysctl and ip as witnesses, that an
// IPv4 dr/tun real server will not claim the VIP on the LAN.
func assertAgentPrepared(t *testing.T, h *labnet.Host, mode string) {
	t.Helper()
	want := map[string]string{
		"net.ipv4.conf.all.arp_ignore":   "1",
		"net.ipv4.conf.all.arp_announce": "2",
	}
	if mode == "tun" {
		want["net.ipv4.conf.all.rp_filter"] = "0"
		want["net.ipv4.conf.tunl0.rp_filter"] = "0"
	}
	for k, v := range want {
		if got := strings.TrimSpace(h.MustExec("sysctl", "-n", k)); got != v {
			t.Errorf("%s: %s = %s, want %s", h.Name, k, got, v)
		}
	}
	if mode == "tun" {
		if out := h.IP("link", "show", "dev", "tunl0"); !strings.Contains(out, ",UP") {
			t.Errorf("%s: tunl0 is not up:\n%s", h.Name, out)
		}
	}
}
