//go:build !linux

package proc

import (
	"context"
	"errors"
)

// Run needs Linux (process groups reaped without waiting, waitid);
// elsewhere the packages that call it still build.
func Run(context.Context, Cmd) (Result, error) {
	return Result{}, errors.New("proc: running programs needs Linux")
}
