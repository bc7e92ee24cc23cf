//go:build lab

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golvs/golvs/integration/labnet"
)

// The systemd tests run in a guest whose PID 1 is Debian's systemd
// (`lab test -systemd`, and the second boot of a full `lab test`): they
// install the package with dpkg and drive the units with systemctl.

// requireSystemd fails the test unless PID 1 is systemd.
func requireSystemd(t *testing.T) {
	t.Helper()
	comm, err := os.ReadFile("/proc/1/comm")
	if err != nil || strings.TrimSpace(string(comm)) != "systemd" {
		t.Fatalf("PID 1 is %q, not systemd: run this test with `go run ./integration/cmd/lab test -systemd --run %s`", strings.TrimSpace(string(comm)), t.Name())
	}
}

// cmd runs a command and returns its combined output and exit code.
func cmd(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out), 0
}

// must runs a command that has to succeed.
func must(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, code := cmd(t, name, args...)
	if code != 0 {
		t.Fatalf("%s %s: exit %d\n%s", name, strings.Join(args, " "), code, out)
	}
	return out
}

func unitProp(t *testing.T, unit, prop string) string {
	t.Helper()
	return strings.TrimSpace(must(t, "systemctl", "show", "-p", prop, "--value", unit))
}

// installedDeb installs bin/golvs_*.deb with dpkg -i.
func installedDeb(t *testing.T) string {
	t.Helper()
	debs, _ := filepath.Glob(filepath.Join(binDir, "golvs_*_amd64.deb"))
	if len(debs) != 1 {
		t.Fatalf("want one package in %s, found %q (the lab builds it with packaging/cmd/mkdeb)", binDir, debs)
	}
	must(t, "dpkg", "-i", debs[0])
	return debs[0]
}

// watchdogRestart SIGSTOPs the unit's main process, which then sends no
// more WATCHDOG=1, and waits for systemd to kill it and start a new one
// (Restart=on-failure) that is active, i.e. has said READY=1 again. It
// returns the time from the stop to that.
//
// The bound is checked on systemd's own record (its journal), so it holds
// on a busy machine: the watchdog fires within WatchdogSec of the stop
// (the last ping came before it), and the restart is scheduled within
// TimeoutAbortSec (SIGABRT stays pending on a stopped process, SIGKILL
// follows) + RestartSec of that. How long the new process then takes to
// say READY=1 is a start under emulation, not the watchdog's doing.
func watchdogRestart(t *testing.T, unit string) time.Duration {
	t.Helper()
	dur := func(prop string) time.Duration {
		d, _ := time.ParseDuration(strings.ReplaceAll(unitProp(t, unit, prop), " ", ""))
		return d
	}
	wd, abort, restart := dur("WatchdogUSec"), dur("TimeoutAbortUSec"), dur("RestartUSec")
	if wd == 0 || abort == 0 || restart == 0 {
		t.Fatalf("%s settings: WatchdogSec %v TimeoutAbortSec %v RestartSec %v", unit, wd, abort, restart)
	}
	restarts, _ := strconv.Atoi(unitProp(t, unit, "NRestarts"))
	pid := unitProp(t, unit, "MainPID")
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		show, _ := exec.Command("systemctl", "show", "-p", "MainPID,ActiveState,SubState,NRestarts,WatchdogTimestamp,Result", unit).CombinedOutput()
		st, _ := os.ReadFile("/proc/" + pid + "/status")
		j, _ := exec.Command("journalctl", "-u", unit, "--no-pager", "-n", "60").CombinedOutput()
		t.Logf("%s after the watchdog test:\n%s\nthe stopped process %s: %.200s\njournal:\n%s", unit, show, pid, st, j)
	})
	stopped := time.Now()
	must(t, "kill", "-STOP", pid)
	const startAllowance = 120 * time.Second
	eventually(t, wd+abort+restart+startAllowance, "a new "+unit+" after the watchdog fired", func() error {
		if p := unitProp(t, unit, "MainPID"); p == pid || p == "0" || unitProp(t, unit, "ActiveState") != "active" {
			return fmt.Errorf("MainPID %s, %s", p, unitProp(t, unit, "ActiveState"))
		}
		return nil
	})
	took := time.Since(stopped)
	fired := journalTime(t, unit, stopped, "Watchdog timeout")
	scheduled := journalTime(t, unit, fired, "Scheduled restart job")
	t.Logf("watchdog restart of %s: fired %v after SIGSTOP, restart scheduled %v later, active again %v after SIGSTOP (WatchdogSec %v, TimeoutAbortSec %v, RestartSec %v)",
		unit, fired.Sub(stopped).Round(10*time.Millisecond), scheduled.Sub(fired).Round(10*time.Millisecond),
		took.Round(100*time.Millisecond), wd, abort, restart)
	// Slack for systemd's own timers in a busy emulated guest.
	const slack = 3 * time.Second
	if d := fired.Sub(stopped); d > wd+slack {
		t.Errorf("the watchdog fired %v after SIGSTOP, want within WatchdogSec %v", d, wd)
	}
	if d := scheduled.Sub(fired); d > abort+restart+slack {
		t.Errorf("the restart was scheduled %v after the watchdog fired, want within TimeoutAbortSec %v + RestartSec %v", d, abort, restart)
	}
	if n, _ := strconv.Atoi(unitProp(t, unit, "NRestarts")); n != restarts+1 {
		t.Errorf("%s NRestarts %d, want %d", unit, n, restarts+1)
	}
	return took
}

