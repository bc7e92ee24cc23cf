package realserver

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/golvs/golvs/internal/netlimit/netlimittest"
)

// TestAgentLimits (issue 18.11): the agent endpoint closes idle
// keep-alive connections, caps concurrent ones and bounds headers.
func TestAgentLimits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const idle = 300 * time.Millisecond
	lim := netlimittest.Short(idle)
	a := &Agent{Log: quiet, Limits: &lim}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	netlimittest.Check(t, func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) }, "/", idle)
}
