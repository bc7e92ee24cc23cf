package main

import (
	"bufio"
	"context"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestConnsKept: a server that always answers keeps every connection, and
// each one reports the same real server first and last.
func TestConnsKept(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	la, stop, err := serveLines(ctx, "127.0.0.1:0", "rs1", true, make(chan error, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	var readyN int
	res := conns(ctx, la.String(), 6, 10*time.Millisecond, 0, time.Second, 3, time.Minute, true, func(n int) {
		readyN = n
		time.AfterFunc(200*time.Millisecond, cancel)
	})
	if readyN != 6 {
		t.Errorf("ready %d, want 6", readyN)
	}
	if res.Kept != 6 || res.Moved != 0 || res.FirstBy["rs1"] != 6 || res.LastBy["rs1"] != 6 {
		t.Errorf("result %+v, want 6 kept on rs1", res)
	}
	for _, c := range res.Conns {
		if c.Replies < 3 || c.First != "rs1" || c.Last != "rs1" {
			t.Errorf("connection %+v", c)
		}
	}
}

// TestConnsResetAndStall: after the break, a third of the connections are
// reset by the server (RST) and a third get no more answers; the rest go on.
func TestConnsResetAndStall(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var broken atomic.Bool
	go func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					if broken.Load() {
						switch i % 3 {
						case 1:
							c.(*net.TCPConn).SetLinger(0) // close with RST
							return
						case 2:
							continue // hang: read on, answer nothing
						}
					}
					if _, err := c.Write([]byte("rs2\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	res := conns(ctx, ln.Addr().String(), 9, 10*time.Millisecond, 0, 150*time.Millisecond, 3, time.Minute, false, func(int) {
		broken.Store(true)
		// Room for both to answer again after the pause even on a busy
		// machine: a connection with no answer by the end counts as hung.
		time.AfterFunc(3*time.Second, cancel)
	})
	if res.Kept != 3 || res.Reset != 3 || res.Hung != 3 || res.Stalled != 0 || res.Never != 0 {
		t.Errorf("kept %d reset %d hung %d stalled %d never %d, want 3 kept, reset and hung: %+v",
			res.Kept, res.Reset, res.Hung, res.Stalled, res.Never, res.Conns)
	}
	if len(res.GapsMS) != 9 || !slices.IsSorted(res.GapsMS) || res.GapsMS[8] < 150 {
		t.Errorf("gaps %v", res.GapsMS)
	}
	for _, c := range res.Conns {
		if c.State == StateReset && c.Error == "" {
			t.Errorf("reset without its error: %+v", c)
		}
		if c.State == StateHung && c.LongestGapMS < 150 {
			t.Errorf("hung with gap %dms", c.LongestGapMS)
		}
	}
}

// A connection that recovers from a long gap is stalled, not kept.
func TestConnsStalledThenRecovered(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var pause atomic.Bool
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					for pause.Load() {
						time.Sleep(5 * time.Millisecond)
					}
					if _, err := c.Write([]byte("rs3\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	res := conns(ctx, ln.Addr().String(), 2, 10*time.Millisecond, 0, 100*time.Millisecond, 3, time.Minute, false, func(int) {
		pause.Store(true)
		time.AfterFunc(300*time.Millisecond, func() { pause.Store(false) })
		// Room for both to answer again after the pause even on a busy
		// machine: a connection with no answer by the end counts as hung.
		time.AfterFunc(3*time.Second, cancel)
	})
	if res.Stalled != 2 || res.Hung != 0 || res.Kept != 0 {
		t.Errorf("result %+v, want both stalled", res)
	}
	// The kernel's figures as of the paused write: Linux never sets an
	// RTO under TCP_RTO_MIN (200 ms), nor one under the smoothed RTT.
	// The longest gap is among the pauses, with the same figures.
	for _, c := range res.Conns {
		if c.RTOAtGapMS < 200 || c.SRTTAtGapMS <= 0 || c.SRTTAtGapMS >= c.RTOAtGapMS {
			t.Errorf("RTO %vms, SRTT %vms as of the longest gap: %+v", c.RTOAtGapMS, c.SRTTAtGapMS, c)
		}
		if !slices.ContainsFunc(c.Pauses, func(p Pause) bool {
			return p.MS == c.LongestGapMS && p.RTOMS == c.RTOAtGapMS && p.SRTTMS == c.SRTTAtGapMS && p.EndAtMS > 0
		}) {
			t.Errorf("the longest gap is not among the pauses: %+v", c)
		}
	}
}

// A connection that cannot connect is "never", and ready still comes.
func TestConnsNever(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ready := -1
	res := conns(t.Context(), addr, 2, 10*time.Millisecond, 300*time.Millisecond, time.Second, 3, time.Minute, false, func(n int) { ready = n })
	if res.Never != 2 || ready != 0 {
		t.Errorf("result %+v ready %d, want 2 never and ready 0", res, ready)
	}
}

// A connection that connects but never has its warm answers does not
// hold ready back past the warm timeout.
func TestConnsWarmTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepted, never answered
		}
	}()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ready := -1
	res := conns(ctx, ln.Addr().String(), 2, 10*time.Millisecond, 0, time.Second, 3, 200*time.Millisecond, false, func(n int) {
		ready = n
		cancel()
	})
	if ready != 0 || res.Never != 2 {
		t.Errorf("ready %d, result %+v; want ready 0 and both never", ready, res)
	}
}

