//go:build lab

package integration

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golvs/golvs/director/status"
	"github.com/golvs/golvs/integration/labnet"
)

// The check timing issue 4 asks for: interval 500ms, timeout 400ms, fall 2,
// rise 2. Detection can take at most interval*fall + timeout after the
// failure; TCG and the two shared cores get detectSlack on top.
const (
	hcInterval  = 500 * time.Millisecond
	hcTimeout   = 400 * time.Millisecond
	hcFall      = 2
	hcRise      = 2
	detectSlack = 1500 * time.Millisecond
	hcPollEvery = 50 * time.Millisecond
)

var hcCheck = fmt.Sprintf(`interval = "%s"
timeout = "%s"
fall = %d
rise = %d
`, hcInterval, hcTimeout, hcFall, hcRise)

// hcDRService is a dr rr [[service]] on port 80 with the given backends
// (addresses on port 80, weight 1), extra service keys and a check table
// body (empty: no check).
func hcDRService(backends []string, extra, check string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[[service]]\nname = \"web\"\naddress = %q\nport = 80\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"dr\"\n%s\n", vip, extra)
	if check != "" {
		fmt.Fprintf(&b, "[service.check]\n%s\n", check)
	}
	for _, a := range backends {
		fmt.Fprintf(&b, "[[service.backend]]\naddress = %q\nport = 80\nweight = 1\n\n", a)
	}
	return b.String()
}

const hcWebKey = "TCP " + vip + ":80"

// routeWeights is a ready func: the web service has exactly these
// backends ("ADDR:80" -> weight), all Route.
func routeWeights(want map[string]int) func(map[string]ipvsService) error {
	return func(table map[string]ipvsService) error {
		s, ok := table[hcWebKey]
		if !ok {
			return fmt.Errorf("no service %s", hcWebKey)
		}
		for a, w := range want {
			if got := s.Backends[a]; got != fmt.Sprintf("Route %d", w) {
				return fmt.Errorf("backend %s = %q, want Route %d", a, got, w)
			}
		}
		if len(s.Backends) != len(want) {
			return fmt.Errorf("backends %v, want %v", s.Backends, want)
		}
		return nil
	}
}

func (c *cluster) allRoute1() map[string]int {
	m := map[string]int{}
	for _, a := range c.rsAddrs {
		m[a+":80"] = 1
	}
	return m
}

// procDest is one destination in /proc/net/ip_vs.
type procDest struct {
	Forward       string
	Weight        int
	Active, Inact int
}

// ipvsSample is the director namespace's /proc/net/ip_vs at one moment:
// service ("TCP 192.0.2.100:80") -> destination ("192.0.2.13:80").
type ipvsSample struct {
	at    time.Time
	table map[string]map[string]procDest
}

// ipvsWatch reads the kernel's own IPVS table of a namespace
// (/proc/PID/net/ip_vs of a process in it) every few milliseconds and
// keeps every change with the time it was seen: an independent witness,
// fast enough to time health-check reactions, which a forked ipvsadm
// under TCG is not.
type ipvsWatch struct {
	t       *testing.T
	path    string
	mu      sync.Mutex
	samples []ipvsSample
	err     error
}

func watchIPVS(t *testing.T, p *labnet.Proc) *ipvsWatch {
	t.Helper()
	w := &ipvsWatch{t: t, path: fmt.Sprintf("/proc/%d/net/ip_vs", p.Cmd.Process.Pid)}
	if _, err := w.read(); err != nil {
		t.Fatalf("watch IPVS: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var last string
		for {
			raw, err := os.ReadFile(w.path)
			now := time.Now()
			w.mu.Lock()
			if err != nil {
				if w.err == nil {
					w.err = err
				}
			} else if string(raw) != last {
				last = string(raw)
				tab, perr := parseProcIPVS(last)
				if perr != nil && w.err == nil {
					w.err = perr
				}
				w.samples = append(w.samples, ipvsSample{at: now, table: tab})
			}
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *ipvsWatch) read() (map[string]map[string]procDest, error) {
	raw, err := os.ReadFile(w.path)
	if err != nil {
		return nil, err
	}
	return parseProcIPVS(string(raw))
}

// parseProcIPVS parses the IPv4 lines of /proc/net/ip_vs (hex addresses).
func parseProcIPVS(s string) (map[string]map[string]procDest, error) {
	tab := map[string]map[string]procDest{}
	var cur string
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && (f[0] == "TCP" || f[0] == "UDP" || f[0] == "SCTP"):
			ap, err := hexAddrPort(f[1])
			if err != nil {
				return nil, err
			}
			cur = f[0] + " " + ap
			tab[cur] = map[string]procDest{}
		case len(f) == 6 && f[0] == "->" && cur != "" && f[1] != "RemoteAddress:Port":
			ap, err := hexAddrPort(f[1])
			if err != nil {
				return nil, err
			}
			var d procDest
			d.Forward = f[2]
			var errs [3]error
			d.Weight, errs[0] = strconv.Atoi(f[3])
			d.Active, errs[1] = strconv.Atoi(f[4])
			d.Inact, errs[2] = strconv.Atoi(f[5])
			if err := errors.Join(errs[:]...); err != nil {
				return nil, fmt.Errorf("line %q: %w", line, err)
			}
			tab[cur][ap] = d
		}
	}
	return tab, nil
}

func hexAddrPort(s string) (string, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok || len(a) != 8 {
		return "", fmt.Errorf("not an IPv4 hex address: %q", s)
	}
	b, err := hex.DecodeString(a)
	if err != nil {
		return "", err
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return "", err
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b)), uint16(port)).String(), nil
}

