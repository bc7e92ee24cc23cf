package director

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/health"
)

// Draining: a backend removed from the file, or down with
// on_failure=remove, stays with weight 0 until the kernel reports no
// connections or the service's drain_timeout has passed. Operator drains
// (director drain) give weight 0 until undrained and survive restarts in
// the state file.

// drainView adds operator drains to the health view.
type drainView struct {
	base   HealthView
	drains map[drainKey]bool
}

func (v drainView) Backend(service string, b netip.AddrPort) health.Status {
	st := v.base.Backend(service, b)
	if v.drains[drainKey{service, b}] {
		st.Drain = true
	}
	return st
}

// viewLocked is health with the operator drains (a copy) on top; r.mu
// must be held.
func (r *Reconciler) viewLocked() HealthView {
	if len(r.opDrains) == 0 {
		return r.health
	}
	return drainView{base: r.health, drains: maps.Clone(r.opDrains)}
}

// adoptUnknown keeps the kernel's weight for backends that health has no
// verdict on yet and that are already in the kernel (a restart must not
// zero every weight until the first checks run); desired changes in place.
func adoptUnknown(topo *config.Topology, view HealthView, desired, actual []ipvs.Entry) {
	if topo == nil {
		return
	}
	have := make(map[ipvs.ServiceKey]ipvs.Entry, len(actual))
	for _, e := range actual {
		have[e.Service.ServiceKey] = e
	}
	idx := make(map[ipvs.ServiceKey]int, len(desired))
	for i, e := range desired {
		idx[e.Service.ServiceKey] = i
	}
	for si := range topo.Services {
		s := &topo.Services[si]
		key := Key(s)
		a, ok := have[key]
		i, ok2 := idx[key]
		if !ok || !ok2 || !health.HasCheck(s.Check) {
			continue // nothing to adopt: an unchecked backend is up
		}
		kernel := make(map[netip.AddrPort]ipvs.Destination, len(a.Destinations))
		for _, d := range a.Destinations {
			kernel[d.Key()] = d
		}
		for _, b := range s.Backends {
			st := view.Backend(s.Name, b.AddrPort())
			k, inKernel := kernel[b.AddrPort()]
			if st.Checked || st.Drain || !inKernel {
				continue
			}
			found := false
			for j, d := range desired[i].Destinations {
				if d.Key() == b.AddrPort() {
					desired[i].Destinations[j].Weight = k.Weight
					found = true
				}
			}
			if !found { // on_failure=remove left it out
				d := desiredEntry(&config.Service{Name: s.Name, Forwarding: s.Forwarding,
					Backends: []config.Backend{b}}, upView{}).Destinations[0]
				d.Weight = k.Weight
				desired[i].Destinations = append(desired[i].Destinations, d)
				ipvs.SortDestinations(desired[i].Destinations)
			}
		}
	}
}

// keepDraining puts destinations that are leaving a desired service back
// into it with weight 0 while they still have connections and their drain
// has not timed out. It returns the drains still running (with the time
// each started); desired is changed in place. Both tables are sorted.
func keepDraining(timeouts map[ipvs.ServiceKey]time.Duration, desired, actual []ipvs.Entry, prev map[destKey]time.Time, now time.Time) map[destKey]time.Time {
	running := map[destKey]time.Time{}
	i, j := 0, 0
	for i < len(desired) && j < len(actual) {
		key := desired[i].Service.ServiceKey
		if c := ipvs.KeyCompare(key, actual[j].Service.ServiceKey); c != 0 {
			if c < 0 {
				i++
			} else {
				j++
			}
			continue
		}
		want, have := desired[i].Destinations, actual[j].Destinations
		var leaving []ipvs.Destination
		for x, y := 0, 0; y < len(have); {
			if x < len(want) {
				if c := ipvs.CompareDests(want[x], have[y]); c <= 0 {
					x++
					if c == 0 {
						y++
					}
					continue
				}
			}
			d := have[y]
			y++
			dk := destKey{key, d.Key()}
			start, ok := prev[dk]
			if !ok {
				start = now
			}
			timeout, ok := timeouts[key]
			if !ok {
				timeout = config.DefaultDrainTimeout
			}
			if d.ActiveConns+d.InactiveConns == 0 || now.Sub(start) >= timeout {
				continue // Plan deletes it
			}
			d.Weight = 0
			leaving = append(leaving, d)
			running[dk] = start
		}
		if len(leaving) > 0 {
			desired[i].Destinations = append(slices.Clone(want), leaving...)
			ipvs.SortDestinations(desired[i].Destinations)
		}
		i++
		j++
	}
	return running
}

// quorumStates is the quorum state of topo's services that have a quorum
// rule, by name.
func quorumStates(topo *config.Topology, view HealthView) map[string]Quorum {
	out := map[string]Quorum{}
	if topo == nil {
		return out
	}
	for i := range topo.Services {
		if s := &topo.Services[i]; s.Quorum > 0 {
			out[s.Name] = ServiceQuorum(s, view)
		}
	}
	return out
}

