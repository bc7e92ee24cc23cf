package director

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// drain-self is recorded in the state file: a restarted director (a new
// Reconciler on the same file) is still drained until undrain-self, and
// the services and backend drains recorded beside it are kept.
func TestSelfDrainSurvivesRestart(t *testing.T) {
	f := newFixture(t)
	tp := topo(webService(backend(be1, 1), backend(be2, 1)))
	r := f.reconciler(tp, nil)
	f.sync(r)
	if err := r.Drain("web", ap(be2)); err != nil {
		t.Fatal(err)
	}
	if r.SelfDrained() {
		t.Fatal("drained before drain-self")
	}
	if err := r.SetSelfDrain(true); err != nil {
		t.Fatal(err)
	}
	again := f.reconciler(tp, nil)
	if !again.SelfDrained() {
		t.Error("a restarted director forgot drain-self")
	}
	st, err := readState(f.state)
	if err != nil || !st.SelfDrained || len(st.Services) != 1 || len(st.Drains) != 1 {
		t.Errorf("state = %+v, %v; want drain-self, the service and the backend drain", st, err)
	}
	if err := again.SetSelfDrain(false); err != nil {
		t.Fatal(err)
	}
	if f.reconciler(tp, nil).SelfDrained() {
		t.Error("undrain-self was not recorded")
	}
	if b, _ := os.ReadFile(f.state); strings.Contains(string(b), "self_drained") {
		t.Errorf("an undrained state still names self_drained:\n%s", b)
	}
}

// A drain-self that cannot be recorded is refused and not in force.
func TestSelfDrainNotRecorded(t *testing.T) {
	f := newFixture(t)
	parent := filepath.Join(t.TempDir(), "var")
	f.state = filepath.Join(parent, "golvs", "d.state")
	if err := os.WriteFile(parent, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := f.reconciler(topo(webService(backend(be1, 1))), nil)
	if err := r.SetSelfDrain(true); err == nil || !strings.Contains(err.Error(), "not recorded") {
		t.Fatalf("drain-self with no state directory: %v", err)
	}
	if r.SelfDrained() {
		t.Error("an unrecorded drain-self is in force")
	}
	os.Remove(parent)
	if err := r.SetSelfDrain(true); err != nil || !r.SelfDrained() {
		t.Errorf("drain-self once the directory is back: %v, drained %v", err, r.SelfDrained())
	}
}
