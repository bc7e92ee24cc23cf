//go:build lab

// Issue 17's health flap storm at the 1,000 backends. It runs in
// a guest of two CPUs of its own (integration/cmd/lab: wideTests): in a
// one-CPU guest beside another on a host loaded with two busy loops per
// core, probing 1,000 backends took 70-90% of the guest before the storm
// began, and 2 of 4 runs ended seconds past their bounds. Before the
// director left at least DefaultPassGap between passes and stopped
// re-applying an unchanged address decision on every health change, it
// started a pass as soon as the last one ended (1,741 passes of 2.3
// changes in 20 s in one run at 200 backends) and took whatever CPU the
// guest had left; with both, a run had 196 passes of 20 changes.

package integration

import (
	"cmp"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golvs/golvs/director"
	"golang.org/x/sys/unix"
)

// The health flap storm: many TCP-checked backends whose listeners the
// test opens and closes so that each one's health may change every second.
const (
	flapServices = 4 // two on_failure=weight0, two on_failure=remove
	// Backends per service: the 1,000 in all. A TCP probe is four
	// packets (two for a closed port) through two veths, a bridge and the
	// director's system calls; under emulation one costs the guest about
	// half a millisecond of CPU (more when the host is busy), so 1,000
	// backends are probed every 2 s, not every 500 ms (see flapInterval).
	// Figures at fewer backends, one CPU: 200 at 500 ms passed both runs
	// with two busy loops per host core; 300 at 500 ms failed one run in
	// two with one loop per core.
	flapPer      = 250
	flapBackends = flapServices * flapPer
	flapPortBase = 20000 // backend ports flapPortBase.. on real server 1
	flapVIPPort  = 8001  // service ports flapVIPPort..
	// flapPeriod is how often each backend's health is drawn afresh.
	flapPeriod = time.Second
	// flapPollEvery is how often the client asks the steady service.
	flapPollEvery = 500 * time.Millisecond
	flapStorm     = 20 * time.Second
	// The check: rise = fall = 1, so every change a probe sees is a
	// transition. A probe every two flap periods: each backend's health
	// is drawn afresh every period, not toggled (a strict toggle would
	// look still to a probe every other period), so half the probes see a
	// change. The timeout is for a starved guest: a handshake with a
	// port on the real server completes or is refused at once.
	flapInterval = 2 * time.Second
	stormTimeout = time.Second
	flapRiseFall = 1
	// The periodic full pass is out of reach of the test: every pass it
	// sees is one a health change asked for, so a lost change stays lost.
	flapResync = "1h"
	// clkTck is USER_HZ, the unit of utime and stime in /proc/PID/stat:
	// 100 on every Linux architecture Go supports here.
	clkTck = 100
)

// flapWeight is backend i's configured weight: varied, so that the table
// shows configured weights apart from 0.
func flapWeight(i int) int { return 1 + i%5 }

// flapFinal is backend i's health once the storm is over: a fixed
// pattern, about 60% up, spread over all four services.
func flapFinal(i int) bool { return (i*7)%10 >= 4 }

