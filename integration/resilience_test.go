//go:build lab

package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golvs/golvs/integration/labnet"
)

// writeTopology writes a topology file for the cluster's director with
// its own control socket and state file; directorExtra goes into
// [director] (e.g. resync_interval), extra after it ([failover]).
func (c *cluster) writeTopology(directorExtra, extra, services string) string {
	c.t.Helper()
	dir := c.t.TempDir()
	topo := fmt.Sprintf(`[director]
interface = "eth0"
control_socket = %q
state_file = %q
%s

%s
%s`, filepath.Join(dir, "director.sock"), filepath.Join(dir, "director.state"), directorExtra, extra, services)
	file := labnet.TempFile(c.t, dir, "topology.toml", topo)
	if out, err := c.director.Exec(bin(c.t, "director"), "check", "-config", file); err != nil {
		c.t.Fatalf("director check rejected the test topology: %v\n%s\n%s", err, out, topo)
	}
	return file
}

// runDirector starts `director run -config file` in the director's
// namespace and waits until ready accepts the kernel's table and the
// director has logged a finished reconcile pass.
func (c *cluster) runDirector(file string, ready func(map[string]ipvsService) error) *labnet.Proc {
	c.t.Helper()
	p := c.director.Start("", bin(c.t, "director"), "run", "-config", file, "--log-level", "debug")
	c.t.Cleanup(func() {
		if c.t.Failed() {
			c.t.Logf("%s output:\n%s", p.Name, p.Output())
		}
	})
	eventually(c.t, 30*eventuallyScale, "director programs IPVS", func() error {
		if done, err := p.Exited(); done {
			c.t.Fatalf("%s exited: %v\n%s", p.Name, err, p.Output())
		}
		if len(passLines(p.Output())) == 0 {
			return errors.New("no reconcile pass logged yet")
		}
		return ready(c.ipvsTable())
	})
	return p
}

// passLines returns the director's one-line summaries of its reconcile
// passes: "ipvs in sync" (no ops) or "ipvs pass".
func passLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, `msg="ipvs in sync"`) || strings.Contains(l, `msg="ipvs pass"`) {
			lines = append(lines, l)
		}
	}
	return lines
}

// changeLines returns the director's log lines for IPVS writes.
func changeLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, `msg="ipvs change`) {
			lines = append(lines, l)
		}
	}
	return lines
}

// ipvsStats reads `ipvsadm -Ln --stats`: the Conns counter of every
// service ("TCP 192.0.2.100:80") and destination ("TCP 192.0.2.100:80
// -> 198.51.100.11:80"). The kernel resets them when an entry is
// recreated, so they witness that nothing was deleted and added again.
func (c *cluster) ipvsStats() map[string]uint64 {
	c.t.Helper()
	stats := map[string]uint64{}
	var cur string
	for _, line := range strings.Split(c.director.MustExec("ipvsadm", "-Ln", "--stats"), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && (f[0] == "TCP" || f[0] == "UDP" || f[0] == "SCTP" || f[0] == "FWM"):
			cur = f[0] + " " + f[1]
			stats[cur] = parseCount(c.t, f[2])
		case len(f) >= 3 && f[0] == "->" && cur != "":
			stats[cur+" -> "+f[1]] = parseCount(c.t, f[2])
		}
	}
	return stats
}

// parseCount parses an ipvsadm counter, which may carry a K/M/G suffix.
func parseCount(t *testing.T, s string) uint64 {
	t.Helper()
	mult := uint64(1)
	switch s[len(s)-1] {
	case 'K':
		mult, s = 1000, s[:len(s)-1]
	case 'M':
		mult, s = 1000*1000, s[:len(s)-1]
	case 'G':
		mult, s = 1000*1000*1000, s[:len(s)-1]
	}
	var n uint64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("ipvsadm counter %q: %v", s, err)
	}
	return n * mult
}

// adoptPollResult is labhost poll's JSON.
type adoptPollResult struct {
	Total           int            `json:"total"`
	Failures        int            `json:"failures"`
	Counts          map[string]int `json:"counts"`
	LongestOutageMS int64          `json:"longest_outage_ms"`
}

