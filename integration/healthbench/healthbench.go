// Package healthbench measures the health monitor at scale: many
// TCP-checked backends against local listeners (make bench-health). It is
// a benchmark harness, not part of the director.
package healthbench

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/health"
	"github.com/golvs/golvs/health/check"
)

// LoadConfig says what RunLoadBench runs.
type LoadConfig struct {
	Backends int
	Interval time.Duration
	// Accept makes the listeners accept (and close) every connection. By
	// default they defer accepting until data arrives (TCP_DEFER_ACCEPT),
	// which a probe never sends: on loopback the kernel does the backend's
	// half of each handshake on the prober's thread and bills it to the
	// director, and a deferring listener keeps that half small (a SYN
	// answered, a reset absorbed), nearer to what remote backends cost.
	Accept bool
	// Wait makes every probe wait for its handshake (check.TCP.AlwaysWait)
	// as with backends a round trip away, where on loopback the handshake
	// is over when connect returns.
	Wait bool
}

// LoadReport is what RunLoadBench measured.
type LoadReport struct {
	LoadConfig
	Duration time.Duration // measured span (after one warm-up interval)
	// CPUPercent is the user+system CPU of the checks as a percentage of
	// one core: the whole process minus the listeners' accept thread.
	// The kernel's work for the backend's half of each loopback handshake
	// is in it.
	CPUPercent float64
	// SysPercent is the process's kernel CPU (listeners included).
	SysPercent float64
	// ListenerPercent is what the accept thread used.
	ListenerPercent float64
	// FloorPercent is what the TCP checker alone, called in a bare loop
	// against the same kind of listener (never accepting: its queue holds
	// them), uses for the same probe rate: the kernel's cost of the probes
	// plus the checker's. CPUPercent-FloorPercent is about what the
	// monitor's scheduling adds.
	FloorPercent float64
	// Lateness of probe starts behind their slots, zero for a probe that
	// started early; Early is the most any started ahead of its slot (the
	// monitor batches probes due within a few milliseconds).
	P50, P99, Max, Early time.Duration
	Probes               int64
	Failures             int64
	FirstFailure         string
}

func (r LoadReport) String() string {
	listeners := "deferring listeners"
	if r.Accept {
		listeners = "accepting listeners"
	}
	if r.Wait {
		listeners += ", every handshake awaited"
	}
	return fmt.Sprintf("%d tcp backends every %v, %s, for %v: checks use %.1f%% of one core (process kernel time %.1f%%, listeners %.1f%%; the checker alone in a bare loop %.1f%%), lateness p50 %v p99 %v max %v (started up to %v early), %d probes, %d failed",
		r.Backends, r.Interval, listeners, r.Duration.Round(time.Millisecond), r.CPUPercent, r.SysPercent, r.ListenerPercent, r.FloorPercent,
		r.P50, r.P99, r.Max, r.Early, r.Probes, r.Failures) + firstFailure(r.FirstFailure)
}

func firstFailure(s string) string {
	if s == "" {
		return ""
	}
	return " (first: " + s + ")"
}

// benchListeners is how many loopback listeners serve all backends.
const benchListeners = 256

