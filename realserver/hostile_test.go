package realserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func writeJournal(t *testing.T, path string, changes []Change, mode os.FileMode) {
	t.Helper()
	b, err := json.Marshal(journalFile{Version: 1, Changes: changes})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestJournalRefusesForgedRecords: issue 18's planted journal made the
// cleanup write /tmp/victim-file (a sysctl path joined onto /proc/sys
// unchecked) and delete an unrelated interface. Every record the agent
// could not have written makes OpenJournal refuse the whole journal, so
// nothing in it is undone.
func TestJournalRefusesForgedRecords(t *testing.T) {
	good := Change{Kind: ChangeSysctl, Path: "net/ipv4/conf/all/arp_ignore", Old: "0", New: "1"}
	vip := netip.MustParsePrefix("192.0.2.10/32")
	for _, tt := range []struct {
		name string
		c    Change
	}{
		{"sysctl path climbing out", Change{Kind: ChangeSysctl, Path: "../../../tmp/victim-file", Old: "0", New: "1"}},
		{"sysctl path climbing out late", Change{Kind: ChangeSysctl, Path: "net/ipv4/conf/all/../../../../../tmp/victim-file", Old: "0", New: "1"}},
		{"absolute sysctl path", Change{Kind: ChangeSysctl, Path: "/tmp/victim-file", Old: "0", New: "1"}},
		{"another sysctl", Change{Kind: ChangeSysctl, Path: "kernel/core_pattern", Old: "0", New: "1"}},
		{"another net sysctl", Change{Kind: ChangeSysctl, Path: "net/ipv4/conf/all/forwarding", Old: "0", New: "1"}},
		{"sysctl of a device named ..", Change{Kind: ChangeSysctl, Path: "net/ipv4/conf/../arp_ignore", Old: "0", New: "1"}},
		{"a value that is not a number", Change{Kind: ChangeSysctl, Path: good.Path, Old: "|/tmp/x", New: "1"}},
		{"a sysctl with a device", Change{Kind: ChangeSysctl, Path: good.Path, Old: "0", New: "1", Dev: "eth0"}},
		{"deleting lo", Change{Kind: ChangeTunnelCreated, Dev: "lo"}},
		{"setting lo down", Change{Kind: ChangeLinkUp, Dev: "lo"}},
		{"a device name with a slash", Change{Kind: ChangeTunnelCreated, Dev: "../eth0"}},
		{"a device name too long", Change{Kind: ChangeLinkUp, Dev: "abcdefghijklmnop"}},
		{"an address that is a network", Change{Kind: ChangeAddr, Dev: "lo", Prefix: netip.MustParsePrefix("127.0.0.0/8")}},
		{"an address without one", Change{Kind: ChangeAddr, Dev: "lo"}},
		{"an address with a sysctl path", Change{Kind: ChangeAddr, Dev: "lo", Prefix: vip, Path: good.Path}},
		{"an unknown kind", Change{Kind: "exec", Dev: "lo"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "rs.state")
			writeJournal(t, p, []Change{good, tt.c}, 0o600)
			if _, err := OpenJournal(p); !errors.Is(err, ErrBadRecord) {
				t.Errorf("OpenJournal = %v, want ErrBadRecord", err)
			}
		})
	}
	// What the agent writes passes.
	p := filepath.Join(t.TempDir(), "rs.state")
	ours := []Change{good, {Kind: ChangeAddr, Dev: "lo", Prefix: vip}, {Kind: ChangeAddr, Dev: "tun0", Prefix: netip.MustParsePrefix("2001:db8::1/128")},
		{Kind: ChangeTunnelCreated, Dev: "tun0"}, {Kind: ChangeLinkUp, Dev: "tunl0"},
		{Kind: ChangeSysctl, Path: "net/ipv4/conf/eth0.100/rp_filter", Old: "2", New: "0"}}
	writeJournal(t, p, ours, 0o600)
	if j, err := OpenJournal(p); err != nil || len(j.Changes()) != len(ours) {
		t.Errorf("the agent's own journal: %v", err)
	}
}

