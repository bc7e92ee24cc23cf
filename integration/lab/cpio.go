package lab

import (
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// cpioWriter writes the SVR4 "newc" cpio format the kernel unpacks as an
// initramfs: a 110-byte ASCII header, the NUL-terminated name, the data,
// each padded to 4 bytes, and a TRAILER!!! entry at the end.
type cpioWriter struct {
	w    io.Writer
	ino  uint32
	err  error
	done bool
}

func newCPIOWriter(w io.Writer) *cpioWriter { return &cpioWriter{w: w, ino: 1} }

const (
	cpioDir     = 0o040000
	cpioFile    = 0o100000
	cpioSymlink = 0o120000
	cpioCharDev = 0o020000
)

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	_, c.err = c.w.Write(b)
}

func (c *cpioWriter) pad(n int) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// entry writes one archive member; name is relative, without a leading "/".
func (c *cpioWriter) entry(name string, mode uint32, data []byte) error {
	return c.node(name, mode, 0, 0, data)
}

// node writes one member with a device number (for character devices).
func (c *cpioWriter) node(name string, mode, rdevMajor, rdevMinor uint32, data []byte) error {
	name = strings.TrimPrefix(name, "/")
	nlink := 1
	if mode&0o170000 == cpioDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.ino++
	c.write([]byte(hdr))
	c.write([]byte(name))
	c.write([]byte{0})
	c.pad(len(hdr) + len(name) + 1)
	c.write(data)
	c.pad(len(data))
	return c.err
}

// Dir adds a directory.
func (c *cpioWriter) Dir(name string) error { return c.entry(name, cpioDir|0o755, nil) }

// File adds a regular file with the given permission bits.
func (c *cpioWriter) File(name string, perm fs.FileMode, data []byte) error {
	return c.entry(name, cpioFile|uint32(perm.Perm()), data)
}

// Symlink adds a symbolic link name -> target.
func (c *cpioWriter) Symlink(name, target string) error {
	return c.entry(name, cpioSymlink|0o777, []byte(target))
}

// CharDev adds a character device node, such as dev/console (5, 1): the
// kernel opens it for init's standard streams before running /init.
func (c *cpioWriter) CharDev(name string, major, minor uint32) error {
	return c.node(name, cpioCharDev|0o600, major, minor, nil)
}

// Close writes the trailer. It does not close the underlying writer.
func (c *cpioWriter) Close() error {
	if c.done {
		return c.err
	}
	c.done = true
	return c.entry("TRAILER!!!", 0, nil)
}
