// Package sdnotify tells systemd what a golvs daemon is doing: READY=1 once
// the first pass is done, RELOADING=1 and READY=1 around a SIGHUP reload
// with a STATUS= line saying whether the new file was applied, STOPPING=1,
// and WATCHDOG=1 only while every loop of the daemon is making progress
// (see Watchdog). Outside systemd (no NOTIFY_SOCKET) every call is a no-op.
//
// systemd 252 (Debian bookworm) has no Type=notify-reload, and even 253's
// does not fail `systemctl reload` on a rejected file. So a reload also
// leaves a record in the runtime directory ($RUNTIME_DIRECTORY/PROG.reload)
// which the ExecReload helper (SignalReload) waits for: `systemctl reload`
// then returns when the file is applied and fails with its errors when not.
package sdnotify

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// SendFunc delivers one notify message ("KEY=VALUE" lines).
type SendFunc func(state string) error

// Notifier sends a daemon's state changes to systemd. The zero value and a
// nil *Notifier do nothing.
type Notifier struct {
	send       SendFunc
	mono       func() time.Duration // CLOCK_MONOTONIC, as MONOTONIC_USEC wants
	resultPath string               // reload record; "" = none

	mu         sync.Mutex
	reloadAt   time.Duration // start of the reload in progress
	lastStatus string        // what the daemon last said, for the watchdog to restore
}

// New returns the notifier of program prog ("director", "realserver"):
// it notifies when systemd gave a NOTIFY_SOCKET and records reload results
// when systemd gave a RuntimeDirectory.
func New(prog string) *Notifier {
	return &Notifier{send: sdNotify, mono: monotonic, resultPath: ResultPath(prog)}
}

func sdNotify(state string) error {
	_, err := daemon.SdNotify(false, state)
	return err
}

// ResultPath is where prog's reload results are recorded:
// $RUNTIME_DIRECTORY/prog.reload, or "" outside a unit with a runtime
// directory. The daemon and its ExecReload helper both run in the unit, so
// they agree on it.
func ResultPath(prog string) string {
	dirs := os.Getenv("RUNTIME_DIRECTORY") // colon-separated when the unit names several
	if dirs == "" {
		return ""
	}
	first, _, _ := strings.Cut(dirs, ":")
	return filepath.Join(first, prog+".reload")
}

func (n *Notifier) notify(lines ...string) error {
	if n == nil || n.send == nil {
		return nil
	}
	for _, l := range lines {
		if s, ok := strings.CutPrefix(l, "STATUS="); ok {
			n.mu.Lock()
			n.lastStatus = s
			n.mu.Unlock()
		}
	}
	return n.send(strings.Join(lines, "\n"))
}

// sendRaw sends without touching lastStatus (the watchdog's own lines).
func (n *Notifier) sendRaw(lines ...string) error {
	if n == nil || n.send == nil {
		return nil
	}
	return n.send(strings.Join(lines, "\n"))
}

func (n *Notifier) status() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lastStatus
}

// Ready says the first pass is done: the table is programmed and the
// addresses settled. status is shown by `systemctl status`.
func (n *Notifier) Ready(status string) error {
	return n.notify(daemon.SdNotifyReady, status1(status))
}

// Status updates the line `systemctl status` shows.
func (n *Notifier) Status(status string) error {
	return n.notify(status1(status))
}

// Reloading says a SIGHUP reload has started. It must be followed by
// ReloadApplied or ReloadRejected.
func (n *Notifier) Reloading() error {
	if n == nil || n.mono == nil {
		return nil
	}
	at := n.mono()
	n.mu.Lock()
	n.reloadAt = at
	n.mu.Unlock()
	return n.notify(daemon.SdNotifyReloading,
		fmt.Sprintf("MONOTONIC_USEC=%d", at.Microseconds()),
		status1("reloading"))
}

// ReloadApplied says the new file is in force; status describes it.
func (n *Notifier) ReloadApplied(status string) error {
	werr := n.record(Result{Applied: true, Status: status})
	return errors.Join(n.notify(daemon.SdNotifyReady, status1(status)), werr)
}

// ReloadRejected says the new file was refused (err lists why, one error a
// line as `director check` prints them) and the previous one stays.
func (n *Notifier) ReloadRejected(err error) error {
	msgs := errorLines(err)
	status := "reload rejected, previous configuration kept"
	if len(msgs) > 0 {
		status += ": " + msgs[0]
		if len(msgs) > 1 {
			status += fmt.Sprintf(" (and %d more)", len(msgs)-1)
		}
	}
	werr := n.record(Result{Applied: false, Status: status, Errors: msgs})
	return errors.Join(n.notify(daemon.SdNotifyReady, status1(status)), werr)
}

// Stopping says the daemon is shutting down.
func (n *Notifier) Stopping() error {
	return n.notify(daemon.SdNotifyStopping, status1("stopping"))
}

func (n *Notifier) record(r Result) error {
	if n == nil || n.resultPath == "" {
		return nil
	}
	n.mu.Lock()
	r.StartUsec = n.reloadAt.Microseconds()
	n.mu.Unlock()
	return writeResult(n.resultPath, r)
}

// status1 is a STATUS= assignment; the protocol is line-based, so a
// multi-line status keeps its first line.
func status1(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return "STATUS=" + s
}

func errorLines(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