// TestChaosHealthFlapStorm flaps 1,000 TCP-checked backends (four NAT
// services of 250, on 1,000 ports of one real server) every second for
// 20 s against the real director, while a client polls a fifth, steady
// service. It shows that
//   - passes stay coalesced: each carries many health transitions (the
//     monitor notifies once per probe batch, batches are at least 10 ms
//     apart), and once health is still, passes stop;
//   - the director's CPU and memory stay bounded (reported; see the bounds);
//   - no change is lost: after health is frozen in a known state, the
//     kernel (ipvsadm -Ln) equals it (weight 0 or removed, per on_failure)
//     within interval*max(rise,fall) + timeout + two passes, measured from
//     the moment the final state was set; the periodic resync is 1h, so
//     only the passes the changes asked for can get it there;
//   - the steady service loses no request and is never rewritten.
func TestChaosHealthFlapStorm(t *testing.T) {
	c := newCluster(t, "nat")
	rs := c.rsAddrs[0]
	ln := newNSListeners(t, c.rs[0].NS, rs, flapPortBase, flapBackends)
	ln.setAll(func(int) bool { return true })
	idle0 := takeCensus()
	time.Sleep(3 * time.Second) // a measuring window: the guest without a director
	idle1 := takeCensus()
	t.Logf("guest CPU without a director (3 s): %s", idle1.top(idle0, 6))

	web := "TCP " + vip + ":80"
	var b strings.Builder
	b.WriteString(c.service("web", "tcp", 80, "nat", "rr"))
	for s := range flapServices {
		onFailure := "weight0"
		if s >= flapServices/2 {
			onFailure = "remove"
		}
		fmt.Fprintf(&b, "[[service]]\nname = \"flap%d\"\naddress = %q\nport = %d\nprotocol = \"tcp\"\nscheduler = \"wrr\"\nforwarding = \"nat\"\non_failure = %q\n\n",
			s, vip, flapVIPPort+s, onFailure)
		fmt.Fprintf(&b, "[service.check]\ntype = \"tcp\"\ninterval = %q\ntimeout = %q\nrise = %d\nfall = %d\n\n",
			flapInterval, stormTimeout, flapRiseFall, flapRiseFall)
		for j := range flapPer {
			i := s*flapPer + j
			fmt.Fprintf(&b, "[[service.backend]]\naddress = %q\nport = %d\nweight = %d\n\n", rs, flapPortBase+i, flapWeight(i))
		}
	}
	file := c.writeTopology(fmt.Sprintf("resync_interval = %q", flapResync), "", b.String())

	// want is the table health up(i) calls for: every flap backend at its
	// weight when up; when down, at weight 0 (weight0) or absent (remove).
	want := func(up func(int) bool) map[string]map[string]int {
		tab := map[string]map[string]int{web: {}}
		for _, a := range c.rsAddrs {
			tab[web][a+":80"] = 1
		}
		for s := range flapServices {
			key := fmt.Sprintf("TCP %s:%d", vip, flapVIPPort+s)
			tab[key] = map[string]int{}
			for j := range flapPer {
				i := s*flapPer + j
				dest := fmt.Sprintf("%s:%d", rs, flapPortBase+i)
				switch {
				case up(i):
					tab[key][dest] = flapWeight(i)
				case s < flapServices/2:
					tab[key][dest] = 0
				}
			}
		}
		return tab
	}
	allUp := want(func(int) bool { return true })
	d := startDirectorLogged(t, c, file)
	pid := d.pid
	procTable := fmt.Sprintf("/proc/%d/net/ip_vs", pid)
	kernelNow := func() map[string]map[string]int {
		t.Helper()
		raw, err := os.ReadFile(procTable)
		if err != nil {
			t.Fatal(err)
		}
		tab, err := parseProcIPVS(string(raw))
		if err != nil {
			t.Fatal(err)
		}
		return procWeights(tab)
	}
	// Setup, not a measured bound: a cold start of all the checked
	// backends under emulation on a shared host.
	eventually(t, 60*eventuallyScale, "every backend up in the kernel", func() error {
		d.alive()
		return sameTable(allUp, kernelNow())
	})
	// The steady service's client polls every flapPollEvery, not every
	// 50 ms as elsewhere: under emulation each request (a new connection
	// through IPVS to a Go HTTP server) costs the guest milliseconds of
	// CPU. At 50 ms the client and the servers it asks used about twice
	// the director's CPU (probing 100 backends), and the guest was 80%
	// busy before the storm; at 250 ms, 21%. 500 ms leaves the storm
	// more of it.
	poll := c.client.Start("ready", bin(t, "labhost"), "poll", "--url", "http://"+vip+"/",
		"--interval", flapPollEvery.String(), "--duration", "5m", "--timeout", "5s")

	// Calm: the same checks with health still, the baseline the storm is
	// compared with (ratios within one guest run, not absolute figures).
	calm := sampleProc(t, pid)
	calmCensus := takeCensus()
	time.Sleep(3 * time.Second) // a measuring window, not a synchronisation
	stormStart := sampleProc(t, pid)
	stormCensus := takeCensus()
	t.Logf("guest CPU calm (3 s): %s", stormCensus.top(calmCensus, 6))
	calmCPU := stormStart.cpuSince(calm)
	logAt := d.logSize()

	flips := ln.storm(flapStorm, flapPeriod)
	final := want(flapFinal)
	frozenAt := d.logSize() // the log from here on tells what the director decided after the freeze
	frozen := ln.setAll(flapFinal)
	stormEnd := sampleProc(t, pid)
	stormCPU := stormEnd.cpuSince(stormStart)
	t.Logf("guest CPU storm (%s): %s", durMS(stormEnd.at.Sub(stormStart.at)), takeCensus().top(stormCensus, 6))

	stormLog := d.logSince(logAt)[:frozenAt-logAt]
	transitions := strings.Count(stormLog, `msg="backend health changed"`)
	passes := passLines(stormLog)
	var longest time.Duration
	writes := 0
	for _, l := range passes {
		if d := logDuration(l, "took"); d > longest {
			longest = d
		}
		writes += logInt(l, "writes")
	}
	t.Logf("storm, per second:\n%s", activity(stormLog))
	t.Logf("director CPU (share of one core): calm %.1f%%, storm %.1f%%; the whole guest busy %.0f%%, %.0f%%",
		100*calmCPU, 100*stormCPU, 100*stormStart.guestBusy(calm), 100*stormEnd.guestBusy(stormStart))
	t.Logf("storm: %d flips in %s, %d health transitions, %d passes (%.1f transitions a pass) writing %d changes to the kernel, longest pass %s",
		flips, durMS(stormEnd.at.Sub(stormStart.at)), transitions, len(passes), float64(transitions)/float64(max(1, len(passes))), writes, durMS(longest))
	// How many probes the director made, by the kernel's count, against
	// its schedule: a starved guest makes it skip slots it is more than
	// an interval late for.
	stormTook := stormEnd.at.Sub(stormStart.at)
	probes := stormEnd.opens - stormStart.opens
	rate := float64(probes) / stormTook.Seconds()
	scheduled := float64(flapBackends) * stormTook.Seconds() / flapInterval.Seconds()
	t.Logf("probes in the storm (the director namespace's Tcp ActiveOpens): %d, %.0f a second, %.0f%% of the %.0f its checks scheduled",
		probes, rate, 100*float64(probes)/scheduled, scheduled)

	// No change lost: the kernel reaches the final health, seen in the
	// director namespace's /proc/PID/net/ip_vs (read in-process: under
	// emulation an ipvsadm run takes longer than the bound's resolution).
	// The last verdict's pass may wait out the gap between passes first.
	// Detection, as in every health lab test, is interval x fall +
	// timeout with detectSlack on top for a late probe in an emulated
	// guest on a shared host. Each backend's next probe comes within an
	// interval, or within the time the director took to probe all 1,000
	// at the rate it kept up in the storm, if that is longer: a starved
	// guest is not the director's doing, a change it loses is.
	gap := director.DefaultPassGap
	sweep := max(flapInterval, time.Duration(float64(flapBackends)/max(rate, 1)*float64(time.Second)))
	bound := sweep*flapRiseFall + stormTimeout + detectSlack + gap + 2*longest
	var converged time.Time
	var last error
	for deadline := frozen.Add(max(30*time.Second, 2*bound)); ; {
		tab := kernelNow()
		now := time.Now()
		if last = sameTable(final, tab); last == nil {
			converged = now
			break
		}
		if now.After(deadline) {
			break
		}
		// The witness's sampling period: reading every destination
		// costs the emulated guest a few milliseconds.
		time.Sleep(200 * time.Millisecond)
	}
	if converged.IsZero() {
		t.Fatalf("the kernel never reached the final health (%d backends up) in %s after it was set: %v\ndirector activity since:\n%s",
			countUp(flapFinal), time.Since(frozen).Round(time.Millisecond), last, activity(d.logSince(frozenAt)))
	}
	took := converged.Sub(frozen)
	// Every verdict reached the kernel: the last health change the
	// director logged is in it within the pass under way then and the one
	// it asked for. (A lost kick leaves it out until the 1h resync.)
	verdict := lastLogTime(t, d.logSince(frozenAt), `msg="backend health changed"`)
	if verdict.IsZero() {
		t.Fatal("no health change logged after the freeze: the final state changed nothing")
	}
	follow := converged.Sub(verdict)
	t.Logf("last health change logged %s after the freeze; the kernel had it %s later (bound the pass gap %s + 2 x longest pass %s + the witness's 200ms)",
		durMS(verdict.Sub(frozen)), durMS(follow), durMS(gap), durMS(longest))
	if follow > gap+2*longest+200*time.Millisecond {
		t.Errorf("the kernel took %s after the last health change to reach the final health, want at most the pass gap and two passes (%s)", durMS(follow), durMS(gap+2*longest))
	}
	t.Logf("final health (%d of %d up) in the kernel %s after it was set (bound %s = max(interval %s, %d backends at %.0f probes a second) x %d + timeout %s + slack %s + pass gap %s + 2 x longest pass %s)",
		countUp(flapFinal), flapBackends, durMS(took), durMS(bound), flapInterval, flapBackends, rate, flapRiseFall, stormTimeout, detectSlack, durMS(gap), durMS(longest))
	if took > bound {
		t.Errorf("the kernel reached the final health %s after it was set, want at most %s", durMS(took), durMS(bound))
	}

	// Still: health no longer changes, so no pass should run and the
	// director should be back to its calm cost.
	quiet := sampleProc(t, pid)
	quietCensus := takeCensus()
	quietAt := d.logSize()
	time.Sleep(3 * time.Second) // a measuring window, not a synchronisation
	after := sampleProc(t, pid)
	t.Logf("guest CPU quiet (3 s): %s", takeCensus().top(quietCensus, 6))
	quietCPU := after.cpuSince(quiet)
	quietPasses := len(passLines(d.logSince(quietAt)))
	quietRate := float64(after.opens-quiet.opens) / after.at.Sub(quiet.at).Seconds()

	t.Logf("director CPU once health was still again: %.1f%% of one core (the whole guest busy %.0f%%); %d passes in those 3 s",
		100*quietCPU, 100*after.guestBusy(quiet), quietPasses)
	t.Logf("probes once health was still again: %.0f a second", quietRate)
	t.Logf("director memory: VmHWM %d kB before the storm, %d kB after it (VmRSS %d kB)", stormStart.hwmKB, after.hwmKB, after.rssKB)

	// The storm must have reached the director: every backend probed in
	// it, and each probe sees a health drawn afresh since the one before
	// it, so about half the probes are transitions (a quarter allows for
	// probes in flight across a draw).
	if probes < flapBackends || int64(transitions) < probes/4 {
		t.Errorf("%d health transitions for %d probes in the storm (%d flips): the storm did not reach the director", transitions, probes, flips)
	}
	// Bounded: the storm adds transitions, one log line each, and passes,
	// each one table read plus only the changes; coalesced, they cost at
	// most half the guest's CPUs above the same checks with health still
	// (measured in this run, as emulation speed varies). Passes that did
	// not coalesce took all the guest had left: at 200 backends in a
	// one-CPU guest, 76% of it against 24% calm.
	if half := float64(runtime.NumCPU()) / 2; stormCPU > calmCPU+half {
		t.Errorf("the director used %.0f%% of a core in the storm, %.0f%% with health still: more than half the guest's %d CPUs above", 100*stormCPU, 100*calmCPU, runtime.NumCPU())
	}
	// Nothing queued behind the storm: once health is still, the probes
	// (counted by the kernel) keep to their schedule, not above it. The
	// director's CPU then is reported, not bounded: in the same guest it
	// read 44% calm and 98% still in one run with the host loaded, 80%
	// and 77% in another, as the host's other guests came and went.
	if sched := float64(flapBackends) / flapInterval.Seconds(); quietRate > 1.25*sched {
		t.Errorf("%.0f probes a second once health was still again, against %.0f scheduled: work queued behind the storm", quietRate, sched)
	}
	// Memory: the storm changes states, not how many there are; a pass's
	// garbage is one read of the table (well under 1 MB). 16 MB
	// more at the peak would be a leak of about 1 kB per transition.
	if grown := after.hwmKB - stormStart.hwmKB; grown > 16<<10 {
		t.Errorf("the director's peak RSS grew by %d kB in the storm (%d -> %d kB), want at most 16 MB", grown, stormStart.hwmKB, after.hwmKB)
	}
	// Coalesced: the monitor notifies at most once per probe batch (all
	// probes due within 10 ms start together), and a pass carries every
	// change made while the previous one ran: at least two transitions a
	// pass on average. (Passes queued one per transition would also show
	// after the storm.)
	if len(passes) == 0 || transitions < 2*len(passes) {
		t.Errorf("%d passes for %d transitions, want at most one per 2 transitions (coalesced)", len(passes), transitions)
	}
	if quietPasses > 1 {
		t.Errorf("%d passes in 3 s of still health after convergence, want at most 1: passes are queued, not coalesced", quietPasses)
	}

	r := c.stopPoll(poll)
	t.Logf("poller on the steady service: %d requests, %d failed", r.Total, r.Failures)
	if r.Failures != 0 || r.Total == 0 {
		t.Errorf("%d of %d requests to the steady service failed: %q", r.Failures, r.Total, r.Errors)
	}
	for _, l := range changeLines(d.logSince(logAt)) {
		if strings.Contains(l, "service=web") {
			t.Errorf("the steady service was rewritten: %s", l)
		}
	}
	// The independent witness of the end state.
	if err := sameTable(final, ipvsadmWeights(c.ipvsTable())); err != nil {
		t.Errorf("ipvsadm -Ln: %v", err)
	}
	d.alive()
}

