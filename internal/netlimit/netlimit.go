// Package netlimit bounds what the director's and the realserver's HTTP
// endpoints (control socket, metrics, agent) give to one client: time to
// send a request, time to take the answer, time to sit idle between
// requests, header size, and the number of connections open at once.
//
// Without these, an idle keep-alive connection was held forever: 1,000 of
// 1,000 were still open after 38 s (issue 18.11). With them, an idle
// connection is closed after IdleTimeout, and connections beyond MaxConns
// wait in the kernel's accept queue until one ends, rather than each
// costing the process a descriptor, a goroutine and buffers.
//
// The cap is a trade: a client that keeps MaxConns connections busy (by
// sending requests, not by idling) makes others wait. The control socket
// is reachable by root alone; the metrics and agent endpoints should be
// bound to a management address.
package netlimit

import (
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// Limits are one endpoint's bounds. A zero field means no bound, except
// MaxHeaderBytes, where it means net/http's default (1 MiB).
type Limits struct {
	// ReadHeaderTimeout bounds the wait for a request's headers (slowloris).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds handling and writing one response, from the end
	// of its request's headers: a client that stops reading is cut.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection with no request for this
	// long.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header block.
	MaxHeaderBytes int
	// MaxConns bounds the connections served at once; more wait to be
	// accepted.
	MaxConns int
}

// Server returns a server for h with l's timeouts and header bound. Serve
// it on l.Listener(ln) for the connection cap.
func (l Limits) Server(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
}

// Listener returns ln accepting at most MaxConns connections at once
// (ln itself when MaxConns is 0).
func (l Limits) Listener(ln net.Listener) net.Listener {
	if l.MaxConns <= 0 {
		return ln
	}
	return netutil.LimitListener(ln, l.MaxConns)
}

// The endpoints' limits. Each request is small (a status, a scrape, one
// agent line), so the header bound is 16 KiB; the write bound leaves room
// for a status or scrape of tens of thousands of services.

// Control is the control socket's: few clients, large status replies.
func Control() Limits {
	return Limits{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		MaxConns:          32,
	}
}

// Metrics is the metrics listener's: a few scrapers and browsers.
func Metrics() Limits {
	l := Control()
	l.MaxConns = 64
	return l
}

// Agent is the realserver agent's: one-line answers to a few directors.
func Agent() Limits {
	return Limits{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       5 * time.Second,
		WriteTimeout:      5 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		MaxConns:          64,
	}
}
