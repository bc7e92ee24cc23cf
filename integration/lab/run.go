package lab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

//go:embed init.sh
var initScript []byte

// ErrTimeout is returned when the command did not finish in time.
var ErrTimeout = errors.New("lab command timed out")

// ErrNoExitStatus is returned when the guest stopped without reporting the
// command's exit status (a kernel panic, a failed boot).
var ErrNoExitStatus = errors.New("lab guest ended without an exit status")

// Options says what to run in the lab.
type Options struct {
	Command []string
	Dir     string   // working directory; default the current one
	Env     []string // KEY=VALUE added to a minimal root environment
	Timeout time.Duration
	Stdout  io.Writer // gets the command's stdout and stderr; default os.Stdout

	// CacheDir overrides DefaultCacheDir.
	CacheDir string
	// ForceVM boots the guest even when the host could run natively.
	ForceVM bool
	// Systemd boots Debian's systemd as the guest's PID 1 (in the host
	// root, like the command) and runs the command as a unit once
	// basic.target is up, so the command can use systemctl and journalctl
	// on a real service manager. It always boots a guest.
	Systemd bool
	// CPUs and MemoryMB size the guest; defaults 1 and 2048.
	CPUs     int
	MemoryMB int
	Log      *slog.Logger

	// HostForward makes guest TCP ports reachable from the host's
	// loopback: the guest gets a NIC on QEMU's user network, restricted so
	// it can reach nothing outside, at GuestAddr, and a host connection to
	// 127.0.0.1:Host arrives at GuestAddr:Guest. It always boots a guest.
	HostForward []Forward

	// Image is a kernel Prepare resolved: Run then neither checks the
	// prerequisites nor looks the kernel up again, so that guests booted
	// side by side do not build the cache side by side.
	Image *Image
}

// Forward is one TCP port forwarded from the host's loopback into the guest.
type Forward struct{ Host, Guest int }

// GuestAddr is the guest's address on QEMU's user network (its default),
// where forwarded connections arrive.
const GuestAddr = "10.0.2.15"

// needsVM reports whether opts can only run in a guest.
func needsVM(opts Options) bool {
	return opts.ForceVM || opts.Systemd || len(opts.HostForward) > 0
}

// nicArgs is QEMU's network for opts: none, or a user network that only
// carries the forwarded ports (restrict=on: the guest reaches nothing
// outside, not even the host; the forwards listen on loopback only).
func nicArgs(fwd []Forward) []string {
	if len(fwd) == 0 {
		return []string{"-nic", "none"}
	}
	nic := "user,model=virtio-net-pci,restrict=on"
	for _, f := range fwd {
		nic += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-%s:%d", f.Host, GuestAddr, f.Guest)
	}
	return []string{"-nic", nic}
}

// Prepare installs the prerequisites and resolves the kernel once, for
// several Runs of opts. Where Run would run natively it changes nothing.
func Prepare(ctx context.Context, opts Options) (Options, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if !needsVM(opts) && Native(ctx) {
		return opts, nil
	}
	if err := EnsurePrereqs(ctx, opts.Log); err != nil {
		return opts, err
	}
	cache := opts.CacheDir
	if cache == "" {
		var err error
		if cache, err = DefaultCacheDir(); err != nil {
			return opts, err
		}
	}
	img, err := Kernel(ctx, cache, opts.Log)
	if err != nil {
		return opts, err
	}
	opts.Image = &img
	return opts, nil
}

// Native reports whether this host can run lab commands itself: root, and
// a kernel with IPVS (already loaded, or loadable).
func Native(ctx context.Context) bool {
	if os.Geteuid() != 0 {
		return false
	}
	if _, err := os.Stat("/proc/net/ip_vs"); err == nil {
		return true
	}
	modprobe, err := lookTool("modprobe", true)
	if err != nil {
		return false
	}
	if exec.CommandContext(ctx, modprobe, "ip_vs").Run() != nil {
		return false
	}
	_, err = os.Stat("/proc/net/ip_vs")
	return err == nil
}

