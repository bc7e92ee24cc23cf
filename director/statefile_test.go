package director

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golvs/golvs/director/ipvs"
)

// Two directors on one state file would delete each other's services:
// the second is refused before it touches anything.
func TestStateFileLocked(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d.state")
	l, err := lockState(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockState(p); err == nil || !strings.Contains(err.Error(), "in use by another director") {
		t.Errorf("second lock: %v", err)
	}
	l.Close()
	l2, err := lockState(p)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Close()
}

// A forged state file (writable by others, or not a regular file) is not
// believed: the foreign service it names survives, and the file is
// neither trusted by `run` nor written over.
func TestForgedStateFileNotTrusted(t *testing.T) {
	f := newFixture(t)
	if err := os.MkdirAll(filepath.Dir(f.state), 0o700); err != nil {
		t.Fatal(err)
	}
	forged := `{"services":[{"Family":2,"Protocol":17,"Address":"10.0.0.10","Port":9999,"FWMark":0}]}`
	if err := os.WriteFile(f.state, []byte(forged), 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(f.state, 0o666)
	if err := CheckStateFile(f.state); !errors.Is(err, errUntrusted) {
		t.Errorf("CheckStateFile of a world-writable file: %v", err)
	}
	if err := f.fake.AddService(context.Background(), foreignEntry.Service); err != nil {
		t.Fatal(err)
	}
	r := f.reconciler(topo(webService(backend(be1, 1))), nil)
	f.sync(r)
	f.expect("foreign service kept", ipvs.Entry{Service: foreignEntry.Service}, ipvsEntry(webSvc, dst(be1, 1)))
	if b, _ := os.ReadFile(f.state); string(b) != forged {
		t.Errorf("the untrusted file was written over: %s", b)
	}
	// A directory, a FIFO: not regular files.
	dir := filepath.Join(t.TempDir(), "st")
	os.Mkdir(dir, 0o700)
	if err := CheckStateFile(dir); !errors.Is(err, errUntrusted) {
		t.Errorf("CheckStateFile of a directory: %v", err)
	}
}

// A truncated state file of ours is kept aside, not overwritten.
func TestDamagedStateFileKeptAside(t *testing.T) {
	f := newFixture(t)
	if err := os.MkdirAll(filepath.Dir(f.state), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.state, []byte(`{"services":[{"Fam`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := f.reconciler(topo(webService(backend(be1, 1))), nil)
	f.sync(r)
	aside, _ := filepath.Glob(f.state + ".damaged-*")
	if len(aside) != 1 {
		t.Fatalf("damaged file not kept aside: %v", aside)
	}
	if b, _ := os.ReadFile(aside[0]); string(b) != `{"services":[{"Fam` {
		t.Errorf("kept aside changed: %q", b)
	}
	if st, err := readState(f.state); err != nil || len(st.Services) != 1 {
		t.Errorf("new state %+v, %v", st, err)
	}
}

// With the state directory unwritable, a drain reports an error and is
// not in force; ownership of services created meanwhile is written once
// the directory is back.
func TestStateWriteFailure(t *testing.T) {
	f := newFixture(t)
	parent := filepath.Join(t.TempDir(), "var")
	f.state = filepath.Join(parent, "golvs", "d.state")
	// A file where the directory should be: every write fails (root
	// ignores permission bits, so a read-only directory would not).
	if err := os.WriteFile(parent, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := f.reconciler(topo(webService(backend(be1, 1), backend(be2, 1))), nil)
	if err := r.Sync(context.Background()); err == nil {
		t.Error("a pass that could not record ownership reported no error")
	}
	f.expect("serving anyway", ipvsEntry(webSvc, dst(be1, 1), dst(be2, 1)))
	if r.StateError() == nil {
		t.Error("StateError is nil while the state cannot be written")
	}
	err := r.Drain("web", ap(be2))
	if err == nil || !strings.Contains(err.Error(), "not recorded") {
		t.Fatalf("drain with no state directory: %v", err)
	}
	f.sync2(r)
	f.expect("drain not in force", ipvsEntry(webSvc, dst(be1, 1), dst(be2, 1)))

	// Space returns: the next pass writes the state, services included.
	os.Remove(parent)
	f.sync(r)
	if r.StateError() != nil {
		t.Errorf("StateError after recovery: %v", r.StateError())
	}
	// The metrics: every failed attempt counted (the first pass's two,
	// recording ownership and its retry at the end, the drain's, the
	// next pass's retry), no error now.
	if n, err := r.StateWrites(); n != 4 || err != nil {
		t.Errorf("StateWrites = %d, %v; want 4 failures and no error now", n, err)
	}
	st, err := readState(f.state)
	if err != nil || len(st.Services) != 1 {
		t.Errorf("state after recovery: %+v, %v", st, err)
	}
	if err := r.Drain("web", ap(be2)); err != nil {
		t.Errorf("drain after recovery: %v", err)
	}
}

// sync2 runs a pass whose state error is expected.
func (f *fixture) sync2(r *Reconciler) { r.Sync(context.Background()) }
