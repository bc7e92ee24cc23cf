package director

import (
	"testing"
	"time"

	"github.com/golvs/golvs/config"
)

// A reload of the same [failover] must not warn that it changed: two
// loads of one file hold equal values behind different pointers.
func TestSameFailover(t *testing.T) {
	load := func(delay time.Duration) *config.Topology {
		d := delay
		return &config.Topology{Failover: &config.Failover{VirtualRouterID: 51, Priority: 100,
			Sync: &config.Sync{Interface: "eth0", SyncID: 51}, PreemptDelay: &d}}
	}
	if !sameFailover(load(time.Second), load(time.Second)) {
		t.Error("two loads of one [failover] differ")
	}
	if sameFailover(load(time.Second), load(2*time.Second)) {
		t.Error("a changed preempt_delay went unseen")
	}
}
