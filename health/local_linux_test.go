package health

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/golvs/golvs/config"
)

// TestLocalErrorsKeepBackendsUp (issue 18.3) mounts the fault for real: a
// child process runs a Monitor with HTTP and exec checks of healthy
// loopback backends, then uses up its open-file limit. Every probe then
// fails in socket() or pipe() with EMFILE; the backends must stay up
// (fall is 3, and each sees at least 5 such failures) and the failures
// must be counted.
func TestLocalErrorsKeepBackendsUp(t *testing.T) {
	if addr := os.Getenv("GOLVS_LOCAL_CHILD"); addr != "" {
		localChild(t, netip.MustParseAddrPort(addr))
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	cmd := exec.Command(os.Args[0], "-test.run=^TestLocalErrorsKeepBackendsUp$", "-test.v")
	cmd.Env = append(os.Environ(), "GOLVS_LOCAL_CHILD="+ln.Addr().String())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "backends stayed up") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "backends stayed up") || strings.Contains(l, "keeps its state") {
			t.Log(strings.TrimSpace(l))
		}
	}
}

func localChild(t *testing.T, addr netip.AddrPort) {
	const n = 10
	const interval = 200 * time.Millisecond
	var targets []Target
	for i := range n {
		c := &config.Check{Type: config.CheckHTTP, Interval: interval, Timeout: interval, Rise: 1, Fall: 3}
		if i%2 == 1 {
			c = &config.Check{Type: config.CheckExec, Command: []string{"true"}, Interval: interval, Timeout: interval, Rise: 1, Fall: 3}
		}
		targets = append(targets, Target{Service: fmt.Sprintf("svc%d", i), Backend: addr, Check: c})
	}
	m := New(slog.New(slog.NewTextHandler(os.Stderr, nil)), nil)
	if err := m.Update(targets); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	allUp := func() (bool, string) {
		for _, b := range m.Snapshot() {
			if !b.Up {
				return false, fmt.Sprintf("%s down: %s", b.Service, b.Reason)
			}
		}
		return true, ""
	}
	waitFor(t, "all backends up", func() bool { ok, _ := allUp(); return ok })

	// Use up the descriptors: lower the soft limit and fill it.
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	saved := lim
	lim.Cur = 64
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	var fds []int
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		fds = append(fds, fd)
	}
	from := m.LocalErrors()
	waitFor(t, "5 local errors per backend, or a backend down", func() bool {
		ok, _ := allUp()
		return !ok || m.LocalErrors()-from >= 5*n
	})
	ok, why := allUp()
	got := m.LocalErrors() - from
	for _, fd := range fds {
		unix.Close(fd)
	}
	unix.Setrlimit(unix.RLIMIT_NOFILE, &saved)
	if !ok {
		t.Fatalf("after %d local errors: %s", got, why)
	}
	fmt.Printf("backends stayed up through %d local errors\n", got)
}

// waitFor polls cond until it holds; the bound only keeps a broken test
// from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
