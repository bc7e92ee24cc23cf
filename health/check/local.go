package check

import (
	"errors"

	"golang.org/x/sys/unix"
)

// ErrLocal matches (errors.Is) every LocalError.
var ErrLocal = errors.New("local error")

// LocalError is a probe that failed for a reason of the director's own:
// it ran out of descriptors, buffers, memory, local ports or processes
// before the backend had a say. Such a result says nothing about the
// backend, so the monitor keeps the backend's last state and counts it
// (Monitor.LocalErrors) instead of marking a healthy backend down.
type LocalError struct{ Err error }

func (e *LocalError) Error() string        { return "local: " + e.Err.Error() }
func (e *LocalError) Unwrap() error        { return e.Err }
func (e *LocalError) Is(target error) bool { return target == ErrLocal }

// localErrnos are the errors of socket(), bind(), connect(), pipe() and
// fork() that come from this host's limits, not from the peer.
var localErrnos = []unix.Errno{
	unix.EMFILE,        // per-process descriptor limit
	unix.ENFILE,        // system-wide file limit
	unix.ENOBUFS,       // socket buffers
	unix.ENOMEM,        // kernel memory
	unix.EADDRNOTAVAIL, // no local port left (connect), or a vanished source address
	unix.EAGAIN,        // fork: process limit; connect: no local port (AF_INET)
}

// Classify returns err as a *LocalError when it comes from the director's
// own limits (see localErrnos), else err unchanged.
func Classify(err error) error {
	if err == nil || errors.Is(err, ErrLocal) {
		return err
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		for _, l := range localErrnos {
			if errno == l {
				return &LocalError{Err: err}
			}
		}
	}
	return err
}
