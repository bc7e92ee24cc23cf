// Package proc runs the external programs the director starts (exec health
// checks, VRRP notify programs) in one way:
//
//   - argv, never a shell;
//   - a minimal environment: PATH (BasePath) plus the caller's explicit
//     variables, nothing of the director's own environment (which may hold
//     credentials, proxies or LD_PRELOAD-style settings meant for it alone);
//   - its own process group, killed with SIGKILL when the run's context ends;
//   - the leader's exit is what counts: Run returns as soon as the program
//     exits, never waiting on a pipe that something it left behind holds
//     open (a grace of OutputGrace for its last output, then the pipe is cut);
//   - bounded captured output.
//
// What a group cannot contain: a descendant that calls setsid() or
// setpgid() (`setsid helper &`) leaves the group, so no group kill reaches
// it and it lives on after the run, holding at most its own resources (its
// copy of the output pipe is cut and no longer delays anyone). Containing
// those needs a cgroup per run (cgroup.kill), which the director does not
// assume to have: run it under systemd with KillMode=control-group, the
// default, so at least a stop of the service ends them.
package proc

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// BasePath is the only inherited-looking variable a program gets; it is
// also where a program named without a slash is looked up.
const BasePath = "/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultMaxOutput bounds the captured output when Cmd.MaxOutput is 0.
const DefaultMaxOutput = 4 << 10

// OutputGrace is how long Run reads output after the program exited: what
// it wrote just before exiting arrives, and a pipe held by a child it left
// behind stops delaying the caller.
const OutputGrace = 100 * time.Millisecond

// Leftovers says what happens to processes the program leaves in its group
// when it exits.
type Leftovers int

const (
	// KillLeftovers kills the group as soon as the program exits: a health
	// check's helpers must not pile up one per interval.
	KillLeftovers Leftovers = iota
	// LingerUntilDeadline lets them run until the run's deadline, then
	// kills the group, without delaying the caller: a notify program may
	// start a background job (a delayed arping) on purpose.
	LingerUntilDeadline
)

// Cmd is one run of a program.
type Cmd struct {
	// Argv is the program and its arguments; Argv[0] without a slash is
	// looked up in BasePath.
	Argv []string
	// Env holds "NAME=value" pairs added to PATH=BasePath.
	Env []string
	// Stdout also captures standard output (standard error always is);
	// otherwise it goes to /dev/null.
	Stdout bool
	// MaxOutput bounds the captured bytes (DefaultMaxOutput when 0); the
	// rest is read and dropped so the program never blocks on the pipe.
	MaxOutput int
	// Timeout, when set, bounds the run in addition to the context.
	Timeout time.Duration
	// Leftovers is the fate of what the program leaves in its group.
	Leftovers Leftovers
}

// Result is what a run produced.
type Result struct {
	// Output is the first MaxOutput bytes of standard error (and standard
	// output when captured), interleaved as written.
	Output []byte
}

// ExitError is a program that exited non-zero or was killed by a signal.
type ExitError struct {
	Code   int            // exit status, when Signal is 0
	Signal syscall.Signal // the signal that ended it, or 0
}

func (e *ExitError) Error() string {
	if e.Signal != 0 {
		return "signal: " + e.Signal.String()
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// Environ is the environment of a program run with extra variables.
func Environ(extra ...string) []string {
	return append([]string{"PATH=" + BasePath}, extra...)
}

// lookPath finds name in BasePath, never in the director's own PATH.
func lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, dir := range filepath.SplitList(BasePath) {
		p := filepath.Join(dir, name)
		if _, err := exec.LookPath(p); err == nil {
			return p, nil
		}
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}

// limitedBuffer keeps the first max bytes written and drops the rest.
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
