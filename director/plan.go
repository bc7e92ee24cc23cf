// Package director is the running director: it turns the topology and
// the health of every backend into kernel IPVS state (Desired computes
// the wanted table, Plan diffs it against the kernel, the Reconciler runs
// passes that apply the difference), decides which addresses this
// director holds (Announce), and runs it all with the health monitor,
// VRRP, the control socket and metrics (Runtime).
package director

import (
	"net/netip"
	"slices"

	"github.com/golvs/golvs/director/ipvs"
)

// Plan returns the minimal list of ops that turns actual into desired.
// Services in actual but not in desired are deleted only when owned says
// they are ours; every other service is left alone. Within a desired
// service every destination is ours: unknown ones are deleted. The order
// is deterministic: per desired service (sorted), the service add or
// update, then destination deletes, updates and adds; then deletes of
// services that are no longer wanted. Deleting a service removes its
// destinations with it. The kernel updates a destination's forwarding
// method in place, so a forwarding change is one update.
//
// The destinations of an mh service (ipvs.ListOrdered) are planned by
// PlanMHOrder instead, so that they end in the canonical list order,
// with the desired weights as nominal ones: every director then builds
// the same Maglev table. It moves a destination by deleting and
// re-adding it in the same batch, which keeps its connections: the
// kernel keeps a deleted destination that has connections and the re-add
// revives it (ip_vs_trash_get_dest). Seen in the lab:
// TestMHOrderCanonical (60 of 60 connections kept through a reorder made
// by ipvsadm, one process per write) and TestMHOrderDirectors (the real
// director's batch).
func Plan(desired, actual []ipvs.Entry, owned func(ipvs.ServiceKey) bool) []ipvs.Write {
	return plan(sortedEntries(desired), sortedEntries(actual), owned, nil)
}

// Nominal returns the configured weight of a service's backend: the
// table share an mh destination keeps while its weight is 0 (MHDest).
// 0 when unknown.
type Nominal func(ipvs.ServiceKey, netip.AddrPort) int

// plan is Plan on tables already in dump order, with nominal weights
// (nil: none known). Both sides come sorted (Desired and dumps sort), so
// one merge walk replaces maps: a no-op pass over thousands of services
// allocates nothing here.
func plan(desired, actual []ipvs.Entry, owned func(ipvs.ServiceKey) bool, nominal Nominal) []ipvs.Write {
	var ops, dels []ipvs.Write
	i, j := 0, 0
	for i < len(desired) || j < len(actual) {
		c := 1 // actual[j] only
		switch {
		case j == len(actual):
			c = -1
		case i < len(desired):
			c = ipvs.KeyCompare(desired[i].Service.ServiceKey, actual[j].Service.ServiceKey)
		}
		switch {
		case c < 0:
			d := desired[i]
			ops = append(ops, ipvs.Write{Kind: ipvs.WriteAddService, Service: d.Service})
			if ipvs.ListOrdered(d.Service.Scheduler) {
				ops = append(ops, PlanMHOrder(d.Service, nil, mhWant(d, nominal))...)
			} else {
				for _, dst := range d.Destinations {
					ops = append(ops, ipvs.Write{Kind: ipvs.WriteAddDest, Service: d.Service, Dest: dst})
				}
			}
			i++
		case c > 0:
			a := actual[j]
			if owned != nil && owned(a.Service.ServiceKey) {
				dels = append(dels, ipvs.Write{Kind: ipvs.WriteDeleteService, Service: a.Service})
			}
			j++
		default:
			d, a := desired[i], actual[j]
			if !a.Service.Equal(d.Service) {
				ops = append(ops, ipvs.Write{Kind: ipvs.WriteUpdateService, Service: d.Service, WasService: a.Service})
			}
			if mh, ok := kernelList(d, a); ok {
				ops = append(ops, PlanMHOrder(d.Service, mh, mhWant(d, nominal))...)
			} else {
				ops = planDests(ops, d, a)
			}
			i++
			j++
		}
	}
	return append(ops, dels...)
}

// sortedEntries returns es when it and every entry's destinations are
// already in dump order, else a sorted copy (the caller's slice is never
// reordered).
func sortedEntries(es []ipvs.Entry) []ipvs.Entry {
	ok := slices.IsSortedFunc(es, func(a, b ipvs.Entry) int {
		return ipvs.KeyCompare(a.Service.ServiceKey, b.Service.ServiceKey)
	})
	for i := 0; ok && i < len(es); i++ {
		ok = slices.IsSortedFunc(es[i].Destinations, ipvs.CompareDests)
	}
	if ok {
		return es
	}
	out := make([]ipvs.Entry, len(es))
	for i, e := range es {
		e.Destinations = slices.Clone(e.Destinations)
		ipvs.SortDestinations(e.Destinations)
		out[i] = e
	}
	ipvs.SortEntries(out)
	return out
}

// planDests appends the destination changes of one service to ops:
// deletes, then updates, then adds, each in address order. Both lists
// are sorted.
func planDests(ops []ipvs.Write, d, a ipvs.Entry) []ipvs.Write {
	var upds, adds []ipvs.Write
	i, j := 0, 0
	for i < len(d.Destinations) || j < len(a.Destinations) {
		c := 1
		switch {
		case j == len(a.Destinations):
			c = -1
		case i < len(d.Destinations):
			c = ipvs.CompareDests(d.Destinations[i], a.Destinations[j])
		}
		switch {
		case c < 0:
			adds = append(adds, ipvs.Write{Kind: ipvs.WriteAddDest, Service: d.Service, Dest: d.Destinations[i]})
			i++
		case c > 0:
			ops = append(ops, ipvs.Write{Kind: ipvs.WriteDeleteDest, Service: d.Service, Dest: a.Destinations[j]})
			j++
		default:
			if x, old := d.Destinations[i], a.Destinations[j]; !old.Equal(x) {
				upds = append(upds, ipvs.Write{Kind: ipvs.WriteUpdateDest, Service: d.Service, Dest: x, WasDest: old})
			}
			i++
			j++
		}
	}
	return append(append(ops, upds...), adds...)
}

// kernelList returns a's destinations in the kernel's list order when d
// is an mh service and that order is known: not when the kernel's
// service has another scheduler (its order was not read; the pass after
// the scheduler change reorders it).
func kernelList(d, a ipvs.Entry) ([]ipvs.Destination, bool) {
	if !ipvs.ListOrdered(d.Service.Scheduler) || !ipvs.ListOrdered(a.Service.Scheduler) || len(a.Order) != len(a.Destinations) {
		return nil, false
	}
	out := make([]ipvs.Destination, len(a.Order))
	for i, k := range a.Order {
		at, found := slices.BinarySearchFunc(a.Destinations, k, func(d ipvs.Destination, k netip.AddrPort) int { return d.Key().Compare(k) })
		if !found {
			return nil, false
		}
		out[i] = a.Destinations[at]
	}
	return out, true
}

// mhWant is d's destinations with their nominal weights.
func mhWant(d ipvs.Entry, nominal Nominal) []MHDest {
	out := make([]MHDest, len(d.Destinations))
	for i, x := range d.Destinations {
		out[i] = MHDest{Destination: x}
		if nominal != nil {
			out[i].Nominal = nominal(d.Service.ServiceKey, x.Key())
		}
	}
	return out
}
