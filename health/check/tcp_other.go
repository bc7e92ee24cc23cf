//go:build !linux

package check

import (
	"context"
	"time"
)

// Check connects once, through net.Dialer: the raw, socket-reusing path
// is Linux's.
func (c TCP) Check(ctx context.Context, t Target) error {
	return Classify(dialCheck(ctx, t))
}

// Start runs the probe on a goroutine of its own (see AsyncProber).
func (c TCP) Start(t Target, deadline time.Time, report func(Result)) (Result, bool) {
	goReport(deadline, report, func(ctx context.Context) error { return dialCheck(ctx, t) })
	return Result{}, false
}
