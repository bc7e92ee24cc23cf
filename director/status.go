package director

import (
	"context"
	"net/netip"
	"sync"
	"time"

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

// StatusMaxAge is how old the table behind Status may be: every reader
// (status, metrics, the status page) is served from one shared copy, read
// again at most this often, so readers never queue kernel dumps behind
// the reconciler's writes however many there are.
const StatusMaxAge = time.Second

// statusReadTimeout bounds the shared read; it is not any one reader's,
// so a reader that leaves cancels nothing for the others.
const statusReadTimeout = 30 * time.Second

// readerTable is the table readers are served from.
type readerTable struct {
	mu      sync.Mutex
	entries []ipvs.Entry // shared, never changed after it is stored
	at      time.Time
	err     error
	reading chan struct{} // closed when the read under way ends
}

// table returns the kernel's table as of at most StatusMaxAge ago:
// the last one read, or one read now on behalf of every waiting reader.
func (r *Reconciler) table(ctx context.Context) ([]ipvs.Entry, error) {
	t := &r.readers
	for {
		t.mu.Lock()
		if !t.at.IsZero() && time.Since(t.at) < StatusMaxAge {
			es, err := t.entries, t.err
			t.mu.Unlock()
			return es, err
		}
		if t.reading == nil {
			t.reading = make(chan struct{})
			go r.readForReaders()
		}
		wait := t.reading
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wait:
		}
	}
}

func (r *Reconciler) readForReaders() {
	ctx, cancel := context.WithTimeout(context.Background(), statusReadTimeout)
	defer cancel()
	es, err := survey(ctx, r.kernel, nil)
	t := &r.readers
	t.mu.Lock()
	t.entries, t.err, t.at = es, err, time.Now()
	close(t.reading)
	t.reading = nil
	t.mu.Unlock()
}

// shareRead hands a full pass's read to readers when the pass changed
// nothing (else it is already out of date).
func (r *Reconciler) shareRead(actual []ipvs.Entry, wrote bool) {
	t := &r.readers
	t.mu.Lock()
	defer t.mu.Unlock()
	if wrote {
		t.at = time.Time{}
		return
	}
	t.entries, t.err, t.at = actual, nil, time.Now()
}

// Status reports every configured service, from the shared table.
func (r *Reconciler) Status(ctx context.Context) (Status, error) {
	actual, err := r.table(ctx)
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
		q := ServiceQuorum(s, drainView{base: r.health, drains: drains})
		ss := ServiceStatus{Name: s.Name, Key: key.String(), InKernel: in, Backends: []BackendStatus{},
			Quorum: q.Needed, Serving: q.Serving, QuorumLost: q.Lost}
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
				ExcusedProbes:    h.Excused,
			}
			if d, ok := kd[ap]; ok {
				bs.InKernel, bs.KernelWeight = true, d.Weight
				bs.ActiveConns, bs.InactiveConns, bs.Conns = d.ActiveConns, d.InactiveConns, d.Conns
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
				Conns:         d.Conns,
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
