package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hostDir is a directory for a test's files that passes the directory
// rules: t.TempDir (0700, ours) under the sticky /tmp.
func hostDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func write(t *testing.T, path, content string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return path
}

// chownOther gives path to an unprivileged user: only root can.
func chownOther(t *testing.T, path string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another user needs root")
	}
	if err := os.Lchown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
}

// loadHost writes a topology whose [director] keeps its state file and
// socket in d, plus extra, and loads it with the host checks; it returns
// the error lines (nil when it loads) and fails the test on a hang.
func loadHost(t *testing.T, d, extra string, o Options) []string {
	t.Helper()
	src := fmt.Sprintf("[director]\ninterface = \"eth0\"\nstate_file = %q\ncontrol_socket = %q\n%s",
		filepath.Join(d, "run", "d.state"), filepath.Join(d, "run", "d.sock"), extra)
	p := write(t, filepath.Join(d, "t.toml"), src, 0o644)
	type result struct {
		err error
	}
	done := make(chan result, 1)
	go func() {
		_, err := o.Load(p)
		done <- result{err}
	}()
	var err error
	select {
	case r := <-done:
		err = r.err
	case <-time.After(30 * time.Second):
		t.Fatal("Load hung (a FIFO opened for reading?)")
	}
	if err == nil {
		return nil
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("Load error %v is not Errors", err)
	}
	var out []string
	for _, e := range es {
		out = append(out, strings.TrimPrefix(e.Error(), p))
	}
	return out
}

