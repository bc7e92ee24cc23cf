package realserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/golvs/golvs/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// DefaultStateFile is where the journal lives between a crash and
// `realserver run --cleanup`.
const DefaultStateFile = "/run/golvs/realserver.state"

// ErrSymlink is returned for a state file path that is a symbolic link: a
// root daemon writing through a link planted in a shared directory could be
// made to overwrite any file.
var ErrSymlink = errors.New("state file is a symbolic link")

// ChangeKind names one change the agent made to the host.
type ChangeKind string

const (
	ChangeAddr          ChangeKind = "addr"           // Prefix added to Dev
	ChangeLinkUp        ChangeKind = "link-up"        // Dev was down, set up
	ChangeTunnelCreated ChangeKind = "tunnel-created" // Dev did not exist
	ChangeSysctl        ChangeKind = "sysctl"         // Path was Old, set to New
)

// Change is one journal record: enough to undo exactly that change.
type Change struct {
	Kind   ChangeKind   `json:"kind"`
	Dev    string       `json:"dev,omitempty"`
	Prefix netip.Prefix `json:"prefix,omitzero"`
	Path   string       `json:"path,omitempty"`
	Old    string       `json:"old,omitempty"`
	New    string       `json:"new,omitempty"`
}

func (c Change) String() string {
	switch c.Kind {
	case ChangeAddr:
		return fmt.Sprintf("remove address %s from %s", c.Prefix, c.Dev)
	case ChangeLinkUp:
		return fmt.Sprintf("set link %s down", c.Dev)
	case ChangeTunnelCreated:
		return fmt.Sprintf("delete device %s", c.Dev)
	case ChangeSysctl:
		return fmt.Sprintf("set %s back to %s", Sysctl{Path: c.Path}.Name(), c.Old)
	}
	return string(c.Kind)
}

// same reports whether two records concern the same thing.
func (c Change) same(o Change) bool {
	return c.Kind == o.Kind && c.Dev == o.Dev && c.Prefix == o.Prefix && c.Path == o.Path
}

// Journal is the ordered list of changes, mirrored to a file after every
// change so a crash loses nothing. Not safe for concurrent use.
type Journal struct {
	path    string
	changes []Change
	kept    []Change // there before the agent started: never recorded
}

type journalFile struct {
	Version int      `json:"version"`
	Changes []Change `json:"changes"`
}

// maxJournal bounds the journal file: a few hundred records at most.
const maxJournal = 1 << 20

// OpenJournal reads the journal at path; a missing file is an empty journal.
// It refuses a symlink, a file that is not regular, one another user owns
// or others may write (anyone who can write the journal can make the
// cleanup undo what they like), and any record the agent could not have
// written (see Change.validate): then nothing is undone.
func OpenJournal(path string) (*Journal, error) {
	j := &Journal{path: path}
	// O_NONBLOCK: a FIFO planted at path must not hang the agent; it is
	// refused as not regular right after.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return j, nil
	case errors.Is(err, unix.ELOOP):
		return nil, fmt.Errorf("%s: %w", path, ErrSymlink)
	case err != nil:
		return nil, fmt.Errorf("state file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	if err := trusted(st); err != nil {
		return nil, fmt.Errorf("state file %s %w", path, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxJournal+1))
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	if len(b) > maxJournal {
		return nil, fmt.Errorf("state file %s is larger than %d bytes: %w", path, maxJournal, ErrUntrusted)
	}
	var jf journalFile
	if err := json.Unmarshal(b, &jf); err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	if jf.Version != 1 {
		return nil, fmt.Errorf("state file %s: unknown version %d", path, jf.Version)
	}
	for i, c := range jf.Changes {
		if err := c.validate(); err != nil {
			return nil, fmt.Errorf("state file %s: record %d: %w", path, i+1, err)
		}
	}
	j.changes = jf.Changes
	return j, nil
}

// Changes returns a copy of the records, oldest first.
func (j *Journal) Changes() []Change { return slices.Clone(j.changes) }

// Has reports whether a record for the same thing exists.
func (j *Journal) Has(c Change) bool {
	return slices.ContainsFunc(j.changes, c.same)
}

// Keep marks c as the host's own (say, a VIP that was on lo before the
// agent started): it is never recorded, so never undone, even when the
// agent has to put it back after someone removed it.
func (j *Journal) Keep(c Change) {
	if !slices.ContainsFunc(j.kept, c.same) {
		j.kept = append(j.kept, c)
	}
}

// Record appends c and saves, unless a record for the same thing exists:
// the first record holds the value from before the agent touched it, which
// is what must come back even if the thing was changed again since.
func (j *Journal) Record(c Change) error {
	if j.Has(c) || slices.ContainsFunc(j.kept, c.same) {
		return nil
	}
	j.changes = append(j.changes, c)
	return j.save()
}

// Forget drops the record for c (after it was undone) and saves.
func (j *Journal) Forget(c Change) error {
	j.changes = slices.DeleteFunc(j.changes, c.same)
	return j.save()
}

// save writes the journal atomically (atomicfile: a temporary file in
// the same directory, fsync, rename, fsync of the directory), mode 0600;
// an empty journal removes the file.
func (j *Journal) save() error {
	if len(j.changes) == 0 {
		if err := atomicfile.CheckTarget(j.path); err != nil {
			return fmt.Errorf("state file: %w", asSymlink(err))
		}
		if err := atomicfile.Remove(j.path); err != nil {
			return fmt.Errorf("state file: %w", err)
		}
		return nil
	}
	b, err := json.MarshalIndent(journalFile{Version: 1, Changes: j.changes}, "", "  ")
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(j.path), 0o700); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err := atomicfile.Write(j.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("state file: %w", asSymlink(err))
	}
	return nil
}

// asSymlink adds ErrSymlink to atomicfile's own, for callers of this
// package.
func asSymlink(err error) error {
	if errors.Is(err, atomicfile.ErrSymlink) {
		return fmt.Errorf("%w: %w", ErrSymlink, err)
	}
	return err
}

// CheckPath refuses a symlinked state file before anything is changed.
func CheckPath(path string) error {
	fi, err := os.Lstat(path)
	if err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("%s: %w", path, ErrSymlink)
	}
	return nil
}