// first waits (up to timeout) for the first sample at or after since in
// which cond holds, and returns when it was seen.
func (w *ipvsWatch) first(since time.Time, timeout time.Duration, what string, cond func(map[string]map[string]procDest) error) time.Time {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	var last error = errors.New("no sample yet")
	seen := 0
	for {
		w.mu.Lock()
		samples, werr := w.samples, w.err
		w.mu.Unlock()
		if werr != nil {
			w.t.Fatalf("watching %s: %v", w.path, werr)
		}
		for ; seen < len(samples); seen++ {
			s := samples[seen]
			// The sample before since is still the table at since.
			if next := seen + 1; next < len(samples) && !samples[next].at.After(since) {
				continue
			}
			if last = cond(s.table); last == nil {
				if s.at.Before(since) {
					return since
				}
				return s.at
			}
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: not seen in %s: %v", what, timeout, last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// always checks that cond held in every sample covering [from, to].
func (w *ipvsWatch) always(from, to time.Time, what string, cond func(map[string]map[string]procDest) error) {
	w.t.Helper()
	w.mu.Lock()
	samples := slices.Clone(w.samples)
	w.mu.Unlock()
	for i, s := range samples {
		if i+1 < len(samples) && !samples[i+1].at.After(from) {
			continue
		}
		if !s.at.Before(to) {
			break
		}
		if err := cond(s.table); err != nil {
			w.t.Errorf("%s: broken at %s (%s into the window): %v", what, s.at.Format("15:04:05.000"), s.at.Sub(from).Round(time.Millisecond), err)
			return
		}
	}
}

// destWeight is a condition: the web service has destination addr with
// this weight. destGone: it has no such destination.
func destWeight(addr string, weight int) func(map[string]map[string]procDest) error {
	return func(tab map[string]map[string]procDest) error {
		d, ok := tab[hcWebKey][addr]
		if !ok {
			return fmt.Errorf("%s not in the table", addr)
		}
		if d.Weight != weight {
			return fmt.Errorf("%s weight %d, want %d", addr, d.Weight, weight)
		}
		return nil
	}
}

// destWeights is a condition: the web service has exactly these
// destinations ("ADDR:PORT" -> weight).
func destWeights(want map[string]int) func(map[string]map[string]procDest) error {
	return func(tab map[string]map[string]procDest) error {
		got := map[string]int{}
		for a, d := range tab[hcWebKey] {
			got[a] = d.Weight
		}
		if !maps.Equal(got, want) {
			return fmt.Errorf("weights %v, want %v", got, want)
		}
		return nil
	}
}

func destGone(addr string) func(map[string]map[string]procDest) error {
	return func(tab map[string]map[string]procDest) error {
		if d, ok := tab[hcWebKey][addr]; ok {
			return fmt.Errorf("%s still in the table: %+v", addr, d)
		}
		return nil
	}
}

// destConnsGrow waits until addr has by more connections (active +
// inactive) than when called, in a sample from since on: the kernel has
// sent it new ones.
func (w *ipvsWatch) destConnsGrow(addr string, since time.Time, by int) time.Time {
	w.t.Helper()
	tab, err := w.read()
	if err != nil {
		w.t.Fatal(err)
	}
	base := tab[hcWebKey][addr].Active + tab[hcWebKey][addr].Inact
	return w.first(since, 20*eventuallyScale, addr+" gets new connections", func(tab map[string]map[string]procDest) error {
		d := tab[hcWebKey][addr]
		if n := d.Active + d.Inact; n < base+by {
			return fmt.Errorf("%s has %d connections, want %d", addr, n, base+by)
		}
		return nil
	})
}

// hcPollResult is labhost poll's JSON.
type hcPollResult struct {
	Total      int            `json:"total"`
	Failures   int            `json:"failures"`
	Counts     map[string]int `json:"counts"`
	OutageMS   int64          `json:"longest_outage_ms"`
	FailedAtMS []int64        `json:"failed_at_ms"`
	Outages    []pollOutage   `json:"outages"`
	Errors     []string       `json:"errors"`
}

// pollOutage is one stretch without an answer (Unix ms; End 0 = the poll
// ended in it).
type pollOutage struct {
	Start int64 `json:"start_ms"`
	End   int64 `json:"end_ms"`
}

// startPoll runs labhost poll from the client against the VIP, a new
// connection every hcPollEvery, until stopPoll.
func (c *cluster) startPoll() *labnet.Proc {
	c.t.Helper()
	return c.client.Start("ready", bin(c.t, "labhost"), "poll", "--url", "http://"+vip+"/",
		"--interval", hcPollEvery.String(), "--duration", "5m", "--timeout", "5s")
}

func (c *cluster) stopPoll(p *labnet.Proc) hcPollResult {
	c.t.Helper()
	return stopPoll(c.t, p)
}

// stopPoll stops a labhost poll with SIGINT and returns its results.
func stopPoll(t *testing.T, p *labnet.Proc) hcPollResult {
	t.Helper()
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("labhost poll: %v\n%s", err, p.Output())
	}
	out := strings.TrimSpace(p.Output())
	var r hcPollResult
	if err := json.Unmarshal([]byte(out[strings.LastIndex(out, "\n")+1:]), &r); err != nil {
		t.Fatalf("labhost poll output %q: %v", out, err)
	}
	return r
}

func durMS(d time.Duration) string { return d.Round(time.Millisecond).String() }

// startHTTPChecked starts the director with issue 4's http check on the
// three real servers (weight0 on failure), all at weight 1.
func (c *cluster) startHTTPChecked() *labnet.Proc {
	c.t.Helper()
	return c.startDirector(hcDRService(c.rsAddrs, `on_failure = "weight0"`, `type = "http"
path = "/"
`+hcCheck), routeWeights(c.allRoute1()))
}

// TestHealthDetectDR kills one real server of a dr service with an http
// check while a client polls every 50ms: the kernel shows weight 0 within
// interval*fall+timeout (plus slack), the client's failures all started
// inside that detection window (new connections to the dead server before
// it are refused: no product can avoid those), none after, and the server
// is back at its weight rise checks after it returns.
//
// On a loaded host the guest stalls: a probe the director excused as its
// own stall (director status: excused_probes) costs one interval, and the
// time the guest could not run (watchGuestStalls) delays every step, so
// both bounds allow for what was measured in their window.
func TestHealthDetectDR(t *testing.T) {
	c := newCluster(t, "dr")
	p := c.startHTTPChecked()
	w := watchIPVS(t, p)
	stalls := watchGuestStalls(t)
	dead := c.rsAddrs[2] + ":80"

	poll := c.startPoll()
	// Let every server answer the poller first.
	w.destConnsGrow(dead, time.Now(), 2)

	excused0 := c.excusedProbes(dead)
	killed := time.Now()
	c.stopServer(2)
	down := w.first(killed, 20*eventuallyScale, dead+" weight 0", destWeight(dead, 0))
	detect := down.Sub(killed)
	bound := hcInterval*hcFall + hcTimeout
	allow := loadAllowance(c.excusedProbes(dead)-excused0, stalls.Within(killed, down))
	t.Logf("detection: weight 0 seen %s after the kill (bound %s + slack %s + %s)", durMS(detect), bound, detectSlack, allow)
	if detect > bound+detectSlack+allow.d {
		t.Errorf("weight 0 came %s after the kill, want at most %s + %s + %s", durMS(detect), bound, detectSlack, allow)
	}
	// fall 2: two failed probes, an interval apart, are needed; the first
	// may be one already under way at the kill (its connection cut), so
	// it can end up to a timeout after it started.
	if floor := hcInterval*(hcFall-1) - hcTimeout; detect < floor {
		t.Errorf("weight 0 came %s after the kill: sooner than fall=%d probes allow (%s)", durMS(detect), hcFall, floor)
	}
	// The poller keeps going across the return.
	// The upper bound is measured from when the server answers
	// (startServer waits for its ready line), not from the process start,
	// which a busy machine stretches by seconds; the lower one from the
	// start, the earliest it could answer.
	// Excused probes are counted from the start (no command runs in the
	// rise window to load the guest): those before ready failed anyway,
	// so under load the allowance may be generous, never short.
	excused0 = c.excusedProbes(dead)
	starting := time.Now()
	c.startServer(2)
	ready := time.Now()
	// Weight 0 kept the entry; the other two were untouched.
	w.always(down, starting, dead+" at weight 0, the others at 1", func(tab map[string]map[string]procDest) error {
		return errors.Join(destWeight(dead, 0)(tab), destWeight(c.rsAddrs[0]+":80", 1)(tab), destWeight(c.rsAddrs[1]+":80", 1)(tab))
	})
	up := w.first(starting, 20*eventuallyScale, dead+" back at weight 1", destWeight(dead, 1))
	rise := up.Sub(ready)
	allow = loadAllowance(c.excusedProbes(dead)-excused0, stalls.Within(ready, up))
	t.Logf("rise: weight 1 seen %s after the server was ready again (%s after its start; bound %s + slack %s + %s)",
		durMS(rise), durMS(up.Sub(starting)), hcInterval*hcRise+hcTimeout, detectSlack, allow)
	if rise > hcInterval*hcRise+hcTimeout+detectSlack+allow.d {
		t.Errorf("weight 1 came back %s after the restart, want at most %s + %s + %s", durMS(rise), hcInterval*hcRise+hcTimeout, detectSlack, allow)
	}
	if floor := hcInterval*(hcRise-1) - hcTimeout; up.Sub(starting) < floor {
		t.Errorf("weight 1 came back %s after the restart: sooner than rise=%d probes allow", durMS(up.Sub(starting)), hcRise)
	}

	w.destConnsGrow(dead, up, 3)
	r := c.stopPoll(poll)
	t.Logf("poller: %d requests, %d failed, counts %v, longest outage %dms, errors %q", r.Total, r.Failures, r.Counts, r.OutageMS, r.Errors)

	// A failure may start a request's length before the kill (the kill
	// cuts it; under TCG a request can take a few hundred ms) and up to one
	// poll interval after weight 0 (scheduled just before); none outside.
	from := killed.Add(-500 * time.Millisecond).UnixMilli()
	to := down.Add(hcPollEvery).UnixMilli()
	outside := false
	for _, at := range r.FailedAtMS {
		if at < from || at > to {
			outside = true
			t.Errorf("a request started at %s failed, outside the detection window %s..%s",
				time.UnixMilli(at).Format("15:04:05.000"), killed.Format("15:04:05.000"), down.Format("15:04:05.000"))
		}
	}
	if outside {
		// A loaded run once saw one refused 16 s after weight 0, with
		// rs1 and rs2 at weight 1 throughout. An entry left to the dead
		// server (a SYN_RECV to it), or none (IPVS itself refusing),
		// shows here; the client's neighbours show where the VIP led.
		out, err := c.director.Exec("ipvsadm", "-Lnc")
		t.Logf("the director's connection entries (ipvsadm -Lnc, %v):\n%s", err, out)
		out, err = c.client.Exec("ip", "neigh", "show")
		t.Logf("the client's neighbours (%v):\n%s", err, out)
	}
	if allowed := int((down.Sub(killed)+hcPollEvery)/hcPollEvery) + 2; r.Failures > allowed {
		t.Errorf("%d requests failed; the %s window allows at most %d", r.Failures, durMS(detect), allowed)
	}
	for _, n := range c.names {
		if r.Counts[n] == 0 {
			t.Errorf("%s answered no poll: %v", n, r.Counts)
		}
	}
	// ipvsadm agrees at the end.
	if err := routeWeights(c.allRoute1())(c.ipvsTable()); err != nil {
		t.Errorf("ipvsadm -Ln at the end: %v", err)
	}
}

// allowance is what a loaded host may add to a detection or rise bound:
// an interval for each probe the director excused as its own failure, and
// the time the guest could not run.
type allowance struct {
	d       time.Duration
	excused uint64
	stalled time.Duration
}

func loadAllowance(excused uint64, stalled time.Duration) allowance {
	return allowance{hcInterval*time.Duration(excused) + stalled, excused, stalled}
}

func (a allowance) String() string {
	return fmt.Sprintf("%s for the load (%d excused probes, guest stalled %s)", durMS(a.d), a.excused, durMS(a.stalled))
}

// excusedProbes is how many of addr's probes the director's status says
// it excused as its own failures (stalls, local errors).
func (c *cluster) excusedProbes(addr string) uint64 {
	c.t.Helper()
	sock := filepath.Join(filepath.Dir(c.config), "director.sock")
	out, err := c.director.Exec(bin(c.t, "director"), "status", "--json", "--socket", sock)
	if err != nil {
		c.t.Fatalf("director status --json: %v\n%s", err, out)
	}
	var st status.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		c.t.Fatalf("director status --json: %v\n%s", err, out)
	}
	for _, s := range st.Services {
		for _, b := range s.Backends {
			if b.Address.String() == addr {
				return b.ExcusedProbes
			}
		}
	}
	c.t.Fatalf("director status --json has no backend %s:\n%s", addr, out)
	return 0
}

// TestHealthStalledDirector stops the director (SIGSTOP) for 450 ms of
// every 510 ms for 5 s, as a host that starves its VM would: the probes
// of that time run out issue 4's 400 ms timeout while the director is
// stopped, though the real servers are healthy. The kernel forwards on
// meanwhile, and the director must not take the backends out on its own
// stalls: /proc/net/ip_vs keeps all three at weight 1 through the stalls
// and for fall probes after them, and the client's polls all succeed.
// The director logs the probes it excused.
func TestHealthStalledDirector(t *testing.T) {
	c := newCluster(t, "dr")
	p := c.startHTTPChecked()
	w := watchIPVS(t, p)
	poll := c.startPoll()
	// Every backend checked and answering the poller before the stalls.
	for _, a := range c.rsAddrs {
		w.destConnsGrow(a+":80", time.Now(), 2)
	}

	const stop, run, stalls = 450 * time.Millisecond, 60 * time.Millisecond, 5 * time.Second
	from := time.Now()
	cycles := 0
	for time.Since(from) < stalls {
		if err := p.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(stop)
		if err := p.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		cycles++
		time.Sleep(run)
	}
	resumed := time.Now()
	// A backend taken out by the stalls would be at weight 0 within
	// fall probes of the last resume (TestHealthDetectDR's bound).
	time.Sleep(hcInterval*hcFall + hcTimeout + detectSlack)
	until := time.Now()
	w.always(from, until, "the healthy backends at weight 1 through the director's stalls", destWeights(c.allRoute1()))
	r := c.stopPoll(poll)
	t.Logf("%d stalls of %s in %s; poller: %d requests, %d failed, counts %v, errors %q",
		cycles, stop, durMS(resumed.Sub(from)), r.Total, r.Failures, r.Counts, r.Errors)
	if r.Failures != 0 {
		t.Errorf("%d of %d polls failed across the director's stalls", r.Failures, r.Total)
	}
	excused := strings.Count(p.Output(), "director itself stalled")
	var counted uint64
	for _, a := range c.rsAddrs {
		counted += c.excusedProbes(a + ":80")
	}
	t.Logf("the director's log: %d lines of probes excused as its own stalls; its status: %d excused probes", excused, counted)
	if excused == 0 || counted == 0 {
		t.Errorf("the director logged %d lines and its status counts %d probes excused as its own stalls; its output:\n%s", excused, counted, p.Output())
	}
}

// startAgentEndpoints runs `realserver run -config FILE` on every real
// server with its agent endpoint on :9471 (what the director's agent
// check asks) and the given drain grace, and returns each one's drain
// file and process.
func (c *cluster) startAgentEndpoints(file string, grace time.Duration) ([]string, []*labnet.Proc) {
	c.t.Helper()
	dir := c.t.TempDir()
	drains := make([]string, len(c.rs))
	procs := make([]*labnet.Proc, len(c.rs))
	for i, h := range c.rs {
		drains[i] = filepath.Join(dir, fmt.Sprintf("rs%d.drain", i))
		p := h.Start("agent endpoint listening", bin(c.t, "realserver"), "run", "-config", file,
			"--state-file", filepath.Join(dir, fmt.Sprintf("rs%d.state", i)),
			"--drain-file", drains[i], "--agent-address", ":9471", "--drain-grace", grace.String())
		procs[i] = p
		c.t.Cleanup(func() {
			if c.t.Failed() {
				c.t.Logf("%s output:\n%s", p.Name, p.Output())
			}
		})
	}
	for _, h := range c.rs {
		eventually(c.t, 20*eventuallyScale, h.Name+": the agent puts the VIP on lo", func() error {
			if out, _ := h.Exec("ip", "-4", "addr", "show", "dev", "lo"); !strings.Contains(out, " "+vip+"/32 ") {
				return fmt.Errorf("no %s/32 on lo:\n%s", vip, out)
			}
			return nil
		})
	}
	return drains, procs
}

// TestHealthAgentDrainDR is the graceful path: the realserver agent on a
// real server is put into drain, the director's agent check gives it
// weight 0, and only then its application stops. A client polling every
// 50ms throughout sees no failure at all. Undrained with the application
// back, the server returns to its weight. Then the agent is stopped with
// SIGTERM: its drain grace gives weight 0 before it takes the VIP away,
// and the poller still sees no failure.
//
// Its agent check is slower than the issue-4 timings the detection tests
// use (500ms/400ms, fall 2): this test is about the drain the agent
// reports, and with those timings a host with its CPUs busy made agent
// probes outlast 400 ms twice running on every server in turn, so the
// director took all three out and requests were refused. Three probes of
// 1 s in a row are needed to fail one now. The bounds follow from these.
func TestHealthAgentDrainDR(t *testing.T) {
	const (
		interval = time.Second
		timeout  = time.Second
		fall     = 3
		// The drain grace outlasts the probe that reports it (at most
		// an interval and a timeout after SIGTERM) and twice the slack:
		// with the host's CPUs busy the report took 2.6 s.
		grace = interval + timeout + 2*detectSlack
	)
	c := newClusterPrep(t, "dr", false)
	p := c.startDirector(hcDRService(c.rsAddrs, "", fmt.Sprintf("type = \"agent\"\ninterval = %q\ntimeout = %q\nfall = %d\nrise = %d\n",
		interval, timeout, fall, hcRise)), hasBackends(3, hcWebKey))
	drains, agents := c.startAgentEndpoints(c.config, grace)
	w := watchIPVS(t, p)
	w.first(time.Now(), 20*eventuallyScale, "all at weight 1", func(tab map[string]map[string]procDest) error {
		return errors.Join(destWeight(c.rsAddrs[0]+":80", 1)(tab), destWeight(c.rsAddrs[1]+":80", 1)(tab), destWeight(c.rsAddrs[2]+":80", 1)(tab))
	})
	leaving := c.rsAddrs[2] + ":80"

	poll := c.startPoll()
	w.destConnsGrow(leaving, time.Now(), 2)

	// Timed from when `realserver drain` returned (the drain is in the
	// file by then), not from its process start, which a busy emulated
	// guest stretches by a second or more; the kernel is watched from
	// the start.
	starting := time.Now()
	c.rs[2].MustExec(bin(t, "realserver"), "drain", "--drain-file", drains[2])
	drained := time.Now()
	zero := w.first(starting, 20*eventuallyScale, leaving+" weight 0", destWeight(leaving, 0))
	t.Logf("drain: weight 0 seen %s after `realserver drain` returned (%s after it started)", durMS(zero.Sub(drained)), durMS(zero.Sub(starting)))
	if d := zero.Sub(drained); d > interval+timeout+detectSlack {
		t.Errorf("drain took %s to reach the kernel, want at most %s + %s", durMS(d), interval+timeout, detectSlack)
	}
	// Connections already sent there finish before the application goes.
	w.first(zero, 20*eventuallyScale, leaving+" has no active connection", func(tab map[string]map[string]procDest) error {
		if d := tab[hcWebKey][leaving]; d.Active != 0 || d.Weight != 0 {
			return fmt.Errorf("%s: %+v", leaving, d)
		}
		return nil
	})
	stopped := time.Now()
	c.stopServer(2)
	// The poller runs on against the two others for a while: wait until
	// the kernel has given them new connections.
	w.destConnsGrow(c.rsAddrs[0]+":80", stopped, 5)

	c.startServer(2)
	undrained := time.Now()
	c.rs[2].MustExec(bin(t, "realserver"), "undrain", "--drain-file", drains[2])
	back := w.first(undrained, 20*eventuallyScale, leaving+" back at weight 1", destWeight(leaving, 1))
	t.Logf("undrain: weight 1 seen %s after `realserver undrain`", durMS(back.Sub(undrained)))
	w.always(zero, back, leaving+" stays at weight 0 while drained and stopped", destWeight(leaving, 0))
	w.destConnsGrow(leaving, back, 3)

	// Shutdown: on SIGTERM the agent reports drain for its grace, then
	// restores the host (the VIP leaves lo: no more dr traffic there) and
	// exits; the application stops last.
	// The witness of the VIP leaving lo is `ip monitor`, read in memory
	// the moment weight 0 is seen: an `ip addr show` run then starts a
	// process, which a busy guest delayed past the grace.
	mon := startAddrMonitor(t, c.rs[2])
	termed := time.Now()
	if err := agents[2].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	zero2 := w.first(termed, 20*eventuallyScale, leaving+" weight 0 after the agent's SIGTERM", destWeight(leaving, 0))
	gone, left := deletion(mon.output(), vip+"/32")
	t.Logf("sigterm: weight 0 seen %s after SIGTERM (drain grace %s)", durMS(zero2.Sub(termed)), grace)
	if left {
		t.Errorf("the VIP left lo before weight 0 was seen (%s after SIGTERM): %s", durMS(zero2.Sub(termed)), gone)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := agents[2].Wait(ctx); err != nil {
		t.Errorf("realserver run after SIGTERM: %v\n%s", err, agents[2].Output())
	}
	if out := c.rs[2].IP("-4", "addr", "show", "dev", "lo"); strings.Contains(out, " "+vip+"/") {
		t.Errorf("the agent exited but left the VIP on lo:\n%s", out)
	}
	c.stopServer(2)
	w.destConnsGrow(c.rsAddrs[0]+":80", time.Now(), 5)
	w.always(zero2, time.Now(), leaving+" stays at weight 0 after the agent's shutdown", destWeight(leaving, 0))

	r := c.stopPoll(poll)
	t.Logf("poller: %d requests, %d failed, counts %v", r.Total, r.Failures, r.Counts)
	if r.Failures != 0 {
		t.Errorf("%d of %d polled requests failed across a graceful drain (at %v): %q", r.Failures, r.Total, r.FailedAtMS, r.Errors)
	}
	for _, n := range c.names {
		if r.Counts[n] == 0 {
			t.Errorf("%s answered no poll: %v", n, r.Counts)
		}
	}
}

// longRequest starts a /long request (one line with the server's name,
// then a dot every 100ms for d) from the client and returns it with the
// index of the real server that answers.
func (c *cluster) longRequest(d time.Duration) (*labnet.Proc, int) {
	c.t.Helper()
	long := c.client.Start("rs", "curl", "-sS", "-N", "--max-time", "60", "http://"+vip+"/long?d="+d.String())
	name := strings.Fields(long.Output())[0]
	i := slices.Index(c.names, name)
	if i < 0 {
		c.t.Fatalf("long request answered by %q, not a real server", name)
	}
	return long, i
}

// assertEstablished checks with `ipvsadm -Lnc` that the director holds an
// ESTABLISHED connection to backend.
func (c *cluster) assertEstablished(backend string) {
	c.t.Helper()
	out := c.director.MustExec("ipvsadm", "-Lnc")
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 6 && f[2] == "ESTABLISHED" && f[5] == backend {
			return
		}
	}
	c.t.Errorf("ipvsadm -Lnc shows no ESTABLISHED connection to %s:\n%s", backend, out)
}

// finishLong waits for a long request and checks it ran to its end.
func finishLong(t *testing.T, long *labnet.Proc, d time.Duration) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := long.Wait(ctx); err != nil {
		t.Errorf("the long connection failed: %v\n%s", err, long.Output())
	}
	end := time.Now()
	if dots, want := strings.Count(long.Output(), "."), int(d/(100*time.Millisecond))*3/4; dots < want {
		t.Errorf("the long connection got %d of about %d ticks: %q", dots, d/(100*time.Millisecond), long.Output())
	}
	return end
}

