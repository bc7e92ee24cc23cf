//go:build lab

package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/golvs/golvs/integration/labnet"
)

// TestFailover runs two directors with [failover] (VRRPv3) in front of DR
// real servers. The master holds the VIP; when it dies (every process
// killed, link down), the backup takes the VIP over and announces it, so
// the client's ARP entry moves and a polling client sees only a short
// outage.
func TestFailover(t *testing.T) {
	c := newCluster(t, "dr")
	backup := c.lab.Host("dir2", nil)
	backup.Attach(c.lanSegment(), "192.0.2.3/24")
	services := c.service("web", "tcp", 80, "dr", "rr")
	failover := func(prio int) string {
		return fmt.Sprintf("[failover]\nvirtual_router_id = 51\npriority = %d\nadvert_interval = \"200ms\"\npreempt = true\n", prio)
	}
	ready := hasBackends(3, "TCP "+vip+":80")
	c.startDirectorOn(c.director, failover(200), services, ready)
	eventually(t, 20*eventuallyScale, "master holds the VIP", func() error { return hasVIP(c.director, true) })
	c.startDirectorOn(backup, failover(100), services, ready)
	// The backup must hear the master and stay backup.
	eventually(t, 20*eventuallyScale, "backup settles", func() error { return hasVIP(backup, false) })
	if err := hasVIP(c.director, true); err != nil {
		t.Fatalf("the master lost the VIP when the backup started: %v", err)
	}
	c.assertEven(c.requests("http://"+vip+"/", 30), 30)
	c.assertVIPOnDirector()

	// Start returns once the poll has had its first answer.
	poll := c.client.Start("ready", bin(t, "labhost"), "poll", "--url", "http://"+vip+"/",
		"--interval", "50ms", "--duration", "8s", "--timeout", "500ms")
	// The master dies: processes killed at once and its link down.
	c.director.KillAll()
	c.director.IP("link", "set", "eth0", "down")

	eventually(t, 20*eventuallyScale, "backup takes the VIP", func() error { return hasVIP(backup, true) })
	eventually(t, 20*eventuallyScale, "client's ARP entry moves to the backup", func() error {
		if got, want := mustNeighbour(c.client), backup.MAC("eth0"); got != want {
			return fmt.Errorf("client's entry for the VIP = %s, want the backup's %s", got, want)
		}
		return nil
	})
	if err := poll.Wait(t.Context()); err != nil {
		t.Fatalf("poll: %v\n%s", err, poll.Output())
	}
	var res struct {
		Total           int   `json:"total"`
		Failures        int   `json:"failures"`
		LongestOutageMS int64 `json:"longest_outage_ms"`
	}
	lines := strings.Split(strings.TrimSpace(poll.Output()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("poll output %q: %v", poll.Output(), err)
	}
	t.Logf("failover seen by the client: %+v", res)
	// 3 adverts of 200ms plus skew is under 1s on hardware; the emulated
	// guest gets a generous bound.
	if res.LongestOutageMS > 5000 {
		t.Errorf("longest outage %dms, want under 5s", res.LongestOutageMS)
	}
	if res.Total-res.Failures == 0 {
		t.Errorf("no successful request at all: %+v", res)
	}
	c.assertEven(c.requests("http://"+vip+"/", 30), 30)
}

// hasVIP checks whether the host has the VIP on eth0.
func hasVIP(h *labnet.Host, want bool) error {
	out, err := h.Exec("ip", "-4", "addr", "show", "dev", "eth0")
	if err != nil {
		return err
	}
	if got := strings.Contains(out, " "+vip+"/"); got != want {
		return fmt.Errorf("%s: VIP on eth0 = %v, want %v", h.Name, got, want)
	}
	return nil
}

func mustNeighbour(h *labnet.Host) string {
	mac, _ := h.Neighbour(vip)
	return mac
}
