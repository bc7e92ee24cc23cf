package check

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Exec runs Command (argv, no shell) and passes when it exits 0. The
// command sees the environment of the director plus:
//
//	GOLVS_SERVICE          the service name
//	GOLVS_BACKEND_ADDRESS  the backend's address
//	GOLVS_BACKEND_PORT     the backend's port
//	GOLVS_CHECK_PORT       the check's port (the backend's unless set)
//
// It runs in its own process group. When the check's context ends, the
// whole group is killed with SIGKILL, so a helper child that ignores
// SIGTERM or outlives its parent cannot pile up one per interval.
type Exec struct {
	Command []string
}

// maxStderr bounds the stderr kept for the reason.
const maxStderr = 256

// waitDelay bounds how long Check waits for output pipes after the
// process is gone: a grandchild that left the group (setsid) may hold them.
const waitDelay = 100 * time.Millisecond

// Check runs the command once.
func (e Exec) Check(ctx context.Context, t Target) error {
	cmd := exec.CommandContext(ctx, e.Command[0], e.Command[1:]...)
	cmd.Env = append(os.Environ(),
		"GOLVS_SERVICE="+t.Service,
		"GOLVS_BACKEND_ADDRESS="+t.Backend.Addr().String(),
		"GOLVS_BACKEND_PORT="+strconv.Itoa(int(t.Backend.Port())),
		"GOLVS_CHECK_PORT="+strconv.Itoa(int(t.Addr.Port())),
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr limitedBuffer
	stderr.max = maxStderr
	cmd.Stderr = &stderr
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = waitDelay
	err := cmd.Run()
	// The leader is reaped but children it left in the background would
	// otherwise live on; the group id stays reserved while any member
	// lives, so this cannot hit an unrelated process group.
	_ = killGroup(cmd)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("killed: %w", ctx.Err())
	}
	msg := strings.TrimSpace(stderr.String())
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if msg != "" {
			return fmt.Errorf("%s: %s", ee.ProcessState.String(), msg)
		}
		return fmt.Errorf("%s", ee.ProcessState.String())
	}
	return fmt.Errorf("run: %w", err)
}

func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	// Negative pid: the process group led by the command.
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// limitedBuffer keeps the first max bytes written and drops the rest,
// still reporting them written so the child never blocks on the pipe.
// (Not embedding bytes.Buffer: its ReadFrom would bypass the limit.)
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string { return b.buf.String() }
