package proc

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunExitStatus(t *testing.T) {
	ctx := t.Context()
	if _, err := Run(ctx, Cmd{Argv: []string{"true"}}); err != nil {
		t.Errorf("true: %v", err)
	}
	res, err := Run(ctx, Cmd{Argv: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || err.Error() != "exit status 3" {
		t.Errorf("exit 3: %v", err)
	}
	if string(res.Output) != "err\n" {
		t.Errorf("stderr only: output %q", res.Output)
	}
	res, _ = Run(ctx, Cmd{Argv: []string{"sh", "-c", "echo out; echo err >&2"}, Stdout: true})
	if string(res.Output) != "out\nerr\n" {
		t.Errorf("combined: output %q", res.Output)
	}
	_, err = Run(ctx, Cmd{Argv: []string{"sh", "-c", "kill -TERM $$"}})
	if !errors.As(err, &ee) || ee.Signal != syscall.SIGTERM || err.Error() != "signal: terminated" {
		t.Errorf("signal: %v", err)
	}
	res, err = Run(ctx, Cmd{Argv: []string{"sh", "-c", "head -c 1000000 /dev/zero >&2"}, MaxOutput: 100})
	if err != nil || len(res.Output) != 100 {
		t.Errorf("bounded output: %d bytes, err %v", len(res.Output), err)
	}
	if _, err = Run(ctx, Cmd{Argv: []string{"/nonexistent/prog"}}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing program: %v", err)
	}
	if _, err = Run(ctx, Cmd{Argv: []string{"golvs-no-such-program"}}); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("unknown name: %v", err)
	}
}

// TestRunMinimalEnv (issue 18.10): a program sees PATH and the caller's
// variables, nothing of ours.
func TestRunMinimalEnv(t *testing.T) {
	t.Setenv("GOLVS_SECRET", "hunter2")
	t.Setenv("LD_PRELOAD", "/tmp/evil.so")
	res, err := Run(t.Context(), Cmd{Argv: []string{"env"}, Env: []string{"GOLVS_BACKEND_PORT=80"}, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSpace(string(res.Output)), "\n")
	slices.Sort(got)
	want := []string{"GOLVS_BACKEND_PORT=80", "PATH=" + BasePath}
	if !slices.Equal(got, want) {
		t.Errorf("env = %q, want %q", got, want)
	}
}

// TestRunLeftoverHoldingStderr (issue 18.13): a program that exits 0 and
// leaves a child holding stderr succeeds at once, and the child is killed.
func TestRunLeftoverHoldingStderr(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	const timeout = 10 * time.Second
	start := time.Now()
	_, err := Run(t.Context(), Cmd{
		Argv:    []string{"sh", "-c", `sleep 60 & echo $! > "$0"`, pidFile},
		Timeout: timeout,
	})
	took := time.Since(start)
	if err != nil {
		t.Errorf("err = %v, want success", err)
	}
	// Waiting on the pipe would take the whole timeout (or the minute).
	if took >= timeout {
		t.Errorf("took %v, want well under the %v timeout", took, timeout)
	}
	waitGone(t, readPid(t, pidFile))
}

// TestRunSetsidEscapee (issue 18.13): a helper that leaves the group with
// setsid and holds stderr does not delay the run. It escapes the group
// kill, as the package documents; the test kills it itself.
func TestRunSetsidEscapee(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	const timeout = 10 * time.Second
	start := time.Now()
	_, err := Run(t.Context(), Cmd{
		Argv:    []string{"sh", "-c", `setsid sh -c 'echo $$ > "$0"; exec sleep 60' "$0" & while [ ! -s "$0" ]; do sleep 0.01; done`, pidFile},
		Timeout: timeout,
	})
	took := time.Since(start)
	pid := readPid(t, pidFile)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if err != nil {
		t.Errorf("err = %v, want success", err)
	}
	if took >= timeout {
		t.Errorf("took %v, want well under the %v timeout", took, timeout)
	}
}

// TestRunLinger (issue 18.5): a notify-style program that leaves
// `sleep 60 &` returns at once; the child lives until the deadline and
// dies there.
func TestRunLinger(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	const timeout = 3 * time.Second
	start := time.Now()
	_, err := Run(context.Background(), Cmd{
		Argv:      []string{"sh", "-c", `sleep 60 & echo $! > "$0"`, pidFile},
		Stdout:    true,
		Timeout:   timeout,
		Leftovers: LingerUntilDeadline,
	})
	returned := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if returned >= timeout {
		t.Errorf("returned after %v, want well under the %v timeout", returned, timeout)
	}
	pid := readPid(t, pidFile)
	if !alive(pid) && time.Since(start) < timeout {
		t.Errorf("leftover %d killed before the deadline", pid)
	}
	waitGone(t, pid)
	if gone := time.Since(start); gone < timeout {
		t.Errorf("leftover died after %v, before the %v deadline", gone, timeout)
	}
}

// TestRunTimeoutKillsGroup: at the deadline the whole group dies, even a
// child that ignores SIGTERM.
func TestRunTimeoutKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	const timeout = 500 * time.Millisecond
	start := time.Now()
	_, err := Run(t.Context(), Cmd{
		Argv:    []string{"sh", "-c", `sh -c 'trap "" TERM; exec sleep 60' & echo $! > "$0.tmp"; mv "$0.tmp" "$0"; trap "" TERM; wait`, pidFile},
		Timeout: timeout,
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want deadline exceeded", err)
	}
	if took := time.Since(start); took < timeout {
		t.Errorf("returned after %v, before the deadline", took)
	}
	waitGone(t, readPid(t, pidFile))
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("child never started: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// waitGone waits for pid to die: SIGKILL is delivered asynchronously and
// the orphan is reaped by init (a zombie counts as gone).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d survived", pid)
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
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
