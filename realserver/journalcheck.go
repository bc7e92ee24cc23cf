package realserver

// What a journal may hold. The journal tells `realserver run --cleanup`
// (and a restart after a crash) what to undo as root, so a record is
// only acted on when the agent itself could have written it:
//
//   - the file is regular, owned by this user (root), not writable by
//     group or others (OpenJournal);
//   - sysctl records name one of the settings of the Sysctls table,
//     net/ipv4/conf/DEV/{arp_ignore,arp_announce,rp_filter}, so a write
//     stays inside /proc/sys/net whatever the record says, and hold
//     integers;
//   - device records name a valid interface, never lo, and address
//     records a single address (/32, /128);
//   - at undo time (Kernel.Undo), a device is deleted only when it is an
//     ipip device carrying the agent's marker (its alias, set when it was
//     created), set down only when it is an ipip device, and an address
//     removed only from lo or an ipip device.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"unicode"
)

// ErrUntrusted is returned for a journal the agent did not write: not a
// regular file, another user's, writable by others, or too large.
var ErrUntrusted = errors.New("state file is not one the agent wrote")

// ErrBadRecord is returned for a journal record the agent could not have
// written; nothing in that journal is undone.
var ErrBadRecord = errors.New("not a record the agent writes")

// ErrNotOurs is returned by Undo for a device the agent did not create or
// manage; the record stays for the operator to look at.
var ErrNotOurs = errors.New("not the agent's to undo")

// TunnelMarker is the alias the agent gives a tunnel device it creates, so
// that a cleanup deletes only devices it made.
const TunnelMarker = "golvs-realserver"

func trusted(st fs.FileInfo) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("is not a regular file: %w", ErrUntrusted)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid != 0 && int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("is owned by uid %d: %w", sys.Uid, ErrUntrusted)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("is writable by group or others (mode %04o): %w", st.Mode().Perm(), ErrUntrusted)
	}
	return nil
}

// sysctlKeys are the settings Sysctls ever changes.
var sysctlKeys = []string{"arp_ignore", "arp_announce", "rp_filter"}

// checkSysctlPath accepts only net/ipv4/conf/DEV/KEY with KEY one of
// sysctlKeys: a relative, clean path that cannot leave /proc/sys/net.
func checkSysctlPath(p string) error {
	parts := strings.Split(p, "/")
	if path.Clean(p) != p || len(parts) != 5 || parts[0] != "net" || parts[1] != "ipv4" || parts[2] != "conf" ||
		devProblem(parts[3]) != "" || !slices.Contains(sysctlKeys, parts[4]) {
		return fmt.Errorf("sysctl %q is not one the agent sets: %w", clipped(p), ErrBadRecord)
	}
	return nil
}

// sysctlValue: what the kernel shows for these settings, an integer.
func sysctlValue(v string) bool {
	v = strings.TrimPrefix(v, "-")
	if v == "" || len(v) > 10 {
		return false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// devProblem applies the kernel's rules for interface names, as config
// does for tunnel_interface.
func devProblem(s string) string {
	switch {
	case s == "" || len(s) > 15:
		return "is not 1..15 bytes"
	case s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n\v\f\r"):
		return "is not a valid name"
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "is not a valid name"
		}
	}
	return ""
}

// validate reports whether c is a record the agent writes (see above).
func (c Change) validate() error {
	switch c.Kind {
	case ChangeSysctl:
		if err := checkSysctlPath(c.Path); err != nil {
			return err
		}
		if !sysctlValue(c.Old) || !sysctlValue(c.New) {
			return fmt.Errorf("sysctl %s values %q, %q are not integers: %w", c.Path, clipped(c.Old), clipped(c.New), ErrBadRecord)
		}
		if c.Dev != "" || c.Prefix.IsValid() {
			return fmt.Errorf("sysctl record with a device or address: %w", ErrBadRecord)
		}
		return nil
	case ChangeAddr, ChangeLinkUp, ChangeTunnelCreated:
	default:
		return fmt.Errorf("kind %q: %w", clipped(string(c.Kind)), ErrBadRecord)
	}
	if p := devProblem(c.Dev); p != "" {
		return fmt.Errorf("device %q %s: %w", clipped(c.Dev), p, ErrBadRecord)
	}
	if c.Path != "" || c.Old != "" || c.New != "" {
		return fmt.Errorf("%s record with sysctl fields: %w", c.Kind, ErrBadRecord)
	}
	if c.Kind == ChangeAddr {
		if !c.Prefix.IsValid() || !c.Prefix.IsSingleIP() {
			return fmt.Errorf("address %s is not a single address: %w", c.Prefix, ErrBadRecord)
		}
		return nil
	}
	if c.Prefix.IsValid() {
		return fmt.Errorf("%s record with an address: %w", c.Kind, ErrBadRecord)
	}
	if c.Dev == Loopback {
		return fmt.Errorf("%s of lo, which the agent never manages: %w", c.Kind, ErrBadRecord)
	}
	return nil
}

// clipped bounds a value from the journal in a message.
func clipped(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "..."
}