// TestHealthRemoveDrainDR uses on_failure = "remove". The check watches a
// health port (81) apart from the application (80), so a backend can fail
// its check while a long-lived application connection to it runs.
//
// The two ways a drain ends are both shown. The director namespace's IPVS
// FIN_WAIT timeout is cut to 2s (`ipvsadm --set`), so a finished dr
// connection leaves the table soon (by default it would linger 2 minutes
// and only drain_timeout could end a drain):
//   - health failure, drain_timeout 20s: weight 0 at once, the connection
//     is not cut and completes, and the backend is deleted when its last
//     connection has left the table, long before drain_timeout; healthy
//     again, it is re-added;
//   - removed from the file with SIGHUP, drain_timeout 3s: weight 0 at
//     once, the connection runs on, and the backend is deleted when
//     drain_timeout passes although the connection is still established.
func TestHealthRemoveDrainDR(t *testing.T) {
	const (
		finTimeout = 2 * time.Second
		drainLong  = 20 * time.Second
		drainShort = 3 * time.Second
		// The long connection outlasts detection (interval*fall +
		// timeout + slack) and 10 s more for the checks made while it
		// runs (ipvsadm runs in a busy guest): at 3 s in all it had
		// ended before ipvsadm -Lnc looked, and at 3 s more, under two
		// busy loops per host core, before ipvsadm -Ln did.
		longFor      = hcInterval*hcFall + hcTimeout + detectSlack + 10*time.Second
		longerThanTO = 8 * time.Second
	)
	c := newCluster(t, "dr")
	c.director.MustExec("ipvsadm", "--set", "0", fmt.Sprint(int(finTimeout.Seconds())), "0")
	health := make([]*labnet.Proc, len(c.rs))
	startHealth := func(i int) {
		health[i] = c.rs[i].Start("ready", bin(t, "labhost"), "serve", "--name", c.names[i]+"-health", "--http", ":81")
	}
	for i := range c.rs {
		startHealth(i)
	}
	removeWith := func(timeout time.Duration) string {
		return fmt.Sprintf("on_failure = \"remove\"\ndrain_timeout = %q", timeout)
	}
	check := "type = \"http\"\nport = 81\n" + hcCheck
	services := hcDRService(c.rsAddrs, removeWith(drainLong), check)
	p := c.startDirector(services, routeWeights(c.allRoute1()))
	w := watchIPVS(t, p)

	// Health failure while a long connection runs.
	long, i := c.longRequest(longFor)
	backend := c.rsAddrs[i] + ":80"
	failed := time.Now()
	if err := health[i].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	zero := w.first(failed, 20*eventuallyScale, backend+" weight 0", destWeight(backend, 0))
	t.Logf("remove: weight 0 seen %s after the health port died", durMS(zero.Sub(failed)))
	if d := zero.Sub(failed); d > hcInterval*hcFall+hcTimeout+detectSlack {
		t.Errorf("weight 0 came %s after the failure, want at most %s + %s", durMS(d), hcInterval*hcFall+hcTimeout, detectSlack)
	}
	c.assertEstablished(backend)
	want := c.allRoute1()
	want[backend] = 0
	if err := routeWeights(want)(c.ipvsTable()); err != nil {
		t.Errorf("ipvsadm -Ln while draining: %v", err)
	}
	ended := finishLong(t, long, longFor)
	gone := w.first(zero, drainLong, backend+" deleted", destGone(backend))
	t.Logf("remove: the long connection ended %s after weight 0; deleted %s after it ended (FIN_WAIT timeout %s, drain_timeout %s)",
		durMS(ended.Sub(zero)), durMS(gone.Sub(ended)), finTimeout, drainLong)
	w.always(zero, ended, backend+" stays at weight 0 while its connection runs", destWeight(backend, 0))
	// Gone with its last connection: the kernel's FIN_WAIT expiry plus one
	// drain poll (1s), far sooner than drain_timeout.
	if d := gone.Sub(ended); d > finTimeout+time.Second+detectSlack {
		t.Errorf("deleted %s after its connection ended, want within %s", durMS(d), finTimeout+time.Second+detectSlack)
	}
	r := c.requests("http://"+vip+"/", 20)
	if r.Failures != 0 || r.Counts[c.names[i]] != 0 {
		t.Errorf("with %s removed: %+v, want no failures and none to it", c.names[i], r)
	}

	// Healthy again: re-added at its weight.
	restarted := time.Now()
	startHealth(i)
	back := w.first(restarted, 20*eventuallyScale, backend+" re-added", destWeight(backend, 1))
	t.Logf("remove: re-added %s after the health port returned", durMS(back.Sub(restarted)))
	if err := routeWeights(c.allRoute1())(c.ipvsTable()); err != nil {
		t.Errorf("ipvsadm -Ln after re-adding: %v", err)
	}

	// Removed from the file (SIGHUP), with a drain_timeout shorter than
	// the connection.
	long, j := c.longRequest(longerThanTO)
	backend = c.rsAddrs[j] + ":80"
	keep := slices.Delete(slices.Clone(c.rsAddrs), j, j+1)
	body, err := os.ReadFile(c.config)
	if err != nil {
		t.Fatal(err)
	}
	newBody := strings.Replace(string(body), services, hcDRService(keep, removeWith(drainShort), check), 1)
	if newBody == string(body) {
		t.Fatal("could not rewrite the topology file")
	}
	writeFile(t, c.config, newBody)
	hup := time.Now()
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	zero = w.first(hup, 20*eventuallyScale, backend+" weight 0 after SIGHUP", destWeight(backend, 0))
	c.assertEstablished(backend)
	gone = w.first(zero, drainShort+detectSlack+5*time.Second, backend+" deleted after SIGHUP", destGone(backend))
	t.Logf("sighup: weight 0 %s after SIGHUP, deleted %s after (drain_timeout %s) with its connection still open",
		durMS(zero.Sub(hup)), durMS(gone.Sub(hup)), drainShort)
	// Until then it kept weight 0 and its established connection (the
	// kernel counts it active): the drain ended by timeout, not for want of
	// connections, and the connection was not cut before.
	w.always(zero, gone, backend+" stays at weight 0 with its connection until drain_timeout", func(tab map[string]map[string]procDest) error {
		if err := destWeight(backend, 0)(tab); err != nil {
			return err
		}
		if d := tab[hcWebKey][backend]; d.Active < 1 {
			return fmt.Errorf("%s has no active connection: %+v", backend, d)
		}
		return nil
	})
	if d := gone.Sub(zero); d < drainShort-100*time.Millisecond || d > drainShort+detectSlack {
		t.Errorf("deleted %s after weight 0, want drain_timeout %s (+ %s)", durMS(d), drainShort, detectSlack)
	}
	if done, _ := long.Exited(); done {
		t.Errorf("the long connection ended before drain_timeout: %q", long.Output())
	}
	long.Signal(syscall.SIGKILL) // its backend is gone; nothing more to see
	want = map[string]int{}
	for _, a := range keep {
		want[a+":80"] = 1
	}
	if err := routeWeights(want)(c.ipvsTable()); err != nil {
		t.Errorf("ipvsadm -Ln after the drain: %v", err)
	}
}

