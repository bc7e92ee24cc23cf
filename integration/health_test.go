//go:build lab

package integration

import (
	"fmt"
	"testing"
)

// TestDirectorHealthCheck kills one real server's service: the director's
// TCP check must take it out (weight 0, the default on_failure) so no
// request fails, and put it back when the service returns.
func TestDirectorHealthCheck(t *testing.T) {
	c := newCluster(t, "nat")
	services := c.service("web", "tcp", 80, "nat", "rr") + `[service.check]
type = "tcp"
interval = "200ms"
timeout = "200ms"
rise = 1
fall = 1
`
	key := "TCP " + vip + ":80"
	weights := func(want ...int) func(map[string]ipvsService) error {
		return func(table map[string]ipvsService) error {
			for i, a := range c.rsAddrs {
				if got, w := table[key].Backends[a+":80"], fmt.Sprintf("Masq %d", want[i]); got != w {
					return fmt.Errorf("backend %s = %q, want %q", a, got, w)
				}
			}
			return nil
		}
	}
	c.startDirector(services, weights(1, 1, 1))
	c.assertEven(c.requests("http://"+vip+"/", 30), 30)

	c.stopServer(2)
	eventually(t, 20*eventuallyScale, "rs3 taken out", func() error { return weights(1, 1, 0)(c.ipvsTable()) })
	r := c.requests("http://"+vip+"/", 30)
	if r.Failures != 0 || r.Counts["rs1"] != 15 || r.Counts["rs2"] != 15 || r.Counts["rs3"] != 0 {
		t.Errorf("with rs3 down: %+v, want rs1 15, rs2 15, no failures", r)
	}

	c.startServer(2)
	eventually(t, 20*eventuallyScale, "rs3 back", func() error { return weights(1, 1, 1)(c.ipvsTable()) })
	c.assertEven(c.requests("http://"+vip+"/", 30), 30)
}
