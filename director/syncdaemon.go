package director

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/ipvs"
	"github.com/hashicorp/go-multierror"
	"golang.org/x/sys/unix"
)

// Kernel IPVS connection sync ([failover.sync]).
//
// Every director runs BOTH sync daemons all the time, whatever its VRRP
// state: a master daemon that multicasts the connections this director
// forwards, and a backup daemon that adds the peer's into this table. The
// kernel keeps the two apart (its own settings for each, one of each per
// network namespace) and never hears its own messages (the sending socket
// has multicast loop off), so one sync id serves both directions. The
// usual alternative, switching the daemons with the VRRP state as
// keepalived does, stops the receiving daemon of the side that becomes
// master at the moment of the transition: whatever its peer still sends
// (the kernel holds messages up to 2s) is dropped, and a connection is
// sent again only at its next sync point. With both always running there
// is no such window, in either direction, and failback is the same as
// failover. A backup forwards nothing, so its master daemon sends
// nothing; its table only grows by what it is told.
//
// The VRRP state is therefore not an input: WantDaemons depends on the
// configuration alone, and a daemon found stopped is started again on the
// next pass whatever the state.

// WantDaemons returns the sync daemons the director should run: none
// without [failover.sync], else a master and a backup with its settings.
func WantDaemons(f *config.Failover) []ipvs.SyncDaemon {
	if f == nil || f.Sync == nil {
		return nil
	}
	s := f.Sync
	d := ipvs.SyncDaemon{Interface: s.Interface, SyncID: s.SyncID, MaxLen: s.MaxLen, Group: s.Group, Port: s.Port, TTL: s.TTL}
	master, backup := d, d
	master.State, backup.State = ipvs.SyncMaster, ipvs.SyncBackup
	return []ipvs.SyncDaemon{master, backup}
}

// syncRefresh is net.ipv4.vs.sync_refresh_period as set with sync.
const syncRefresh = 5 * time.Second

// syncFlush is how long the kernel's master daemon may hold a partly
// filled message (IPVS_SYNC_FLUSH_TIME).
const syncFlush = 2 * time.Second

// syncSysctls are the kernel's sync settings the design relies on. With
// the kernel's defaults (sync_threshold "3 50", sync_refresh_period 0) a
// connection is sent when it has seen 3 packets and then every 50: one
// that stays quiet after its handshake is never sent, and one that sends
// fewer than 50 packets in the 15 minutes of the established timeout
// expires on the backup while it lives on the master, so a failover
// resets exactly the long-lived, idle-ish connections that matter most.
var syncSysctls = []Sysctl{
	// Version 1 messages carry IPv6, firewall marks and each
	// connection's timeout; version 0 drops all three.
	{Key: "net/ipv4/vs/sync_version", Value: "1"},
	// 0: send connections under a persistence template too. With 1
	// only templates are sent, and a backup would need sloppy_tcp to pick
	// up the connections themselves.
	{Key: "net/ipv4/vs/sync_persist_mode", Value: "0"},
	// Period 0 turns the packet count off (the threshold, 3, is then
	// only what a received connection's counter starts at)...
	{Key: "net/ipv4/vs/sync_threshold", Value: "3\t0"},
	// ...and a refresh period turns the time rule on: a connection is
	// sent on the packet that establishes it (any state change is), then
	// again on its first packet once this long has passed since it was
	// last sent. Each connection is sent within this period plus the 2s
	// flush of any traffic it has, so the peer's copy is never older
	// than that, and a connection the peer took over is sent back on its
	// first packet there. The kernel caps it at half the timeout.
	{Key: "net/ipv4/vs/sync_refresh_period", Value: fmt.Sprint(int(syncRefresh / time.Second))},
}

// SyncSysctls returns the settings connection sync needs: none without
// [failover.sync].
func SyncSysctls(f *config.Failover) []Sysctl {
	if f == nil || f.Sync == nil {
		return nil
	}
	return append([]Sysctl(nil), syncSysctls...)
}

