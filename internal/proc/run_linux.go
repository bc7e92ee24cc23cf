package proc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Run runs c and returns when its program has exited (or was killed when
// ctx ended), with the output it wrote meanwhile. The error is nil for exit
// status 0, an *ExitError for another status or a signal, one wrapping
// ctx.Err() when the run was killed for ctx, and the start error
// otherwise (errors.Is(err, exec.ErrNotFound), os.ErrNotExist, or an errno
// such as EAGAIN or ENOMEM from fork).
//
// With LingerUntilDeadline, leftovers live until ctx ends or Timeout
// passes, so the caller must not end ctx when Run returns: give it
// Timeout and a context that ends only on purpose.
func Run(ctx context.Context, c Cmd) (Result, error) {
	if len(c.Argv) == 0 {
		return Result{}, errors.New("proc: no program")
	}
	path, err := lookPath(c.Argv[0])
	if err != nil {
		return Result{}, err
	}
	cancel := context.CancelFunc(func() {})
	if c.Timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
	}
	linger := c.Leftovers == LingerUntilDeadline
	if _, ok := ctx.Deadline(); !ok {
		linger = false // no deadline to kill them at
	}
	r, w, err := os.Pipe()
	if err != nil {
		cancel()
		return Result{}, err
	}
	cmd := &exec.Cmd{
		Path:   path,
		Args:   c.Argv,
		Env:    Environ(c.Env...),
		Stderr: w,
		// Own group: one kill reaches whatever the program started.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if c.Stdout {
		cmd.Stdout = w
	}
	err = cmd.Start()
	// The program and its children hold the write end now; ours would
	// keep the reader from ever seeing end of file.
	w.Close()
	if err != nil {
		r.Close()
		cancel()
		return Result{}, err
	}
	pid := cmd.Process.Pid

	out := &limitedBuffer{max: c.MaxOutput}
	if out.max <= 0 {
		out.max = DefaultMaxOutput
	}
	read := make(chan struct{})
	go func() {
		_, _ = io.Copy(out, r)
		close(read)
	}()

	// The leader is waited for without being reaped: while its zombie
	// exists its pid cannot be reused, so killing its group later can
	// never hit an unrelated process group.
	exited := make(chan exitStatus, 1)
	go func() { exited <- waitNoReap(pid) }()
	var st exitStatus
	killed := false
	select {
	case st = <-exited:
	case <-ctx.Done():
		killGroup(pid)
		killed = true
		st = <-exited
	}
	if linger && !killed {
		go func() {
			<-ctx.Done()
			killGroup(pid)
			_ = cmd.Wait()
			cancel()
		}()
	} else {
		killGroup(pid)
		_ = cmd.Wait()
		cancel()
	}

	// What the program wrote before exiting is in the pipe already; a
	// leftover (or a setsid'ed escapee) holding it is cut after the grace.
	grace := time.NewTimer(OutputGrace)
	select {
	case <-read:
	case <-grace.C:
		_ = r.SetReadDeadline(time.Now())
		<-read
	}
	grace.Stop()
	r.Close()

	res := Result{Output: out.buf.Bytes()}
	switch {
	case st.err != nil:
		return res, fmt.Errorf("wait: %w", st.err)
	case killed:
		return res, fmt.Errorf("killed: %w", context.Cause(ctx))
	case st.code == cldExited && st.status == 0:
		return res, nil
	case st.code == cldExited:
		return res, &ExitError{Code: int(st.status)}
	default:
		return res, &ExitError{Signal: syscall.Signal(st.status)}
	}
}

// killGroup sends SIGKILL to the process group led by pid.
func killGroup(pid int) {
	_ = unix.Kill(-pid, unix.SIGKILL)
}

// si_code values for SIGCHLD.
const (
	cldExited = 1
)

type exitStatus struct {
	code, status int32
	err          error
}

// waitNoReap blocks until pid has exited and returns how, leaving it a
// zombie (waitid with WNOWAIT); exec.Cmd.Wait reaps it later.
func waitNoReap(pid int) exitStatus {
	// siginfo_t is 128 bytes; for SIGCHLD, si_code is at 8 and the union
	// (si_pid, si_uid, si_status) starts after the first three ints,
	// aligned to a pointer.
	var info [128]byte
	for {
		_, _, errno := unix.Syscall6(unix.SYS_WAITID, unix.P_PID, uintptr(pid),
			uintptr(unsafe.Pointer(&info)), unix.WEXITED|unix.WNOWAIT, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return exitStatus{err: errno}
		}
		break
	}
	union := 12
	if unsafe.Sizeof(uintptr(0)) == 8 {
		union = 16
	}
	return exitStatus{
		code:   int32(binary.NativeEndian.Uint32(info[8:])),
		status: int32(binary.NativeEndian.Uint32(info[union+8:])),
	}
}