// journalTime is the time of the first journal line of unit since since
// that contains what.
func journalTime(t *testing.T, unit string, since time.Time, what string) time.Time {
	t.Helper()
	out := must(t, "journalctl", "-u", unit, "--no-pager", "-o", "short-unix",
		"--since", "@"+strconv.FormatInt(since.Unix(), 10))
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || !strings.Contains(l, what) {
			continue
		}
		if sec, err := strconv.ParseFloat(f[0], 64); err == nil && sec >= float64(since.UnixMicro())/1e6 {
			return time.UnixMicro(int64(sec * 1e6))
		}
	}
	t.Fatalf("no %q in the journal of %s since %v:\n%s", what, unit, since.Format(time.RFC3339Nano), out)
	return time.Time{}
}

// TestSystemdPackage installs the package under real systemd and drives
// the realserver unit through its life: the shipped file keeps both units
// from starting; enable --now returns once the host is prepared; reload
// returns once a good file is applied and fails on a bad one, keeping the
// old; a SIGSTOPped realserver stops pinging the watchdog and systemd
// restarts it; stop restores the host; dpkg -r then -i keeps the edited
// conffile.
func TestSystemdPackage(t *testing.T) {
	requireSystemd(t)
	const conf = "/etc/golvs/topology.toml"
	deb := installedDeb(t)

	// The shipped file has no service: starting is a clean no-op.
	for _, u := range []string{"golvs-director", "golvs-realserver"} {
		out, code := cmd(t, "systemctl", "start", u)
		if code != 0 {
			t.Fatalf("systemctl start %s with the shipped file: exit %d\n%s", u, code, out)
		}
		if st := unitProp(t, u, "ActiveState"); st != "inactive" {
			t.Errorf("%s with no service: ActiveState %s, want inactive", u, st)
		}
		if r := unitProp(t, u, "Result"); r != "exec-condition" {
			t.Errorf("%s with no service: Result %q, want exec-condition", u, r)
		}
	}

	// A real server: backend 10.0.0.2 on a veth, VIPs for dr services.
	must(t, "ip", "link", "add", "rs0", "type", "veth", "peer", "name", "rs1")
	must(t, "ip", "addr", "add", "10.0.0.2/24", "dev", "rs0")
	must(t, "ip", "link", "set", "rs0", "up")
	svc := func(name, vip string) string {
		return fmt.Sprintf("[[service]]\nname = %q\naddress = %q\nport = 80\nforwarding = \"dr\"\n[[service.backend]]\naddress = \"10.0.0.2\"\n", name, vip)
	}
	edited := "# edited by the operator\n[director]\ninterface = \"rs0\"\n" + svc("a", "192.0.2.10")
	writeFile(t, conf, edited)
	lo := func() string { return must(t, "ip", "-4", "addr", "show", "dev", "lo") }

	must(t, "systemctl", "enable", "--now", "golvs-realserver")
	// Type=notify: enable --now returns after READY=1, so the VIP is there.
	if !strings.Contains(lo(), "192.0.2.10/32") {
		t.Fatalf("systemctl start returned before the VIP was on lo:\n%s", lo())
	}
	if s := unitProp(t, "golvs-realserver", "StatusText"); !strings.Contains(s, "host prepared") {
		t.Errorf("StatusText %q", s)
	}

	// Reload, good file: returns once applied.
	writeFile(t, conf, edited+svc("b", "192.0.2.11"))
	must(t, "systemctl", "reload", "golvs-realserver")
	if !strings.Contains(lo(), "192.0.2.11/32") {
		t.Fatalf("systemctl reload returned before the new VIP was on lo:\n%s", lo())
	}
	good := edited + svc("b", "192.0.2.11")
	// Reload, bad file: fails, names the error, keeps the old file in force.
	writeFile(t, conf, good+"[[service]]\nname = 1\n")
	if out, code := cmd(t, "systemctl", "reload", "golvs-realserver"); code == 0 {
		t.Fatalf("systemctl reload of a bad file succeeded:\n%s", out)
	}
	if j := must(t, "journalctl", "-u", "golvs-realserver", "--no-pager", "-n", "30"); !strings.Contains(j, "topology.toml:") {
		t.Errorf("the journal does not name the file's error:\n%s", j)
	}
	if st := unitProp(t, "golvs-realserver", "ActiveState"); st != "active" {
		t.Errorf("after a rejected reload: ActiveState %s", st)
	}
	if !strings.Contains(lo(), "192.0.2.11/32") {
		t.Errorf("a rejected file changed the host:\n%s", lo())
	}
	writeFile(t, conf, good)

	// A hung realserver: no watchdog ping, so systemd restarts it. The
	// new one adopts its state file: the VIPs never leave lo.
	mon := startRootAddrMonitor(t, "rs0")
	watchdogRestart(t, "golvs-realserver")
	if ev := mon.until(t); strings.Contains(ev, "192.0.2.1") {
		t.Errorf("the VIPs on lo changed across the watchdog restart (ip monitor address):\n%s\n%s", ev,
			must(t, "journalctl", "-u", "golvs-realserver", "--no-pager", "-n", "30"))
	}
	if !strings.Contains(lo(), "192.0.2.11/32") {
		t.Errorf("VIPs gone after the restart:\n%s", lo())
	}

	// Stop: the realserver restores the host.
	must(t, "systemctl", "stop", "golvs-realserver")
	if strings.Contains(lo(), "192.0.2.1") {
		t.Errorf("VIPs left on lo after stop:\n%s", lo())
	}

	// dpkg -r keeps conffiles; -i of the same package keeps the edit.
	must(t, "dpkg", "-r", "golvs")
	if _, err := os.Stat("/usr/sbin/director"); err == nil {
		t.Error("dpkg -r left /usr/sbin/director")
	}
	must(t, "dpkg", "-i", deb)
	if b, _ := os.ReadFile(conf); string(b) != good {
		t.Errorf("dpkg -r, dpkg -i: %s is\n%s\nwant the operator's\n%s", conf, b, good)
	}
	// The unit is still enabled and starts on the kept file.
	must(t, "systemctl", "start", "golvs-realserver")
	if !strings.Contains(lo(), "192.0.2.11/32") {
		t.Errorf("after reinstall: VIPs missing:\n%s", lo())
	}
	must(t, "systemctl", "stop", "golvs-realserver")
}