// recordQuorum logs each service's quorum loss and return once per
// transition (a lost quorum without a sorry server is otherwise silent:
// the service just has fewer servers).
func (r *Reconciler) recordQuorum(sc *scope, now map[string]Quorum) {
	r.mu.Lock()
	if r.quorumLost == nil {
		r.quorumLost = map[string]bool{}
	}
	type change struct {
		name string
		q    Quorum
	}
	var changes []change
	for name, q := range now {
		if q.Lost != r.quorumLost[name] {
			changes = append(changes, change{name, q})
			r.quorumLost[name] = q.Lost
		}
	}
	if sc.full() {
		for name := range r.quorumLost {
			if _, ok := now[name]; !ok {
				delete(r.quorumLost, name)
			}
		}
	}
	r.mu.Unlock()
	for _, c := range changes {
		sorry := "none"
		if s, ok := r.topoService(c.name); ok && s.SorryServer.IsValid() {
			sorry = s.SorryServer.String()
		}
		if c.q.Lost {
			r.log.Warn("quorum lost", "service", c.name, "serving", c.q.Serving, "quorum", c.q.Needed, "sorry_server", sorry)
		} else {
			r.log.Info("quorum regained", "service", c.name, "serving", c.q.Serving, "quorum", c.q.Needed)
		}
	}
}

// topoService finds a service of the topology in force by name.
func (r *Reconciler) topoService(name string) (*config.Service, bool) {
	r.mu.Lock()
	topo := r.topo
	r.mu.Unlock()
	if topo == nil {
		return nil, false
	}
	return topo.Service(name)
}

// recordDrains replaces the drains of the services in sc with this
// pass's, logs starts and ends, and makes Run poll while any runs (a
// reload pass may start a drain while Run waits).
func (r *Reconciler) recordDrains(sc *scope, draining map[destKey]time.Time) {
	r.mu.Lock()
	var over []destKey
	for k := range r.draining {
		if _, still := draining[k]; !still && sc.has(k.Service) {
			over = append(over, k)
			delete(r.draining, k)
		}
	}
	var started []destKey
	for k, t := range draining {
		if _, was := r.draining[k]; !was {
			started = append(started, k)
		}
		r.draining[k] = t
	}
	r.mu.Unlock()
	for _, k := range over {
		r.log.Info("drain over", "service", k.Service.String(), "backend", k.Dest)
	}
	for _, k := range started {
		r.log.Info("draining backend", "service", k.Service.String(), "backend", k.Dest, "since", draining[k])
	}
	if len(draining) > 0 && !sc.full() {
		select {
		case r.rearm <- struct{}{}:
		default:
		}
	}
}

// findBackend checks that service and backend are in the topology.
func (r *Reconciler) findBackendLocked(service string, backend netip.AddrPort) error {
	if r.topo == nil {
		return fmt.Errorf("service %q: %w", service, ErrUnknownService)
	}
	for i := range r.topo.Services {
		s := &r.topo.Services[i]
		if s.Name != service {
			continue
		}
		for _, b := range s.Backends {
			if b.AddrPort() == backend {
				return nil
			}
		}
		return fmt.Errorf("service %q: backend %s: %w", service, backend, ErrUnknownBackend)
	}
	return fmt.Errorf("service %q: %w", service, ErrUnknownService)
}

// Drain is an operator drain: the backend gets weight 0 and keeps its
// connections until Undrain. It survives restarts (state file).
func (r *Reconciler) Drain(service string, backend netip.AddrPort) error {
	return r.setDrain(service, backend, true)
}

// Undrain ends an operator drain.
func (r *Reconciler) Undrain(service string, backend netip.AddrPort) error {
	return r.setDrain(service, backend, false)
}

func (r *Reconciler) setDrain(service string, backend netip.AddrPort, on bool) error {
	r.mu.Lock()
	r.loadStateLocked()
	k := drainKey{service, backend}
	if on {
		if err := r.findBackendLocked(service, backend); err != nil {
			r.mu.Unlock()
			return err
		}
		r.opDrains[k] = true
	} else {
		if !r.opDrains[k] {
			err := r.findBackendLocked(service, backend)
			r.mu.Unlock()
			return err // not drained: nothing to do, unless unknown
		}
		delete(r.opDrains, k)
	}
	if err := r.saveStateLocked(); err != nil {
		// Not in force unless recorded: a drain that a restart would
		// forget must not be reported as done.
		if on {
			delete(r.opDrains, k)
		} else {
			r.opDrains[k] = true
		}
		r.mu.Unlock()
		return fmt.Errorf("not recorded, so not done: %w", err)
	}
	r.drainsGen++
	r.mu.Unlock()
	r.log.Info("operator drain", "service", service, "backend", backend, "drain", on)
	r.Kick()
	if r.onDrain != nil {
		r.onDrain()
	}
	return nil
}

// HealthView is health with the operator drains in force now on top.
func (r *Reconciler) HealthView() HealthView {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loadStateLocked()
	return r.viewLocked()
}
