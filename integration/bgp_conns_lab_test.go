//go:build lab

package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/golvs/golvs/integration/labnet"
)

// keptConns is the connection-survival harness: n long-lived HTTP/1.1
// keep-alive connections from the client's addresses to the VIP, each
// answered once when opened. check sends one more request on every
// connection: its flow must still reach the real server holding its
// socket (a flow that reaches another one is reset). The connections are
// idle in between, so the harness itself does not load the emulated
// machine (a trickle on 300 connections starved the BGP keepalives).
type keptConns struct {
	t            *testing.T
	conns        []*keptConn
	failedAtOpen int
}

type keptConn struct {
	c      net.Conn
	br     *bufio.Reader
	server string // the real server that answered the first request
}

var rsName = regexp.MustCompile(`\brs\d\b`)

// openKeptConns dials from inside the client's namespace: a socket stays
// in the namespace it was created in, whichever thread uses it later.
func openKeptConns(t *testing.T, client *labnet.Host, srcs []string, n int) *keptConns {
	t.Helper()
	ns, err := netns.GetFromName(client.NS)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	kc := &keptConns{t: t}
	t.Cleanup(kc.close)
	dial := func() error {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			return err
		}
		defer netns.Set(orig)
		for i := range n {
			d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(srcs[i%len(srcs)])}}
			c, err := d.Dial("tcp", bgpVIP+":80")
			if err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
			kc.conns = append(kc.conns, &keptConn{c: c, br: bufio.NewReader(c)})
		}
		return nil
	}
	if err := dial(); err != nil {
		t.Fatal(err)
	}
	errs := kc.each(func(c *keptConn) error {
		name, err := c.request()
		c.server = name
		return err
	})
	// A connection whose first request failed is not followed (rr may
	// break some before anything happens; mh must not).
	var ok []*keptConn
	for i, err := range errs {
		if err != nil {
			kc.failedAtOpen++
			if kc.failedAtOpen <= 3 {
				t.Logf("connection %d: first request: %v", i, err)
			}
			kc.conns[i].c.Close()
			continue
		}
		ok = append(ok, kc.conns[i])
	}
	kc.conns = ok
	return kc
}

// request asks for / on the connection and returns the server's name.
func (c *keptConn) request() (string, error) {
	c.c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(c.c, "GET / HTTP/1.1\r\nHost: lab\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", err
	}
	m := rsName.Find(body)
	if m == nil {
		return "", fmt.Errorf("no server name in %q", body)
	}
	return string(m), nil
}

// each runs f on every connection, 25 at a time; errs[i] is connection i's.
func (kc *keptConns) each(f func(*keptConn) error) []error {
	errs := make([]error, len(kc.conns))
	sem := make(chan struct{}, 25)
	var wg sync.WaitGroup
	for i, c := range kc.conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = f(c)
		}()
	}
	wg.Wait()
	return errs
}

func (kc *keptConns) close() {
	for _, c := range kc.conns {
		c.c.Close()
	}
}

// servers counts the connections per real server.
func (kc *keptConns) servers() map[string]int {
	out := map[string]int{}
	for _, c := range kc.conns {
		out[c.server]++
	}
	return out
}

// check makes one request on every connection and returns how many
// failed or were answered by another real server, with a few reasons.
func (kc *keptConns) check() (int, []string) {
	errs := kc.each(func(c *keptConn) error {
		name, err := c.request()
		if err == nil && name != c.server {
			err = fmt.Errorf("answered by %s, opened on %s", name, c.server)
		}
		return err
	})
	n := 0
	var why []string
	for i, err := range errs {
		if err == nil {
			continue
		}
		n++
		if len(why) < 5 {
			why = append(why, fmt.Sprintf("connection %d (%s): %v", i, kc.conns[i].server, err))
		}
	}
	return n, why
}

// clientAddrs gives the client k addresses, so flows differ in source
// address as well as port.
func clientAddrs(client *labnet.Host, k int) []string {
	srcs := []string{bgpClientIP}
	for i := 1; i < k; i++ {
		a := fmt.Sprintf("10.20.0.%d", 100+i)
		client.IP("addr", "add", a+"/24", "dev", "eth0")
		srcs = append(srcs, a)
	}
	return srcs
}

// TestBGPConnectionsSurvive (issue 14, tests 2, 3 and 5): 300 long-lived
// connections through three `director run` directors (mh with mh-port and
// mh-fallback, BGP to BIRD) lose none when a fourth director joins and
// when one dies (its box gone: link down, processes killed); the control
// run with rr breaks some, proving the harness can fail.
func TestBGPConnectionsSurvive(t *testing.T) {
	// A 9s hold time: 3s sessions flapped when the emulated machine
	// stalled (TestBGPHoldTimer measures 3s on a quiet machine).
	const hold, n = 9 * time.Second, 300
	t.Run("mh", func(t *testing.T) {
		b := newBGPLabOf(t, 3, 4, hold, false, "mh", true)
		b.waitNexthops(b.dirAddrs, 20*time.Second)
		kc := openKeptConns(t, b.client, clientAddrs(b.client, 20), n)
		t.Logf("%d long-lived connections up, per real server %v", len(kc.conns), kc.servers())
		if kc.failedAtOpen != 0 {
			t.Errorf("%d of %d connections failed their first request", kc.failedAtOpen, n)
		}

		b.addDirector(3)
		b.waitNexthops(b.dirAddrs, 20*time.Second)
		broken, why := kc.check()
		t.Logf("a fourth director joined: %d of %d connections broken %v; directors' connection counts %v", broken, len(kc.conns), why, b.conns())
		if broken != 0 {
			t.Errorf("%d connections broken when a director joined: %v", broken, why)
		}

		down := b.killDirector(2)
		b.waitNexthops([]string{b.dirAddrs[0], b.dirAddrs[1], b.dirAddrs[3]}, hold+10*time.Second)
		at, _, _ := b.routeSeen.firstWithout(down, b.dirAddrs[2])
		broken, why = kc.check()
		t.Logf("director %s died, withdrawn after %v: %d of %d connections broken %v",
			b.dirAddrs[2], at.Sub(down).Round(time.Millisecond), broken, len(kc.conns), why)
		if broken != 0 {
			t.Errorf("%d connections broken when a director died: %v", broken, why)
		}
	})
	t.Run("rr", func(t *testing.T) {
		b := newBGPLabOf(t, 3, 3, hold, false, "rr", true)
		b.waitNexthops(b.dirAddrs, 20*time.Second)
		kc := openKeptConns(t, b.client, clientAddrs(b.client, 10), 100)
		t.Logf("control, rr: %d of 100 connections up (%d failed their first request), per real server %v",
			len(kc.conns), kc.failedAtOpen, kc.servers())
		down := b.killDirector(2)
		b.waitNexthops(b.dirAddrs[:2], hold+10*time.Second)
		at, _, _ := b.routeSeen.firstWithout(down, b.dirAddrs[2])
		broken, why := kc.check()
		t.Logf("control, rr: director %s died, withdrawn after %v: %d of %d connections broken %v",
			b.dirAddrs[2], at.Sub(down).Round(time.Millisecond), broken, len(kc.conns), why)
		if broken == 0 {
			t.Errorf("rr kept every connection: the harness cannot tell mh from rr")
		}
	})
}

// conns is every live director's IPVS connection count for the VIP.
func (b *bgpLab) conns() map[string]int {
	out := map[string]int{}
	for i, d := range b.dirs {
		out[b.dirAddrs[i]] = ipvsConns(b.t, d)
	}
	return out
}