// Run runs opts.Command as root in a kernel with IPVS and returns its exit
// code. The error is non-nil only when the lab itself failed (could not
// boot, timed out); a failing command is a non-zero code with a nil error.
func Run(ctx context.Context, opts Options) (int, error) {
	if len(opts.Command) == 0 {
		return 0, errors.New("lab: no command")
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return 0, err
		}
		opts.Dir = wd
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Minute
	}
	if opts.Image != nil {
		return runVM(ctx, *opts.Image, opts)
	}
	if !needsVM(opts) && Native(ctx) {
		opts.Log.Info("host kernel has IPVS: running natively")
		return runNative(ctx, opts)
	}
	if err := EnsurePrereqs(ctx, opts.Log); err != nil {
		return 0, err
	}
	cache := opts.CacheDir
	if cache == "" {
		var err error
		if cache, err = DefaultCacheDir(); err != nil {
			return 0, err
		}
	}
	img, err := Kernel(ctx, cache, opts.Log)
	if err != nil {
		return 0, err
	}
	return runVM(ctx, img, opts)
}

func runNative(ctx context.Context, opts Options) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, opts.Command[0], opts.Command[1:]...)
	cmd.Dir = opts.Dir
	cmd.Env = append(os.Environ(), opts.Env...)
	cmd.Stdout = opts.Stdout
	cmd.Stderr = opts.Stdout
	err := cmd.Run()
	if ctx.Err() != nil {
		return 0, fmt.Errorf("%w after %s", ErrTimeout, opts.Timeout)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	return 0, err
}

// accel picks QEMU's accelerator: $GOLVS_LAB_ACCEL if set, KVM only when
// the CPU advertises vmx or svm and /dev/kvm opens, else TCG. (The build
// machines have /dev/kvm but no vmx/svm, where KVM hangs at "Booting from
// ROM": see shared/lab/FACTS.md.)
func accel() string {
	if a := os.Getenv("GOLVS_LAB_ACCEL"); a != "" {
		return a
	}
	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "tcg"
	}
	if !hasVirtFlag(string(cpuinfo)) {
		return "tcg"
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return "tcg"
	}
	f.Close()
	return "kvm"
}

// hasVirtFlag reports whether /proc/cpuinfo lists vmx or svm.
func hasVirtFlag(cpuinfo string) bool {
	for _, line := range strings.Split(cpuinfo, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(key) != "flags" {
			continue
		}
		for _, f := range strings.Fields(val) {
			if f == "vmx" || f == "svm" {
				return true
			}
		}
	}
	return false
}

// ShellQuote quotes s for a POSIX shell.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// guestPath is the PATH of the guest command unless opts.Env sets one.
const guestPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/go/bin"

// specScript is the shell script the guest runs in the host's root: change
// directory, set the environment, exec the command.
func specScript(opts Options) []byte {
	var b bytes.Buffer
	b.WriteString("cd " + ShellQuote(opts.Dir) + " || exit 125\n")
	env := append([]string{"PATH=" + guestPath, "HOME=/root", "TERM=dumb", "GOLVS_LAB=1"}, opts.Env...)
	for _, kv := range env {
		b.WriteString("export " + ShellQuote(kv) + "\n")
	}
	b.WriteString("exec")
	for _, a := range opts.Command {
		b.WriteString(" " + ShellQuote(a))
	}
	b.WriteString("\n")
	return b.Bytes()
}

// runInitrd is the per-run archive added to the cached initramfs (the
// kernel unpacks concatenated archives in order): /init and this command.
func runInitrd(img Image, opts Options, nonce string) ([]byte, error) {
	var b bytes.Buffer
	c := newCPIOWriter(&b)
	env := fmt.Sprintf("KVER=%s\nNONCE=%s\n", ShellQuote(img.Version), nonce)
	if opts.Systemd {
		env += "SYSTEMD=1\n"
	}
	if len(opts.HostForward) > 0 {
		env += "NET_ADDR=" + GuestAddr + "/24\n"
	}
	err := errors.Join(
		c.Dir("golvs"),
		c.File("init", 0o755, initScript),
		c.File("golvs/env", 0o644, []byte(env)),
		c.File("golvs/spec.sh", 0o644, specScript(opts)),
		c.Close(),
	)
	return b.Bytes(), err
}

// exitMarker is printed by /init with the command's exit code.
const exitMarker = "GOLVS-LAB-EXIT "

