package sdnotify

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is systemd's end of the notify socket.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) send(state string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, state)
	return nil
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.msgs
	r.msgs = nil
	return m
}

func TestNotifySequence(t *testing.T) {
	var rec recorder
	clock := 5 * time.Second
	path := filepath.Join(t.TempDir(), "director.reload")
	n := &Notifier{send: rec.send, mono: func() time.Duration { return clock }, resultPath: path}

	steps := []struct {
		name string
		do   func() error
		want []string
		rec  *Result // the reload record after the step, if any
	}{
		{"ready", func() error { return n.Ready("3 services, vrrp backup") },
			[]string{"READY=1\nSTATUS=3 services, vrrp backup"}, nil},
		{"reloading", func() error { clock = 7 * time.Second; return n.Reloading() },
			[]string{"RELOADING=1\nMONOTONIC_USEC=7000000\nSTATUS=reloading"}, nil},
		{"applied", func() error { return n.ReloadApplied("reload applied: 4 services") },
			[]string{"READY=1\nSTATUS=reload applied: 4 services"},
			&Result{StartUsec: 7000000, Applied: true, Status: "reload applied: 4 services"}},
		{"reloading again", func() error { clock = 9 * time.Second; return n.Reloading() },
			[]string{"RELOADING=1\nMONOTONIC_USEC=9000000\nSTATUS=reloading"}, nil},
		{"rejected", func() error {
			return n.ReloadRejected(errors.New("t.toml:3:1: service \"web\": port 0\nt.toml:9:5: weight -1\n"))
		},
			[]string{"READY=1\nSTATUS=reload rejected, previous configuration kept: t.toml:3:1: service \"web\": port 0 (and 1 more)"},
			&Result{StartUsec: 9000000, Applied: false,
				Status: "reload rejected, previous configuration kept: t.toml:3:1: service \"web\": port 0 (and 1 more)",
				Errors: []string{"t.toml:3:1: service \"web\": port 0", "t.toml:9:5: weight -1"}}},
		{"status", func() error { return n.Status("line one\nline two") }, []string{"STATUS=line one"}, nil},
		{"stopping", n.Stopping, []string{"STOPPING=1\nSTATUS=stopping"}, nil},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := rec.take(); !slices.Equal(got, s.want) {
			t.Fatalf("%s: sent %q, want %q", s.name, got, s.want)
		}
		if s.rec != nil {
			got, err := readResult(path)
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			if got.StartUsec != s.rec.StartUsec || got.Applied != s.rec.Applied || got.Status != s.rec.Status || !slices.Equal(got.Errors, s.rec.Errors) {
				t.Fatalf("%s: record %+v, want %+v", s.name, got, *s.rec)
			}
		}
	}
}

func TestNilAndOutsideSystemd(t *testing.T) {
	var n *Notifier
	for _, f := range []func() error{func() error { return n.Ready("x") }, n.Reloading, n.Stopping,
		func() error { return n.ReloadApplied("x") }, func() error { return n.ReloadRejected(errors.New("x")) }} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("RUNTIME_DIRECTORY", "")
	if p := ResultPath("director"); p != "" {
		t.Fatalf("ResultPath outside a unit = %q", p)
	}
	t.Setenv("RUNTIME_DIRECTORY", "/run/golvs:/run/other")
	if p := ResultPath("director"); p != "/run/golvs/director.reload" {
		t.Fatalf("ResultPath = %q", p)
	}
}

func TestStatusLineHasNoNewline(t *testing.T) {
	if s := status1("a\nb"); strings.Contains(s, "\n") {
		t.Fatal(s)
	}
}
