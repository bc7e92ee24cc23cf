package vrrp

import (
	"fmt"
	"slices"
)

// DefaultHistoryLen is how many transitions Status keeps when
// Config.HistoryLen is zero: enough to see a flap, small enough to print.
const DefaultHistoryLen = 16

// appendHistory adds t and drops the oldest entries beyond n.
func appendHistory(h []Transition, t Transition, n int) []Transition {
	h = append(h, t)
	if over := len(h) - n; over > 0 {
		h = slices.Delete(h, 0, over)
	}
	return h
}

// FormatTransitions renders a Status's history for `director status`, newest
// first, one line per transition:
//
//	2026-12-02T06:55:01.250Z backup -> master: master down timer expired
//
// Times are UTC with milliseconds: failover steps are often closer together
// than a second.
func FormatTransitions(ts []Transition) []string {
	out := make([]string, 0, len(ts))
	for i := len(ts) - 1; i >= 0; i-- {
		t := ts[i]
		line := fmt.Sprintf("%s %s -> %s", t.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"), t.From, t.To)
		if t.Reason != "" {
			line += ": " + t.Reason
		}
		out = append(out, line)
	}
	return out
}