// SyncSettleTime is how long after both directors' daemons run every
// connection with traffic is known to the peer: one refresh period plus
// the kernel's flush. A director that returns and would preempt should
// wait this long as backup first, or the connections its peer took while
// it was away (which it has never been told about) reset when it takes
// the VIP back. 0 without [failover.sync].
func SyncSettleTime(f *config.Failover) time.Duration {
	if f == nil || f.Sync == nil {
		return 0
	}
	return syncRefresh + syncFlush
}

// PreemptDelay is how long a returning director waits as backup before it
// preempts a lower-priority master: preempt_delay when the file sets it,
// else SyncSettleTime.
func PreemptDelay(f *config.Failover) time.Duration {
	if f == nil {
		return 0
	}
	if f.PreemptDelay != nil {
		return *f.PreemptDelay
	}
	return SyncSettleTime(f)
}

// DaemonChange is one start or stop of a sync daemon.
type DaemonChange struct {
	Stop   bool
	Daemon ipvs.SyncDaemon // for a stop, what runs now
}

func (c DaemonChange) String() string {
	if c.Stop {
		return "stop " + c.Daemon.String()
	}
	return "start " + c.Daemon.String()
}

// PlanDaemons returns the changes that take the running daemons (have) to
// want. Only the states want names are managed: a daemon of another state
// is left alone (an operator's, or keepalived's on a shared box). A
// running daemon that does not satisfy its wanted one is stopped and
// started again: the kernel cannot change a running daemon.
func PlanDaemons(have, want []ipvs.SyncDaemon) []DaemonChange {
	var out []DaemonChange
	for _, w := range want {
		var running *ipvs.SyncDaemon
		for i := range have {
			if have[i].State == w.State {
				running = &have[i]
			}
		}
		if running != nil && running.Satisfies(w) {
			continue
		}
		if running != nil {
			out = append(out, DaemonChange{Stop: true, Daemon: *running})
		}
		out = append(out, DaemonChange{Daemon: w})
	}
	return out
}

// EnsureDaemons reads the kernel's daemons and applies PlanDaemons: level
// triggered, so a daemon stopped behind our back (ipvsadm --stop-daemon)
// is started again on the next pass. It returns what it did; every change
// is tried, and the errors of those that failed are returned together.
func EnsureDaemons(ctx context.Context, k ipvs.SyncDaemons, want []ipvs.SyncDaemon) ([]string, error) {
	if len(want) == 0 {
		return nil, nil
	}
	have, err := k.Daemons(ctx)
	if err != nil {
		return nil, err
	}
	var done []string
	var errs *multierror.Error
	for _, c := range PlanDaemons(have, want) {
		if c.Stop {
			err = k.StopDaemon(ctx, c.Daemon.State)
			if errors.Is(err, unix.ESRCH) {
				err = nil // stopped meanwhile: the start below is what counts
			}
		} else {
			err = k.StartDaemon(ctx, c.Daemon)
		}
		if err != nil {
			errs = multierror.Append(errs, err)
			continue
		}
		done = append(done, c.String())
	}
	return done, errs.ErrorOrNil()
}

// StopDaemons stops the daemons of the given states that run: for a
// reload that removed [failover.sync] (with the states the previous
// configuration wanted) and for --cleanup-on-exit. By default a director
// that exits leaves them running, like the IPVS table, so a restart
// adopts them without a gap.
func StopDaemons(ctx context.Context, k ipvs.SyncDaemons, states ...ipvs.SyncState) ([]string, error) {
	var done []string
	var errs *multierror.Error
	for _, s := range states {
		err := k.StopDaemon(ctx, s)
		switch {
		case errors.Is(err, unix.ESRCH):
		case err != nil:
			errs = multierror.Append(errs, err)
		default:
			done = append(done, fmt.Sprintf("stop %s sync daemon", s))
		}
	}
	return done, errs.ErrorOrNil()
}
