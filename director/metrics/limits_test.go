package metrics

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/golvs/golvs/internal/netlimit/netlimittest"
)

// TestServeLimits (issue 18.11): the metrics listener closes idle
// keep-alive connections, caps concurrent ones and bounds headers.
func TestServeLimits(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const idle = 300 * time.Millisecond
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeLimits(ctx, ln, h, netlimittest.Short(idle)) }()
	defer func() { cancel(); <-done }()
	netlimittest.Check(t, func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) }, "/metrics", idle)
}
