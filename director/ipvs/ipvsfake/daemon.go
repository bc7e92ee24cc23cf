package ipvsfake

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/golvs/golvs/director/ipvs"
	"golang.org/x/sys/unix"
)

// Operation names of the sync daemon calls, passed to Fail (with a zero
// key) and, for starts and stops, counted in Writes.
const (
	OpDaemons     = "daemons"
	OpStartDaemon = "start-daemon"
	OpStopDaemon  = "stop-daemon"
)

var _ ipvs.SyncDaemons = (*Fake)(nil)

// ipvsDefaultGroup is the kernel's IP_VS_SYNC_GROUP.
var ipvsDefaultGroup = netip.AddrFrom4([4]byte{224, 0, 0, 81})

// daemonBegin takes the lock and runs the failure hook; the caller must
// unlock.
func (f *Fake) daemonBegin(ctx context.Context, op string) error {
	f.mu.Lock()
	f.init()
	if f.daemons == nil {
		f.daemons = make(map[ipvs.SyncState]ipvs.SyncDaemon)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.Fail != nil {
		if err := f.Fail(op, ipvs.ServiceKey{}, nil); err != nil {
			return err
		}
	}
	if op != OpDaemons {
		if f.daemonWrites == nil {
			f.daemonWrites = map[string]int{}
		}
		f.daemonWrites[op]++
	}
	return nil
}

// Daemons returns the running daemons, master first, with the settings
// the kernel would report.
func (f *Fake) Daemons(ctx context.Context) ([]ipvs.SyncDaemon, error) {
	defer f.mu.Unlock()
	if err := f.daemonBegin(ctx, OpDaemons); err != nil {
		return nil, fmt.Errorf("ipvs daemons: %w", err)
	}
	out := make([]ipvs.SyncDaemon, 0, len(f.daemons))
	for _, d := range f.daemons {
		out = append(out, d)
	}
	ipvs.SortDaemons(out)
	return out, nil
}

// StartDaemon starts a daemon as start_sync_thread does: EINVAL for an
// unknown state, ENODEV for an unknown interface, EEXIST when one of that
// state runs; zero settings take the kernel's defaults.
func (f *Fake) StartDaemon(ctx context.Context, d ipvs.SyncDaemon) error {
	defer f.mu.Unlock()
	if err := f.daemonBegin(ctx, OpStartDaemon); err != nil {
		return fmt.Errorf("ipvs start %s: %w", d, err)
	}
	switch {
	case d.State != ipvs.SyncMaster && d.State != ipvs.SyncBackup, d.Interface == "":
		return fmt.Errorf("ipvs start %s: %w", d, unix.EINVAL)
	case d.Group.IsValid() && !d.Group.IsMulticast():
		return fmt.Errorf("ipvs start %s: %w", d, unix.EINVAL)
	case f.Interfaces != nil && !slices.Contains(f.Interfaces, d.Interface):
		return fmt.Errorf("ipvs start %s: %w", d, unix.ENODEV)
	}
	if _, running := f.daemons[d.State]; running {
		return fmt.Errorf("ipvs start %s: %w", d, unix.EEXIST)
	}
	if !d.Group.IsValid() {
		d.Group = ipvsDefaultGroup
	}
	if d.Port == 0 {
		d.Port = 8848
	}
	if d.TTL == 0 {
		d.TTL = 1
	}
	hdr := uint16(28) // IPv4 + UDP headers
	if d.Group.Is6() {
		hdr = 48
	}
	if d.MaxLen == 0 {
		d.MaxLen = 1500 - hdr // an MTU of 1500, the lab's and the usual
	}
	f.daemons[d.State] = d
	return nil
}

// StopDaemon stops the daemon of state: ESRCH when none runs.
func (f *Fake) StopDaemon(ctx context.Context, state ipvs.SyncState) error {
	defer f.mu.Unlock()
	if err := f.daemonBegin(ctx, OpStopDaemon); err != nil {
		return fmt.Errorf("ipvs stop %s sync daemon: %w", state, err)
	}
	if state != ipvs.SyncMaster && state != ipvs.SyncBackup {
		return fmt.Errorf("ipvs stop %s sync daemon: %w", state, unix.EINVAL)
	}
	if _, running := f.daemons[state]; !running {
		return fmt.Errorf("ipvs stop %s sync daemon: %w", state, unix.ESRCH)
	}
	delete(f.daemons, state)
	return nil
}

// DaemonWrites returns how many daemon starts and stops were attempted
// past the failure hook, by operation, and in total. They are not table
// writes, so Writes does not count them.
func (f *Fake) DaemonWrites() (map[string]int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	total := 0
	for k, v := range f.daemonWrites {
		out[k] = v
		total += v
	}
	return out, total
}