// loggedDirector is the real director run with its log going to a file:
// a pipe to the test would make it wait for the test to read hundreds of lines
// a second, and the test reads its log only between phases.
type loggedDirector struct {
	t    *testing.T
	cmd  *exec.Cmd
	pid  int
	log  string
	done chan struct{}
	err  error
}

func startDirectorLogged(t *testing.T, c *cluster, file string) *loggedDirector {
	t.Helper()
	d := &loggedDirector{t: t, log: filepath.Join(t.TempDir(), "director.log"), done: make(chan struct{})}
	f, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// ip netns exec execs the director: the PID is the director's.
	d.cmd = exec.Command("ip", "netns", "exec", c.director.NS, bin(t, "director"), "run", "-config", file, "--log-level", "debug")
	d.cmd.Stdout, d.cmd.Stderr = f, f
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.pid = d.cmd.Process.Pid
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			out := d.logSince(0)
			if len(out) > 20000 {
				out = "...\n" + out[len(out)-20000:]
			}
			t.Logf("director log (%s):\n%s", d.log, out)
		}
	})
	return d
}

// alive fails the test if the director has exited.
func (d *loggedDirector) alive() {
	d.t.Helper()
	select {
	case <-d.done:
		d.t.Fatalf("the director exited: %v\n%s", d.err, d.logSince(max(0, d.logSize()-5000)))
	default:
	}
}

