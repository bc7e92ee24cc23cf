// Package rlimit adjusts the director's own resource limits.
package rlimit

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// RaiseFileLimit raises this process's soft RLIMIT_NOFILE to its hard
// limit and returns the soft limit before and after.
//
// The director holds a socket per probe in flight, per IPVS dump and per
// client; at the usual soft limit of 1,024 a few thousand checks run out
// of descriptors, and every check that cannot open a socket used to mark a
// healthy backend down (issue 18.3). The Go runtime already raises the
// limit to hard-1 when it starts (Go 1.19+, restoring the original for
// programs it starts); this makes it explicit, reportable at start, and
// covers a limit lowered since. A limit already within one of the hard
// limit is left alone, so programs the director starts (exec checks,
// notify) still get the original soft limit, as Go arranges.
func RaiseFileLimit() (old, new uint64, err error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, fmt.Errorf("getrlimit nofile: %w", err)
	}
	old = lim.Cur
	if lim.Max == unix.RLIM_INFINITY || lim.Cur+1 >= lim.Max {
		return old, old, nil
	}
	lim.Cur = lim.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return old, old, fmt.Errorf("setrlimit nofile %d: %w", lim.Max, err)
	}
	return old, lim.Cur, nil
}
