//go:build lab

package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golvs/golvs/integration/labnet"
)

// TestRealserverAgent lets the realserver agent prepare the dr and tun
// real servers (VIP on lo or tunl0, ARP sysctls, rp_filter) from the same
// topology file the director reads, checks traffic through the director,
// and checks that SIGTERM restores each host.
func TestRealserverAgent(t *testing.T) {
	for _, tc := range []struct{ mode, fwd, dev string }{
		{"dr", "Route", "lo"},
		{"tun", "Tunnel", "tunl0"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			c := newClusterPrep(t, tc.mode, false)
			services := c.service("web", "tcp", 80, tc.mode, "rr")
			dir := t.TempDir()
			file := labnet.TempFile(t, dir, "topology.toml", "[director]\ninterface = \"eth0\"\n\n"+services)
			agents := make([]*labnet.Proc, len(c.rs))
			for i, h := range c.rs {
				state := filepath.Join(dir, fmt.Sprintf("rs%d.state", i))
				drain := filepath.Join(dir, fmt.Sprintf("rs%d.drain", i))
				agents[i] = h.Start("", bin(t, "realserver"), "run", "-config", file,
					"--state-file", state, "--drain-file", drain, "--agent-address", "", "--drain-grace", "0s")
				t.Cleanup(func() {
					if t.Failed() {
						t.Logf("%s output:\n%s", agents[i].Name, agents[i].Output())
					}
				})
			}
			for _, h := range c.rs {
				eventually(t, 20*eventuallyScale, h.Name+" VIP on "+tc.dev, func() error {
					if out, _ := h.Exec("ip", "-4", "addr", "show", "dev", tc.dev); !strings.Contains(out, " "+vip+"/32") {
						return fmt.Errorf("no %s/32 on %s:\n%s", vip, tc.dev, out)
					}
					return nil
				})
				if got := strings.TrimSpace(h.MustExec("sysctl", "-n", "net.ipv4.conf.all.arp_ignore")); got != "1" {
					t.Errorf("%s: arp_ignore = %s, want 1", h.Name, got)
				}
			}
			c.startDirector(services, hasBackends(3, "TCP "+vip+":80"))
			c.assertService("TCP "+vip+":80", "rr", c.wantBackends(80, tc.fwd))
			c.assertEven(c.requests("http://"+vip+"/", 30), 30)
			c.assertVIPOnDirector()

			for i, h := range c.rs {
				if err := agents[i].Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				eventually(t, 20*eventuallyScale, h.Name+" restored", func() error {
					if done, _ := agents[i].Exited(); !done {
						return fmt.Errorf("agent still running")
					}
					if out, _ := h.Exec("ip", "-4", "addr", "show", "dev", tc.dev); strings.Contains(out, " "+vip+"/") {
						return fmt.Errorf("VIP still on %s after exit", tc.dev)
					}
					if got := strings.TrimSpace(h.MustExec("sysctl", "-n", "net.ipv4.conf.all.arp_ignore")); got != "0" {
						return fmt.Errorf("arp_ignore = %s after exit, want 0 restored", got)
					}
					return nil
				})
				if _, err := agents[i].Exited(); err != nil {
					t.Errorf("%s exited with %v", agents[i].Name, err)
				}
			}
		})
	}
}

// eventuallyScale is the unit of eventually's timeouts: generous, since
// the guest is emulated.
const eventuallyScale = time.Second
