// Package atomicfile replaces a file so that a crash or a full disk leaves
// either the old content or the new, never a torn file, and so that a link
// planted at the path is refused rather than followed.
//
// The steps are the usual ones: a temporary file in the same directory
// (same file system, so the rename is atomic), created exclusively, given
// its mode, written and fsync'ed; renamed over the target; then the
// directory fsync'ed, so the rename itself survives a power cut.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrSymlink is returned when the target is a symbolic link: a root daemon
// replacing a link planted in a shared directory would be told where to
// write by whoever planted it.
var ErrSymlink = errors.New("is a symbolic link")

// ErrNotRegular is returned when the target exists but is not a regular
// file (a directory, a FIFO, a socket, a device): not ours to replace.
var ErrNotRegular = errors.New("is not a regular file")

// Write replaces path with data, mode perm (not subject to the umask). The
// directory must exist. On error the target is as it was and no
// temporary file is left.
func Write(path string, data []byte, perm fs.FileMode) (err error) {
	if err := CheckTarget(path); err != nil {
		return err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// CreateTemp opens with O_EXCL and mode 0600: nobody else's file, and
	// no window in which others may read it.
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Checked again right before the rename: rename(2) would replace a
	// link rather than follow it, but a link appearing means someone else
	// is writing in this directory, and their file is not ours to remove.
	if err := CheckTarget(path); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(dir)
}

// CheckTarget returns nil when path is absent or a regular file (not a
// link), else ErrSymlink or ErrNotRegular.
func CheckTarget(path string) error {
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("write %s: %w", path, err)
	case st.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s %w", path, ErrSymlink)
	case !st.Mode().IsRegular():
		return fmt.Errorf("%s %w", path, ErrNotRegular)
	}
	return nil
}

// Remove deletes path (absent is fine) and makes the removal durable.
func Remove(path string) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir fsyncs a directory, so that entries created, renamed or removed
// in it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
