//go:build lab

package integration

import (
	"strings"
	"testing"
)

// TestSmokeIPVS proves the lab and its topologies without the director:
// services made with ipvsadm in the director's namespace, in each
// forwarding mode, reached with curl and with labhost from the client.
func TestSmokeIPVS(t *testing.T) {
	for _, tc := range []struct {
		mode, flag, fwd string
	}{
		{"nat", "-m", "Masq"},
		{"dr", "-g", "Route"},
		{"tun", "-i", "Tunnel"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			c := newCluster(t, tc.mode)
			if tc.mode == "nat" {
				c.director.EnableForwarding() // no director here to do it
			}
			c.director.IP("addr", "add", vip+"/32", "dev", "eth0")
			c.director.MustExec("ipvsadm", "-A", "-t", vip+":80", "-s", "rr")
			c.director.MustExec("ipvsadm", "-A", "-u", vip+":53", "-s", "rr")
			for _, a := range c.rsAddrs {
				c.director.MustExec("ipvsadm", "-a", "-t", vip+":80", "-r", a+":80", tc.flag)
				c.director.MustExec("ipvsadm", "-a", "-u", vip+":53", "-r", a+":53", tc.flag)
			}
			out := c.client.MustExec("curl", "-sS", "--max-time", "5", "http://"+vip+"/")
			if !strings.HasPrefix(out, "rs") {
				t.Fatalf("curl through the VIP answered %q, want a real server's name", out)
			}
			c.assertEven(c.requests("http://"+vip+"/", 30), 30)
			c.assertEven(c.udpRequests(vip+":53", 30), 30)
			c.assertService("TCP "+vip+":80", "rr", c.wantBackends(80, tc.fwd))
			c.assertService("UDP "+vip+":53", "rr", c.wantBackends(53, tc.fwd))
			c.assertVIPOnDirector()
		})
	}
}