// RunLoadBench monitors cfg.Backends TCP-checked backends probed every
// cfg.Interval against local listeners until ctx ends, and reports the CPU
// used and how late probes started. It is a benchmark harness (make
// bench), not a test.
//
// The backends are spread over 256 listeners on 127.0.0.1..127.0.0.64;
// distinct backends share a listener by belonging to different services.
// It raises RLIMIT_NOFILE to its hard limit.
func RunLoadBench(ctx context.Context, cfg LoadConfig) (LoadReport, error) {
	n, interval := cfg.Backends, cfg.Interval
	rep := LoadReport{LoadConfig: cfg}
	if err := raiseNoFile(); err != nil {
		return rep, err
	}
	acc, err := startAcceptor(benchListeners, cfg.Accept)
	if err != nil {
		return rep, err
	}
	defer acc.stop()

	var (
		measuring atomic.Bool
		mu        sync.Mutex
		late      = make([]time.Duration, 0, n*30)
		probes    atomic.Int64
		failures  atomic.Int64
		firstErr  atomic.Value
	)
	count := func(r check.Result) {
		if measuring.Load() {
			probes.Add(1)
			if r.Err != nil {
				failures.Add(1)
				firstErr.CompareAndSwap(nil, r.Err.Error())
			}
		}
	}
	probers := func(c *config.Check) (check.Prober, error) {
		if c.Type == config.CheckTCP && cfg.Wait {
			return counted(check.TCP{AlwaysWait: true}, count), nil
		}
		p, err := check.New(c)
		if err != nil {
			return nil, err
		}
		return counted(p, count), nil
	}
	observe := func(scheduled, actual time.Time) {
		if !measuring.Load() {
			return
		}
		mu.Lock()
		late = append(late, actual.Sub(scheduled))
		mu.Unlock()
	}
	chk := &config.Check{Type: config.CheckTCP, Interval: interval, Timeout: interval, Rise: 1, Fall: 1}
	m := health.New(slog.New(slog.DiscardHandler), nil, health.WithRand(rand.NewPCG(1, 2)),
		health.WithProbers(probers), health.WithStartObserver(observe))
	targets := make([]health.Target, n)
	for i := range targets {
		targets[i] = health.Target{
			Service: fmt.Sprintf("bench%d", i/len(acc.addrs)),
			Backend: acc.addrs[i%len(acc.addrs)],
			Check:   chk,
		}
	}
	if err := m.Update(targets); err != nil {
		return rep, err
	}
	// Not ctx itself: probes in flight when ctx ends must not count as
	// failures.
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(rctx) }()

	// Skip the first interval: first probes are spread over it.
	select {
	case <-time.After(interval):
	case <-ctx.Done():
	}
	startWall := time.Now()
	startUser, startSys := cpuTime()
	acc.mark()
	measuring.Store(true)
	<-ctx.Done()
	measuring.Store(false)
	rep.Duration = time.Since(startWall)
	user, sys := cpuTime()
	accCPU := acc.mark()
	if rep.Duration > 0 {
		pct := func(d time.Duration) float64 { return 100 * float64(d) / float64(rep.Duration) }
		rep.ListenerPercent = pct(accCPU)
		rep.CPUPercent = pct(user-startUser+sys-startSys) - rep.ListenerPercent
		rep.SysPercent = pct(sys - startSys)
	}
	cancel()
	if err := <-done; err != nil {
		return rep, err
	}
	// After the run, which ctx bounds, with the monitor and the listeners
	// stopped: it reads the whole process's CPU.
	acc.stop()
	perProbe, err := checkerFloor(min(n, 10000), cfg.Accept, cfg.Wait)
	if err != nil {
		return rep, err
	}
	rep.FloorPercent = 100 * float64(perProbe) * float64(n) / float64(interval)
	rep.Probes, rep.Failures = probes.Load(), failures.Load()
	if e, ok := firstErr.Load().(string); ok {
		rep.FirstFailure = e
	}
	mu.Lock()
	defer mu.Unlock()
	if len(late) > 0 {
		slices.Sort(late)
		rep.Early = max(0, -late[0])
		for i, d := range late {
			late[i] = max(0, d)
		}
		rep.P50 = late[len(late)/2]
		rep.P99 = late[len(late)*99/100]
		rep.Max = late[len(late)-1]
	}
	return rep, nil
}

// counted wraps p so that count sees each result, keeping p's
// goroutine-free start (the monitor's fast path) if it has one.
func counted(p check.Prober, count func(check.Result)) check.Prober {
	probe := func(ctx context.Context, t check.Target) check.Result {
		r := p.Probe(ctx, t)
		count(r)
		return r
	}
	a, ok := p.(check.AsyncProber)
	if !ok {
		return check.ProberFunc(probe)
	}
	return countedAsync{check.ProberFunc(probe), a, count}
}

type countedAsync struct {
	check.ProberFunc
	a     check.AsyncProber
	count func(check.Result)
}

func (c countedAsync) Start(t check.Target, deadline time.Time, report func(check.Result)) (check.Result, bool) {
	r, ok := c.a.Start(t, deadline, func(r check.Result) {
		c.count(r)
		report(r)
	})
	if ok {
		c.count(r)
	}
	return r, ok
}

func raiseNoFile() error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("setrlimit: %w", err)
	}
	return nil
}

// cpuTime is this process's user and system CPU time.
func cpuTime() (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// acceptor serves the benchmark's listeners from one locked OS thread,
// so that its CPU can be read from the kernel's per-thread accounting and
// subtracted from the process's.
//
// It accepts in sweeps, every acceptSweep, instead of sleeping in epoll:
// on loopback, waking a server blocked in epoll is work done (an
// inter-processor interrupt, under virtualisation a VM exit) by the
// connecting thread, so it would be billed to the director, whereas a
// remote backend's wake-up costs the director nothing.
type acceptor struct {
	addrs    []netip.AddrPort
	fds      []int
	accept   bool
	tid      chan int
	schedfn  string // /proc/self/task/TID/schedstat
	last     time.Duration
	done     chan struct{}
	stopping atomic.Bool
}

const acceptSweep = 10 * time.Millisecond

// startAcceptor listens on count ports spread over 127.0.0.1..127.0.0.64,
// deferring accepts unless accept is set (see LoadConfig.Accept).
func startAcceptor(count int, accept bool) (_ *acceptor, err error) {
	a := &acceptor{accept: accept, tid: make(chan int, 1), done: make(chan struct{})}
	defer func() {
		if err != nil {
			a.closeFDs()
		}
	}()
	for i := range count {
		ip := [4]byte{127, 0, 0, byte(1 + i%64)}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("socket: %w", err)
		}
		a.fds = append(a.fds, fd)
		addr, err := listen(fd, ip, accept)
		if err != nil {
			return nil, err
		}
		a.addrs = append(a.addrs, addr)
	}
	go a.loop()
	a.schedfn = fmt.Sprintf("/proc/self/task/%d/schedstat", <-a.tid)
	return a, nil
}

