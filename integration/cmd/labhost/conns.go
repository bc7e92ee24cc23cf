package main

// The connection-survival harness: long-lived TCP connections through a
// VIP, each exchanging a line every interval with the real server, which
// answers with its name. What matters at a director failover is whether
// each established connection goes on (kept), is torn down (reset), or
// hangs (stalled), and whether it still reaches the same real server.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// serveLines answers every line on every connection with name: the real
// server side of the harness. With thin, each connection is a thin stream
// (see thinLinearTimeouts): behind a NAT director, an answer lost in a
// takeover is resent by the server, not the client.
func serveLines(ctx context.Context, addr, name string, thin bool, errc chan<- error) (net.Addr, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if ctx.Err() == nil {
					errc <- err
				}
				return
			}
			if thin {
				if err := setThin(c); err != nil {
					errc <- err
					c.Close()
					return
				}
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				reply := []byte(name + "\n")
				for {
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					if _, err := c.Write(reply); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr(), func() { ln.Close() }, nil
}

// Connection states in ConnsResult.
const (
	StateKept    = "kept"    // answered throughout, no gap over the stall limit
	StateReset   = "reset"   // an error: RST, EOF, or no route
	StateStalled = "stalled" // went on, but once had no answer for longer than the stall limit
	StateHung    = "hung"    // no answer for longer than the stall limit at the end
	StateNever   = "never"   // never got its first answers
)

// ConnReport is one connection's story.
type ConnReport struct {
	Local   string `json:"local"`
	State   string `json:"state"`
	First   string `json:"first"` // the real server that answered first
	Last    string `json:"last"`  // and last
	Replies int    `json:"replies"`
	// LongestGapMS is the longest time between two answers (or from the
	// last answer to the end, for a connection that stopped answering).
	LongestGapMS int64 `json:"longest_gap_ms"`
	// RTOAtGapMS and SRTTAtGapMS are the kernel's retransmission timeout
	// and smoothed round-trip time (TCP_INFO) as of the write that started
	// the longest gap: what a retransmission of that write waited for.
	RTOAtGapMS  float64 `json:"rto_at_gap_ms"`
	SRTTAtGapMS float64 `json:"srtt_at_gap_ms"`
	// Pauses are the gaps over two exchange intervals (one answer or
	// more late), in order: a test places them against the events it
	// witnessed.
	Pauses []Pause `json:"pauses,omitempty"`
	Error  string  `json:"error,omitempty"`
	// ErrorAtMS is when the error came (Unix milliseconds).
	ErrorAtMS int64 `json:"error_at_ms,omitempty"`
	// Redials: connects tried again after a timeout (dialRetry).
	Redials int `json:"redials,omitempty"`
}

// Pause is one gap between a connection's answers, with the kernel's
// RTO, smoothed RTT and RTT variance as of the write that started it.
type Pause struct {
	EndAtMS  int64   `json:"end_at_ms"` // Unix milliseconds: the answer that ended it, or the end of the run
	MS       int64   `json:"ms"`
	RTOMS    float64 `json:"rto_ms"`
	SRTTMS   float64 `json:"srtt_ms"`
	RTTVarMS float64 `json:"rttvar_ms"`
}

// ConnsResult is the harness's JSON report.
type ConnsResult struct {
	Count   int `json:"count"`
	Kept    int `json:"kept"`
	Reset   int `json:"reset"`
	Stalled int `json:"stalled"`
	Hung    int `json:"hung"`
	Never   int `json:"never"`
	// GapsMS are the connections' longest gaps, sorted: the spread of
	// what a takeover cost them.
	GapsMS []int64 `json:"gaps_ms"`
	// Moved counts connections whose answers came from more than one
	// real server: a connection that survives must not move.
	Moved int `json:"moved"`
	// FirstBy and LastBy count connections by the real server that
	// answered first and last.
	FirstBy map[string]int `json:"first_by"`
	LastBy  map[string]int `json:"last_by"`
	Conns   []ConnReport   `json:"conns"`
	// Stalls are the times the harness itself ran late, throughout the
	// run: what a starved guest added to the connections' pauses.
	Stalls []Stall `json:"stalls,omitempty"`
	// Redials counts connects tried again after one timed out.
	Redials int `json:"redials"`
}

// conns opens count connections to addr (at most 16 connects at a time),
// prints "ready N" once every connection has had warm answers, failed
// trying, or gone warmTimeout since it connected without them (one hung
// connection must not hold the report back), and exchanges lines until
// ctx ends or duration passes.
func conns(ctx context.Context, addr string, count int, interval, duration, stall time.Duration, warm int, warmTimeout time.Duration, thin bool, ready func(int)) ConnsResult {
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	sampler := &stallSampler{sleep: time.Sleep}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	go sampler.run(sampleCtx)
	reports := make([]ConnReport, count)
	lastAnswer := make([]atomic.Int64, count) // Unix ms; MaxInt64 once a connection has ended
	var wg, warmed sync.WaitGroup
	var warmOK, warmFailed, connected atomic.Int64
	sem := make(chan struct{}, 16)
	for i := range count {
		wg.Add(1)
		warmed.Add(1)
		go func() {
			defer wg.Done()
			defer lastAnswer[i].Store(math.MaxInt64)
			reports[i] = oneConn(ctx, addr, interval, stall, warm, warmTimeout, thin, sem, &connected, &lastAnswer[i], func(ok bool) {
				if ok {
					warmOK.Add(1)
				} else {
					warmFailed.Add(1)
				}
				warmed.Done()
			})
		}()
	}
	// Progress while warming, on stderr: where a slow start is stuck.
	warmDone := make(chan struct{})
	go func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-warmDone:
				return
			case <-tick.C:
				fmt.Fprintf(os.Stderr, "warming: %d connected, %d warm, %d failed of %d\n", connected.Load(), warmOK.Load(), warmFailed.Load(), count)
			}
		}
	}()
	warmed.Wait()
	close(warmDone)
	if ctx.Err() == nil {
		ready(int(warmOK.Load()))
	}
	// Its lines must all come before the report, which tests read as the
	// last line.
	printCtx, stopPrinting := context.WithCancel(ctx)
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		printAnswered(printCtx, lastAnswer, os.Stdout, time.Second)
	}()
	wg.Wait()
	stopPrinting()
	<-printed
	res := ConnsResult{Count: count, FirstBy: map[string]int{}, LastBy: map[string]int{}, Conns: reports, Stalls: sampler.stalls()}
	for _, r := range reports {
		switch r.State {
		case StateKept:
			res.Kept++
		case StateReset:
			res.Reset++
		case StateStalled:
			res.Stalled++
		case StateHung:
			res.Hung++
		case StateNever:
			res.Never++
		}
		res.Redials += r.Redials
		if r.Replies > 0 {
			res.GapsMS = append(res.GapsMS, r.LongestGapMS)
		}
		if r.First != "" {
			res.FirstBy[r.First]++
			res.LastBy[r.Last]++
		}
		if r.First != r.Last {
			res.Moved++
		}
	}
	slices.Sort(res.GapsMS)
	return res
}

