//go:build lab

package integration

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// TestDemoDR is the DR cluster of examples/dr.toml in namespaces: wrr with
// weights 10/10/0 and a TCP health check. `lab demo` runs it alone with
// GOLVS_DEMO=1, which prints a short report; in the suite it is a test
// like the others. (No persistence here, unlike the example: persistence
// would pin this single client to one real server.)
func TestDemoDR(t *testing.T) {
	start := time.Now()
	c := newCluster(t, "dr")
	weights := []int{10, 10, 0}
	services := fmt.Sprintf(`[[service]]
name = "www"
address = %q
port = 80
scheduler = "wrr"
forwarding = "dr"

[service.check]
type = "tcp"
interval = "500ms"
timeout = "500ms"
rise = 1
fall = 2
`, vip)
	want := map[string]string{}
	for i, a := range c.rsAddrs {
		services += fmt.Sprintf("\n[[service.backend]]\naddress = %q\nweight = %d\n", a, weights[i])
		want[a+":80"] = fmt.Sprintf("Route %d", weights[i])
	}
	key := "TCP " + vip + ":80"
	// Ready when the checks have passed and the weights are the file's.
	c.startDirector(services, func(table map[string]ipvsService) error {
		s, ok := table[key]
		if !ok {
			return fmt.Errorf("no service %s", key)
		}
		for a, w := range want {
			if s.Backends[a] != w {
				return fmt.Errorf("backend %s = %q, want %q", a, s.Backends[a], w)
			}
		}
		return nil
	})
	ready := time.Since(start)
	c.assertService(key, "wrr", want)

	const n = 30
	r := c.requests("http://"+vip+"/", n)
	if r.Failures != 0 {
		t.Errorf("%d of %d requests failed: %v", r.Failures, n, r.Errors)
	}
	// wrr with weights 10/10/0 alternates between the first two.
	for i, name := range c.names {
		if got, want := r.Counts[name], n*weights[i]/20; got != want {
			t.Errorf("real server %s (weight %d) answered %d requests, want %d", name, weights[i], got, want)
		}
	}
	c.assertVIPOnDirector()

	if os.Getenv("GOLVS_DEMO") != "" {
		fmt.Printf("\n== golvs demo: direct routing, 1 client, 1 director, 3 real servers ==\n\n")
		fmt.Printf("ipvsadm -Ln in the director's namespace:\n%s\n", c.director.MustExec("ipvsadm", "-Ln"))
		fmt.Printf("%d requests from the client to http://%s/:\n", n, vip)
		for i, name := range c.names {
			fmt.Printf("  %-4s %-16s weight %-3d %3d answers\n", name, c.rsAddrs[i], weights[i], r.Counts[name])
		}
		fmt.Printf("  failures: %d\n\n", r.Failures)
		fmt.Printf("topology up and director converged in %s; whole demo %s (inside the emulated guest)\n\n",
			ready.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}
}