func waitAdoptPoll(t *testing.T, p *labnet.Proc) adoptPollResult {
	t.Helper()
	if err := p.Wait(t.Context()); err != nil {
		t.Fatalf("poll: %v\n%s", err, p.Output())
	}
	var res adoptPollResult
	lines := strings.Split(strings.TrimSpace(p.Output()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("poll output %q: %v", p.Output(), err)
	}
	return res
}

// TestDirectorRestartAdopts SIGKILLs the director while a client polls
// the VIP every 50ms and starts it again with the same file: the table
// stays in the kernel meanwhile, so no request may fail, and the new
// director must adopt the table as it is, writing nothing (its log says
// so, and the kernel's counters, which a recreated entry would reset,
// keep counting).
func TestDirectorRestartAdopts(t *testing.T) {
	c := newCluster(t, "nat")
	key := "TCP " + vip + ":80"
	file := c.writeTopology(`resync_interval = "2s"`, "", c.service("web", "tcp", 80, "nat", "rr"))
	first := c.runDirector(file, hasBackends(3, key))
	c.assertEven(c.requests("http://"+vip+"/", 30), 30)
	before := c.waitStats(key, 30)

	// The poll runs until the restarted director has adopted the table
	// and passed twice more, however slow the machine. A request waits up to 3 s: a stalled guest is not a failure, a
	// refused or reset connection is, at once.
	pollStart := time.Now()
	poll := c.client.Start("ready", bin(t, "labhost"), "poll", "--url", "http://"+vip+"/",
		"--interval", "50ms", "--duration", "10m", "--timeout", "3s")
	if err := first.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := first.Wait(t.Context()); err == nil {
		t.Fatal("the SIGKILLed director exited cleanly")
	}
	second := c.runDirector(file, hasBackends(3, key))
	adopted := time.Now()
	// Adoption and two resyncs (2 s apart, the poll running through
	// them): none writes.
	eventually(t, 20*eventuallyScale, "third pass of the restarted director", func() error {
		if n := len(passLines(second.Output())); n < 3 {
			return fmt.Errorf("%d passes logged", n)
		}
		return nil
	})
	out := second.Output()
	if ch := changeLines(out); len(ch) != 0 {
		t.Errorf("the restarted director changed IPVS on adoption:\n%s", strings.Join(ch, "\n"))
	}
	for _, l := range passLines(out) {
		if !strings.Contains(l, `msg="ipvs in sync"`) || !strings.Contains(l, " writes=0 ") {
			t.Errorf("restarted director's pass was not a no-op: %s", l)
		}
	}
	if err := poll.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	res := waitAdoptPoll(t, poll)
	pollFor := time.Since(pollStart)
	t.Logf("client during kill -9 and restart: %+v; restart adopted %s after the poll began", res, adopted.Sub(pollStart).Round(time.Millisecond))
	if res.Failures != 0 {
		t.Errorf("%d of %d requests failed across kill -9 and restart, want 0", res.Failures, res.Total)
	}
	// Every 50 ms, though a loaded guest made only 20 in one run: at
	// least 10, over the kill, the restart and two passes.
	if res.Total < 10 {
		t.Errorf("only %d requests in %s", res.Total, pollFor)
	}
	for _, name := range c.names {
		if res.Counts[name] == 0 {
			t.Errorf("real server %s answered none of the poll's requests: %v", name, res.Counts)
		}
	}
	// Entries that were never recreated counted every connection: those
	// before the kill and all of the poll's. A recreated one would have
	// started again from 0.
	want := map[string]uint64{key: before[key] + uint64(res.Total-res.Failures)}
	for i, name := range c.names {
		d := key + " -> " + c.rsAddrs[i] + ":80"
		want[d] = before[d] + uint64(res.Counts[name])
	}
	eventually(t, 10*eventuallyScale, "ipvsadm --stats counts every connection", func() error {
		got := c.ipvsStats()
		for k, n := range want {
			if got[k] < n {
				return fmt.Errorf("%s counts %d connections, want at least %d (before the kill: %d): recreated?", k, got[k], n, before[k])
			}
		}
		return nil
	})
}

// waitStats waits until the kernel's connection counter for key reaches
// min (IPVS folds its per-CPU counters into what ipvsadm reads only every
// couple of seconds) and returns all counters.
func (c *cluster) waitStats(key string, min uint64) map[string]uint64 {
	c.t.Helper()
	var stats map[string]uint64
	eventually(c.t, 10*eventuallyScale, "ipvsadm --stats shows the connections", func() error {
		stats = c.ipvsStats()
		if stats[key] < min {
			return fmt.Errorf("%s counts %d connections, want at least %d", key, stats[key], min)
		}
		return nil
	})
	return stats
}

// TestDirectorResyncRestores deletes a destination with ipvsadm behind
// the director's back. The service has no health check, so nothing but
// the periodic resync (resync_interval = 2s) can notice: it must put the
// destination back within the interval plus slack.
func TestDirectorResyncRestores(t *testing.T) {
	c := newCluster(t, "nat")
	key := "TCP " + vip + ":80"
	const resync = 2 * time.Second
	file := c.writeTopology(fmt.Sprintf("resync_interval = %q", resync.String()), "", c.service("web", "tcp", 80, "nat", "rr"))
	p := c.runDirector(file, hasBackends(3, key))
	victim := c.rsAddrs[1] + ":80"

	changesBefore := len(changeLines(p.Output()))
	c.director.MustExec("ipvsadm", "-d", "-t", vip+":80", "-r", victim)
	deleted := time.Now()
	if _, ok := c.ipvsTable()[key].Backends[victim]; ok {
		t.Fatalf("ipvsadm -d did not delete %s", victim)
	}
	// Polled every 100ms by eventually; under emulation a pass and an
	// ipvsadm run take a while, hence the slack.
	limit := resync + 3*time.Second
	eventually(t, limit, "the resync restores "+victim, func() error {
		if got := c.ipvsTable()[key].Backends[victim]; got != "Masq 1" {
			return fmt.Errorf("backend %s = %q", victim, got)
		}
		return nil
	})
	t.Logf("restored %s after the delete (resync_interval %s)", time.Since(deleted).Round(time.Millisecond), resync)
	// The director's own account: exactly one write, the re-add.
	eventually(t, 5*eventuallyScale, "the director logs the re-add", func() error {
		if n := len(changeLines(p.Output())) - changesBefore; n == 0 {
			return errors.New("no ipvs change logged")
		}
		return nil
	})
	// No health event can explain it: the service has no check, and the
	// director logged no health change since it started.
	for _, l := range strings.Split(p.Output(), "\n") {
		if strings.Contains(l, `msg="backend health changed"`) && !strings.Contains(l, `reason="no check configured"`) {
			t.Errorf("a health event, not the resync: %s", l)
		}
	}
	ch := changeLines(p.Output())[changesBefore:]
	if len(ch) != 1 || !strings.Contains(ch[0], "add destination") || !strings.Contains(ch[0], victim) {
		t.Errorf("the resync wrote %d changes, want one add of %s:\n%s", len(ch), victim, strings.Join(ch, "\n"))
	}
	c.assertEven(c.requests("http://"+vip+"/", 30), 30)
}

// TestDirectorPlan checks `director plan` against the kernel: nothing to
// do on a table the director converged, and after an `ipvsadm -e` weight
// change behind its back exactly that one update, without making it.
func TestDirectorPlan(t *testing.T) {
	c := newCluster(t, "nat")
	key := "TCP " + vip + ":80"
	file := c.writeTopology(`resync_interval = "2s"`, "", c.service("web", "tcp", 80, "nat", "rr")+c.service("dns", "udp", 53, "nat", "rr"))
	p := c.runDirector(file, hasBackends(3, key, "UDP "+vip+":53"))
	// SIGTERM leaves the table in place; with the director gone nothing
	// but plan could change it below.
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(t.Context()); err != nil {
		t.Fatalf("director exit: %v\n%s", err, p.Output())
	}
	converged := c.director.MustExec("ipvsadm", "-Ln")
	c.assertService(key, "rr", c.wantBackends(80, "Masq"))

	plan := func() []string {
		t.Helper()
		out := c.director.MustExec(bin(t, "director"), "plan", "-config", file)
		return strings.Split(strings.TrimSpace(out), "\n")
	}
	if got := plan(); len(got) != 1 || got[0] != "no changes" {
		t.Errorf("plan on the converged table = %q, want \"no changes\"", got)
	}
	if after := c.director.MustExec("ipvsadm", "-Ln"); after != converged {
		t.Errorf("plan changed the table:\nbefore:\n%s\nafter:\n%s", converged, after)
	}

	victim := c.rsAddrs[1] + ":80"
	c.director.MustExec("ipvsadm", "-e", "-t", vip+":80", "-r", victim, "-m", "-w", "5")
	got := plan()
	if len(got) != 1 || !strings.HasPrefix(got[0], "update destination ") ||
		!strings.Contains(got[0], victim) || !strings.Contains(got[0], "weight 5 -> 1") {
		t.Errorf("plan after the weight change = %q, want one update of %s weight 5 -> 1", got, victim)
	}
	want := c.wantBackends(80, "Masq")
	want[victim] = "Masq 5"
	c.assertService(key, "rr", want)
}

// addresses keeps the inet and inet6 addresses of `ip addr show`: its
// flags change by themselves (a link-local address stops being
// "tentative" when duplicate address detection ends).
func addresses(ipAddr string) string {
	var out []string
	for _, l := range strings.Split(ipAddr, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && (f[0] == "inet" || f[0] == "inet6") {
			out = append(out, f[1])
		}
	}
	return strings.Join(out, " ")
}

// TestDirectorBadConfig: `director run` with a broken file exits 1,
// names every error as FILE:LINE:COL, and touches nothing in the kernel;
// SIGHUP with a broken file keeps the running table as it is.
func TestDirectorBadConfig(t *testing.T) {
	c := newCluster(t, "nat")
	key := "TCP " + vip + ":80"
	good := c.service("web", "tcp", 80, "nat", "rr")
	// Two errors on known lines: an unknown scheduler and a weight out of
	// range; the rest would change the table if anything were applied.
	broken := strings.Replace(good, `scheduler = "rr"`, `scheduler = "nosuch"`, 1)
	broken = strings.Replace(broken, "weight = 1", "weight = -1", 1)
	broken += fmt.Sprintf("[[service]]\nname = \"extra\"\naddress = %q\nport = 8080\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"nat\"\n", vip)
	dir := t.TempDir()
	badFile := labnet.TempFile(t, dir, "bad.toml", "[director]\ninterface = \"eth0\"\n"+
		fmt.Sprintf("control_socket = %q\nstate_file = %q\n\n", filepath.Join(dir, "s.sock"), filepath.Join(dir, "s.state"))+broken)

	tableBefore := c.director.MustExec("ipvsadm", "-Ln")
	addrBefore := addresses(c.director.IP("addr", "show", "dev", "eth0"))
	out, err := c.director.Exec(bin(t, "director"), "run", "-config", badFile)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("director run with a broken file: %v, want exit status 1\n%s", err, out)
	}
	// Every error line: FILE:LINE:COL: message; at least the two above.
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(badFile) + `:\d+:\d+: \S`)
	var errLines int
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !re.MatchString(l) {
			t.Errorf("director run output line %q is not FILE:LINE:COL: message", l)
		}
		errLines++
	}
	if errLines < 2 || !strings.Contains(out, "nosuch") || !strings.Contains(out, "-1") {
		t.Errorf("director run should name both errors (scheduler nosuch, weight -1):\n%s", out)
	}
	if after := c.director.MustExec("ipvsadm", "-Ln"); after != tableBefore {
		t.Errorf("director run with a broken file changed IPVS:\nbefore:\n%s\nafter:\n%s", tableBefore, after)
	}
	if after := addresses(c.director.IP("addr", "show", "dev", "eth0")); after != addrBefore {
		t.Errorf("director run with a broken file changed eth0:\nbefore:\n%s\nafter:\n%s", addrBefore, after)
	}

	// SIGHUP with a broken file: the running table stays.
	file := c.writeTopology(`resync_interval = "2s"`, "", good)
	p := c.runDirector(file, hasBackends(3, key))
	c.assertEven(c.requests("http://"+vip+"/", 30), 30)
	table := c.director.MustExec("ipvsadm", "-Ln")
	stats := c.waitStats(key, 30)
	content, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, file, strings.Replace(string(content), good, broken, 1))
	passes := len(passLines(p.Output()))
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*eventuallyScale, "the director rejects the broken file", func() error {
		if !strings.Contains(p.Output(), "new configuration rejected") {
			return errors.New("no rejection logged")
		}
		return nil
	})
	// Wait for a resync pass after the rejection: it too must find
	// nothing to do under the old topology.
	eventually(t, 20*eventuallyScale, "a resync pass after the rejected reload", func() error {
		if n := len(passLines(p.Output())); n < passes+1 {
			return fmt.Errorf("%d passes since SIGHUP", n-passes)
		}
		return nil
	})
	if done, err := p.Exited(); done {
		t.Fatalf("the director exited on a broken reload: %v", err)
	}
	if after := c.director.MustExec("ipvsadm", "-Ln"); after != table {
		t.Errorf("SIGHUP with a broken file changed IPVS:\nbefore:\n%s\nafter:\n%s", table, after)
	}
	now := c.ipvsStats()
	for k, n := range stats {
		if now[k] < n {
			t.Errorf("%s: connection counter went from %d to %d: the entry was deleted or recreated", k, n, now[k])
		}
	}
	for _, l := range strings.Split(p.Output(), "\n") {
		if strings.Contains(l, `msg="config error"`) && !strings.Contains(l, filepath.Base(file)+":") {
			t.Errorf("reload error without FILE:LINE:COL: %s", l)
		}
	}
	c.assertEven(c.requests("http://"+vip+"/", 30), 30)
}
