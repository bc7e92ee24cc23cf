package metrics

import (
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golvs/golvs/director/status"
)

// historyLen is how many samples each backend keeps: a minute at the
// page's one update a second.
const historyLen = 60

// historyGap is the least time between two samples, however many readers
// ask: the table behind Status changes at most once a second anyway.
const historyGap = 900 * time.Millisecond

// rateWindow is how many samples back the connection rate looks.
const rateWindow = 5

// Sample is one backend at one moment.
type Sample struct {
	At       int64  `json:"t"` // Unix milliseconds
	Up       bool   `json:"up"`
	Weight   int    `json:"weight"` // in the kernel; -1 when not in it
	Active   int    `json:"active"`
	Inactive int    `json:"inactive"`
	Conns    uint64 `json:"-"`
}

type histKey struct {
	service string
	backend netip.AddrPort
}

// ring is one backend's last historyLen samples.
type ring struct {
	s    [historyLen]Sample
	next int
	n    int
}

func (r *ring) add(s Sample) {
	r.s[r.next] = s
	r.next = (r.next + 1) % historyLen
	r.n = min(r.n+1, historyLen)
}

// oldestFirst copies the samples out.
func (r *ring) oldestFirst() []Sample {
	out := make([]Sample, 0, r.n)
	for i := r.n; i >= 1; i-- {
		out = append(out, r.s[(r.next-i+historyLen)%historyLen])
	}
	return out
}

// history holds the samples of the backends in the latest status only,
// so its memory is bounded by backends × historyLen whatever came and
// went before.
type history struct {
	mu     sync.Mutex
	last   time.Time
	series map[histKey]*ring
}

func newHistory() *history { return &history{series: map[histKey]*ring{}} }

// record adds st as one sample per backend, unless the last sample is
// younger than historyGap.
func (h *history) record(st status.Status, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.last.IsZero() && now.Sub(h.last) < historyGap && !now.Before(h.last) {
		return
	}
	h.last = now
	seen := make(map[histKey]bool, len(h.series))
	for _, sv := range st.Services {
		for _, b := range sv.Backends {
			k := histKey{sv.Name, b.Address}
			seen[k] = true
			r := h.series[k]
			if r == nil {
				r = &ring{}
				h.series[k] = r
			}
			w := -1
			if b.InKernel {
				w = b.KernelWeight
			}
			r.add(Sample{At: now.UnixMilli(), Up: b.Health != "down", Weight: w,
				Active: b.ActiveConns, Inactive: b.InactiveConns, Conns: b.Conns})
		}
	}
	for k := range h.series {
		if !seen[k] {
			delete(h.series, k)
		}
	}
}

// get returns a backend's samples, oldest first, and its connections per
// second over the last rateWindow samples (-1 when unknown).
func (h *history) get(service string, backend netip.AddrPort) ([]Sample, float64) {
	h.mu.Lock()
	r := h.series[histKey{service, backend}]
	var ss []Sample
	if r != nil {
		ss = r.oldestFirst()
	}
	h.mu.Unlock()
	return ss, connRate(ss)
}

func connRate(ss []Sample) float64 {
	if len(ss) < 2 {
		return -1
	}
	a, b := ss[max(0, len(ss)-rateWindow)], ss[len(ss)-1]
	dt := float64(b.At-a.At) / 1000
	if dt <= 0 || b.Conns < a.Conns { // a counter that restarted
		return -1
	}
	return float64(b.Conns-a.Conns) / dt
}

// Spark is a backend's history drawn as SVG: polyline points for its
// active connections and its kernel weight, and where it was down.
type Spark struct {
	Active    string `json:"active"`
	Weight    string `json:"weight"`
	Down      []int  `json:"down"` // x of each down sample
	Step      int    `json:"step"`
	MaxActive int    `json:"max_active"`
}

// Size of the chart in SVG units.
const (
	sparkW    = 120
	sparkH    = 24
	sparkStep = sparkW / (historyLen - 1)
)

// spark draws ss with the newest sample at the right edge; the page's
// script only copies these attributes, so server and browser draw alike.
func spark(ss []Sample) Spark {
	sp := Spark{Down: []int{}, Step: sparkStep}
	maxW := 1
	for _, s := range ss {
		sp.MaxActive = max(sp.MaxActive, s.Active)
		maxW = max(maxW, s.Weight)
	}
	scale := func(v, top int) int {
		if v < 0 {
			v = 0
		}
		return sparkH - 2 - v*(sparkH-4)/max(top, 1)
	}
	var act, wt strings.Builder
	for i, s := range ss {
		x := sparkW - (len(ss)-1-i)*sparkStep
		pt := func(b *strings.Builder, y int) {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.Itoa(x) + "," + strconv.Itoa(y))
		}
		pt(&act, scale(s.Active, sp.MaxActive))
		pt(&wt, scale(s.Weight, maxW))
		if !s.Up {
			sp.Down = append(sp.Down, x-sparkStep/2)
		}
	}
	sp.Active, sp.Weight = act.String(), wt.String()
	return sp
}