// printAnswered writes "answered MS" to w at every tick until ctx ends: the
// oldest of the live connections' last answers (Unix ms; 0 while one has
// not answered yet), so that a test can wait until every connection has
// answered since an event; after the last connection ended, a time far
// in the future.
func printAnswered(ctx context.Context, lastAnswer []atomic.Int64, w io.Writer, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		oldest := int64(math.MaxInt64)
		for i := range lastAnswer {
			oldest = min(oldest, lastAnswer[i].Load())
		}
		fmt.Fprintln(w, "answered", oldest)
	}
}

// oneConn runs one connection until ctx ends, storing the time of each
// answer in lastAnswer. warmed is called once: true after warm answers,
// false if the connection failed before.
func oneConn(ctx context.Context, addr string, interval, stall time.Duration, warm int, warmTimeout time.Duration, thin bool, sem chan struct{}, connected, lastAnswer *atomic.Int64, warmed func(bool)) ConnReport {
	var r ConnReport
	once := sync.Once{}
	signal := func(ok bool) { once.Do(func() { warmed(ok) }) }
	defer signal(false)

	sem <- struct{}{}
	d := net.Dialer{Timeout: 10 * time.Second}
	if thin {
		d.Control = thinLinearTimeouts
	}
	c, redials, err := dialRetry(ctx, func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) })
	<-sem
	r.Redials = redials
	if err != nil {
		r.State, r.Error = StateNever, err.Error()
		return r
	}
	defer c.Close()
	connected.Add(1)
	r.Local = c.LocalAddr().String()
	late := time.AfterFunc(warmTimeout, func() { signal(false) })
	defer late.Stop()
	// The read below is unblocked by closing the connection when ctx ends.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		r.State, r.Error = StateNever, err.Error()
		return r
	}
	rd := bufio.NewReader(c)
	last := time.Now()
	stalled := false
	tick := time.NewTicker(interval)
	defer tick.Stop()
	// sent is TCP_INFO as of the last write, read just before it: the
	// retransmission timer that write arms runs on its RTO.
	sent := &unix.TCPInfo{}
	for {
		info, err := tcpInfo(rc)
		if err == nil {
			sent = info
			_, err = io.WriteString(c, "ping\n")
		}
		if err == nil {
			var line string
			line, err = rd.ReadString('\n')
			if err == nil {
				now := time.Now()
				gap := now.Sub(last)
				if r.Replies > 0 {
					r.gap(gap, now, sent, interval)
					stalled = stalled || gap > stall
				}
				last = now
				lastAnswer.Store(now.UnixMilli())
				name := strings.TrimSpace(line)
				if r.First == "" {
					r.First = name
				}
				r.Last = name
				r.Replies++
				if r.Replies == warm {
					signal(true)
				}
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				break // our own close at the end
			}
			r.Error, r.ErrorAtMS = err.Error(), time.Now().UnixMilli()
			if r.Replies < warm {
				r.State = StateNever
			} else {
				r.State = StateReset
			}
			return r
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		if ctx.Err() != nil {
			break
		}
	}
	// A connection that has not answered for a while at the end is hung.
	hung := false
	if end := time.Since(last); end > stall {
		r.gap(end, time.Now(), sent, interval) // the write left unanswered started it
		hung = true
	}
	switch {
	case r.Replies < warm:
		r.State = StateNever
	case hung:
		r.State = StateHung
	case stalled:
		r.State = StateStalled
	default:
		r.State = StateKept
	}
	return r
}

