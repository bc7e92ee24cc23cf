package check

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"

	"golang.org/x/sys/unix"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err   error
		local bool
	}{
		{nil, false},
		{fmt.Errorf("socket: %w", unix.EMFILE), true},
		{&url.Error{Op: "Get", URL: "http://x", Err: fmt.Errorf("dial: %w", unix.ENFILE)}, true},
		{fmt.Errorf("send: %w", unix.ENOBUFS), true},
		{fmt.Errorf("connect: %w", unix.EADDRNOTAVAIL), true},
		{fmt.Errorf("run: fork: %w", unix.EAGAIN), true},
		{fmt.Errorf("connect: %w", unix.ECONNREFUSED), false},
		{fmt.Errorf("connect: %w", unix.EHOSTUNREACH), false},
		{context.DeadlineExceeded, false},
		{errors.New("status 500, want [200]"), false},
	} {
		got := Classify(tc.err)
		if errors.Is(got, ErrLocal) != tc.local {
			t.Errorf("Classify(%v) = %v, local %v, want %v", tc.err, got, !tc.local, tc.local)
		}
		if tc.err != nil && !errors.Is(got, tc.err) {
			t.Errorf("Classify(%v) lost the cause", tc.err)
		}
		if r := Up(tc.err); errors.Is(r.Err, ErrLocal) != tc.local {
			t.Errorf("Up(%v) not classified", tc.err)
		}
	}
	var le *LocalError
	if err := Classify(fmt.Errorf("socket: %w", unix.EMFILE)); !errors.As(err, &le) || err.Error() != "local: socket: too many open files" {
		t.Errorf("message %q", err)
	}
}
