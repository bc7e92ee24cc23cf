package director

import (
	"context"
	"net/netip"

	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/director/status"
	"github.com/golvs/golvs/health"
)

// Status is what `director status` shows (see package status).
type (
	Status        = status.Status
	ServiceStatus = status.ServiceStatus
	BackendStatus = status.BackendStatus
)

// Status dumps the kernel and reports every configured service.
func (r *Reconciler) Status(ctx context.Context) (Status, error) {
	actual, err := r.kernel.Dump(ctx)
	if err != nil {
		return Status{}, err
	}
	have := make(map[ipvs.ServiceKey]ipvs.Entry, len(actual))
	for _, e := range actual {
		have[e.Service.ServiceKey] = e
	}
	r.mu.Lock()
	r.loadStateLocked()
	topo := r.topo
	drains := make(map[drainKey]bool, len(r.opDrains))
	for k := range r.opDrains {
		drains[k] = true
	}
	draining := make(map[destKey]bool, len(r.draining))
	for k := range r.draining {
		draining[k] = true
	}
	r.mu.Unlock()

	st := Status{Services: []ServiceStatus{}}
	if topo == nil {
		return st, nil
	}
	for i := range topo.Services {
		s := &topo.Services[i]
		key := Key(s)
		e, in := have[key]
		kd := make(map[netip.AddrPort]ipvs.Destination, len(e.Destinations))
		for _, d := range e.Destinations {
			kd[d.Key()] = d
		}
		ss := ServiceStatus{Name: s.Name, Key: key.String(), InKernel: in, Backends: []BackendStatus{}}
		seen := map[netip.AddrPort]bool{}
		for _, b := range s.Backends {
			ap := b.AddrPort()
			seen[ap] = true
			h := r.health.Backend(s.Name, ap)
			bs := BackendStatus{
				Address:          ap,
				Configured:       true,
				ConfiguredWeight: b.Weight,
				Health:           healthWord(h),
				OperatorDrain:    drains[drainKey{s.Name, ap}],
				Draining:         draining[destKey{key, ap}],
			}
			if d, ok := kd[ap]; ok {
				bs.InKernel, bs.KernelWeight = true, d.Weight
				bs.ActiveConns, bs.InactiveConns = d.ActiveConns, d.InactiveConns
			}
			ss.Backends = append(ss.Backends, bs)
		}
		// Kernel destinations that are not configured backends: draining
		// leftovers or the sorry server.
		for _, d := range e.Destinations {
			if seen[d.Key()] {
				continue
			}
			ss.Backends = append(ss.Backends, BackendStatus{
				Address:       d.Key(),
				InKernel:      true,
				KernelWeight:  d.Weight,
				ActiveConns:   d.ActiveConns,
				InactiveConns: d.InactiveConns,
				Health:        "-",
				Draining:      draining[destKey{key, d.Key()}],
			})
		}
		st.Services = append(st.Services, ss)
	}
	return st, nil
}

func healthWord(h health.Status) string {
	switch {
	case !h.Up:
		return "down"
	case h.Drain:
		return "drain"
	}
	return "up"
}