func (d *loggedDirector) logSize() int64 {
	st, err := os.Stat(d.log)
	if err != nil {
		d.t.Fatal(err)
	}
	return st.Size()
}

// logSince is the log from byte offset on.
func (d *loggedDirector) logSince(offset int64) string {
	b, err := os.ReadFile(d.log)
	if err != nil {
		d.t.Fatal(err)
	}
	return string(b[min(offset, int64(len(b))):])
}

func countUp(up func(int) bool) int {
	n := 0
	for i := range flapBackends {
		if up(i) {
			n++
		}
	}
	return n
}

// sameTable compares a wanted table (service -> destination -> weight)
// with what the kernel has, naming the first few differences.
func sameTable(want, have map[string]map[string]int) error {
	var diffs []string
	note := func(format string, args ...any) {
		if len(diffs) < 5 {
			diffs = append(diffs, fmt.Sprintf(format, args...))
		}
	}
	n := 0
	for svc, dests := range want {
		got, ok := have[svc]
		if !ok {
			n++
			note("%s missing", svc)
			continue
		}
		for d, w := range dests {
			if g, ok := got[d]; !ok {
				n++
				note("%s %s missing (want weight %d)", svc, d, w)
			} else if g != w {
				n++
				note("%s %s weight %d, want %d", svc, d, g, w)
			}
		}
		for d, g := range got {
			if _, ok := dests[d]; !ok {
				n++
				note("%s %s (weight %d) should be gone", svc, d, g)
			}
		}
	}
	if n > 0 {
		return fmt.Errorf("%d differences: %s", n, strings.Join(diffs, "; "))
	}
	return nil
}