// TestSystemdDirectorUnit runs the packaged, hardened director unit under
// real systemd: `systemctl start` returns once the director said READY=1,
// by which time IPVS is programmed; `systemctl reload` returns once a good
// file is applied and fails on a bad one, which stays out of force; a
// SIGSTOPped director stops pinging the watchdog and systemd restarts it,
// and the restarted director adopts the table; `systemctl stop` leaves
// IPVS in place.
func TestSystemdDirectorUnit(t *testing.T) {
	requireSystemd(t)
	installedDeb(t)
	// The director runs in the guest's own namespace (systemd's); the
	// client (10.1.0.2) and the NAT real server (10.1.1.2:8080, routed
	// back through the director) are namespaces behind veth pairs.
	l := labnet.NewLab(t)
	client, rs := l.Host("client", nil), l.Host("rs", nil)
	for _, n := range []struct {
		dev, mine, peer string
		h               *labnet.Host
	}{{"dir0", "10.1.0.1/24", "10.1.0.2/24", client}, {"dirb0", "10.1.1.1/24", "10.1.1.2/24", rs}} {
		must(t, "ip", "link", "add", n.dev, "type", "veth", "peer", "name", "eth0", "netns", n.h.NS)
		t.Cleanup(func() { exec.Command("ip", "link", "del", n.dev).Run() })
		must(t, "ip", "addr", "add", n.mine, "dev", n.dev)
		must(t, "ip", "link", "set", n.dev, "up")
		n.h.IP("addr", "add", n.peer, "dev", "eth0")
		n.h.IP("link", "set", "eth0", "up")
	}
	client.DefaultRoute("10.1.0.1")
	rs.DefaultRoute("10.1.1.1")
	rs.Start("ready", bin(t, "labhost"), "serve", "--name", "rs", "--http", ":8080")
	topo := func(weight int) string {
		return fmt.Sprintf(`[director]
interface = "dir0"

[[service]]
name = "web"
address = "10.1.0.100"
port = 80
forwarding = "nat"
scheduler = "rr"

[[service.backend]]
address = "10.1.1.2"
port = 8080
weight = %d
`, weight)
	}
	writeFile(t, "/etc/golvs/topology.toml", topo(1))
	must(t, "systemctl", "start", "golvs-director")
	ipvs := func() string { return must(t, "ipvsadm", "-Ln") }
	// Type=notify: start returned after READY=1, so the table is there.
	if out := ipvs(); !strings.Contains(out, "10.1.0.100:80") || !strings.Contains(out, "10.1.1.2:8080") {
		t.Fatalf("systemctl start returned before IPVS was programmed:\n%s\n%s", out, must(t, "journalctl", "-u", "golvs-director", "--no-pager"))
	}
	if out := must(t, "ip", "-4", "addr", "show", "dev", "dir0"); !strings.Contains(out, "10.1.0.100/") {
		t.Errorf("VIP not on dir0 at READY:\n%s", out)
	}
	if st := unitProp(t, "golvs-director", "ActiveState"); st != "active" {
		t.Fatalf("ActiveState %s\n%s", st, must(t, "journalctl", "-u", "golvs-director", "--no-pager"))
	}
	if j := must(t, "journalctl", "-u", "golvs-director", "--no-pager"); strings.Contains(j, "permission denied") || strings.Contains(j, "operation not permitted") {
		t.Errorf("the hardened unit denied the director something:\n%s", j)
	}
	backend := func() []string {
		for _, l := range strings.Split(ipvs(), "\n") {
			if f := strings.Fields(l); len(f) == 6 && f[1] == "10.1.1.2:8080" {
				return f
			}
		}
		return nil
	}
	weight := func() string {
		if f := backend(); f != nil {
			return f[3]
		}
		return ""
	}
	// conns is the kernel's count of connections to the backend.
	conns := func() int {
		var act, inact int
		if f := backend(); f != nil {
			fmt.Sscan(f[4], &act)
			fmt.Sscan(f[5], &inact)
		}
		return act + inact
	}

	// Reload, good file: returns once applied.
	writeFile(t, "/etc/golvs/topology.toml", topo(5))
	must(t, "systemctl", "reload", "golvs-director")
	if w := weight(); w != "5" {
		t.Fatalf("systemctl reload returned before the new weight was in the kernel: weight %q\n%s", w, ipvs())
	}
	// Reload, bad file: fails, the journal names the error, nothing changes.
	writeFile(t, "/etc/golvs/topology.toml", topo(5)+"[[service]]\nname = 1\n")
	if out, code := cmd(t, "systemctl", "reload", "golvs-director"); code == 0 {
		t.Fatalf("systemctl reload of a bad file succeeded:\n%s", out)
	}
	if j := must(t, "journalctl", "-u", "golvs-director", "--no-pager", "-n", "40"); !strings.Contains(j, "topology.toml:") {
		t.Errorf("the journal does not name the file's error:\n%s", j)
	}
	if st := unitProp(t, "golvs-director", "ActiveState"); st != "active" {
		t.Errorf("after a rejected reload: ActiveState %s", st)
	}
	if w := weight(); w != "5" {
		t.Errorf("a rejected file changed the kernel: weight %q", w)
	}
	writeFile(t, "/etc/golvs/topology.toml", topo(5))

	// A hung director: no watchdog ping, so systemd restarts it; the new
	// one adopts the table (its weight stays). IPVS stays in the kernel
	// while the director is stopped, so the client sees no failed request
	// across the stop, the kill and the restart.
	poll := client.Start("ready", bin(t, "labhost"), "poll", "--url", "http://10.1.0.100/",
		"--interval", hcPollEvery.String(), "--duration", "5m", "--timeout", "5s")
	took := watchdogRestart(t, "golvs-director")
	if w := weight(); w != "5" {
		t.Errorf("after the watchdog restart: weight %q, want the table adopted", w)
	}
	// The poll goes on until the kernel counts new connections after the
	// restarted director said READY=1.
	base := conns()
	eventually(t, 20*time.Second, "new connections after the restart", func() error {
		if n := conns(); n < base+3 {
			return fmt.Errorf("%d connections, want %d", n, base+3)
		}
		return nil
	})
	r := stopPoll(t, poll)
	t.Logf("poller across SIGSTOP, watchdog kill and restart (%v): %d requests, %d failed, errors %q",
		took.Round(100*time.Millisecond), r.Total, r.Failures, r.Errors)
	if r.Failures != 0 || r.Counts["rs"] == 0 {
		t.Errorf("the client saw %d failed of %d requests (counts %v) across the director's watchdog restart: %q",
			r.Failures, r.Total, r.Counts, r.Errors)
	}

	must(t, "systemctl", "stop", "golvs-director")
	if out := ipvs(); !strings.Contains(out, "10.1.0.100:80") || !strings.Contains(out, "10.1.1.2:8080") {
		t.Errorf("systemctl stop removed the IPVS service:\n%s", out)
	}
	if _, err := os.Stat("/run/golvs/director.state"); err != nil {
		t.Errorf("the state file did not survive stop (RuntimeDirectoryPreserve): %v", err)
	}
}
