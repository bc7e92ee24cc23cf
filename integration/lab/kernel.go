package lab

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Image is a cached lab kernel: a Debian vmlinuz and a base initramfs with
// busybox and the modules the lab loads at boot.
type Image struct {
	Version string // kernel release, e.g. 6.1.0-56-amd64
	Kernel  string // path of vmlinuz
	Initrd  string // path of the gzipped base initramfs
	// Modules are the .ko paths (relative to lib/modules/VERSION) the
	// guest loads, in load order.
	Modules []string
}

// bootModules are loaded in this order (dependencies first, found through
// modules.dep). libcrc32c needs crc32c_generic first: a softdep, which
// modules.dep does not record. Names that are built into the kernel are
// fine; required ones that are neither built in nor modules are an error.
var bootModules = []struct {
	name     string
	required bool
}{
	{"crc32c_generic", false},
	{"libcrc32c", false},
	{"virtio_pci", true},
	{"virtio_rng", false},
	{"virtio_net", true}, // Options.HostForward's NIC
	{"9pnet_virtio", true},
	{"9p", true},
	{"overlay", true},
	{"ipv6", false},
	{"af_packet", false},
	{"ip_vs", true},
	{"ip_vs_rr", true},
	{"ip_vs_wrr", true},
	{"ip_vs_lc", false},
	{"ip_vs_wlc", false},
	{"ip_vs_lblc", false},
	{"ip_vs_lblcr", false},
	{"ip_vs_dh", false},
	{"ip_vs_sh", false},
	{"ip_vs_sed", false},
	{"ip_vs_nq", false},
	{"ip_vs_fo", false},
	{"ip_vs_ovf", false},
	{"ip_vs_mh", false},
	{"ip_vs_twos", false},
	{"veth", true},
	{"bridge", true},
	{"ipip", true},
	{"tunnel4", false},
	{"ip6_tunnel", false},
	{"tunnel6", false},
	{"ip6_udp_tunnel", false},
	{"tun", false},
	{"dummy", false},
	{"sctp", false},
}

// wantedModules names bootModules, one a line: a cached image built for
// another list is rebuilt, so a module added here reaches every cache.
func wantedModules() string {
	var b strings.Builder
	for _, m := range bootModules {
		b.WriteString(m.name + "\n")
	}
	return b.String()
}

// DefaultCacheDir is $GOLVS_LAB_CACHE, or ~/.cache/golvs/kernel.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("GOLVS_LAB_CACHE"); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("lab cache directory: %w", err)
	}
	return filepath.Join(home, ".cache", "golvs", "kernel"), nil
}

// kernelPackage asks apt which package linux-image-amd64 currently depends
// on, e.g. linux-image-6.1.0-56-amd64.
func kernelPackage(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", "linux-image-amd64").Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends linux-image-amd64: %w", err)
	}
	return parseKernelPackage(out)
}

// parseKernelPackage picks the linux-image-* dependency out of apt-cache
// depends output.
func parseKernelPackage(out []byte) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && strings.TrimPrefix(f[0], "|") == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
			return f[1], nil
		}
	}
	return "", errors.New("apt-cache depends linux-image-amd64: no linux-image-* dependency")
}

// Kernel returns the lab kernel, downloading and building it into cacheDir
// the first time. Later runs reuse the cache and download nothing; if apt
// cannot name the current package (offline, no lists), a single cached
// kernel is used.
func Kernel(ctx context.Context, cacheDir string, log *slog.Logger) (Image, error) {
	pkg, err := kernelPackage(ctx)
	if err != nil {
		// A fresh machine has no apt lists yet.
		if img, ok := onlyCached(cacheDir); ok {
			log.Info("apt cannot name the kernel package; using the cached kernel", "version", img.Version, "err", err)
			return img, nil
		}
		if os.Geteuid() == 0 {
			if uerr := aptUpdate(ctx, log); uerr != nil {
				return Image{}, errors.Join(err, uerr)
			}
			pkg, err = kernelPackage(ctx)
		}
		if err != nil {
			return Image{}, err
		}
	}
	version := strings.TrimPrefix(pkg, "linux-image-")
	dir := filepath.Join(cacheDir, version)
	if img, err := loadImage(dir, version); err == nil {
		return img, nil
	}
	log.Info("building lab kernel (first run: downloads one kernel package)", "package", pkg, "cache", dir)
	if err := buildImage(ctx, log, pkg, version, dir); err != nil {
		return Image{}, fmt.Errorf("building lab kernel %s: %w", pkg, err)
	}
	return loadImage(dir, version)
}