// procWeights is /proc/net/ip_vs as service -> destination -> weight.
func procWeights(tab map[string]map[string]procDest) map[string]map[string]int {
	out := map[string]map[string]int{}
	for s, dests := range tab {
		out[s] = map[string]int{}
		for d, pd := range dests {
			out[s][d] = pd.Weight
		}
	}
	return out
}

// ipvsadmWeights is `ipvsadm -Ln` as service -> destination -> weight
// (every destination must be Masq: these are NAT services).
func ipvsadmWeights(tab map[string]ipvsService) map[string]map[string]int {
	out := map[string]map[string]int{}
	for s, svc := range tab {
		out[s] = map[string]int{}
		for d, fw := range svc.Backends {
			w := -1 // not Masq: never equal to a wanted weight
			if f := strings.Fields(fw); len(f) == 2 && f[0] == "Masq" {
				w, _ = strconv.Atoi(f[1])
			}
			out[s][d] = w
		}
	}
	return out
}

// logValue reads key=VALUE from a text log line; "" if absent.
func logValue(line, key string) string {
	_, v, ok := strings.Cut(line, " "+key+"=")
	if !ok {
		return ""
	}
	v, _, _ = strings.Cut(v, " ")
	return v
}

// logDuration reads key=DURATION from a text log line; 0 if absent.
func logDuration(line, key string) time.Duration {
	d, _ := time.ParseDuration(logValue(line, key))
	return d
}

