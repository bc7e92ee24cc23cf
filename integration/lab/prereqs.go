// Package lab boots a Debian kernel that has IPVS under QEMU (or, when the
// host kernel already has IPVS and we are root, uses the host directly) and
// runs one command in it as root, streaming its output and returning its exit
// code. The end-to-end tests and `lab test` / `lab demo` run through it.
//
// The host's own IPVS-less kernel is the reason this exists; see
// shared/lab/FACTS.md for what was verified about booting under TCG.
package lab

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
)

// ErrMissingPrereqs is returned when tools the lab needs are absent and
// cannot be installed here (not root, or no apt-get).
var ErrMissingPrereqs = errors.New("lab prerequisites missing")

// prereq is one program the lab needs and the Debian package providing it.
type prereq struct {
	path    string // absolute path, or a bare name looked up in PATH
	pkg     string
	sbinDir bool // also look in /sbin and /usr/sbin (root's PATH may lack them)
	static  bool // must be statically linked
}

// prereqs lists the programs the lab needs, on the host and in the guest
// (the guest runs the host's userspace over 9p).
var prereqs = []prereq{
	{path: "qemu-system-x86_64", pkg: "qemu-system-x86"},
	// The guest's /init runs before the host root is mounted, so it needs
	// a statically linked busybox: Debian's busybox-static installs one
	// at /bin/busybox.
	{path: "/bin/busybox", pkg: "busybox-static", static: true},
	{path: "depmod", pkg: "kmod", sbinDir: true},
	{path: "ipvsadm", pkg: "ipvsadm", sbinDir: true},
	{path: "ip", pkg: "iproute2", sbinDir: true},
	{path: "tcpdump", pkg: "tcpdump", sbinDir: true},
	{path: "keepalived", pkg: "keepalived", sbinDir: true},
	// BIRD 2 is the router the BGP scale-out tests peer with.
	{path: "bird", pkg: "bird2", sbinDir: true},
	{path: "birdc", pkg: "bird2", sbinDir: true},
	{path: "curl", pkg: "curl"},
	{path: "sysctl", pkg: "procps", sbinDir: true},
	{path: "dpkg-deb", pkg: "dpkg"},
	{path: "apt-get", pkg: "apt"},
	// `make deb`'s test checks the package with Debian's own linter.
	{path: "lintian", pkg: "lintian"},
	// The systemd lab test boots it as the guest's PID 1.
	{path: "/lib/systemd/systemd", pkg: "systemd"},
	// The status page's browser test drives headless Chromium.
	{path: "/usr/bin/chromium", pkg: "chromium"},
}

// lookTool finds a program, also in the sbin directories.
func lookTool(name string, sbin bool) (string, error) {
	if strings.HasPrefix(name, "/") {
		if _, err := os.Stat(name); err != nil {
			return "", err
		}
		return name, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if sbin {
		for _, d := range []string{"/usr/sbin", "/sbin"} {
			p := d + "/" + name
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

// missingPrereqs returns the prerequisites not present on this machine.
func missingPrereqs(list []prereq) []prereq {
	var missing []prereq
	for _, p := range list {
		path, err := lookTool(p.path, p.sbinDir)
		if err == nil && p.static {
			err = checkStatic(path)
		}
		if err != nil {
			missing = append(missing, p)
		}
	}
	return missing
}

// checkStatic fails for a dynamically linked program: Debian's plain
// busybox package also installs /bin/busybox, which cannot run in the
// initramfs (no libc there).
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", path)
		}
	}
	return nil
}

func describe(ps []prereq) string {
	var s []string
	for _, p := range ps {
		s = append(s, fmt.Sprintf("%s (package %s)", p.path, p.pkg))
	}
	return strings.Join(s, ", ")
}

// EnsurePrereqs checks that every program the lab needs is present and, when
// running as root on a Debian-like system, installs what is missing with
// apt-get. Elsewhere it returns an error naming exactly what is missing.
func EnsurePrereqs(ctx context.Context, log *slog.Logger) error {
	return ensurePrereqs(ctx, log, prereqs, os.Geteuid())
}

func ensurePrereqs(ctx context.Context, log *slog.Logger, list []prereq, euid int) error {
	missing := missingPrereqs(list)
	if len(missing) == 0 {
		return nil
	}
	if euid != 0 {
		return fmt.Errorf("%w: %s; install them or run as root", ErrMissingPrereqs, describe(missing))
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("%w: %s; no apt-get to install them with", ErrMissingPrereqs, describe(missing))
	}
	pkgs := map[string]bool{}
	var names []string
	for _, p := range missing {
		if !pkgs[p.pkg] {
			pkgs[p.pkg] = true
			names = append(names, p.pkg)
		}
	}
	log.Info("installing lab prerequisites", "packages", names)
	if err := aptUpdate(ctx, log); err != nil {
		return err
	}
	args := append([]string{"install", "-y", "--no-install-recommends"}, names...)
	if err := runLogged(ctx, log, aptEnv(), "apt-get", args...); err != nil {
		return fmt.Errorf("%w: apt-get install %s: %w", ErrMissingPrereqs, strings.Join(names, " "), err)
	}
	if still := missingPrereqs(list); len(still) > 0 {
		return fmt.Errorf("%w after apt-get install: %s", ErrMissingPrereqs, describe(still))
	}
	return nil
}

func aptEnv() []string {
	return append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
}

func aptUpdate(ctx context.Context, log *slog.Logger) error {
	if err := runLogged(ctx, log, aptEnv(), "apt-get", "update"); err != nil {
		return fmt.Errorf("apt-get update: %w", err)
	}
	return nil
}

// runLogged runs a command, sending its combined output to the logger at
// Debug level and including it in the error when it fails.
func runLogged(ctx context.Context, log *slog.Logger, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	log.Debug("ran", "cmd", name, "args", args, "output", string(out))
	if err != nil {
		tail := string(out)
		if len(tail) > 2000 {
			tail = "..." + tail[len(tail)-2000:]
		}
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail)
	}
	return nil
}
