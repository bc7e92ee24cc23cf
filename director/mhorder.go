package director

import (
	"net/netip"
	"slices"

	"github.com/golvs/golvs/director/ipvs"
)

// Canonical destination order for mh (Maglev hashing) services.
//
// Every director behind one ECMP router must map a flow to the same real
// server, so every director's mh lookup table must be the same. What the
// kernel's ip_vs_mh.c builds that table from (read in net/netfilter/ipvs):
//
//   - ip_vs_mh_populate walks svc->destinations in list order, each
//     destination in turn claiming the next free slot of its preference
//     list; when two destinations prefer one slot, the one earlier in the
//     list gets it. So the table depends on the list order.
//   - Each destination claims `last_weight / gcd >> rshift` slots per round.
//     last_weight is the latest non-zero weight (__ip_vs_update_dest sets
//     it on every add, and on edits only to a non-zero weight), so a
//     destination set to weight 0 keeps its slots (mh-fallback then skips
//     it), but one ADDED with weight 0 gets none.
//   - The hash keys are compile-time constants (generate_hash_secret): the
//     same list order and last weights give the same table on every host.
//   - __ip_vs_update_dest inserts an added destination at the HEAD of the
//     list (list_add_rcu); a weight or flag edit leaves it where it is, and
//     editing the service (ipvsadm -E) with the same scheduler does not
//     rebuild anything (ip_vs_edit_service rebinds only a new scheduler).
//     So the only way to move a destination is to delete and re-add it.
//   - A deleted destination goes to the trash with its connections still
//     pointing at it; while it is deleted their packets are dropped
//     (ip_vs_in: !IP_VS_DEST_F_AVAILABLE -> NF_DROP, and with
//     expire_nodest_conn=1 the connection is expired), and re-adding it
//     revives the same struct (ip_vs_trash_get_dest), so its connections
//     carry on. Deleting and re-adding in one batch costs those flows at
//     most a retransmission (with expire_nodest_conn=0, the default), not
//     a reset.
//
// How much it matters, measured: with three equal-weight destinations
// only a few slots of the 4093 differ between two list orders (a model of
// the table, integration/mhmodel_lab_test.go, names the affected flows and
// the lab confirms them on the real kernel, TestMHOrderCanonical); a
// destination added at weight 0 instead of its nominal weight changes a
// third of them. So both rules below matter, the weight one more.
// `ipvsadm -Ln` sorts destinations; /proc/net/ip_vs shows the list order.
//
// Canonical order: the list, head first, in DESCENDING (address, port)
// order. Adds land at the head, so backends added in ascending order (the
// common way a pool grows) need no re-adds at all.

// MHDest is one destination an mh service should have.
type MHDest struct {
	ipvs.Destination // as it should be now; Weight 0 = drained or down
	// Nominal is the configured weight: the table share the destination
	// keeps while its Weight is 0, so that a director that added it while
	// it was down builds the same table as one that saw it go down.
	Nominal int
}

// MHCanonical reports whether a comes before b in the canonical list.
func MHCanonical(a, b netip.AddrPort) int { return b.Compare(a) }

// PlanMHOrder returns the destination writes that turn actual (the
// service's destinations in the kernel's list order, as a dump returns
// them) into want in canonical order, moving as few destinations as
// possible: the longest tail of the canonical order that already appears
// in actual in that order stays; the destinations before it are deleted
// and re-added in reverse canonical order. Destinations not wanted are
// deleted; kept ones whose settings differ are updated. An add of a
// destination whose Weight is 0 is made at its Nominal weight and then
// set to 0, so its last_weight, and so the table, match a director that
// added it while it was up. The writes are in order: moves (delete, then
// adds), updates, removals. Nothing is written when all is in order.
func PlanMHOrder(svc ipvs.Service, actual []ipvs.Destination, want []MHDest) []ipvs.Write {
	canon := slices.Clone(want)
	slices.SortFunc(canon, func(a, b MHDest) int { return MHCanonical(a.Key(), b.Key()) })
	canon = slices.CompactFunc(canon, func(a, b MHDest) bool { return a.Key() == b.Key() })
	wanted := make(map[netip.AddrPort]bool, len(canon))
	for _, d := range canon {
		wanted[d.Key()] = true
	}

	// Match the canonical order from its end against actual from its end:
	// canon[keep:] is the longest tail that is a subsequence of actual.
	// Greedy from the right is optimal since keys are unique.
	keep := len(canon)
	for i := len(actual) - 1; i >= 0 && keep > 0; i-- {
		if actual[i].Key() == canon[keep-1].Key() {
			keep--
		}
	}
	stays := make(map[netip.AddrPort]bool, len(canon)-keep)
	for _, d := range canon[keep:] {
		stays[d.Key()] = true
	}

	var moves, adds, updates, removals []ipvs.Write
	have := make(map[netip.AddrPort]ipvs.Destination, len(actual))
	for _, d := range actual {
		have[d.Key()] = d
		switch {
		case !wanted[d.Key()]:
			removals = append(removals, ipvs.Write{Kind: ipvs.WriteDeleteDest, Service: svc, Dest: d})
		case !stays[d.Key()]:
			moves = append(moves, ipvs.Write{Kind: ipvs.WriteDeleteDest, Service: svc, Dest: d, Reorder: true})
		}
	}
	for i := keep - 1; i >= 0; i-- {
		d := canon[i]
		_, moved := have[d.Key()]
		if d.Weight == 0 && d.Nominal > 0 {
			nominal := d.Destination
			nominal.Weight = d.Nominal
			adds = append(adds,
				ipvs.Write{Kind: ipvs.WriteAddDest, Service: svc, Dest: nominal, Reorder: moved},
				ipvs.Write{Kind: ipvs.WriteUpdateDest, Service: svc, Dest: d.Destination, WasDest: nominal})
			continue
		}
		adds = append(adds, ipvs.Write{Kind: ipvs.WriteAddDest, Service: svc, Dest: d.Destination, Reorder: moved})
	}
	for _, d := range canon[keep:] {
		if old := have[d.Key()]; !old.Equal(d.Destination) {
			updates = append(updates, ipvs.Write{Kind: ipvs.WriteUpdateDest, Service: svc, Dest: d.Destination, WasDest: old})
		}
	}
	out := slices.Concat(moves, adds, updates, removals)
	if len(out) == 0 {
		return nil
	}
	return out
}
