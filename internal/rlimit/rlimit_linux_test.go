package rlimit

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRaiseFileLimit runs itself in a subprocess whose soft limit is
// lowered to 64 (the Go runtime raises it at start, so it is lowered
// again in the child), and checks that RaiseFileLimit brings it back to
// the hard limit.
func TestRaiseFileLimit(t *testing.T) {
	if os.Getenv("GOLVS_RLIMIT_CHILD") == "1" {
		var lim unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
		lim.Cur = 64
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
		old, new, err := RaiseFileLimit()
		if err != nil {
			t.Fatal(err)
		}
		var now unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &now); err != nil {
			t.Fatal(err)
		}
		if old != 64 || new != lim.Max || now.Cur != lim.Max {
			t.Fatalf("RaiseFileLimit() = %d, %d; soft limit now %d; want 64, %d, %d", old, new, now.Cur, lim.Max, lim.Max)
		}
		// Twice is a no-op.
		if o, n, err := RaiseFileLimit(); err != nil || o != n {
			t.Fatalf("again: %d, %d, %v", o, n, err)
		}
		os.Stdout.WriteString("raised " + strconv.FormatUint(old, 10) + " " + strconv.FormatUint(new, 10) + "\n")
		return
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max <= 65 || lim.Max == unix.RLIM_INFINITY {
		t.Fatalf("hard limit %d: cannot test", lim.Max)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRaiseFileLimit$", "-test.v")
	cmd.Env = append(os.Environ(), "GOLVS_RLIMIT_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "raised 64 ") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
