package config

// Files a topology names, checked on the host before anything runs.
//
// `director check` and `run` (through Load) and every reload look at each
// file the director will read, run or replace, so that a missing notify
// program or a world-readable key is a FILE:LINE:COL error at its key, not
// a failure after the kernel was programmed. The rules:
//
//   - auth_key_file: a regular file (not a symlink, FIFO or directory),
//     owned by root or the director's user, not accessible by group or
//     others (as vrrp.LoadKey demands), holding 16..4096 bytes once
//     surrounding white space is trimmed (vrrp.LoadKey's key).
//   - notify and an exec check's command[0]: a regular file the director
//     may execute, owned by root or the director's user and writable by
//     nobody else (it runs as the director's user, root).
//   - state_file and control_socket, which the director replaces: an
//     existing state file must be a regular file of ours that looks like
//     a golvs state file (a JSON object with "services"; empty or cut
//     short passes, for the director to deal with); an existing
//     control_socket must be a socket of ours. So `state_file =
//     "/etc/passwd"` is refused, and no regular file is deleted to make
//     room for a socket.
//   - Every directory on the way to one of them is owned by root or the
//     director's user and not writable by others, except a sticky one
//     (/tmp) that holds an entry of ours; the nearest existing directory
//     of a path still to be created may not be writable by others at all,
//     or another user could create the path first.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Options says what Load and Reload check beyond the file's own text.
// The zero value checks everything, for the director.
type Options struct {
	// SkipFiles leaves the files the topology names unchecked: for the
	// realserver agent, whose hosts hold none of the director's files,
	// and for tests of files that name paths that do not exist.
	SkipFiles bool
	// UID is the user, besides root, who may own those files and the
	// directories above them; 0 means this process's effective user.
	UID int
}

// Load reads and validates the topology file at path, and the files it
// names (see Options). Problems in the file come back as Errors (use
// errors.As), each placed at FILE:LINE:COL; an unreadable or oversized
// file is a plain error.
func (o Options) Load(path string) (*Topology, error) {
	src, err := readFile(path, MaxFileSize)
	if err != nil {
		return nil, err
	}
	return parse(path, src, o.files())
}

func (o Options) files() *fileChecker {
	if o.SkipFiles {
		return nil
	}
	uid := o.UID
	if uid == 0 {
		uid = os.Geteuid()
	}
	return &fileChecker{uid: uint32(uid), done: map[string]string{}}
}

// CheckStatePath reports whether path may be used as the director's state
// file by this process (see the rules above): nil, or why not.
func CheckStatePath(path string) error {
	return pathErr("state file", path, Options{}.files().statePath(path))
}

// CheckSocketPath reports whether path may be used as the director's
// control socket by this process: nil, or why not.
func CheckSocketPath(path string) error {
	return pathErr("control socket", path, Options{}.files().socketPath(path))
}

func pathErr(what, path, problem string) error {
	if problem == "" {
		return nil
	}
	return fmt.Errorf("%s %q %s", what, clip(path), problem)
}

// fileChecker checks each file once per load, however many services name
// it.
type fileChecker struct {
	uid  uint32
	done map[string]string // kind + path -> problem
}

