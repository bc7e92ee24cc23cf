package director

import (
	"maps"
	"net/netip"

	"github.com/golvs/golvs/director/ipvs"
)

// A routed director must not announce a VIP before its kernel table can
// schedule the flows the routers will send: the route and the table
// follow the same health change, and a route that won the race drew
// connections to a service with every weight still 0, which the kernel
// refuses. So the announce decision also asks which VIPs the last
// applied pass gave a destination with weight (ProgrammedVIPs); the
// reconciler says when that set changes (Options.OnProgrammed). A
// withdrawal needs no such wait: live health alone decides it.

// servingKeys are the services of entries with a destination of weight
// above 0: what the kernel can schedule a new connection to.
func servingKeys(entries []ipvs.Entry) map[ipvs.ServiceKey]bool {
	out := map[ipvs.ServiceKey]bool{}
	for _, e := range entries {
		for _, d := range e.Destinations {
			if d.Weight > 0 {
				out[e.Service.ServiceKey] = true
				break
			}
		}
	}
	return out
}

// recordServing notes which services in sc a pass that applied without
// error left able to serve, and reports whether the set changed. A pass
// with failed writes changes nothing: the next one retries them.
func (r *Reconciler) recordServing(sc *scope, desired []ipvs.Entry) bool {
	now := servingKeys(desired)
	r.mu.Lock()
	defer r.mu.Unlock()
	next := map[ipvs.ServiceKey]bool{}
	for k := range r.serving {
		if !sc.has(k) {
			next[k] = true
		}
	}
	for k := range now {
		next[k] = true
	}
	changed := r.serving == nil || !maps.Equal(next, r.serving)
	r.serving = next
	return changed
}

// ProgrammedVIPs is the set of VIPs that a service in the kernel can
// serve as of the last pass that applied without error (empty before the
// first).
func (r *Reconciler) ProgrammedVIPs() map[netip.Addr]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[netip.Addr]bool{}
	for k := range r.serving {
		if k.Address.IsValid() {
			out[k.Address] = true
		}
	}
	return out
}
