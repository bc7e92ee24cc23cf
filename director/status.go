package director

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"text/tabwriter"

	"github.com/golvs/golvs/director/ipvs"
)

// Status is what `director status` shows: per service, per backend.
type Status struct {
	Services []ServiceStatus `json:"services"`
	// VRRP is the failover state ("master", "backup", ...), "" without
	// failover; filled in by the control server.
	VRRP string `json:"vrrp,omitempty"`
}

// ServiceStatus is one configured service.
type ServiceStatus struct {
	Name     string          `json:"name"`
	Key      string          `json:"key"`
	InKernel bool            `json:"in_kernel"`
	Backends []BackendStatus `json:"backends"`
}

// BackendStatus is one backend: configured, or still draining after it
// left the file, or the sorry server.
type BackendStatus struct {
	Address          netip.AddrPort `json:"address"`
	Configured       bool           `json:"configured"`
	ConfiguredWeight int            `json:"configured_weight"`
	InKernel         bool           `json:"in_kernel"`
	KernelWeight     int            `json:"kernel_weight"`
	ActiveConns      int            `json:"active_conns"`
	InactiveConns    int            `json:"inactive_conns"`
	Health           string         `json:"health"` // up | down | drain
	OperatorDrain    bool           `json:"operator_drain"`
	Draining         bool           `json:"draining"` // leaving: weight 0 until its connections end
}

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

func healthWord(h BackendState) string {
	switch {
	case !h.Up:
		return "down"
	case h.Drain:
		return "drain"
	}
	return "up"
}

// WriteText writes the status as the table `director status` prints.
func (s Status) WriteText(w io.Writer) error {
	if s.VRRP != "" {
		fmt.Fprintf(w, "vrrp: %s\n", s.VRRP)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, sv := range s.Services {
		state := "in kernel"
		if !sv.InKernel {
			state = "NOT IN KERNEL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", sv.Name, sv.Key, state)
		fmt.Fprintf(tw, "  BACKEND\tHEALTH\tWEIGHT\tKERNEL\tACTIVE\tINACTIVE\tNOTE\n")
		for _, b := range sv.Backends {
			weight, kernel := "-", "-"
			if b.Configured {
				weight = fmt.Sprint(b.ConfiguredWeight)
			}
			if b.InKernel {
				kernel = fmt.Sprint(b.KernelWeight)
			}
			note := ""
			switch {
			case b.OperatorDrain:
				note = "drained by operator"
			case b.Draining:
				note = "draining"
			case !b.Configured:
				note = "not configured"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%d\t%s\n", b.Address, b.Health, weight, kernel, b.ActiveConns, b.InactiveConns, note)
		}
	}
	return tw.Flush()
}
