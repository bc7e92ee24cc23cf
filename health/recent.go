package health

import (
	"fmt"
	"sync"
	"time"
)

// recentMax bounds the transitions kept for the status page.
const recentMax = 32

// recentLog is a ring of the last health transitions, as lines.
type recentLog struct {
	mu    sync.Mutex
	lines [recentMax]string
	next  int // where the next line goes
	n     int // lines held
}

func (r *recentLog) add(line string) {
	r.mu.Lock()
	r.lines[r.next] = line
	r.next = (r.next + 1) % recentMax
	r.n = min(r.n+1, recentMax)
	r.mu.Unlock()
}

// newestFirst copies the lines out, newest first.
func (r *recentLog) newestFirst() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, r.n)
	for i := 1; i <= r.n; i++ {
		out = append(out, r.lines[(r.next-i+recentMax)%recentMax])
	}
	return out
}

// noteTransition keeps one line per health event, in the format of the
// VRRP transitions: "TIME SERVICE BACKEND from -> to: reason".
func (m *Monitor) noteTransition(tr transition, at time.Time) {
	from, to := upDown(tr.before), upDown(tr.after)
	if from == to {
		to = fmt.Sprintf("%s (drain %v, weight %d%%)", to, tr.after.Drain, tr.after.WeightPercent)
	}
	line := fmt.Sprintf("%s %s %s %s -> %s", at.UTC().Format("2006-01-02T15:04:05.000Z07:00"), tr.key.service, tr.key.backend, from, to)
	if tr.after.Reason != "" {
		line += ": " + tr.after.Reason
	}
	m.recent.add(line)
}

// RecentTransitions returns the last backend health transitions with
// their reasons, newest first (at most 32).
func (m *Monitor) RecentTransitions() []string { return m.recent.newestFirst() }
