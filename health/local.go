package health

import "time"

// A probe that fails with check.ErrLocal (the director out of descriptors,
// buffers, memory or local ports) says nothing about the backend: a
// director short of file descriptors once marked half of 9,000 healthy
// backends down. The monitor keeps the backend's last state, counts the
// result (LocalErrors) and logs it at most once per localLogEvery.
//
// The price: while the local error lasts, a backend that really fails is
// not noticed either. That is why it is counted and logged as an error to
// fix, not hidden.

// localLogEvery bounds the local-error log to one line per period.
const localLogEvery = 10 * time.Second

// localLog rate-limits the local-error log; guarded by Monitor.mu.
type localLog struct {
	last       time.Time
	suppressed uint64
}

// note counts a local error of a probe of k and returns the line to log,
// if one is due (at most one per localLogEvery).
func (l *localLog) note(k key, err error, now time.Time) (localLine, bool) {
	if !l.last.IsZero() && now.Sub(l.last) < localLogEvery {
		l.suppressed++
		return localLine{}, false
	}
	line := localLine{key: k, err: err, suppressed: l.suppressed}
	l.last, l.suppressed = now, 0
	return line, true
}

type localLine struct {
	key        key
	err        error
	suppressed uint64        // since the previous line
	stalled    time.Duration // of the probe, for a stalled one
}

func (m *Monitor) logLocal(l localLine) {
	m.log.Error("health probe failed on the director, backend keeps its state",
		"service", l.key.service, "backend", l.key.backend, "err", l.err, "similar_since_last_line", l.suppressed)
}

func (m *Monitor) logStalled(l localLine) {
	m.log.Warn("health probe timed out while the director itself stalled, backend keeps its state",
		"service", l.key.service, "backend", l.key.backend, "err", l.err, "stalled", l.stalled.Round(time.Millisecond),
		"similar_since_last_line", l.suppressed)
}

// StalledProbes is how many probes timed out while the director itself
// stalled for at least half their timeout (stall.go); each left its
// backend's state as it was.
func (m *Monitor) StalledProbes() uint64 { return m.stalledProbes.Load() }

// LocalErrors is how many probes failed for the director's own reasons
// (check.ErrLocal) since the monitor was made; each left its backend's
// state as it was.
func (m *Monitor) LocalErrors() uint64 { return m.localErrors.Load() }