// activity sums a director log up per second: health changes, and each
// pass with its changes and duration.
func activity(log string) string {
	var b strings.Builder
	sec, changes := "", 0
	var passes []string
	flush := func() {
		if sec != "" {
			fmt.Fprintf(&b, "  %s: %d health changes, passes %v\n", sec, changes, passes)
		}
		changes, passes = 0, nil
	}
	for _, l := range strings.Split(log, "\n") {
		_, v, ok := strings.Cut(l, "time=")
		if !ok || len(v) < 19 {
			continue
		}
		if v[:19] != sec {
			flush()
			sec = v[:19]
		}
		switch {
		case strings.Contains(l, `msg="backend health changed"`):
			changes++
		case len(passLines(l)) > 0:
			passes = append(passes, fmt.Sprintf("%d ops in %s", logInt(l, "ops"), logDuration(l, "took").Round(time.Millisecond)))
		}
	}
	flush()
	return b.String()
}

// lastLogTime is the time= of the last line of log holding what; zero if
// none does.
func lastLogTime(t *testing.T, log, what string) time.Time {
	t.Helper()
	i := strings.LastIndex(log, what)
	if i < 0 {
		return time.Time{}
	}
	line := log[strings.LastIndexByte(log[:i], '\n')+1:]
	_, v, ok := strings.Cut(line, "time=")
	if !ok {
		t.Fatalf("log line without time: %q", line[:min(len(line), 200)])
	}
	v, _, _ = strings.Cut(v, " ")
	at, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		t.Fatalf("log line time %q: %v", v, err)
	}
	return at
}

// logInt reads key=N from a text log line; 0 if absent.
func logInt(line, key string) int {
	n, _ := strconv.Atoi(logValue(line, key))
	return n
}

// procSample is what the kernel accounts for a process at one moment.
type procSample struct {
	at           time.Time
	cpu          time.Duration // utime + stime
	hwmKB, rssKB int           // VmHWM (peak resident), VmRSS
	// The whole guest's busy and total CPU ticks (/proc/stat), to tell a
	// busy director from a busy guest.
	busy, total int64
	// opens is Tcp ActiveOpens in the process's network namespace: the
	// kernel's count of connects, which in the director's are its TCP
	// probes.
	opens int64
}

func sampleProc(t *testing.T, pid int) procSample {
	t.Helper()
	s := procSample{at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which may hold spaces: state is
	// field 3, utime and stime fields 14 and 15.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 13 {
		t.Fatalf("/proc/%d/stat: %q", pid, stat)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, stat)
	}
	s.cpu = time.Duration(ut+st) * time.Second / clkTck
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		switch k {
		case "VmHWM":
			s.hwmKB = kb
		case "VmRSS":
			s.rssKB = kb
		}
	}
	if s.hwmKB == 0 {
		t.Fatalf("/proc/%d/status has no VmHWM", pid)
	}
	all, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(all), "\n")
	for i, f := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseInt(f, 10, 64)
		s.total += n
		if i != 3 && i != 4 { // idle, iowait
			s.busy += n
		}
	}
	snmp, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/snmp", pid))
	if err != nil {
		t.Fatal(err)
	}
	if s.opens, err = snmpValue(string(snmp), "Tcp", "ActiveOpens"); err != nil {
		t.Fatalf("/proc/%d/net/snmp: %v", pid, err)
	}
	return s
}

