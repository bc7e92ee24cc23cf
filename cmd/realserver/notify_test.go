package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSystemdProtocol runs realserver as systemd would (NOTIFY_SOCKET,
// RUNTIME_DIRECTORY, WATCHDOG_USEC) and plays systemd's side: READY=1
// after the host is prepared, watchdog pings, RELOADING=1 with
// MONOTONIC_USEC then READY=1 around a reload, `realserver reload` (the
// ExecReload) returning the outcome of a good and of a bad file, and
// STOPPING=1 on SIGTERM.
func TestSystemdProtocol(t *testing.T) {
	ns := newNS(t)
	dir := t.TempDir()
	sockPath := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	// expect waits for a message with the prefix, returning it.
	expect := func(prefix string, within time.Duration) string {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					t.Fatalf("notify socket closed waiting for %q", prefix)
				}
				if strings.HasPrefix(m, prefix) {
					return m
				}
			case <-deadline:
				t.Fatalf("no %q notification within %v", prefix, within)
			}
		}
	}

	cfg := filepath.Join(dir, "topology.toml")
	svc := func(name, vip string) string {
		return "[[service]]\nname = \"" + name + "\"\naddress = \"" + vip + "\"\nport = 80\nforwarding = \"dr\"\n[[service.backend]]\naddress = \"10.0.0.2\"\n"
	}
	write := func(body string) {
		if err := os.WriteFile(cfg, []byte("[director]\ninterface = \"eth0\"\n"+body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(svc("a", "192.0.2.10"))

	const watchdog = time.Second
	env := []string{"NOTIFY_SOCKET=" + sockPath, "RUNTIME_DIRECTORY=" + dir,
		"WATCHDOG_USEC=" + strconv.Itoa(int(watchdog/time.Microsecond))}
	p := &proc{cmd: command(ns, "run", "-config", cfg, "--state-file", filepath.Join(dir, "rs.state"),
		"--agent-address=", "--drain-grace=0s"), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})

	if m := expect("READY=1", 30*time.Second); !strings.Contains(m, "STATUS=host prepared: 1 addresses") {
		t.Errorf("READY: %q", m)
	}
	if !strings.Contains(addrs(t, ns, "lo"), "192.0.2.10/32") {
		t.Error("READY=1 before the VIP was on lo")
	}
	expect("WATCHDOG=1", 2*watchdog)

	reload := func() (int, string) {
		cmd := exec.Command(binPath, "reload", "--pid", strconv.Itoa(p.cmd.Process.Pid), "--timeout", "30s")
		cmd.Env = append(os.Environ(), beMain+"=1", "RUNTIME_DIRECTORY="+dir)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}

	write(svc("a", "192.0.2.10") + svc("b", "192.0.2.11"))
	code, out := reload()
	if code != 0 || !strings.Contains(out, "reload applied: 2 addresses") {
		t.Fatalf("good reload: exit %d, %q", code, out)
	}
	// When reload returns, the new file is in force.
	if !strings.Contains(addrs(t, ns, "lo"), "192.0.2.11/32") {
		t.Error("reload returned before b's VIP was added")
	}
	if m := expect("RELOADING=1", 5*time.Second); !strings.Contains(m, "\nMONOTONIC_USEC=") {
		t.Errorf("RELOADING without MONOTONIC_USEC: %q", m)
	}
	if m := expect("READY=1", 5*time.Second); !strings.Contains(m, "STATUS=reload applied") {
		t.Errorf("after reload: %q", m)
	}

	write("[[service]]\nname = 1\n")
	code, out = reload()
	if code != 1 || !strings.Contains(out, "reload rejected") || !strings.Contains(out, "topology.toml:") {
		t.Fatalf("bad reload: exit %d, %q", code, out)
	}
	expect("RELOADING=1", 5*time.Second)
	if m := expect("READY=1", 5*time.Second); !strings.Contains(m, "STATUS=reload rejected") {
		t.Errorf("after a bad reload: %q", m)
	}
	if !strings.Contains(addrs(t, ns, "lo"), "192.0.2.11/32") {
		t.Error("a rejected file changed the host")
	}

	p.signal(t, syscall.SIGTERM)
	expect("STOPPING=1", 20*time.Second)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.out)
	}
}
