package health

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golvs/golvs/health/check"
)

var (
	t0      = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ok      = check.Up(nil)
	refused = check.Up(errors.New("connect: connection refused"))
)

type step struct {
	res         check.Result
	wantUp      bool
	wantChanged bool
	wantReason  string // substring
}

func runSteps(t *testing.T, s *State, steps []step) {
	t.Helper()
	for i, st := range steps {
		now := t0.Add(time.Duration(i+1) * time.Second)
		before := s.Status()
		changed := s.Observe(st.res, now)
		got := s.Status()
		if got.Up != st.wantUp || changed != st.wantChanged || !strings.Contains(got.Reason, st.wantReason) {
			t.Fatalf("step %d (err=%v): up=%v changed=%v reason=%q, want up=%v changed=%v reason~%q",
				i, st.res.Err, got.Up, changed, got.Reason, st.wantUp, st.wantChanged, st.wantReason)
		}
		if !got.Checked {
			t.Fatalf("step %d: not Checked after a result", i)
		}
		wantSince := before.Since
		if got.Up != before.Up {
			wantSince = now
		}
		if !got.Since.Equal(wantSince) {
			t.Fatalf("step %d: since %v, want %v", i, got.Since, wantSince)
		}
	}
}

func TestStateStartsDownUnchecked(t *testing.T) {
	s := NewState(2, 3, t0)
	got := s.Status()
	want := Status{WeightPercent: -1, Reason: ReasonNotChecked, Since: t0}
	if got != want {
		t.Errorf("new state %+v, want %+v", got, want)
	}
}

func TestStateFirstResultDecides(t *testing.T) {
	t.Run("first success is up at once", func(t *testing.T) {
		runSteps(t, NewState(3, 3, t0), []step{
			{ok, true, true, ReasonPassed},
		})
	})
	t.Run("first failure confirms down, then rise applies", func(t *testing.T) {
		runSteps(t, NewState(3, 3, t0), []step{
			{refused, false, true, "connection refused"}, // Checked flips
			{ok, false, false, "1 of 3 to rise"},
			{ok, false, false, "2 of 3 to rise"},
			{ok, true, true, ReasonPassed},
		})
	})
}

func TestStateRiseFall(t *testing.T) {
	runSteps(t, NewState(2, 3, t0), []step{
		{ok, true, true, ReasonPassed},
		{refused, true, false, "connection refused (1 of 3 to fall)"},
		{refused, true, false, "(2 of 3 to fall)"},
		{ok, true, false, ReasonPassed}, // a success resets the fall count
		{refused, true, false, "(1 of 3 to fall)"},
		{refused, true, false, "(2 of 3 to fall)"},
		{refused, false, true, "connect: connection refused"},
		{refused, false, false, "connection refused"},
		{ok, false, false, "1 of 2 to rise"},
		{refused, false, false, "connection refused"}, // a failure resets the rise count
		{ok, false, false, "1 of 2 to rise"},
		{ok, true, true, ReasonPassed},
	})
}

func TestStateFlapping(t *testing.T) {
	// Alternating results never reach rise=2 or fall=2: the verdict holds.
	steps := []step{{ok, true, true, ReasonPassed}}
	for range 10 {
		steps = append(steps, step{refused, true, false, "1 of 2 to fall"}, step{ok, true, false, ReasonPassed})
	}
	runSteps(t, NewState(2, 2, t0), steps)

	s := NewState(2, 2, t0)
	s.Observe(refused, t0)
	for i := range 10 {
		if s.Observe(ok, t0) || s.Observe(refused, t0) || s.Status().Up {
			t.Fatalf("round %d: a flapping down backend came up", i)
		}
	}
}

func TestStateRiseFallOne(t *testing.T) {
	// Zero counts (never produced by the loader) act as 1.
	runSteps(t, NewState(0, 0, t0), []step{
		{ok, true, true, ""},
		{refused, false, true, ""},
		{ok, true, true, ""},
	})
}

func TestStateAgent(t *testing.T) {
	s := NewState(2, 2, t0)
	drain := check.Result{Drain: true, WeightPercent: -1}
	half := check.Result{WeightPercent: 50}

	if !s.Observe(half, t0) || s.Status() != (Status{Up: true, WeightPercent: 50, Reason: "agent asks for weight 50%", Since: t0, Checked: true}) {
		t.Fatalf("first 50%%: %+v", s.Status())
	}
	if !s.Observe(drain, t0) || !s.Status().Drain || s.Status().WeightPercent != -1 || s.Status().Reason != "agent asks to drain" {
		t.Fatalf("drain applies at once: %+v", s.Status())
	}
	// A failure below fall keeps the last report.
	if s.Observe(refused, t0) || !s.Status().Drain {
		t.Fatalf("one failure: %+v", s.Status())
	}
	// Going down forgets it.
	if !s.Observe(refused, t0) || s.Status().Up || s.Status().Drain || s.Status().WeightPercent != -1 {
		t.Fatalf("down: %+v", s.Status())
	}
	// While down, reports wait for rise.
	if s.Observe(half, t0) || s.Status().WeightPercent != -1 {
		t.Fatalf("down, one 50%%: %+v", s.Status())
	}
	if !s.Observe(half, t0) || s.Status().WeightPercent != 50 || !s.Status().Up {
		t.Fatalf("up again at 50%%: %+v", s.Status())
	}
	if !s.Observe(ok, t0) || s.Status().WeightPercent != -1 {
		t.Fatalf("plain up clears the weight: %+v", s.Status())
	}
}

func TestStateReconfigure(t *testing.T) {
	s := NewState(2, 3, t0)
	s.Observe(ok, t0)
	s.Observe(refused, t0)
	s.Observe(refused, t0)
	s.Reconfigure(1, 2)
	if !s.Status().Up {
		t.Fatal("reconfigure changed the verdict")
	}
	// Counting restarted: two more failures (fall=2) are needed, not one.
	if s.Observe(refused, t0) {
		t.Fatal("down after one failure: the fall count was not reset")
	}
	if !s.Observe(refused, t0) || s.Status().Up {
		t.Fatal("still up after fall=2 failures")
	}
	if !s.Observe(ok, t0) || !s.Status().Up {
		t.Fatal("not up after rise=1 success")
	}
}
