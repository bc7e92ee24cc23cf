// Package health decides which backends are up: checkers (package
// health/check) probe them, a rise/fall State turns probe results into an
// up/down verdict, and the Monitor schedules the probes and publishes the
// verdicts for the director.
//
// The director uses it like this:
//
//	mon := health.New(log, reconciler.Kick)
//	mon.Update(targets)      // on start and on every accepted reload
//	go mon.Run(ctx)
//	st := mon.Backend("web", backend.AddrPort())
//	// st.Up: may get traffic; st.Drain: weight 0, keep connections;
//	// st.WeightPercent: agent's weight, -1 = none; st.Checked: false
//	// until the first probe result, st.Reason/st.Since for status output.
package health

import (
	"fmt"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/health/check"
)

// Status is one backend's health as the director sees it.
type Status struct {
	// Up: the backend may receive traffic.
	Up bool
	// Drain: up, but its agent asked for weight 0 while existing
	// connections finish.
	Drain bool
	// WeightPercent is the agent-reported weight 0..100, or -1 when the
	// agent reported none (or there is no agent).
	WeightPercent int
	// Reason explains the current state, e.g. "connect: connection refused".
	Reason string
	// Since is when Up last changed (or when the backend was first seen).
	Since time.Time
	// Checked is false until the first probe result: the director may
	// prefer to leave such a backend's kernel weight alone, e.g. right
	// after its own restart.
	Checked bool
	// Excused counts the probes that left this state alone because the
	// director, not the backend, failed them: it stalled through the
	// probe's timeout, or a local error (stall.go, local.go). Each such
	// probe puts off a rise or a fall by one interval; a lab test allows
	// for them by this count.
	Excused uint64
}

// WeightNotReported is Status.WeightPercent when no agent reported one.
const WeightNotReported = check.WeightNotReported

// HasCheck reports whether c checks anything: a backend of a service
// without a check (nil or type none) is always up.
func HasCheck(c *config.Check) bool { return c != nil && c.Type != config.CheckNone }

// Initial is a backend's status before the monitor has a verdict on it:
// up when nothing will ever check it, else down and not yet checked. It is
// the one place that decides "no check means up", for the monitor, the
// director's desired table (a reload applies new backends before the
// monitor hears of them) and `director plan`.
func Initial(c *config.Check, now time.Time) Status {
	if !HasCheck(c) {
		return Status{Up: true, WeightPercent: WeightNotReported, Reason: ReasonNoCheck, Since: now, Checked: true}
	}
	return Status{WeightPercent: WeightNotReported, Reason: ReasonNotChecked, Since: now}
}

// Reasons that are not a checker's error.
const (
	ReasonNotChecked = "not checked yet"
	ReasonNoCheck    = "no check configured"
	ReasonPassed     = "check passed"
)

// State is the rise/fall state machine of one backend. It is not safe for
// concurrent use; the Monitor guards it.
//
// A backend starts down and unchecked. The first result decides at once:
// one success makes it up, one failure confirms it down. A new backend
// thus gets no traffic before one probe has proven it, yet a director
// (re)starting with many healthy backends serves them after one interval
// rather than rise intervals. From then on, rise consecutive successes are
// needed to go up and fall consecutive failures to go down.
type State struct {
	rise, fall int
	st         Status
	successes  int
	failures   int
}

// NewState returns a backend that is down and not yet checked.
func NewState(rise, fall int, now time.Time) *State {
	return &State{
		rise: max(rise, 1),
		fall: max(fall, 1),
		st:   Initial(&config.Check{Type: config.CheckTCP}, now),
	}
}

// newUpState returns a backend that has no check and is always up.
func newUpState(now time.Time) *State {
	s := NewState(1, 1, now)
	s.st = Initial(nil, now)
	return s
}

// Status returns the current verdict.
func (s *State) Status() Status { return s.st }

// Excuse notes a probe that says nothing about the backend.
func (s *State) Excuse() { s.st.Excused++ }

// Reconfigure applies new rise/fall counts after a check's configuration
// changed: the verdict stays, the counting starts over.
func (s *State) Reconfigure(rise, fall int) {
	s.rise, s.fall = max(rise, 1), max(fall, 1)
	s.successes, s.failures = 0, 0
}

// Observe feeds one probe result and reports whether Up, Drain,
// WeightPercent or Checked changed: what the director acts on. Reason
// alone changing is not a change.
func (s *State) Observe(r check.Result, now time.Time) (changed bool) {
	old := s.st
	first := !s.st.Checked
	s.st.Checked = true
	if r.Err != nil {
		s.successes = 0
		s.failures++
		if s.st.Up && s.failures >= s.fall {
			s.st.Up, s.st.Since = false, now
		}
		if s.st.Up {
			s.st.Reason = fmt.Sprintf("%v (%d of %d to fall)", r.Err, s.failures, s.fall)
		} else {
			// While down, the latest failure is the most useful reason.
			s.st.Reason = r.Err.Error()
			s.st.Drain, s.st.WeightPercent = false, -1
		}
		return statusChanged(old, s.st)
	}
	s.failures = 0
	s.successes++
	if !s.st.Up && (first || s.successes >= s.rise) {
		s.st.Up, s.st.Since = true, now
	}
	if s.st.Up {
		// The agent's wishes apply at once: they are not a health verdict.
		s.st.Drain, s.st.WeightPercent = r.Drain, r.WeightPercent
		s.st.Reason = upReason(r)
	} else {
		s.st.Reason = fmt.Sprintf("%s, %d of %d to rise", ReasonPassed, s.successes, s.rise)
	}
	return statusChanged(old, s.st)
}

func upReason(r check.Result) string {
	switch {
	case r.Drain:
		return "agent asks to drain"
	case r.WeightPercent >= 0:
		return fmt.Sprintf("agent asks for weight %d%%", r.WeightPercent)
	}
	return ReasonPassed
}

func statusChanged(a, b Status) bool {
	return a.Up != b.Up || a.Drain != b.Drain || a.WeightPercent != b.WeightPercent || a.Checked != b.Checked
}
