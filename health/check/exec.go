package check

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/golvs/golvs/internal/proc"
)

// Exec runs Command (argv, no shell) and passes when it exits 0. The
// command sees a minimal environment (internal/proc): PATH=proc.BasePath,
// where a command named without a slash is also looked up, and
//
//	GOLVS_SERVICE          the service name
//	GOLVS_BACKEND_ADDRESS  the backend's address
//	GOLVS_BACKEND_PORT     the backend's port
//	GOLVS_CHECK_PORT       the check's port (the backend's unless set)
//
// and nothing of the director's own environment.
//
// It runs in its own process group. The verdict is the command's exit
// status, known as soon as it exits: children it left behind are then
// killed with the group, and one holding stderr (a helper started in the
// background) delays nothing. When the check's context ends, the whole
// group is killed with SIGKILL, so a helper that ignores SIGTERM cannot
// pile up one per interval. A helper that leaves the group (setsid)
// escapes both kills; see internal/proc.
type Exec struct {
	Command []string
}

// maxStderr bounds the stderr kept for the reason.
const maxStderr = 256

// Check runs the command once.
func (e Exec) Check(ctx context.Context, t Target) error {
	res, err := proc.Run(ctx, proc.Cmd{
		Argv: e.Command,
		Env: []string{
			"GOLVS_SERVICE=" + t.Service,
			"GOLVS_BACKEND_ADDRESS=" + t.Backend.Addr().String(),
			"GOLVS_BACKEND_PORT=" + strconv.Itoa(int(t.Backend.Port())),
			"GOLVS_CHECK_PORT=" + strconv.Itoa(int(t.Addr.Port())),
		},
		MaxOutput: maxStderr,
	})
	if err == nil {
		return nil
	}
	var ee *proc.ExitError
	if errors.As(err, &ee) {
		if msg := strings.TrimSpace(string(res.Output)); msg != "" {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("killed: %w", ctx.Err())
	}
	return Classify(fmt.Errorf("run: %w", err))
}
