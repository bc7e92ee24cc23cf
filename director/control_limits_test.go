package director

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/golvs/golvs/internal/netlimit/netlimittest"
)

// TestControlSocketLimits (issue 18.11): the control socket closes idle
// keep-alive connections, caps concurrent ones and bounds headers.
func TestControlSocketLimits(t *testing.T) {
	f := newFixture(t)
	r := f.reconciler(topo(webService(backend(be1, 1))), nil)
	f.sync(r)
	const idle = 300 * time.Millisecond
	lim := netlimittest.Short(idle)
	path := filepath.Join(t.TempDir(), "ctl", "director.sock")
	srv := &ControlServer{Path: path, Controller: r, Limits: &lim}
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	netlimittest.Check(t, func() (net.Conn, error) { return net.Dial("unix", path) }, "/status", idle)
}
