package ipvs

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// SyncState is the role of a kernel IPVS sync daemon (IP_VS_STATE_*). The
// kernel runs at most one of each per network namespace, and both at once.
type SyncState uint32

const (
	// SyncMaster multicasts this director's connections.
	SyncMaster SyncState = 1
	// SyncBackup receives the peer's connections into this table.
	SyncBackup SyncState = 2
)

func (s SyncState) String() string {
	switch s {
	case SyncMaster:
		return "master"
	case SyncBackup:
		return "backup"
	}
	return fmt.Sprintf("SyncState(%d)", uint32(s))
}

// SyncDaemon is one kernel sync daemon. On a start, zero optional fields
// take the kernel's defaults; the kernel reports the values in use (Linux
// 4.3 and later: older kernels report only State, Interface and SyncID,
// and the rest reads as zero).
type SyncDaemon struct {
	State     SyncState
	Interface string // the multicast interface
	SyncID    uint8  // messages carry it; a backup with 0 takes any
	// MaxLen is the largest message; 0 = sized from the MTU.
	MaxLen uint16
	Group  netip.Addr // multicast group; zero = 224.0.0.81
	Port   uint16     // UDP port; 0 = 8848
	TTL    uint8      // multicast TTL; 0 = 1
}

func (d SyncDaemon) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s sync daemon (interface %s, sync id %d", d.State, d.Interface, d.SyncID)
	if d.Group.IsValid() {
		fmt.Fprintf(&b, ", group %s", d.Group)
	}
	if d.Port != 0 {
		fmt.Fprintf(&b, ", port %d", d.Port)
	}
	if d.TTL != 0 {
		fmt.Fprintf(&b, ", ttl %d", d.TTL)
	}
	if d.MaxLen != 0 {
		fmt.Fprintf(&b, ", max len %d", d.MaxLen)
	}
	b.WriteString(")")
	return b.String()
}

// Satisfies reports whether a running daemon d (as the kernel reports it)
// is what want asks for. A field want leaves zero takes any value, and a
// field the kernel did not report (zero in d) is not held against it: a
// daemon is only restarted for a difference that is known.
func (d SyncDaemon) Satisfies(want SyncDaemon) bool {
	if d.State != want.State || d.Interface != want.Interface || d.SyncID != want.SyncID {
		return false
	}
	known := func(have, want uint16) bool { return want == 0 || have == 0 || have == want }
	if want.Group.IsValid() && d.Group.IsValid() && d.Group != want.Group {
		return false
	}
	return known(d.MaxLen, want.MaxLen) && known(d.Port, want.Port) && known(uint16(d.TTL), uint16(want.TTL))
}

// SortDaemons orders daemons master first.
func SortDaemons(ds []SyncDaemon) {
	slices.SortFunc(ds, func(a, b SyncDaemon) int { return cmp.Compare(a.State, b.State) })
}

// SyncDaemons is the kernel's sync daemon control, implemented by Kernel and
// by the fake. Errors wrap the kernel's errno: starting a daemon of a
// state that runs already is EEXIST, stopping one that does not run is
// ESRCH, an unknown interface is ENODEV.
type SyncDaemons interface {
	// Daemons returns the running daemons, master first.
	Daemons(ctx context.Context) ([]SyncDaemon, error)
	StartDaemon(ctx context.Context, d SyncDaemon) error
	StopDaemon(ctx context.Context, state SyncState) error
}