// gap records a gap that ended at end, started by a write with TCP_INFO
// sent.
func (r *ConnReport) gap(gap time.Duration, end time.Time, sent *unix.TCPInfo, interval time.Duration) {
	if gap.Milliseconds() >= r.LongestGapMS {
		r.LongestGapMS = gap.Milliseconds()
		r.RTOAtGapMS, r.SRTTAtGapMS = ms(sent.Rto), ms(sent.Rtt)
	}
	if gap > 2*interval {
		r.Pauses = append(r.Pauses, Pause{EndAtMS: end.UnixMilli(), MS: gap.Milliseconds(), RTOMS: ms(sent.Rto), SRTTMS: ms(sent.Rtt), RTTVarMS: ms(sent.Rttvar)})
	}
}

// thinLinearTimeouts sets TCP_THIN_LINEAR_TIMEOUTS: a connection with one
// small message in flight (a thin stream, as every harness connection
// is) retransmits at its plain RTO seven times before backing off (the
// kernel doubles once more than TCP_THIN_LINEAR_RETRIES, 6, have gone).
// Without it the client's own exponential backoff, not the takeover,
// decides when it speaks again: an outage of 1.5 s is noticed at the
// retransmission 3 s in (0.2+0.4+0.8+1.6 s).
func thinLinearTimeouts(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_THIN_LINEAR_TIMEOUTS, 1)
	}); err != nil {
		return err
	}
	return serr
}

// tcpInfo is the connection's TCP_INFO.
func tcpInfo(rc syscall.RawConn) (*unix.TCPInfo, error) {
	var info *unix.TCPInfo
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return nil, err
	}
	return info, ierr
}

// ms is a TCP_INFO time (µs) in milliseconds.
func ms(us uint32) float64 { return float64(us) / 1000 }

// setThin is thinLinearTimeouts for an accepted connection.
func setThin(c net.Conn) error {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return fmt.Errorf("%T is not TCP", c)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	return thinLinearTimeouts("", "", rc)
}

// dialAttempts bounds dialRetry.
const dialAttempts = 3

// dialRetry connects, trying again when a connect times out: in a guest
// starved by a loaded host, one connect of 200 once went unanswered
// through four SYNs in 10 s. The harness measures established
// connections across a switch, not their set-up, so such a connect is
// tried again (and counted) rather than failing the run. A refusal or a
// reset is an answer, never retried.
func dialRetry(ctx context.Context, dial func(context.Context) (net.Conn, error)) (net.Conn, int, error) {
	for n := 0; ; n++ {
		c, err := dial(ctx)
		var ne net.Error
		if err == nil || n+1 >= dialAttempts || ctx.Err() != nil || !errors.As(err, &ne) || !ne.Timeout() {
			return c, n, err
		}
	}
}