// hostFiles checks the files t names, reporting at their keys.
func (d *decoder) hostFiles(t *Topology, fc *fileChecker) {
	check := func(path []string, ctx, key, file string, how func(string) string) {
		if file == "" {
			return
		}
		k := key + "\x00" + file
		problem, ok := fc.done[k]
		if !ok {
			problem = how(file)
			fc.done[k] = problem
		}
		if problem != "" {
			d.add(path, ctx, "%s %q %s", desc(key), file, desc(problem))
		}
	}
	check([]string{"director", "state_file"}, "director", "state_file", t.Director.StateFile, fc.statePath)
	check([]string{"director", "control_socket"}, "director", "control_socket", t.Director.ControlSocket, fc.socketPath)
	if f := t.Failover; f != nil {
		check([]string{"failover", "auth_key_file"}, "failover", "auth_key_file", f.AuthKeyFile, fc.keyFile)
		check([]string{"failover", "notify"}, "failover", "notify", f.Notify, fc.program)
	}
	if d.skipped {
		return // Services no longer line up with the file's elements
	}
	for i := range t.Services {
		s := &t.Services[i]
		if s.Check == nil || s.Check.Type != CheckExec || len(s.Check.Command) == 0 {
			continue
		}
		check([]string{"service", strconv.Itoa(i), "check", "command"}, fmt.Sprintf("service %q: check", clip(s.Name)),
			"command[0]", s.Check.Command[0], fc.program)
	}
}

// filesOK reports whether every file t names passes (the fast reload
// path; on a problem the full path places the errors).
func filesOK(t *Topology, fc *fileChecker) bool {
	d := &decoder{}
	d.pos = &posNode{} // no positions needed
	d.hostFiles(t, fc)
	return len(d.errs) == 0
}

// The length vrrp.LoadKey reads and the shortest key vrrp.NewKey takes.
const (
	maxKeyFile = 4096
	minKey     = 16
)

func (fc *fileChecker) keyFile(path string) string {
	if p := fc.dirs(path, true); p != "" {
		return p
	}
	st, err := os.Lstat(path)
	if err != nil {
		return statProblem(err)
	}
	if p := notRegular(st); p != "" {
		return p
	}
	if p := fc.owner(st); p != "" {
		return p
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Sprintf("is accessible by group or others (mode %04o); chmod 600 it", perm)
	}
	// Opened without following a link and without blocking, in case it
	// was swapped for a FIFO since Lstat; then it must be the same file.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return statProblem(err)
	}
	defer f.Close()
	if fst, err := f.Stat(); err != nil || !os.SameFile(st, fst) {
		return "changed while it was checked"
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return "cannot be read: " + errText(err)
	}
	switch key := bytes.TrimSpace(b); {
	case len(b) > maxKeyFile:
		return fmt.Sprintf("is longer than %d bytes: not a key file", maxKeyFile)
	case len(key) == 0:
		return "is empty"
	case len(key) < minKey:
		return fmt.Sprintf("holds a %d-byte key; HMAC-SHA256 auth needs at least %d bytes", len(key), minKey)
	}
	return ""
}

// program checks a file the director executes.
func (fc *fileChecker) program(path string) string {
	if p := fc.dirs(path, true); p != "" {
		return p
	}
	st, err := os.Stat(path)
	if err != nil {
		return statProblem(err)
	}
	if p := notRegular(st); p != "" {
		return p
	}
	if real, err := filepath.EvalSymlinks(path); err == nil && real != path {
		if p := fc.dirs(real, true); p != "" {
			return "leads to " + strconv.Quote(real) + ", which " + p
		}
	}
	if p := fc.owner(st); p != "" {
		return p
	}
	if writableByOthers(st) {
		return fmt.Sprintf("is writable by group or others (mode %04o), and the director runs it", st.Mode().Perm())
	}
	if st.Mode().Perm()&0o111 == 0 || unix.Access(path, unix.X_OK) != nil {
		return "is not executable"
	}
	return ""
}

func (fc *fileChecker) statePath(path string) string {
	if p := fc.dirs(path, false); p != "" {
		return p
	}
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		return statProblem(err)
	}
	if p := notRegular(st); p != "" {
		return p + ": not a golvs state file"
	}
	if p := fc.owner(st); p != "" {
		return p
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Sprintf("is writable by group or others (mode %04o)", st.Mode().Perm())
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return statProblem(err)
	}
	defer f.Close()
	if !stateLike(f) {
		return "exists and is not a golvs state file; refusing to replace it"
	}
	return ""
}