func (a *acceptor) loop() {
	// Never unlocked: the thread ends with the goroutine, so its id is
	// never reused by other goroutines while we read its accounting.
	runtime.LockOSThread()
	defer close(a.done)
	a.tid <- unix.Gettid()
	for !a.stopping.Load() {
		for _, fd := range a.fds {
			for a.accept {
				nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
				if err != nil {
					break // EAGAIN: drained
				}
				unix.Close(nfd)
			}
		}
		time.Sleep(acceptSweep)
	}
}

// mark returns the CPU the accept thread used since the previous mark.
func (a *acceptor) mark() time.Duration {
	b, err := os.ReadFile(a.schedfn)
	if err != nil {
		return 0
	}
	var ns int64
	if _, err := fmt.Sscan(string(b), &ns); err != nil {
		return 0
	}
	d := time.Duration(ns) - a.last
	a.last = time.Duration(ns)
	return d
}

// stop ends the thread and closes the listeners; later calls do nothing.
func (a *acceptor) stop() {
	if a.stopping.Swap(true) {
		return
	}
	<-a.done
	a.closeFDs()
}

func (a *acceptor) closeFDs() {
	for _, fd := range a.fds {
		unix.Close(fd)
	}
}

// listen binds fd to an ephemeral port of ip and listens, deferring
// accepts unless accept is set.
func listen(fd int, ip [4]byte, accept bool) (netip.AddrPort, error) {
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: ip}); err != nil {
		return netip.AddrPort{}, fmt.Errorf("bind: %w", err)
	}
	if !accept {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 30); err != nil {
			return netip.AddrPort{}, fmt.Errorf("TCP_DEFER_ACCEPT: %w", err)
		}
	}
	if err := unix.Listen(fd, 4096); err != nil {
		return netip.AddrPort{}, fmt.Errorf("listen: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("getsockname: %w", err)
	}
	return netip.AddrPortFrom(netip.AddrFrom4(ip), uint16(sa.(*unix.SockaddrInet4).Port)), nil
}

// checkerFloor measures the CPU of one probe by the TCP checker called in
// a bare loop on one locked thread, against a listener of the same kind
// as the benchmark's (see LoadReport.FloorPercent).
func checkerFloor(count int, accept, wait bool) (time.Duration, error) {
	type result struct {
		d   time.Duration
		err error
	}
	out := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		d, err := checkerLoop(count, accept, wait)
		out <- result{d, err}
	}()
	r := <-out
	return r.d, r.err
}

func checkerLoop(count int, accept, wait bool) (time.Duration, error) {
	l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(l)
	addr, err := listen(l, [4]byte{127, 0, 0, 1}, accept)
	if err != nil {
		return 0, err
	}
	tcp := check.TCP{AlwaysWait: wait}
	t := check.Target{Service: "floor", Backend: addr, Addr: addr}
	// Probes go in batches, as the monitor starts them: the waiter looks
	// for answers a few milliseconds apart.
	const batch = 100
	reported := make(chan check.Result, batch)
	report := func(r check.Result) { reported <- r }
	// The whole process: waited handshakes finish on the waiter's
	// goroutine, and nothing else runs yet.
	cpu := func() int64 {
		var ru unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
		return ru.Utime.Nano() + ru.Stime.Nano()
	}
	var used int64
	probes := 0
	for ; probes < count; probes += batch {
		var results []check.Result
		waiting := 0
		before := cpu()
		for range batch {
			if res, ok := tcp.Start(t, time.Now().Add(time.Second), report); ok {
				results = append(results, res)
			} else {
				waiting++
			}
		}
		for range waiting {
			results = append(results, <-reported)
		}
		used += cpu() - before
		for _, res := range results {
			if res.Err != nil {
				return 0, res.Err
			}
		}
		// Unmeasured: keep the accept queue from filling.
		for accept {
			nfd, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
			if err != nil {
				break
			}
			unix.Close(nfd)
		}
	}
	return time.Duration(used / int64(probes)), nil
}