// TestAuthKeyFileChecked: every auth key problem of issue 18 (missing,
// a directory, a FIFO that would block, a symlink, world-readable, owned
// by another user, empty, too short, too long) is a check error at the
// key, before anything runs; a good key passes.
func TestAuthKeyFileChecked(t *testing.T) {
	const at = ":7:1: failover: auth_key_file "
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, key string)
		want  string // "" = loads
	}{
		{"good", func(t *testing.T, key string) { write(t, key, "0123456789abcdef\n", 0o600) }, ""},
		{"good, read-only", func(t *testing.T, key string) { write(t, key, "  0123456789abcdef0123  \n", 0o400) }, ""},
		{"missing", func(t *testing.T, key string) {}, "does not exist"},
		{"directory", func(t *testing.T, key string) { os.Mkdir(key, 0o700) }, "is a directory, not a regular file"},
		{"FIFO", func(t *testing.T, key string) { unix.Mkfifo(key, 0o600) }, "is a FIFO, not a regular file"},
		{"symlink", func(t *testing.T, key string) {
			os.Symlink(write(t, key+".real", "0123456789abcdef\n", 0o600), key)
		}, "is a symbolic link, not a regular file"},
		{"world-readable", func(t *testing.T, key string) { write(t, key, "0123456789abcdef\n", 0o644) },
			"is accessible by group or others (mode 0644); chmod 600 it"},
		{"group-readable", func(t *testing.T, key string) { write(t, key, "0123456789abcdef\n", 0o640) },
			"is accessible by group or others (mode 0640); chmod 600 it"},
		{"another user's", func(t *testing.T, key string) {
			write(t, key, "0123456789abcdef\n", 0o600)
			chownOther(t, key)
		}, "is owned by uid 65534, not root"},
		{"empty", func(t *testing.T, key string) { write(t, key, "", 0o600) }, "is empty"},
		{"blank", func(t *testing.T, key string) { write(t, key, " \n\n", 0o600) }, "is empty"},
		{"short", func(t *testing.T, key string) { write(t, key, "0123456789abcde\n", 0o600) },
			"holds a 15-byte key; HMAC-SHA256 auth needs at least 16 bytes"},
		{"long", func(t *testing.T, key string) { write(t, key, strings.Repeat("k", 4097), 0o600) },
			"is longer than 4096 bytes: not a key file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := hostDir(t)
			key := filepath.Join(d, "vrrp.key")
			tt.setup(t, key)
			got := loadHost(t, d, fmt.Sprintf("[failover]\nvirtual_router_id = 1\nauth_key_file = %q\n", key), Options{})
			want := []string(nil)
			if tt.want != "" {
				want = []string{at + fmt.Sprintf("%q ", key) + tt.want}
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}

// TestKeyOwnerOption: a file of the user the director runs as (Options.UID)
// passes; root's always does.
func TestKeyOwnerOption(t *testing.T) {
	d := hostDir(t)
	key := write(t, filepath.Join(d, "vrrp.key"), "0123456789abcdef\n", 0o600)
	chownOther(t, key)
	extra := fmt.Sprintf("[failover]\nvirtual_router_id = 1\nauth_key_file = %q\n", key)
	// The directory above must be the user's (or root's) too: it is root's.
	if got := loadHost(t, d, extra, Options{UID: 65534}); got != nil {
		t.Errorf("the user's own key refused: %q", got)
	}
	if got := loadHost(t, d, extra, Options{UID: 4242}); len(got) != 1 || !strings.Contains(got[0], "is owned by uid 65534, not root or uid 4242") {
		t.Errorf("another user's key: %q", got)
	}
}

// TestProgramsChecked: notify and an exec check's command[0] must exist,
// be regular, executable, and writable only by root or the director's
// user, in directories nobody else may write to; each problem is placed
// at its key (issue 17.1, 18.9).
func TestProgramsChecked(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, d, prog string) string // returns the path to name
		want  string
	}{
		{"good", func(t *testing.T, d, prog string) string { return write(t, prog, "#!/bin/sh\n", 0o755) }, ""},
		{"good, through a symlink", func(t *testing.T, d, prog string) string {
			write(t, prog, "#!/bin/sh\n", 0o750)
			os.Symlink(prog, prog+".link")
			return prog + ".link"
		}, ""},
		{"missing", func(t *testing.T, d, prog string) string { return prog }, "does not exist"},
		{"in a missing directory", func(t *testing.T, d, prog string) string { return filepath.Join(d, "nope", "x") }, "does not exist"},
		{"directory", func(t *testing.T, d, prog string) string { os.Mkdir(prog, 0o755); return prog }, "is a directory, not a regular file"},
		{"not executable", func(t *testing.T, d, prog string) string { return write(t, prog, "#!/bin/sh\n", 0o644) }, "is not executable"},
		{"world-writable", func(t *testing.T, d, prog string) string { return write(t, prog, "#!/bin/sh\n", 0o757) },
			"is writable by group or others (mode 0757), and the director runs it"},
		{"another user's", func(t *testing.T, d, prog string) string {
			write(t, prog, "#!/bin/sh\n", 0o755)
			chownOther(t, prog)
			return prog
		}, "is owned by uid 65534, not root"},
		{"in a world-writable directory", func(t *testing.T, d, prog string) string {
			ww := filepath.Join(d, "ww")
			os.Mkdir(ww, 0o777)
			os.Chmod(ww, 0o777)
			return write(t, filepath.Join(ww, "x"), "#!/bin/sh\n", 0o755)
		}, "is in DIR/ww, which others may write to (mode 0777)"},
		{"linked into a world-writable directory", func(t *testing.T, d, prog string) string {
			ww := filepath.Join(d, "ww")
			os.Mkdir(ww, 0o777)
			os.Chmod(ww, 0o777)
			write(t, filepath.Join(ww, "x"), "#!/bin/sh\n", 0o755)
			os.Symlink(filepath.Join(ww, "x"), prog)
			return prog
		}, `leads to "DIR/ww/x", which is in DIR/ww, which others may write to (mode 0777)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, where := range []string{"notify", "exec"} {
				d := hostDir(t)
				p := tt.setup(t, d, filepath.Join(d, "prog"))
				var extra, at string
				if where == "notify" {
					extra = fmt.Sprintf("[failover]\nvirtual_router_id = 1\nnotify = %q\n", p)
					at = fmt.Sprintf(":7:1: failover: notify %q ", p)
				} else {
					extra = fmt.Sprintf("[[service]]\nname = \"db\"\naddress = \"192.0.2.1\"\nport = 5432\nforwarding = \"nat\"\n"+
						"[service.check]\ntype = \"exec\"\ninterval = \"5s\"\ncommand = [%q, \"--strict\"]\n", p)
					at = fmt.Sprintf(":13:1: service \"db\": check: command[0] %q ", p)
				}
				got := loadHost(t, d, extra, Options{})
				var want []string
				if tt.want != "" {
					want = []string{at + strings.ReplaceAll(tt.want, "DIR", d)}
				}
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("%s:\ngot  %q\nwant %q", where, got, want)
				}
			}
		})
	}
}

// TestStateAndSocketPaths: state_file and control_socket must not name
// what is not the director's (issue 18.6): /etc/passwd, a regular file
// where the socket goes, a link, a FIFO, another user's file, a path
// others could plant first. A golvs state file (whole, cut short or
// empty) and a socket pass.
func TestStateAndSocketPaths(t *testing.T) {
	for _, tt := range []struct {
		name  string
		key   string
		setup func(t *testing.T, d string) string
		want  string
	}{
		{"state file: /etc/passwd", "state_file", func(t *testing.T, d string) string { return "/etc/passwd" },
			"exists and is not a golvs state file; refusing to replace it"},
		{"state file: a TOML file", "state_file", func(t *testing.T, d string) string {
			return write(t, filepath.Join(d, "x.toml"), "[director]\n", 0o600)
		}, "exists and is not a golvs state file; refusing to replace it"},
		{"state file: another JSON file", "state_file", func(t *testing.T, d string) string {
			return write(t, filepath.Join(d, "daemon.json"), `{"log-level": "warn", "data-root": "/x"}`, 0o600)
		}, "exists and is not a golvs state file; refusing to replace it"},
		{"state file: golvs", "state_file", func(t *testing.T, d string) string {
			return write(t, filepath.Join(d, "d.state"), "{\n  \"services\": [],\n  \"drains\": []\n}\n", 0o600)
		}, ""},
		{"state file: golvs, cut short", "state_file", func(t *testing.T, d string) string {
			return write(t, filepath.Join(d, "d.state"), "{\n  \"servi", 0o600)
		}, ""},
		{"state file: empty", "state_file", func(t *testing.T, d string) string {
			return write(t, filepath.Join(d, "d.state"), "", 0o600)
		}, ""},
		{"state file: not there yet", "state_file", func(t *testing.T, d string) string {
			return filepath.Join(d, "new", "dir", "d.state")
		}, ""},
		{"state file: a symlink to a state file", "state_file", func(t *testing.T, d string) string {
			os.Symlink(write(t, filepath.Join(d, "real"), `{"services": []}`, 0o600), filepath.Join(d, "d.state"))
			return filepath.Join(d, "d.state")
		}, "is a symbolic link, not a regular file: not a golvs state file"},
		{"state file: a FIFO", "state_file", func(t *testing.T, d string) string {
			unix.Mkfifo(filepath.Join(d, "d.state"), 0o600)
			return filepath.Join(d, "d.state")
		}, "is a FIFO, not a regular file: not a golvs state file"},
		{"state file: world-writable", "state_file", func(t *testing.T, d string) string {
			return write(t, filepath.Join(d, "d.state"), `{"services": []}`, 0o666)
		}, "is writable by group or others (mode 0666)"},
		{"state file: another user's", "state_file", func(t *testing.T, d string) string {
			p := write(t, filepath.Join(d, "d.state"), `{"services": []}`, 0o600)
			chownOther(t, p)
			return p
		}, "is owned by uid 65534, not root"},
		{"state file: in /tmp", "state_file", func(t *testing.T, d string) string { return "/tmp/golvs-test-nonexistent.state" },
			"is in /tmp, which others may write to (mode 0777, sticky)"},
		{"state file: to be created in /tmp", "state_file", func(t *testing.T, d string) string { return "/tmp/golvs-test-nonexistent/d.state" },
			"would be created under /tmp, which others may write to"},
		{"state file: under another user's directory", "state_file", func(t *testing.T, d string) string {
			os.Mkdir(filepath.Join(d, "theirs"), 0o755)
			chownOther(t, filepath.Join(d, "theirs"))
			return filepath.Join(d, "theirs", "d.state")
		}, "is under DIR/theirs, which is owned by uid 65534, not root"},
		{"socket: a regular file", "control_socket", func(t *testing.T, d string) string {
			return write(t, filepath.Join(d, "d.sock"), "precious", 0o644)
		}, "exists and is a regular file, not a socket; refusing to replace it"},
		{"socket: a directory", "control_socket", func(t *testing.T, d string) string {
			os.Mkdir(filepath.Join(d, "d.sock"), 0o700)
			return filepath.Join(d, "d.sock")
		}, "exists and is a directory, not a socket; refusing to replace it"},
		{"socket: a socket", "control_socket", func(t *testing.T, d string) string {
			p := filepath.Join(d, "d.sock")
			ln, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			ln.(*net.UnixListener).SetUnlinkOnClose(false)
			t.Cleanup(func() { ln.Close() })
			return p
		}, ""},
		{"socket: in a world-writable directory", "control_socket", func(t *testing.T, d string) string {
			os.Mkdir(filepath.Join(d, "ww"), 0o777)
			os.Chmod(filepath.Join(d, "ww"), os.ModeSticky|0o777)
			return filepath.Join(d, "ww", "d.sock")
		}, "is in DIR/ww, which others may write to (mode 0777, sticky)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := hostDir(t)
			p := tt.setup(t, d)
			state, sock := filepath.Join(d, "d.state"), filepath.Join(d, "d.sock")
			line := 3
			if tt.key == "state_file" {
				state = p
			} else {
				sock, line = p, 4
			}
			src := fmt.Sprintf("[director]\ninterface = \"eth0\"\nstate_file = %q\ncontrol_socket = %q\n", state, sock)
			file := write(t, filepath.Join(d, "t.toml"), src, 0o644)
			_, err := Load(file)
			var want string
			if tt.want != "" {
				want = fmt.Sprintf("%s:%d:1: director: %s %q %s", file, line, tt.key, p, strings.ReplaceAll(tt.want, "DIR", d))
			}
			if got := errText0(err); got != want {
				t.Errorf("got  %q\nwant %q", got, want)
			}
			// The helpers for the director's own use agree.
			check := CheckStatePath
			if tt.key == "control_socket" {
				check = CheckSocketPath
			}
			if err := check(p); (err == nil) != (tt.want == "") {
				t.Errorf("Check(%s) = %v", p, err)
			}
		})
	}
}

func errText0(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestParseLooksAtNoFiles: Parse (in memory) and SkipFiles leave the
// named files alone; Load checks them.
func TestParseLooksAtNoFiles(t *testing.T) {
	src := "[failover]\nvirtual_router_id = 1\nauth_key_file = \"/nonexistent/golvs.key\"\nnotify = \"/nonexistent/notify\"\n"
	if _, err := Parse("t.toml", []byte(src)); err != nil {
		t.Errorf("Parse: %v", err)
	}
	d := hostDir(t)
	if got := loadHost(t, d, src, Options{SkipFiles: true}); got != nil {
		t.Errorf("SkipFiles: %q", got)
	}
	got := loadHost(t, d, src, Options{})
	want := []string{`:7:1: failover: auth_key_file "/nonexistent/golvs.key" does not exist`,
		`:8:1: failover: notify "/nonexistent/notify" does not exist`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestReloadChecksFiles: a reload re-checks the named files even when the
// text did not change (the fast path), and places the problem at its key;
// the caller's topology stays as it was.
func TestReloadChecksFiles(t *testing.T) {
	d := hostDir(t)
	notify := write(t, filepath.Join(d, "notify"), "#!/bin/sh\n", 0o755)
	check := write(t, filepath.Join(d, "check"), "#!/bin/sh\n", 0o755)
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = \"eth0\"\nstate_file = %q\ncontrol_socket = %q\n[failover]\nvirtual_router_id = 1\nnotify = %q\n",
		filepath.Join(d, "d.state"), filepath.Join(d, "d.sock"), notify)
	for i := range 20 {
		fmt.Fprintf(&b, "\n[[service]]\nname = \"s%d\"\naddress = \"192.0.2.1\"\nport = %d\nforwarding = \"nat\"\n[service.check]\ntype = \"exec\"\ncommand = [%q]\n",
			i, i+1, check)
	}
	p := write(t, filepath.Join(d, "t.toml"), b.String(), 0o644)
	prev, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	fast := reparses.Load()
	// The same text, the notify program gone.
	os.Remove(notify)
	if _, err := Reload(p, prev); err == nil || err.Error() != fmt.Sprintf("%s:7:1: failover: notify %q does not exist", p, notify) {
		t.Errorf("Reload without notify = %v", err)
	}
	write(t, notify, "#!/bin/sh\n", 0o755)
	// One service edited to name a missing check: the fast path decodes
	// only it, and the error is at its command.
	edited := strings.Replace(b.String(), fmt.Sprintf("port = 13\nforwarding = \"nat\"\n[service.check]\ntype = \"exec\"\ncommand = [%q]", check),
		fmt.Sprintf("port = 13\nforwarding = \"nat\"\n[service.check]\ntype = \"exec\"\ncommand = [%q]", check+".new"), 1)
	write(t, p, edited, 0o644)
	line := 16 + 9*12 // 7 lines of head, then 9 per service, the command its 9th
	want := fmt.Sprintf("%s:%d:1: service \"s12\": check: command[0] %q does not exist", p, line, check+".new")
	if _, err := Reload(p, prev); err == nil || err.Error() != want {
		t.Errorf("Reload with a missing check:\ngot  %v\nwant %s", err, want)
	}
	// (The unchanged file is the fast path's first case, a copy of prev,
	// which it does not count.)
	if n := reparses.Load() - fast; n != 1 {
		t.Errorf("the edited reload did not take the fast path first (%d)", n)
	}
	if prev.Failover.Notify != notify || prev.Services[12].Check.Command[0] != check {
		t.Error("the topology in force changed")
	}
}
