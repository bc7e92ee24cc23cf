package check

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func runExec(t *testing.T, timeout time.Duration, argv ...string) (error, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	tg := Target{
		Service: "web",
		Backend: netip.MustParseAddrPort("192.0.2.1:80"),
		Addr:    netip.MustParseAddrPort("192.0.2.1:8080"),
	}
	start := time.Now()
	err := Exec{Command: argv}.Check(ctx, tg)
	return err, time.Since(start)
}

func TestExec(t *testing.T) {
	if err, _ := runExec(t, time.Second, "true"); err != nil {
		t.Errorf("true: %v", err)
	}
	err, _ := runExec(t, time.Second, "false")
	if err == nil || err.Error() != "exit status 1" {
		t.Errorf("false: %v, want exit status 1", err)
	}
	err, _ = runExec(t, time.Second, "sh", "-c", "echo 'db is read-only' >&2; exit 3")
	if err == nil || err.Error() != "exit status 3: db is read-only" {
		t.Errorf("exit 3: %v, want %q", err, "exit status 3: db is read-only")
	}
	err, _ = runExec(t, time.Second, "sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x >&2; exit 2")
	if err == nil || len(err.Error()) > maxStderr+len("exit status 2: ") {
		t.Errorf("long stderr: reason not bounded: %d bytes", len(err.Error()))
	}
	err, _ = runExec(t, time.Second, "/nonexistent/check")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing program: %v, want not exist", err)
	}
}

func TestExecEnv(t *testing.T) {
	out := filepath.Join(t.TempDir(), "env")
	err, _ := runExec(t, time.Second, "sh", "-c",
		`echo "$GOLVS_SERVICE $GOLVS_BACKEND_ADDRESS $GOLVS_BACKEND_PORT $GOLVS_CHECK_PORT" > "$0"`, out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := "web 192.0.2.1 80 8080\n"; string(got) != want {
		t.Errorf("env = %q, want %q", got, want)
	}
}

// TestExecMinimalEnv (issue 18.10): the command sees PATH and the GOLVS_
// variables, nothing of the director's environment.
func TestExecMinimalEnv(t *testing.T) {
	t.Setenv("GOLVS_TEST_SECRET", "hunter2")
	out := filepath.Join(t.TempDir(), "env")
	err, _ := runExec(t, time.Second, "sh", "-c", `env > "$0"`, out)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSpace(string(b)), "\n")
	slices.Sort(got)
	// sh itself adds PWD (and nothing else under dash or bash -c).
	got = slices.DeleteFunc(got, func(s string) bool {
		return strings.HasPrefix(s, "PWD=") || strings.HasPrefix(s, "SHLVL=") || strings.HasPrefix(s, "_=")
	})
	want := []string{
		"GOLVS_BACKEND_ADDRESS=192.0.2.1", "GOLVS_BACKEND_PORT=80", "GOLVS_CHECK_PORT=8080",
		"GOLVS_SERVICE=web", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
	}
	if !slices.Equal(got, want) {
		t.Errorf("env = %q, want %q", got, want)
	}
}

// TestExecHelperHoldsStderr (issue 18.13): a check that exits 0 but leaves
// a helper holding stderr passes, at once, and the helper is killed.
func TestExecHelperHoldsStderr(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	const timeout = 5 * time.Second
	err, took := runExec(t, timeout, "sh", "-c", `sleep 60 & echo $! > "$0"`, pidFile)
	if err != nil {
		t.Errorf("err = %v, want success", err)
	}
	if took >= timeout {
		t.Errorf("check took %v, want well under its %v timeout", took, timeout)
	}
	b, _ := os.ReadFile(pidFile)
	pid, rerr := strconv.Atoi(strings.TrimSpace(string(b)))
	if rerr != nil {
		t.Fatal(rerr)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("helper %d survived the check", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestExecSetsidHelper (issue 18.13): a helper that leaves the process
// group with setsid and keeps stderr open does not fail or delay the check.
// It escapes the group kill (documented in internal/proc); repeated checks
// leave one each, which this test cleans up itself.
func TestExecSetsidHelper(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	const timeout = 5 * time.Second
	err, took := runExec(t, timeout, "sh", "-c",
		`setsid sh -c 'echo $$ > "$0"; exec sleep 60' "$0" & while [ ! -s "$0" ]; do sleep 0.01; done`, pidFile)
	b, _ := os.ReadFile(pidFile)
	if pid, rerr := strconv.Atoi(strings.TrimSpace(string(b))); rerr == nil {
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	}
	if err != nil {
		t.Errorf("err = %v, want success", err)
	}
	if took >= timeout {
		t.Errorf("check took %v, want well under its %v timeout", took, timeout)
	}
}

// TestExecTimeoutKillsGroup runs a check whose child ignores SIGTERM and
// outlives the timeout: the check must return at the timeout and the
// child must be dead.
func TestExecTimeoutKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	script := `sh -c 'trap "" TERM; exec sleep 60' & echo $! > "$0.tmp"; mv "$0.tmp" "$0"; trap "" TERM; wait`
	err, took := runExec(t, testTimeout, "sh", "-c", script, pidFile)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want deadline exceeded", err)
	}
	if took > testTimeout+time.Second {
		t.Errorf("check took %v, want about %v", took, testTimeout)
	}
	b, rerr := os.ReadFile(pidFile)
	if rerr != nil {
		t.Fatalf("child never started: %v", rerr)
	}
	pid, rerr := strconv.Atoi(strings.TrimSpace(string(b)))
	if rerr != nil {
		t.Fatal(rerr)
	}
	// SIGKILL is delivered asynchronously and the orphan is reaped by init:
	// poll briefly for it to be gone (a zombie counts as gone).
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("child %d survived the check's timeout", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestExecKillsLeftovers: a check that exits 0 but leaves a child in the
// background does not leak it.
func TestExecKillsLeftovers(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	err, _ := runExec(t, 2*time.Second, "sh", "-c", `sleep 60 </dev/null >/dev/null 2>&1 & echo $! > "$0"`, pidFile)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(pidFile)
	pid, rerr := strconv.Atoi(strings.TrimSpace(string(b)))
	if rerr != nil {
		t.Fatal(rerr)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("background child %d survived the check", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// Field 3, after "pid (comm)", is the state.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