// onlyCached returns the cached kernel when there is exactly one.
func onlyCached(cacheDir string) (Image, bool) {
	ents, err := os.ReadDir(cacheDir)
	if err != nil {
		return Image{}, false
	}
	var found []Image
	for _, e := range ents {
		if img, err := loadImage(filepath.Join(cacheDir, e.Name()), e.Name()); err == nil {
			found = append(found, img)
		}
	}
	if len(found) != 1 {
		return Image{}, false
	}
	return found[0], true
}

func loadImage(dir, version string) (Image, error) {
	img := Image{
		Version: version,
		Kernel:  filepath.Join(dir, "vmlinuz"),
		Initrd:  filepath.Join(dir, "initrd.gz"),
	}
	want, err := os.ReadFile(filepath.Join(dir, "modules.want"))
	if err != nil {
		return Image{}, err
	}
	if string(want) != wantedModules() {
		return Image{}, fmt.Errorf("%s was built for another module list", dir)
	}
	mods, err := os.ReadFile(filepath.Join(dir, "modules.load"))
	if err != nil {
		return Image{}, err
	}
	for _, f := range []string{img.Kernel, img.Initrd} {
		if _, err := os.Stat(f); err != nil {
			return Image{}, err
		}
	}
	img.Modules = strings.Fields(string(mods))
	return img, nil
}

func buildImage(ctx context.Context, log *slog.Logger, pkg, version, dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(filepath.Dir(dir), ".build-"+version+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	// Exactly one package by name: a glob would fetch every kernel.
	dl := exec.CommandContext(ctx, "apt-get", "download", pkg)
	dl.Dir = work
	dl.Env = aptEnv()
	if out, err := dl.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get download %s: %w\n%s", pkg, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(work, pkg+"_*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download %s: expected one .deb, found %d", pkg, len(debs))
	}
	root := filepath.Join(work, "root")
	if err := runLogged(ctx, log, nil, "dpkg-deb", "-x", debs[0], root); err != nil {
		return err
	}
	if err := os.Remove(debs[0]); err != nil {
		return err
	}
	depmod, err := lookTool("depmod", true)
	if err != nil {
		return err
	}
	if err := runLogged(ctx, log, nil, depmod, "-b", root, version); err != nil {
		return err
	}
	modDir := filepath.Join(root, "lib", "modules", version)
	deps, err := readModulesDep(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return err
	}
	builtin, err := readBuiltin(filepath.Join(modDir, "modules.builtin"))
	if err != nil {
		return err
	}
	load, err := loadOrder(deps, builtin)
	if err != nil {
		return err
	}
	log.Info("lab kernel modules", "count", len(load))

	out := filepath.Join(work, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := copyFile(filepath.Join(root, "boot", "vmlinuz-"+version), filepath.Join(out, "vmlinuz")); err != nil {
		return err
	}
	// Keep the kernel config next to the image: it says what is built in.
	if err := copyFile(filepath.Join(root, "boot", "config-"+version), filepath.Join(out, "config")); err != nil {
		return err
	}
	if err := writeBaseInitrd(ctx, log, filepath.Join(out, "initrd.gz"), modDir, version, load); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "modules.load"), []byte(strings.Join(load, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "modules.want"), []byte(wantedModules()), 0o644); err != nil {
		return err
	}
	_ = os.RemoveAll(dir) // a half-built earlier attempt
	return os.Rename(out, dir)
}