// stateLike reports whether r holds a golvs state file: a JSON object
// with a "services" key; or nothing, or an object cut short (damage the
// director deals with, which no other file looks like).
func stateLike(r io.Reader) bool {
	dec := json.NewDecoder(io.LimitReader(r, MaxFileSize))
	tok, err := dec.Token()
	if err == io.EOF {
		return true
	}
	if err != nil || tok != json.Delim('{') {
		return false
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF
		}
		if tok == json.Delim('}') {
			return false
		}
		if tok == "services" {
			return true
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF
		}
	}
}

func (fc *fileChecker) socketPath(path string) string {
	if p := fc.dirs(path, false); p != "" {
		return p
	}
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		return statProblem(err)
	}
	if st.Mode().Type() != fs.ModeSocket {
		return "exists and is " + kind(st) + ", not a socket; refusing to replace it"
	}
	return fc.owner(st)
}

// dirs checks the directories above path (see the rules above); exists
// says the path itself must exist, so the deepest directory holds an entry.
func (fc *fileChecker) dirs(path string, exists bool) string {
	path = filepath.Clean(path)
	var chain []string
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		chain = append(chain, d)
		if d == "/" || d == "." {
			break
		}
	}
	for i := len(chain) - 1; i >= 0; i-- {
		d := chain[i]
		st, err := os.Stat(d)
		if errors.Is(err, fs.ErrNotExist) {
			if exists {
				return "does not exist"
			}
			if i+1 < len(chain) {
				if pst, err := os.Stat(chain[i+1]); err == nil && writableByOthers(pst) {
					return fmt.Sprintf("would be created under %s, which others may write to", chain[i+1])
				}
			}
			return ""
		}
		if err != nil {
			return fmt.Sprintf("is under %s, which %s", d, statProblem(err))
		}
		if !st.IsDir() {
			return fmt.Sprintf("is under %s, which is not a directory", d)
		}
		if p := fc.owner(st); p != "" {
			return fmt.Sprintf("is under %s, which %s", d, p)
		}
		if writableByOthers(st) && (st.Mode()&fs.ModeSticky == 0 || i == 0) {
			return fmt.Sprintf("is in %s, which others may write to (mode %04o%s)", d, st.Mode().Perm(), sticky(st))
		}
	}
	return ""
}

func sticky(st fs.FileInfo) string {
	if st.Mode()&fs.ModeSticky != 0 {
		return ", sticky"
	}
	return ""
}

// writableByOthers: writable by everyone, or by a group other than root's.
func writableByOthers(st fs.FileInfo) bool {
	perm := st.Mode().Perm()
	gid := uint32(0)
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		gid = sys.Gid
	}
	return perm&0o002 != 0 || perm&0o020 != 0 && gid != 0
}

func (fc *fileChecker) owner(st fs.FileInfo) string {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || sys.Uid == 0 || sys.Uid == fc.uid {
		return ""
	}
	if fc.uid == 0 {
		return fmt.Sprintf("is owned by uid %d, not root", sys.Uid)
	}
	return fmt.Sprintf("is owned by uid %d, not root or uid %d", sys.Uid, fc.uid)
}

func notRegular(st fs.FileInfo) string {
	if st.Mode().IsRegular() {
		return ""
	}
	return "is " + kind(st) + ", not a regular file"
}

func kind(st fs.FileInfo) string {
	switch t := st.Mode().Type(); {
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeDevice != 0:
		return "a device"
	case t == 0:
		return "a regular file"
	}
	return "not a regular file"
}

func statProblem(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "does not exist"
	case errors.Is(err, unix.ELOOP):
		return "is a symbolic link"
	case errors.Is(err, fs.ErrPermission):
		return "cannot be read by uid " + strconv.Itoa(os.Geteuid()) + " (permission denied)"
	}
	return "cannot be checked: " + errText(err)
}

// errText is err without the path an *fs.PathError repeats.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return strings.TrimSpace(err.Error())
}
