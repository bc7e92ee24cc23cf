//go:build lab

package integration

import (
	"testing"
)

// TestConnSyncMixed: the sync protocol is the kernel's, so a golvs
// director and a keepalived one (lvs_sync_daemon, same sync id: the VRID)
// keep each other's connections, in both roles. golvs runs both daemons
// all the time; keepalived runs the backup daemon while backup, so it
// hears a golvs master, and the master daemon while master, which a golvs
// backup hears. The master's box dies; every connection must be kept.
// Then the old master's box returns and preempts, over new connections
// made through the backup while it was away: the figures are reported
// (which of them the returning side knows depends on when its peer sent
// them, see the README); each must be kept or reset, none hung or moved.
func TestConnSyncMixed(t *testing.T) {
	n := connsCount(t)
	for _, golvsMaster := range []bool{true, false} {
		name := "keepalived master, golvs backup"
		if golvsMaster {
			name = "golvs master, keepalived backup"
		}
		t.Run(name, func(t *testing.T) {
			sl := newSyncLab(t)
			services := sl.service("web", "tcp", 80, "dr", "rr") + sl.service("line", "tcp", linePort, "dr", "rr")
			syncTable := "[failover.sync]\ninterface = \"eth0\"\n"
			var master, backup *node
			if golvsMaster {
				master = sl.oursWith(sl.director, 200, syncTable, services)
				backup = sl.keepalivedSync(sl.backup, 100, true)
			} else {
				master = sl.keepalivedSync(sl.director, 200, true)
				backup = sl.oursWith(sl.backup, 100, syncTable, services)
			}
			sl.establish(master, backup)
			res := sl.survive(master, backup, n, true)
			t.Logf("%s, failover: %s", name, res)
			if res.Reset+res.Hung+res.Never != 0 || res.Moved != 0 || res.Kept+res.Stalled != n {
				t.Errorf("%s: %s; want all %d kept on their real server", name, res, n)
			}
			back := sl.failback(master, backup, n)
			t.Logf("%s, failback: %s", name, back)
			// Each one is kept or reset: none black-holed, none moved.
			if back.Never+back.Hung+back.Moved != 0 || back.Kept+back.Stalled+back.Reset != n {
				t.Errorf("%s, failback: %s; want each of %d kept or reset, none hung or moved", name, back, n)
			}
		})
	}
}