// moduleName turns a modules.dep path into a module name:
// kernel/net/9p/9pnet_virtio.ko -> 9pnet_virtio.
func moduleName(path string) string {
	base := filepath.Base(path)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// modDeps maps a module name to its path and the paths it depends on.
type modDeps map[string]struct {
	path string
	deps []string
}

func readModulesDep(file string) (modDeps, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := modDeps{}
	for _, line := range strings.Split(string(b), "\n") {
		path, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		e := m[moduleName(path)]
		e.path = path
		e.deps = strings.Fields(rest)
		m[moduleName(path)] = e
	}
	return m, nil
}

func readBuiltin(file string) (map[string]bool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for _, line := range strings.Fields(string(b)) {
		m[moduleName(line)] = true
	}
	return m, nil
}

// loadOrder returns the .ko paths to insmod, dependencies before the
// modules that need them, each once, in bootModules order.
func loadOrder(deps modDeps, builtin map[string]bool) ([]string, error) {
	var order []string
	seen := map[string]bool{}
	var visit func(path string)
	visit = func(path string) {
		if seen[path] {
			return
		}
		seen[path] = true
		// modules.dep lists a module's whole dependency closure, so
		// visiting each listed path (its own deps first) orders them.
		for _, d := range deps[moduleName(path)].deps {
			visit(d)
		}
		order = append(order, path)
	}
	var missing []string
	for _, m := range bootModules {
		e, ok := deps[m.name]
		switch {
		case ok:
			visit(e.path)
		case builtin[m.name]:
		case m.required:
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("kernel lacks required modules: %s", strings.Join(missing, " "))
	}
	for _, p := range order {
		if !strings.HasSuffix(p, ".ko") {
			return nil, fmt.Errorf("module %s is compressed; the lab expects plain .ko files", p)
		}
	}
	return order, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// writeBaseInitrd writes the cached part of the initramfs: busybox, the
// boot modules with indexes for them alone (so modprobe in the guest,
// including the kernel's own request_module, finds them), and the load
// list. The per-run /init and command are appended as a second archive.
func writeBaseInitrd(ctx context.Context, log *slog.Logger, file, modDir, version string, load []string) error {
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("static busybox (package busybox-static): %w", err)
	}
	// Index only the chosen modules: run depmod over a staging tree.
	stage, err := os.MkdirTemp(filepath.Dir(file), "stage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	stageMods := filepath.Join(stage, "lib", "modules", version)
	for _, p := range load {
		dst := filepath.Join(stageMods, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := copyFile(filepath.Join(modDir, p), dst); err != nil {
			return err
		}
	}
	for _, f := range []string{"modules.builtin", "modules.builtin.modinfo", "modules.order"} {
		if err := copyFile(filepath.Join(modDir, f), filepath.Join(stageMods, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	depmod, err := lookTool("depmod", true)
	if err != nil {
		return err
	}
	if err := runLogged(ctx, log, nil, depmod, "-b", stage, version); err != nil {
		return err
	}

	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	c := newCPIOWriter(gz)
	for _, d := range []string{"bin", "sbin", "dev", "proc", "sys", "etc", "lib", "golvs"} {
		if err := c.Dir(d); err != nil {
			return err
		}
	}
	if err := c.CharDev("dev/console", 5, 1); err != nil {
		return err
	}
	if err := c.File("bin/busybox", 0o755, busybox); err != nil {
		return err
	}
	if err := c.Symlink("bin/sh", "busybox"); err != nil {
		return err
	}
	if err := addTree(c, stage, "lib/modules"); err != nil {
		return err
	}
	if err := c.File("golvs/modules", 0o644, []byte(strings.Join(load, "\n")+"\n")); err != nil {
		return err
	}
	if err := c.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	return f.Close()
}

// addTree adds every directory and file under base/rel to the archive.
func addTree(c *cpioWriter, base, rel string) error {
	var paths []string
	err := filepath.Walk(filepath.Join(base, rel), func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths) // parents before children
	for _, p := range paths {
		name, _ := filepath.Rel(base, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			err = c.Dir(name)
		case fi.Mode().IsRegular():
			var b []byte
			if b, err = os.ReadFile(p); err == nil {
				err = c.File(name, fi.Mode(), b)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}
