package main

import (
	"bytes"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/golvs/golvs/internal/sdnotify"
)

// TestCheckExecCondition: the exit codes systemd's ExecCondition= reads.
func TestCheckExecCondition(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.toml")
	os.WriteFile(empty, []byte("# a commented example, no service\n"), 0o644)
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("bogus = 1\n"), 0o644)
	good := topology(t, dir, "eth0", 1)
	for _, tc := range []struct {
		file string
		want int
	}{{good, 0}, {empty, 1}, {bad, 255}} {
		var out, errb bytes.Buffer
		if got := run([]string{"check", "--exec-condition", "-config", tc.file}, &out, &errb); got != tc.want {
			t.Errorf("%s: exit %d, want %d (%s%s)", filepath.Base(tc.file), got, tc.want, out.String(), errb.String())
		}
	}
	// Without the flag an empty file is a valid file.
	if got := run([]string{"check", "-config", empty}, &bytes.Buffer{}, &bytes.Buffer{}); got != 0 {
		t.Errorf("plain check of the empty file: exit %d", got)
	}
}

// TestReloadWaitsForTheRecord plays the director: on SIGHUP it records a
// rejected reload, and `director reload` must report it and fail.
func TestReloadWaitsForTheRecord(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("RUNTIME_DIRECTORY", dir)
	t.Setenv("NOTIFY_SOCKET", "")
	n := sdnotify.New("director")
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for _, applied := range []bool{true, false} {
		go func() {
			<-hup
			n.Reloading()
			if applied {
				n.ReloadApplied("reload applied: 2 services")
			} else {
				n.ReloadRejected(errors.New("t.toml:4:1: service \"web\": port 70000 is out of range"))
			}
		}()
		var out, errb bytes.Buffer
		code := run([]string{"reload", "--pid", strconv.Itoa(os.Getpid())}, &out, &errb)
		if applied {
			if code != 0 || !strings.Contains(out.String(), "reload applied: 2 services") {
				t.Fatalf("applied: exit %d, out %q, err %q", code, out.String(), errb.String())
			}
			continue
		}
		if code != 1 || !strings.Contains(errb.String(), "t.toml:4:1: service \"web\": port 70000") {
			t.Fatalf("rejected: exit %d, out %q, err %q", code, out.String(), errb.String())
		}
	}
}