// TestJournalRefusesUntrustedFile: a journal another user owns, others may
// write, that is not a regular file (a FIFO must not hang) or that is huge
// is refused whatever it holds.
func TestJournalRefusesUntrustedFile(t *testing.T) {
	ok := []Change{{Kind: ChangeSysctl, Path: "net/ipv4/conf/all/arp_ignore", Old: "0", New: "1"}}
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, p string)
	}{
		{"world-writable", func(t *testing.T, p string) { writeJournal(t, p, ok, 0o666) }},
		{"group-writable", func(t *testing.T, p string) { writeJournal(t, p, ok, 0o620) }},
		{"another user's", func(t *testing.T, p string) {
			writeJournal(t, p, ok, 0o600)
			if os.Geteuid() != 0 {
				t.Skip("giving a file to another user needs root")
			}
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}},
		{"a FIFO", func(t *testing.T, p string) {
			if err := unix.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"huge", func(t *testing.T, p string) {
			b := append([]byte(`{"version": 1, "changes": [`), bytes.Repeat([]byte(" "), maxJournal)...)
			if err := os.WriteFile(p, append(b, "]}"...), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "rs.state")
			tt.setup(t, p)
			done := make(chan error, 1)
			go func() {
				_, err := OpenJournal(p)
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, ErrUntrusted) {
					t.Errorf("OpenJournal = %v, want ErrUntrusted", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("OpenJournal hung")
			}
		})
	}
}

// TestUndoRefusesForgedSysctl: even a record that never went through
// OpenJournal cannot make Undo write outside the agent's settings.
func TestUndoRefusesForgedSysctl(t *testing.T) {
	root := t.TempDir()
	victim := filepath.Join(root, "victim-file")
	k := &Kernel{sysctlRoot: filepath.Join(root, "proc", "sys")}
	for _, c := range []Change{
		{Kind: ChangeSysctl, Path: "../../victim-file", Old: "1"},
		{Kind: ChangeSysctl, Path: "net/ipv4/conf/all/../../../../victim-file", Old: "1"},
		{Kind: ChangeSysctl, Path: "net/ipv4/conf/all/arp_ignore", Old: "1\nx"},
	} {
		if err := k.Undo(context.Background(), c); !errors.Is(err, ErrBadRecord) {
			t.Errorf("Undo(%+v) = %v, want ErrBadRecord", c, err)
		}
	}
	if _, err := os.Stat(victim); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the victim file was written: %v", err)
	}
}

// logBuffer collects log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestWeightFileBounded: issue 18.14: a 1 MiB weight file gave 10 MiB of
// log per 10 requests, and /dev/zero never returned. Now the read is
// bounded, a non-regular file is not read, and a problem is logged once,
// clipped.
func TestWeightFileBounded(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("9"), 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a weight ", 300)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ file, problem string }{
		{"/dev/zero", "is not a regular file"},
		{fifo, "is not a regular file"},
		{big, "is longer than 4096 bytes"},
		{junk, `holds "not a weight not a weight not a "... (3900 bytes), not a percentage`},
	} {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			var logs logBuffer
			a := &Agent{WeightFile: tt.file, Log: slog.New(slog.NewTextHandler(&logs, nil))}
			done := make(chan string, 1)
			go func() {
				var last string
				for range 10 {
					last = get(t, a)
				}
				done <- last
			}()
			select {
			case got := <-done:
				if got != "up" {
					t.Errorf("agent says %q, want up", got)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the agent hung reading the weight file")
			}
			out := logs.String()
			if n := strings.Count(out, "ignoring weight file"); n != 1 {
				t.Errorf("%d warnings for 10 requests, want 1:\n%.500s", n, out)
			}
			if len(out) > 512 {
				t.Errorf("%d bytes of log for 10 requests", len(out))
			}
			if !strings.Contains(out, strings.ReplaceAll(tt.problem, `"`, `\"`)) {
				t.Errorf("log lacks %q:\n%s", tt.problem, out)
			}
		})
	}
}
