package realserver

import (
	"context"
	"slices"
)

// Host is the kernel as the agent sees it: *Kernel, or a fake in tests.
type Host interface {
	// Snapshot reads every device and address, and the sysctls at paths.
	Snapshot(ctx context.Context, paths []string) (HostState, error)
	// Apply carries out op, recording in j what it really changed.
	Apply(ctx context.Context, op Op, j *Journal) error
	// Undo reverses one recorded change.
	Undo(ctx context.Context, c Change) error
}

var _ Host = (*Kernel)(nil)

// Adoption is what a start makes of the host it finds and of the journal
// an earlier run left behind (a crash, kill -9, a watchdog kill).
//
// A restart does not restore that journal before preparing the host again:
// undoing takes the VIP off lo (or the tunnel) and puts the ARP sysctls
// back, so for a moment the backend drops the director's packets for the
// VIP and may answer ARP for it. Instead the journal is adopted: records
// still wanted stay in place and in the journal, with the values from
// before the first run, so the exit still restores the host exactly.
type Adoption struct {
	// Adopted are the journal's records that desired still asks for.
	Adopted []Change
	// Keep are wanted addresses already in place that no record claims:
	// the host's own, never removed.
	Keep []Change
	// Ops bring the host to desired: first the undo (newest first) of the
	// records no longer wanted, then what is missing. Nothing in place
	// and wanted is touched.
	Ops []Op
}

// Adopt decides how a start treats the host and the journal. It fails,
// asking for nothing, when Plan would.
func Adopt(desired Desired, actual HostState, journal []Change) (Adoption, error) {
	ops, err := Plan(desired, actual, journal)
	if err != nil {
		return Adoption{}, err
	}
	a := Adoption{Ops: ops}
	for _, c := range journal {
		if desired.wants(c) {
			a.Adopted = append(a.Adopted, c)
		}
	}
	for _, w := range desired.Addrs {
		c := Change{Kind: ChangeAddr, Dev: w.Dev, Prefix: w.Prefix}
		present := slices.ContainsFunc(actual.Addrs, func(h HostAddr) bool {
			return h.Dev == w.Dev && h.Prefix.Addr() == w.Prefix.Addr()
		})
		if present && !slices.ContainsFunc(journal, c.same) {
			a.Keep = append(a.Keep, c)
		}
	}
	return a, nil
}