func runVM(ctx context.Context, img Image, opts Options) (int, error) {
	nonceBytes := make([]byte, 8)
	if _, err := rand.Read(nonceBytes); err != nil {
		return 0, err
	}
	nonce := hex.EncodeToString(nonceBytes)

	tmp, err := os.MkdirTemp("", "golvs-lab-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	base, err := os.ReadFile(img.Initrd)
	if err != nil {
		return 0, err
	}
	extra, err := runInitrd(img, opts, nonce)
	if err != nil {
		return 0, err
	}
	initrd := filepath.Join(tmp, "initrd")
	// The uncompressed per-run archive goes first: the kernel finds the
	// gzip magic after its trailer, but rejects a plain archive that
	// follows a compressed one.
	if err := os.WriteFile(initrd, append(extra, base...), 0o600); err != nil {
		return 0, err
	}

	cpus, mem := opts.CPUs, opts.MemoryMB
	if cpus <= 0 {
		cpus = 1
	}
	if mem <= 0 {
		mem = 2048
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	args := []string{
		"-accel", accel(),
		"-m", strconv.Itoa(mem),
		"-smp", strconv.Itoa(cpus),
		"-nographic", "-no-reboot",
		"-device", "virtio-rng-pci", // so getrandom does not wait for entropy
		"-kernel", img.Kernel,
		"-initrd", initrd,
		"-append", "console=ttyS0 quiet loglevel=1 panic=-1",
		"-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
	}
	args = append(args, nicArgs(opts.HostForward)...) // nothing leaves the machine
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	cmd.Stdin = nil // /dev/null: CI has no terminal
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	cmd.Stderr = cmd.Stdout
	cmd.WaitDelay = 5 * time.Second
	opts.Log.Debug("booting lab guest", "kernel", img.Version, "cmd", opts.Command)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting qemu: %w", err)
	}
	br := bufio.NewReader(out)
	code, found := scanOutput(br, opts.Stdout, nonce)
	// Drain what follows (the power-off) so qemu never blocks on the pipe.
	go io.Copy(io.Discard, br)
	if found {
		// The guest powers itself off; do not wait long for it.
		t := time.AfterFunc(10*time.Second, cancel)
		defer t.Stop()
	}
	waitErr := cmd.Wait()
	switch {
	case found:
		return code, nil
	case ctx.Err() != nil:
		return 0, fmt.Errorf("%w after %s (qemu killed)", ErrTimeout, opts.Timeout)
	case waitErr != nil:
		return 0, fmt.Errorf("%w: qemu: %w", ErrNoExitStatus, waitErr)
	default:
		return 0, ErrNoExitStatus
	}
}

// startMarker is printed by /init just before it runs the command.
const startMarker = "GOLVS-LAB-START "

// scanOutput copies the guest console to w line by line, without the
// serial port's carriage returns, until the exit marker with this run's
// nonce, and returns the code it carries. Boot noise before the start
// marker is held back; it is written out only when the command never
// started (a failed boot), apart from /init's own "lab:" warnings.
func scanOutput(br *bufio.Reader, w io.Writer, nonce string) (code int, found bool) {
	start, exit := startMarker+nonce, exitMarker+nonce+" "
	var boot bytes.Buffer
	started := false
	for {
		line, err := br.ReadString('\n')
		text := strings.ReplaceAll(line, "\r", "")
		switch {
		case text == "":
		case !started && strings.Contains(text, start):
			started = true
			for _, l := range strings.SplitAfter(boot.String(), "\n") {
				if strings.HasPrefix(l, "lab: ") {
					io.WriteString(w, l)
				}
			}
		case !started:
			boot.WriteString(text)
		case strings.Contains(text, exit):
			i := strings.Index(text, exit)
			if n, perr := strconv.Atoi(strings.TrimSpace(text[i+len(exit):])); perr == nil {
				if i > 0 {
					io.WriteString(w, text[:i]+"\n")
				}
				return n, true
			}
			io.WriteString(w, text)
		default:
			io.WriteString(w, text)
		}
		if err != nil {
			if !started {
				w.Write(boot.Bytes())
			}
			return 0, false
		}
	}
}