// TestStallSampler: a sleep that overruns by 40 ms is recorded as a stall
// of at least that, when it was due. (Only that is asserted: on a busy
// host the other sleeps may overrun too, which the sampler must record.)
func TestStallSampler(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	n := 0
	var due time.Time
	s := &stallSampler{sleep: func(d time.Duration) {
		n++
		switch n {
		case 3:
			due = time.Now().Add(d)
			time.Sleep(d + 40*time.Millisecond)
		case 6:
			cancel()
			fallthrough
		default:
			time.Sleep(d)
		}
	}}
	s.run(ctx)
	got := s.stalls()
	for _, st := range got {
		if st.MS >= 39 && st.AtMS <= due.UnixMilli() && st.AtMS > due.Add(-time.Second).UnixMilli() {
			return
		}
	}
	t.Errorf("stalls %+v, want one of 40 ms or more due at %d or just before", got, due.UnixMilli())
}

// TestPrintAnswered: the oldest of the connections' last answers, ended
// connections left out.
func TestPrintAnswered(t *testing.T) {
	last := make([]atomic.Int64, 3)
	last[0].Store(300)
	last[1].Store(200)
	last[2].Store(math.MaxInt64)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	var b strings.Builder
	printAnswered(ctx, last, &b, 10*time.Millisecond)
	first, _, _ := strings.Cut(b.String(), "\n")
	if first != "answered 200" {
		t.Errorf("printed %q, want lines of \"answered 200\"", b.String())
	}
}

// A connect that times out is tried again, at most dialAttempts times; a
// refusal is not.
func TestDialRetry(t *testing.T) {
	timeout := &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}
	refused := &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}
	ok, _ := net.Pipe()
	for _, c := range []struct {
		name    string
		errs    []error
		calls   int
		redials int
		wantErr bool
	}{
		{"first try", []error{nil}, 1, 0, false},
		{"timeout then up", []error{timeout, nil}, 2, 1, false},
		{"timeouts throughout", []error{timeout, timeout, timeout, nil}, dialAttempts, dialAttempts - 1, true},
		{"refused", []error{refused, nil}, 1, 0, true},
	} {
		calls := 0
		conn, redials, err := dialRetry(t.Context(), func(context.Context) (net.Conn, error) {
			e := c.errs[calls]
			calls++
			if e != nil {
				return nil, e
			}
			return ok, nil
		})
		if calls != c.calls || redials != c.redials || (err != nil) != c.wantErr || (conn == nil) != c.wantErr {
			t.Errorf("%s: %d calls, %d redials, err %v; want %d, %d, error %v", c.name, calls, redials, err, c.calls, c.redials, c.wantErr)
		}
	}
}
