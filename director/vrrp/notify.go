package vrrp

import (
	"context"
	"log/slog"
	"time"

	"github.com/golvs/golvs/internal/proc"
)

// notifier runs `program STATE` for each transition, one at a time and in
// order, each with a timeout. A slow program delays later notifications but
// never the protocol.
type notifier struct {
	program string
	timeout time.Duration
	log     *slog.Logger
	queue   chan State
}

func newNotifier(program string, timeout time.Duration, log *slog.Logger) *notifier {
	return &notifier{program: program, timeout: timeout, log: log, queue: make(chan State, 64)}
}

// enqueue never blocks the protocol loop; when the queue is full the new
// state is dropped and logged.
func (n *notifier) enqueue(s State) {
	if n.program == "" {
		return
	}
	select {
	case n.queue <- s:
	default:
		n.log.Warn("notify queue full, dropping", "state", s)
	}
}

// run executes queued notifications until ctx ends, then drains what is
// already queued, so the last transitions (a shutdown) are still reported.
// Each program is bounded by the timeout alone, never cut short by ctx.
func (n *notifier) run(ctx context.Context) {
	bg := context.WithoutCancel(ctx)
	for {
		select {
		case s := <-n.queue:
			n.exec(bg, s)
		case <-ctx.Done():
			for {
				select {
				case s := <-n.queue:
					n.exec(bg, s)
				default:
					return
				}
			}
		}
	}
}

// exec runs the program through internal/proc: its own process group, a
// minimal environment (PATH only), and a return as soon as it exits.
// Children it leaves in the background (a delayed arping) live until the
// timeout and are killed with the group there; a pipe they hold delays
// neither the next notification nor shutdown.
func (n *notifier) exec(ctx context.Context, s State) {
	res, err := proc.Run(ctx, proc.Cmd{
		Argv:      []string{n.program, s.String()},
		Stdout:    true,
		Timeout:   n.timeout,
		Leftovers: proc.LingerUntilDeadline,
	})
	if err != nil {
		n.log.Warn("notify program failed", "program", n.program, "state", s, "err", err, "output", string(res.Output))
		return
	}
	n.log.Debug("notify program ran", "program", n.program, "state", s)
}
