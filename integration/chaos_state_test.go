//go:build lab

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestChaosStateDir puts the director's state file on a small tmpfs that
// fills up, then has room again, and then turns read-only and writable
// again, while a client polls the VIP. A reload adding a service in each
// fault is still applied to the kernel (ipvsadm, UDP answers); the
// director logs the failure once per fault and exports it
// (golvs_state_write_error 1, the _errors_total counter rising with every
// pass's retry); once the fault is gone the next pass writes the state,
// naming the new service, and the metric is 0. No polled request fails.
func TestChaosStateDir(t *testing.T) {
	c := newCluster(t, "nat")
	// The mount is made before the director starts: `ip netns exec` gives
	// it a copy of our mounts, and a later one would not reach it. Filling
	// acts on the file system itself, which both see.
	stateDir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	mount := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
			t.Fatalf("mount %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	mount("-t", "tmpfs", "-o", "size=64k,mode=0700", "golvs-state", stateDir)
	t.Cleanup(func() { exec.Command("umount", "-l", stateDir).Run() })
	stateFile := filepath.Join(stateDir, "director.state")

	const resync = time.Second // each pass retries the write
	web, dns := "TCP "+vip+":80", "UDP "+vip+":53"
	webSvc := c.service("web", "tcp", 80, "nat", "rr")
	file := c.writeTopology(fmt.Sprintf("resync_interval = %q\nmetrics_address = \"127.0.0.1:9471\"", resync), "", webSvc)
	// writeTopology names a state file of its own: use the tmpfs one.
	text := strings.Replace(mustRead(t, file), filepath.Join(filepath.Dir(file), "director.state"), stateFile, 1)
	writeFile(t, file, text)
	p := c.runDirector(file, hasBackends(3, web))
	if st := mustRead(t, stateFile); !strings.Contains(st, `"Port": 80`) {
		t.Fatalf("state file after start:\n%s", st)
	}
	metric := func(name string) string {
		body := mustOut(c.director.Exec("curl", "-sf", "--max-time", "10", "http://127.0.0.1:9471/metrics"))
		m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			return "absent"
		}
		return m[1]
	}
	if got := metric("golvs_state_write_error"); got != "0" {
		t.Fatalf("golvs_state_write_error = %s before any fault, want 0", got)
	}
	poll := c.startPoll()

	// Full: dd fills the tmpfs (it fails once full, as it must).
	out, _ := exec.Command("dd", "if=/dev/zero", "of="+filepath.Join(stateDir, "fill"), "bs=4k").CombinedOutput()
	if !strings.Contains(string(out), "No space left") {
		t.Fatalf("dd did not fill the state directory:\n%s", out)
	}
	// A reload that adds a service must record it: the write fails, the
	// service is served all the same.
	writeFile(t, file, text+c.service("dns", "udp", 53, "nat", "rr"))
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*eventuallyScale, "the new service in the kernel with the disk full", func() error {
		return hasBackends(3, web, dns)(c.ipvsTable())
	})
	if r := c.udpRequests(vip+":53", 30); r.Failures != 0 {
		t.Errorf("UDP service added on a full disk: %d of 30 failed: %v", r.Failures, r.Errors)
	}
	eventually(t, 10*eventuallyScale, "the failure exported and logged", func() error {
		if got := metric("golvs_state_write_error"); got != "1" {
			return fmt.Errorf("golvs_state_write_error = %s, want 1", got)
		}
		if !strings.Contains(p.Output(), "no space left on device") {
			return fmt.Errorf("no log line names the full disk")
		}
		return nil
	})
	full := metric("golvs_state_write_errors_total")

	// Still full: every pass tries again (the counter rises), and the
	// file keeps its old content.
	eventually(t, resync+5*time.Second, "the write retried by the next passes", func() error {
		if got := metric("golvs_state_write_errors_total"); got == full {
			return fmt.Errorf("golvs_state_write_errors_total still %s: no retry", got)
		}
		return nil
	})
	if st := mustRead(t, stateFile); strings.Contains(st, `"Port": 53`) {
		t.Fatalf("the state file names the new service while unwritable:\n%s", st)
	}

	// Space returns: the next pass (one resync interval) writes it.
	if err := os.Remove(filepath.Join(stateDir, "fill")); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	// Bound: one resync interval, plus a pass and a scrape under emulation.
	eventually(t, resync+3*time.Second, "the state written again", func() error {
		if got := metric("golvs_state_write_error"); got != "0" {
			return fmt.Errorf("golvs_state_write_error = %s, want 0", got)
		}
		if st := mustRead(t, stateFile); !strings.Contains(st, `"Port": 53`) {
			return fmt.Errorf("the state file lacks the new service:\n%s", st)
		}
		return nil
	})
	t.Logf("state written again %s after space returned (resync_interval %s); %s failed writes in all",
		durMS(time.Since(back)), resync, metric("golvs_state_write_errors_total"))
	if !strings.Contains(p.Output(), "state file written again") {
		t.Error("the recovery was not logged")
	}
	if n := strings.Count(p.Output(), "state file not written"); n != 1 {
		t.Errorf("the outage was logged %d times as new, want once", n)
	}

	// Read-only: `mount -o remount,ro` is refused (EBUSY) while the
	// director holds its lock file open for writing there, so a read-only
	// tmpfs is mounted over the directory instead, in the director's own
	// mount namespace (ip netns exec gave it one): its writes resolve the
	// path into it and fail with EROFS, as on a file system remounted
	// read-only. The test's namespace still sees the file underneath.
	// nsenter -r: the lab's root is a chroot inside that namespace.
	inDirector := func(args ...string) {
		t.Helper()
		cmd := exec.Command("nsenter", append([]string{"-t", fmt.Sprint(p.Cmd.Process.Pid), "-m", "-r", "--"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
	}
	inDirector("mount", "-t", "tmpfs", "-o", "ro,size=4k,mode=0700", "golvs-ro", stateDir)
	alt := "TCP " + vip + ":8080"
	writeFile(t, file, text+c.service("dns", "udp", 53, "nat", "rr")+c.service("alt", "tcp", 8080, "nat", "rr"))
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*eventuallyScale, "the new service in the kernel with the state directory read-only", func() error {
		return hasBackends(3, web, dns, alt)(c.ipvsTable())
	})
	eventually(t, 10*eventuallyScale, "the read-only directory exported and logged", func() error {
		if got := metric("golvs_state_write_error"); got != "1" {
			return fmt.Errorf("golvs_state_write_error = %s, want 1", got)
		}
		if !strings.Contains(p.Output(), "read-only file system") {
			return fmt.Errorf("no log line names the read-only file system")
		}
		return nil
	})
	if st := mustRead(t, stateFile); strings.Contains(st, `"Port": 8080`) {
		t.Fatalf("the state file names the new service while read-only:\n%s", st)
	}
	inDirector("umount", stateDir)
	back = time.Now()
	eventually(t, resync+3*time.Second, "the state written again once writable", func() error {
		if got := metric("golvs_state_write_error"); got != "0" {
			return fmt.Errorf("golvs_state_write_error = %s, want 0", got)
		}
		if st := mustRead(t, stateFile); !strings.Contains(st, `"Port": 8080`) {
			return fmt.Errorf("the state file lacks the new service:\n%s", st)
		}
		return nil
	})
	t.Logf("state written again %s after the directory was writable again; %s failed writes in all",
		durMS(time.Since(back)), metric("golvs_state_write_errors_total"))
	if n := strings.Count(p.Output(), "state file not written"); n != 2 {
		t.Errorf("the two outages were logged %d times as new, want twice", n)
	}
	if n := strings.Count(p.Output(), "state file written again"); n != 2 {
		t.Errorf("the two recoveries were logged %d times, want twice", n)
	}
	r := c.stopPoll(poll)
	t.Logf("poller: %d requests, %d failed", r.Total, r.Failures)
	if r.Failures != 0 || r.Total < 20 {
		t.Errorf("%d of %d polled requests failed while the state directory was full or read-only, want 0 of at least 20: %v", r.Failures, r.Total, r.Errors)
	}
	if done, err := p.Exited(); done {
		t.Fatalf("the director exited: %v", err)
	}
}
