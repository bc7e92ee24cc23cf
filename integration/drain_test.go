//go:build lab

package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDirectorDrain drains the backend that holds a long-lived connection
// with `director drain`: it gets weight 0, new connections go to the
// others, and the established one runs to completion.
func TestDirectorDrain(t *testing.T) {
	c := newCluster(t, "nat")
	c.startDirector(c.service("web", "tcp", 80, "nat", "rr"), hasBackends(3, "TCP "+vip+":80"))
	key := "TCP " + vip + ":80"

	// The body starts with the server's name, then a dot every 100ms.
	long := c.client.Start("rs", "curl", "-sS", "-N", "--max-time", "60", "http://"+vip+"/long?d=5s")
	name := strings.Fields(long.Output())[0]
	i := slices.Index(c.names, name)
	if i < 0 {
		t.Fatalf("long request answered by %q, not a real server", name)
	}
	backend := c.rsAddrs[i] + ":80"
	c.director.MustExec(bin(t, "director"), "drain", "-config", c.config, "web", backend)
	eventually(t, 20*eventuallyScale, backend+" drained", func() error {
		if got := c.ipvsTable()[key].Backends[backend]; got != "Masq 0" {
			return fmt.Errorf("backend %s = %q, want Masq 0", backend, got)
		}
		return nil
	})

	r := c.requests("http://"+vip+"/", 20)
	if r.Failures != 0 || r.Counts[name] != 0 {
		t.Errorf("while %s is drained: %+v, want no failures and none to %s", name, r, name)
	}
	for _, other := range c.names {
		if other != name && r.Counts[other] != 10 {
			t.Errorf("while %s is drained, %s answered %d requests, want 10", name, other, r.Counts[other])
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := long.Wait(ctx); err != nil {
		t.Errorf("the long connection to the drained backend failed: %v\n%s", err, long.Output())
	}
	if dots := strings.Count(long.Output(), "."); dots < 30 {
		t.Errorf("the long connection got %d of about 50 ticks: %q", dots, long.Output())
	}

	c.director.MustExec(bin(t, "director"), "undrain", "-config", c.config, "web", backend)
	eventually(t, 20*eventuallyScale, backend+" undrained", func() error {
		if got := c.ipvsTable()[key].Backends[backend]; got != "Masq 1" {
			return fmt.Errorf("backend %s = %q, want Masq 1", backend, got)
		}
		return nil
	})
}
