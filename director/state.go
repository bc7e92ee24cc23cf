package director

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/internal/atomicfile"
)

// state is what the director remembers across restarts: the services it
// created (so one removed from the file while the director was down is
// still recognised as its own), operator drains and drain-self.
type state struct {
	Services []ipvs.ServiceKey `json:"services"`
	Drains   []drainKey        `json:"drains,omitempty"`
	// SelfDrained: director drain-self is in force (a routed director
	// announces nothing until undrain-self).
	SelfDrained bool `json:"self_drained,omitempty"`
}

// drainKey names a backend of a service, as operators do.
type drainKey struct {
	Service string         `json:"service"`
	Backend netip.AddrPort `json:"backend"`
}

// errUntrusted marks a state file that is not ours to believe: not a
// regular file, owned by someone else, or writable by others. Believing a
// forged one would make the director delete services it never created.
var errUntrusted = errors.New("state file not trusted")

// maxStateSize bounds what is read: a real state file of 50,000 services
// is a few megabytes.
const maxStateSize = 64 << 20

// readState reads the state file; a missing file is an empty state. A
// file that is not ours (errUntrusted) is neither read nor touched; a
// damaged one of ours is renamed aside (its name is in the error) so the
// next write does not destroy what an operator may want to look at.
func readState(path string) (state, error) {
	var st state
	if path == "" {
		return st, nil
	}
	f, err := openState(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read state %s: %w", path, err)
	}
	defer f.Close()
	if err := trusted(f); err != nil {
		return st, fmt.Errorf("read state %s: %w", path, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxStateSize+1))
	if err == nil && len(b) > maxStateSize {
		err = fmt.Errorf("larger than %d bytes", maxStateSize)
	}
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		aside := fmt.Sprintf("%s.damaged-%d", path, time.Now().Unix())
		if rerr := os.Rename(path, aside); rerr != nil {
			return state{}, fmt.Errorf("read state %s: %w; could not keep it aside: %v", path, err, rerr)
		}
		return state{}, fmt.Errorf("read state %s: %w; kept aside as %s", path, err, aside)
	}
	return st, nil
}

// openState opens the state file without following a symlink (one is not
// ours to trust) or blocking on a FIFO; a path whose directory does not
// exist is a missing file.
func openState(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, syscall.ELOOP):
		return nil, fmt.Errorf("%w: a symbolic link", errUntrusted)
	case errors.Is(err, syscall.ENOTDIR):
		return nil, fs.ErrNotExist
	}
	return f, err
}

// trusted checks that f is a regular file owned by us and writable by
// nobody else.
func trusted(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: not a regular file (%s)", errUntrusted, fi.Mode().Type())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: mode %#o is writable by others", errUntrusted, fi.Mode().Perm())
	}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: owned by uid %d, not %d", errUntrusted, sys.Uid, os.Geteuid())
	}
	return nil
}

// CheckStateFile refuses a state file that is not ours to use (see
// trusted); a missing one is fine.
func CheckStateFile(path string) error {
	if path == "" {
		return nil
	}
	f, err := openState(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	defer f.Close()
	if err := trusted(f); err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	return nil
}

// lockState takes the state file's lock (a sidecar .lock file, since the
// state file itself is replaced on every write): two directors on one
// state file would delete each other's services. The lock lasts until
// the returned file is closed, or the process dies.
func lockState(path string) (*os.File, error) {
	if path == "" {
		return nil, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state file lock: %w", err)
	}
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state file lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("state file %s is in use by another director (%s.lock is locked): give each director its own state_file", path, path)
		}
		return nil, fmt.Errorf("state file lock: %w", err)
	}
	return f, nil
}

// writeState replaces the state file atomically (internal/atomicfile, as the
// realserver journal): a crash leaves either the
// old or the new file, never a torn one. The directory is created 0700 and
// the file is 0600: it names the cluster's services.
func writeState(path string, st state) error {
	if path == "" {
		return nil
	}
	slices.SortFunc(st.Services, func(a, b ipvs.ServiceKey) int {
		switch {
		case ipvs.KeyLess(a, b):
			return -1
		case ipvs.KeyLess(b, a):
			return 1
		}
		return 0
	})
	slices.SortFunc(st.Drains, func(a, b drainKey) int {
		if a.Service != b.Service {
			if a.Service < b.Service {
				return -1
			}
			return 1
		}
		return a.Backend.Compare(b.Backend)
	})
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}