// snmpValue reads one counter from /proc/net/snmp, where each protocol
// has a line of names followed by a line of values.
func snmpValue(snmp, proto, name string) (int64, error) {
	var names []string
	for _, l := range strings.Split(snmp, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != proto+":" {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		if i := slices.Index(names, name); i >= 0 && i+1 < len(f) {
			return strconv.ParseInt(f[i+1], 10, 64)
		}
		break
	}
	return 0, fmt.Errorf("no %s %s", proto, name)
}

// guestBusy is the share of the guest's CPU time in use between two
// samples.
func (s procSample) guestBusy(prev procSample) float64 {
	return float64(s.busy-prev.busy) / float64(max(1, s.total-prev.total))
}

// cpuSince is the CPU used between two samples as a share of one core.
func (s procSample) cpuSince(prev procSample) float64 {
	return float64(s.cpu-prev.cpu) / float64(s.at.Sub(prev.at))
}

// nsListeners are TCP listeners on consecutive ports of one address in a
// namespace, made by one goroutine whose OS thread stays in that
// namespace (a socket belongs to the namespace it was made in). A port
// that is down refuses the check's SYN; one that is up completes its
// handshake, and defers accepting until data comes, which a check never
// sends, so nothing piles up in its queue.
//
// A flip costs one system call, so the test can flip 1,000 ports a second
// in an emulated guest: shutdown(SHUT_RD) of a listening socket stops its
// listening (the kernel disconnects it, keeping the bound port), and
// listen() starts it again.
type nsListeners struct {
	t    *testing.T
	ip   [4]byte
	base int
	fds  []int  // -1 until first opened
	up   []bool // listening
	jobs chan func()
	mu   sync.Mutex
	err  error // the first failed socket call
}

func newNSListeners(t *testing.T, ns, addr string, base, n int) *nsListeners {
	t.Helper()
	a, err := netip.ParseAddr(addr)
	if err != nil || !a.Is4() {
		t.Fatalf("listener address %q: %v", addr, err)
	}
	l := &nsListeners{t: t, ip: a.As4(), base: base, fds: make([]int, n), up: make([]bool, n), jobs: make(chan func())}
	for i := range l.fds {
		l.fds[i] = -1
	}
	started := make(chan error, 1)
	go func() {
		// The thread goes back to the test's namespace before it is
		// unlocked. Never left in the other one: if it is the process's
		// main thread (Go may run any goroutine there, and never ends
		// that thread), /proc/PID/ns/net would name the real server's
		// namespace, and the lab's cleanup, which SIGKILLs every PID
		// `ip netns pids` lists there, would kill the test.
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			started <- err
			return
		}
		defer home.Close()
		f, err := os.Open(filepath.Join("/var/run/netns", ns))
		if err == nil {
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
			f.Close()
		}
		started <- err
		if err != nil {
			return // still home: setns failed
		}
		for job := range l.jobs {
			job()
		}
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else the locked thread ends with the goroutine (or, the main thread, stays wedged)
	}()
	if err := <-started; err != nil {
		t.Fatalf("enter namespace %s: %v", ns, err)
	}
	t.Cleanup(func() {
		l.do(func() {
			for _, fd := range l.fds {
				if fd >= 0 {
					unix.Close(fd)
				}
			}
		})
		close(l.jobs)
	})
	return l
}

// do runs job on the namespace's thread and waits for it.
func (l *nsListeners) do(job func()) {
	done := make(chan struct{})
	l.jobs <- func() { job(); close(done) }
	<-done
}

// set makes listener i listen or not; on the namespace's thread only.
func (l *nsListeners) set(i int, up bool) {
	if l.up[i] == up {
		return
	}
	var err error
	switch {
	case l.fds[i] < 0:
		err = l.open(i)
	case up:
		err = unix.Listen(l.fds[i], 128)
	default:
		err = unix.Shutdown(l.fds[i], unix.SHUT_RD)
	}
	if err != nil {
		l.mu.Lock()
		if l.err == nil {
			l.err = fmt.Errorf("port %d up=%v: %w", l.base+i, up, err)
		}
		l.mu.Unlock()
		return
	}
	l.up[i] = up
}

// open makes listener i's socket, listening.
func (l *nsListeners) open(i int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err == nil {
		err = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 30)
	}
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrInet4{Addr: l.ip, Port: l.base + i})
	}
	if err == nil {
		err = unix.Listen(fd, 128)
	}
	if err != nil {
		unix.Close(fd)
		return err
	}
	l.fds[i] = fd
	return nil
}

