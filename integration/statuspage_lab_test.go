//go:build lab

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/golvs/golvs/integration/lab"
)

// TestStatusPageLabGuest is the guest half of the status page's browser
// test (statuspage_browser_test.go runs headless Chromium on the host and
// boots this with forwarded ports; `lab test` runs that, never this
// alone). A DR cluster with the real director, an http check and a client
// polling the VIP; the director's status page (metrics_address inside its
// namespace) is relayed to the forwarded page port, and a control endpoint
// on the other forwarded port kills a real server when the host asks.
func TestStatusPageLabGuest(t *testing.T) {
	pagePort, err1 := strconv.Atoi(os.Getenv(envPagePort))
	ctlPort, err2 := strconv.Atoi(os.Getenv(envControlPort))
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("%s and %s must name the forwarded ports: this test is the guest half of TestStatusPageLabChromium (run `go run ./integration/cmd/lab test --run TestStatusPageLab`): %v",
			envPagePort, envControlPort, err)
	}
	c := newCluster(t, "dr")
	const metrics = "127.0.0.1:9470"
	// A check timeout the emulated guest on a loaded machine meets (the
	// health tests' 400ms timed out now and then here, and a check that
	// flaps before the kill would make the page's figure meaningless).
	const (
		interval = time.Second
		timeout  = time.Second
		fall     = 2
	)
	check := fmt.Sprintf("type = \"http\"\npath = \"/\"\ninterval = %q\ntimeout = %q\nfall = %d\nrise = 2\n", interval, timeout, fall)
	p, _ := c.startDirectorOn(c.director, fmt.Sprintf("metrics_address = %q", metrics), hcDRService(c.rsAddrs, `on_failure = "weight0"`, check),
		routeWeights(c.allRoute1()))
	w := watchIPVS(t, p)
	// Traffic, so that the page shows connections and rates.
	poll := c.client.Start("ready", bin(t, "labhost"), "poll", "--url", "http://"+vip+"/",
		"--interval", "250ms", "--duration", "10m", "--timeout", "5s")
	defer func() {
		r := c.stopPoll(poll)
		t.Logf("client: %d requests, %d failed, counts %v", r.Total, r.Failures, r.Counts)
	}()

	page, err := net.Listen("tcp", net.JoinHostPort(lab.GuestAddr, strconv.Itoa(pagePort)))
	if err != nil {
		t.Fatal(err)
	}
	defer page.Close()
	go relayInto(page, c.director.NS, metrics)

	dead := c.rsAddrs[2] + ":80"
	var (
		mu     sync.Mutex
		killed time.Time
	)
	done := make(chan struct{})
	var once sync.Once
	mux := http.NewServeMux()
	mux.HandleFunc("GET /check", func(rw http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(rw).Encode(pageCheck{Backend: dead, IntervalMS: interval.Milliseconds(),
			TimeoutMS: timeout.Milliseconds(), Fall: fall})
	})
	// Answers once the real server's process is gone, as a crash would
	// leave it; 409 (ask again) while the kernel does not have it at
	// weight 1, when a check of the loaded, emulated guest has just timed
	// out: the page's figure must time the kill, not that.
	mux.HandleFunc("POST /kill", func(rw http.ResponseWriter, r *http.Request) {
		tab, err := w.read()
		if err == nil {
			err = destWeight(dead, 1)(tab)
		}
		if err != nil {
			http.Error(rw, "not up in the kernel now: "+err.Error(), http.StatusConflict)
			return
		}
		s := c.servers[2]
		mu.Lock()
		killed = time.Now()
		mu.Unlock()
		if err := s.Signal(syscall.SIGKILL); err != nil {
			http.Error(rw, err.Error(), http.StatusInternalServerError)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		if err := s.Wait(ctx); errors.Is(err, context.DeadlineExceeded) {
			http.Error(rw, "the real server did not die", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(rw, "killed", dead)
	})
	mux.HandleFunc("POST /done", func(rw http.ResponseWriter, _ *http.Request) {
		once.Do(func() { close(done) })
	})
	ctl, err := net.Listen("tcp", net.JoinHostPort(lab.GuestAddr, strconv.Itoa(ctlPort)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ctl)
	defer srv.Close()
	t.Logf("status page relayed to %s:%d, control on %s:%d", lab.GuestAddr, pagePort, lab.GuestAddr, ctlPort)

	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		t.Fatal("the host half never said it was done")
	}
	mu.Lock()
	at := killed
	mu.Unlock()
	if at.IsZero() {
		t.Fatal("the host half never killed the real server")
	}
	// The kernel's side of the same event (from the signal), for reading
	// the host's figure.
	down := w.first(at, 20*eventuallyScale, dead+" weight 0", destWeight(dead, 0))
	t.Logf("kernel: weight 0 seen %s after the kill (check bound %s)", durMS(down.Sub(at)), interval*fall+timeout)
}

// relayInto accepts on ln and connects each client to addr inside the
// network namespace ns, copying both ways.
func relayInto(ln net.Listener, ns, addr string) {
	for {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer in.Close()
			out, err := dialInNS(ns, addr)
			if err != nil {
				return
			}
			defer out.Close()
			go func() {
				io.Copy(out, in)
				out.(*net.TCPConn).CloseWrite()
			}()
			io.Copy(in, out)
		}()
	}
}

// dialInNS connects to addr from the namespace ns: the socket is made on
// a thread switched into it and stays there, whichever thread uses it.
func dialInNS(ns, addr string) (net.Conn, error) {
	target, err := netns.GetFromName(ns)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, err
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		return nil, err
	}
	defer netns.Set(orig)
	return net.DialTimeout("tcp", addr, 10*time.Second)
}
