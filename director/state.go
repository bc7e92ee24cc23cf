package director

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/golvs/golvs/director/ipvs"
)

// state is what the director remembers across restarts: the services it
// created (so one removed from the file while the director was down is
// still recognised as its own) and operator drains.
type state struct {
	Services []ipvs.ServiceKey `json:"services"`
	Drains   []drainKey        `json:"drains,omitempty"`
}

// drainKey names a backend of a service, as operators do.
type drainKey struct {
	Service string         `json:"service"`
	Backend netip.AddrPort `json:"backend"`
}

// readState reads the state file; a missing file is an empty state.
func readState(path string) (state, error) {
	var st state
	if path == "" {
		return st, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return state{}, fmt.Errorf("read state %s: %w", path, err)
	}
	return st, nil
}

// writeState replaces the state file atomically: a crash leaves either the
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
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}