// TestHealthQuorumSorryDR: quorum 2 of 3 backends with a sorry server (a
// fourth host). One backend down keeps quorum and no sorry server; two
// down bring it into the table and clients get "sorry"; restored, the
// sorry server leaves (after its drain_timeout) and the three share again.
func TestHealthQuorumSorryDR(t *testing.T) {
	const drainTimeout = 2 * time.Second
	c := newCluster(t, "dr")
	const sorryIP = lanPrefix + "20"
	sorry := c.lab.Host("sorry", c.lan, sorryIP+"/24")
	prepareDR(t, sorry, vip)
	sorry.Start("ready", bin(t, "labhost"), "serve", "--name", "sorry", "--http", ":80")
	sorryDest := sorryIP + ":80"

	extra := fmt.Sprintf("quorum = 2\nsorry_server = %q\ndrain_timeout = %q", sorryDest, drainTimeout)
	// Quorum is about counting, not timing: a check that tolerates a
	// stalled emulator keeps rs1 and rs2 from flapping.
	p := c.startDirector(hcDRService(c.rsAddrs, extra, `type = "http"
interval = "1s"
timeout = "1s"
fall = 2
rise = 1
`), routeWeights(c.allRoute1()))
	w := watchIPVS(t, p)

	// One down: two healthy meet the quorum, no sorry server.
	t0 := time.Now()
	c.stopServer(2)
	one := w.first(t0, 20*eventuallyScale, c.names[2]+" weight 0", destWeight(c.rsAddrs[2]+":80", 0))
	r := c.requests("http://"+vip+"/", 20)
	w.always(one, time.Now(), "no sorry server while the quorum holds", destGone(sorryDest))
	if r.Failures != 0 || r.Counts[c.names[0]] != 10 || r.Counts[c.names[1]] != 10 {
		t.Errorf("one backend down: %+v, want 10/10 on the two others", r)
	}

	// Two down: quorum lost, the sorry server comes in.
	t1 := time.Now()
	c.stopServer(1)
	in := w.first(t1, 20*eventuallyScale, "sorry server in", destWeight(sorryDest, 1))
	t.Logf("quorum lost: sorry server in %s after the second kill", durMS(in.Sub(t1)))
	if err := routeWeights(map[string]int{c.rsAddrs[0] + ":80": 1, c.rsAddrs[1] + ":80": 0, c.rsAddrs[2] + ":80": 0, sorryDest: 1})(c.ipvsTable()); err != nil {
		t.Errorf("ipvsadm -Ln with the quorum lost: %v", err)
	}
	r = c.requests("http://"+vip+"/", 20)
	if r.Failures != 0 || r.Counts["sorry"] != 10 || r.Counts[c.names[0]] != 10 {
		t.Errorf("quorum lost: %+v, want 10 answers from sorry and 10 from %s", r, c.names[0])
	}

	// Restored: the sorry server leaves.
	t2 := time.Now()
	c.startServer(1)
	c.startServer(2)
	out := w.first(t2, 20*eventuallyScale, "sorry server out", func(tab map[string]map[string]procDest) error {
		d, ok := tab[hcWebKey][sorryDest]
		if ok && d.Weight != 0 {
			return fmt.Errorf("sorry server still at weight %d", d.Weight)
		}
		return nil
	})
	gone := w.first(out, drainTimeout+detectSlack+5*time.Second, "sorry server deleted", destGone(sorryDest))
	t.Logf("quorum back: sorry server at weight 0 %s, deleted %s after the restart", durMS(out.Sub(t2)), durMS(gone.Sub(t2)))
	if err := routeWeights(c.allRoute1())(c.ipvsTable()); err != nil {
		t.Errorf("ipvsadm -Ln with the quorum back: %v", err)
	}
	// rr spreads 30 connections 10/10/10 only over a table that stays
	// as it is while they are made.
	from := time.Now()
	r = c.requests("http://"+vip+"/", 30)
	w.always(from, time.Now(), "the table while rr is counted", destWeights(c.allRoute1()))
	c.assertEven(r, 30)
}