// setAll puts every listener in the state up(i) and returns when the
// last one is.
func (l *nsListeners) setAll(up func(int) bool) time.Time {
	l.t.Helper()
	var at time.Time
	l.do(func() {
		for i := range l.fds {
			l.set(i, up(i))
		}
		at = time.Now()
	})
	l.check()
	return at
}

// storm draws every listener's state afresh once a period (up or down
// with even odds, from a fixed sequence), staggered evenly over the
// period, for d; it returns how many draws changed a state.
func (l *nsListeners) storm(d, period time.Duration) int {
	l.t.Helper()
	flips := 0
	l.do(func() {
		n := len(l.fds)
		step := period / time.Duration(n)
		start := time.Now()
		// Every 20 ms, not every 5: each wake of this locked thread
		// costs the emulated guest, and a draw 20 ms late is still
		// within its period.
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for k := 0; ; {
			// Draw k is of listener k%n, due at start + k*step. (Not the
			// tick's time: a late receiver gets the time it was due.)
			elapsed := time.Since(start)
			for due := int(min(elapsed, d) / step); k <= due; k++ {
				i := k % n
				up := drawUp(uint64(k))
				if up != l.up[i] {
					flips++
				}
				l.set(i, up)
			}
			if elapsed >= d {
				return
			}
			<-tick.C
		}
	})
	l.check()
	return flips
}

// drawUp is draw k of the storm's fixed sequence: a SplitMix64 step,
// whose low bit is as good as a coin.
func drawUp(k uint64) bool {
	z := k*0x9e3779b97f4a7c15 + 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return (z^z>>31)&1 == 1
}

func (l *nsListeners) check() {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		l.t.Fatal(l.err)
	}
}

// guestCensus is every process's CPU ticks in the guest and the guest's
// /proc/stat split, at one moment: what eats the guest's one CPU.
type guestCensus struct {
	at    time.Time
	procs map[int]procTicks
	split [8]int64 // user nice system idle iowait irq softirq steal
}

type procTicks struct {
	comm        string
	ticks, user int64 // utime+stime, utime
}

func takeCensus() guestCensus {
	g := guestCensus{at: time.Now(), procs: map[int]procTicks{}}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(stat)
		lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if lp < 0 || rp < lp {
			continue
		}
		f := strings.Fields(s[rp+1:])
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		g.procs[pid] = procTicks{s[lp+1 : rp], ut + st, ut}
	}
	all, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(all), "\n")
	for i, f := range strings.Fields(line)[1:] {
		if i < len(g.split) {
			g.split[i], _ = strconv.ParseInt(f, 10, 64)
		}
	}
	return g
}

// top names the processes that used most CPU since prev, as shares of
// the wall time (a process's CPU time is exact, but under emulation the
// guest's tick counts in /proc/stat miss ticks when the host is busy),
// and the guest's user/system/softirq/idle split of its ticks.
func (g guestCensus) top(prev guestCensus, n int) string {
	var total int64
	for i := range g.split {
		total += g.split[i] - prev.split[i]
	}
	total = max(total, 1)
	pct := func(t int64) float64 { return 100 * float64(t) / float64(total) }
	wall := max(float64(g.at.Sub(prev.at))/float64(time.Second)*clkTck, 1)
	wallPct := func(t int64) float64 { return 100 * float64(t) / wall }
	type use struct {
		pid         int
		comm        string
		ticks, user int64
	}
	var uses []use
	for pid, p := range g.procs {
		d := p.ticks - prev.procs[pid].ticks // a new process: all of it
		if d > 0 {
			uses = append(uses, use{pid, p.comm, d, p.user - prev.procs[pid].user})
		}
	}
	slices.SortFunc(uses, func(a, b use) int { return cmp.Compare(b.ticks, a.ticks) })
	d := func(i int) int64 { return g.split[i] - prev.split[i] }
	var b strings.Builder
	fmt.Fprintf(&b, "ticks: user %.0f%% system %.0f%% irq %.0f%% softirq %.0f%% idle %.0f%%; of the wall time:",
		pct(d(0)+d(1)), pct(d(2)), pct(d(5)), pct(d(6)), pct(d(3)+d(4)))
	for _, u := range uses[:min(n, len(uses))] {
		fmt.Fprintf(&b, " %s[%d] %.0f%% (user %.0f%%)", u.comm, u.pid, wallPct(u.ticks), wallPct(u.user))
	}
	return b.String()
}
