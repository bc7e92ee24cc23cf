package director

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golvs/golvs/director/status"
)

func TestControlSocket(t *testing.T) {
	f := newFixture(t)
	r := f.reconciler(topo(webService(backend(be1, 1), backend(be2, 1))), nil)
	f.sync(r)

	dir := filepath.Join(t.TempDir(), "ctl")
	path := filepath.Join(dir, "director.sock")
	// A stale socket from a dead director is replaced.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	srv := &ControlServer{Path: path, Controller: r, VRRPState: func() (string, []string) {
		return "master", []string{"2026-01-01T00:00:01.000Z backup->master (master down timer expired)", "2026-01-01T00:00:00.000Z init->backup (startup)"}
	}}
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()

	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	// A second server must not steal a live socket.
	if _, err := (&ControlServer{Path: path}).Listen(); err == nil {
		t.Error("second Listen on a live socket succeeded")
	}

	c := ControlClient{Path: path}
	if err := c.Drain(ctx, "web", ap(be2)); err != nil {
		t.Fatal(err)
	}
	f.sync(r)
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.VRRPTransitions) != 2 || !strings.Contains(st.VRRPTransitions[0], "backup->master") {
		t.Errorf("status does not carry the VRRP transitions: %q", st.VRRPTransitions)
	}
	if st.VRRP != "master" || len(st.Services) != 1 || st.Services[0].Name != "web" {
		t.Fatalf("status = %+v", st)
	}
	b := st.Services[0].Backends
	if len(b) != 2 || b[1].Address != ap(be2) || !b[1].OperatorDrain || b[1].KernelWeight != 0 || b[0].KernelWeight != 1 {
		t.Errorf("backends after drain = %+v", b)
	}
	if err := c.Undrain(ctx, "web", ap(be2)); err != nil {
		t.Fatal(err)
	}
	f.sync(r)
	f.expect("undrained", webEntry(dst(be1, 1), dst(be2, 1)))

	if err := c.Drain(ctx, "nope", ap(be2)); err == nil || !strings.Contains(err.Error(), "unknown service") {
		t.Errorf("drain of unknown service: %v", err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket left behind after shutdown: %v", err)
	}
}

// fakeSelf is a routed director's drain-self as the control socket sees it.
type fakeSelf struct {
	drained bool
	err     error
}

func (f *fakeSelf) BGPStatus(context.Context) *status.BGP {
	return &status.BGP{ASN: 65010, SelfDrained: f.drained, Peers: []status.BGPPeer{{State: "established"}}}
}

func (f *fakeSelf) DrainSelf(_ context.Context, on bool) error {
	if f.err != nil {
		return f.err
	}
	f.drained = on
	return nil
}

// drain-self and undrain-self reach the routed director and status
// carries its BGP state; a director without [bgp] refuses them.
func TestControlDrainSelf(t *testing.T) {
	f := newFixture(t)
	r := f.reconciler(topo(webService(backend(be1, 1))), nil)
	f.sync(r)
	self := &fakeSelf{}
	serve := func(s *ControlServer) ControlClient {
		s.Path = filepath.Join(t.TempDir(), "d.sock")
		ln, err := s.Listen()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx, ln) }()
		t.Cleanup(func() { cancel(); <-done })
		return ControlClient{Path: s.Path}
	}
	ctx := t.Context()
	c := serve(&ControlServer{Controller: r, Self: self})
	if err := c.DrainSelf(ctx); err != nil || !self.drained {
		t.Fatalf("drain-self: %v, drained %v", err, self.drained)
	}
	st, err := c.Status(ctx)
	if err != nil || st.BGP == nil || !st.BGP.SelfDrained || st.BGP.Peers[0].State != "established" {
		t.Fatalf("status after drain-self: %v %+v", err, st.BGP)
	}
	if err := c.UndrainSelf(ctx); err != nil || self.drained {
		t.Fatalf("undrain-self: %v, drained %v", err, self.drained)
	}
	self.err = errors.New("not recorded, so not done: disk full")
	if err := c.DrainSelf(ctx); err == nil || !strings.Contains(err.Error(), "not recorded") {
		t.Errorf("failed drain-self reported %v", err)
	}

	plain := serve(&ControlServer{Controller: r})
	if err := plain.DrainSelf(ctx); err == nil || !strings.Contains(err.Error(), "no [bgp]") {
		t.Errorf("drain-self without [bgp]: %v", err)
	}
	if st, err := plain.Status(ctx); err != nil || st.BGP != nil {
		t.Errorf("status without [bgp]: %v, bgp %+v", err, st.BGP)
	}
}
