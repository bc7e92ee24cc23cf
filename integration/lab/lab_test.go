package lab

import (
	"bufio"
	"bytes"
	"errors"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseKernelPackage(t *testing.T) {
	out := []byte("linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n")
	got, err := parseKernelPackage(out)
	if err != nil || got != "linux-image-6.1.0-56-amd64" {
		t.Fatalf("parseKernelPackage = %q, %v", got, err)
	}
	if _, err := parseKernelPackage([]byte("linux-image-amd64\n")); err == nil {
		t.Fatal("no dependency: want an error")
	}
}

func TestLoadOrder(t *testing.T) {
	deps := modDeps{}
	add := func(path string, d ...string) {
		deps[moduleName(path)] = struct {
			path string
			deps []string
		}{path, d}
	}
	add("kernel/crypto/crc32c_generic.ko")
	add("kernel/lib/libcrc32c.ko")
	add("kernel/net/netfilter/nf_conntrack.ko", "kernel/lib/libcrc32c.ko")
	add("kernel/net/netfilter/ipvs/ip_vs.ko", "kernel/net/netfilter/nf_conntrack.ko", "kernel/lib/libcrc32c.ko")
	add("kernel/net/netfilter/ipvs/ip_vs_rr.ko", "kernel/net/netfilter/ipvs/ip_vs.ko", "kernel/net/netfilter/nf_conntrack.ko", "kernel/lib/libcrc32c.ko")
	add("kernel/net/netfilter/ipvs/ip_vs_wrr.ko", "kernel/net/netfilter/ipvs/ip_vs.ko", "kernel/net/netfilter/nf_conntrack.ko", "kernel/lib/libcrc32c.ko")
	builtin := map[string]bool{"virtio_pci": true, "virtio_net": true, "9pnet_virtio": true, "9p": true, "overlay": true, "veth": true, "bridge": true, "ipip": true}
	got, err := loadOrder(deps, builtin)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kernel/crypto/crc32c_generic.ko", // the softdep comes first
		"kernel/lib/libcrc32c.ko",
		"kernel/net/netfilter/nf_conntrack.ko",
		"kernel/net/netfilter/ipvs/ip_vs.ko",
		"kernel/net/netfilter/ipvs/ip_vs_rr.ko",
		"kernel/net/netfilter/ipvs/ip_vs_wrr.ko",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("load order (-want +got):\n%s", diff)
	}

	delete(builtin, "bridge")
	if _, err := loadOrder(deps, builtin); err == nil || !strings.Contains(err.Error(), "bridge") {
		t.Errorf("missing required module: err = %v, want one naming bridge", err)
	}
}

// TestCPIO checks the header layout and extracts the archive with
// busybox's cpio (busybox-static is a lab prerequisite).
func TestCPIO(t *testing.T) {
	var b bytes.Buffer
	c := newCPIOWriter(&b)
	if err := c.Dir("etc"); err != nil {
		t.Fatal(err)
	}
	if err := c.File("etc/hello", 0o644, []byte("hello, lab\n")); err != nil {
		t.Fatal(err)
	}
	if err := c.Symlink("hi", "etc/hello"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	data := b.Bytes()
	if len(data)%4 != 0 {
		t.Errorf("archive length %d is not 4-byte aligned", len(data))
	}
	if !bytes.HasPrefix(data, []byte("070701")) || !bytes.Contains(data, []byte("TRAILER!!!\x00")) {
		t.Errorf("not a newc archive with a trailer: %q", data[:20])
	}
	// The file header: mode 0o100644 = 0x81A4, size 11.
	if !bytes.Contains(data, []byte("000081A4000000000000000000000001000000000000000B")) {
		t.Errorf("file header not found in %q", data)
	}
	dir := t.TempDir()
	cmd := exec.Command("/bin/busybox", "cpio", "-idm")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(data)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	got, err := exec.Command("cat", filepath.Join(dir, "hi")).Output()
	if err != nil || string(got) != "hello, lab\n" {
		t.Errorf("extracted hi = %q, %v", got, err)
	}
}

func TestSpecScript(t *testing.T) {
	got := string(specScript(Options{
		Command: []string{"/bin/echo", "it's", "a b"},
		Dir:     "/work/my dir",
		Env:     []string{"X=1 2"},
	}))
	for _, want := range []string{
		"cd '/work/my dir' || exit 125\n",
		"export 'X=1 2'\n",
		`exec '/bin/echo' 'it'\''s' 'a b'` + "\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("spec script lacks %q:\n%s", want, got)
		}
	}
	// And a shell runs it as intended.
	out, err := exec.Command("sh", "-c", strings.Replace(got, "cd '/work/my dir' || exit 125\n", "", 1)).Output()
	if err != nil || string(out) != "it's a b\n" {
		t.Errorf("sh ran the spec: %q, %v", out, err)
	}
}

func TestScanOutput(t *testing.T) {
	const nonce = "abc"
	console := "SeaBIOS noise\r\n[ 1.0] kernel line\r\nlab: insmod x failed\r\n" +
		"GOLVS-LAB-START abc\r\nhello\r\nGOLVS-LAB-EXIT zzz 0\r\nworld\r\n" +
		"GOLVS-LAB-EXIT abc 7\r\nreboot: Power down\r\n"
	var w bytes.Buffer
	code, found := scanOutput(bufio.NewReader(strings.NewReader(console)), &w, nonce)
	if !found || code != 7 {
		t.Fatalf("scanOutput = %d, %v; want 7, true", code, found)
	}
	// Another run's marker is output, not an exit status.
	want := "lab: insmod x failed\nhello\nGOLVS-LAB-EXIT zzz 0\nworld\n"
	if diff := cmp.Diff(want, w.String()); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}

	// A boot that never starts the command shows the whole console.
	w.Reset()
	if _, found := scanOutput(bufio.NewReader(strings.NewReader("Kernel panic\r\n")), &w, nonce); found {
		t.Error("found an exit status in a panic")
	}
	if w.String() != "Kernel panic\n" {
		t.Errorf("panic output = %q", w.String())
	}
}

func TestPrereqsNamesWhatIsMissing(t *testing.T) {
	list := []prereq{
		{path: "/bin/busybox", pkg: "busybox-static", static: true},
		{path: "golvs-no-such-tool", pkg: "golvs-pkg", sbinDir: true},
		// The Go test binary is dynamically linked only with cgo; sh is
		// dynamically linked on every Debian system.
		{path: "/bin/sh", pkg: "static-sh", static: true},
	}
	err := ensurePrereqs(t.Context(), slog.New(slog.DiscardHandler), list, 1000)
	if !errors.Is(err, ErrMissingPrereqs) {
		t.Fatalf("err = %v, want ErrMissingPrereqs", err)
	}
	for _, want := range []string{"golvs-no-such-tool (package golvs-pkg)", "/bin/sh (package static-sh)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "busybox") {
		t.Errorf("error %q names busybox, which is present and static", err)
	}
}

func TestHasVirtFlag(t *testing.T) {
	for _, tc := range []struct {
		cpuinfo string
		want    bool
	}{
		{"processor\t: 0\nflags\t\t: fpu vme sse2 vmx ept\n", true},
		{"flags\t\t: fpu svm\n", true},
		{"flags\t\t: fpu vme sse2 hypervisor\nvmx flags\t: ept\n", false},
		{"", false},
	} {
		if got := hasVirtFlag(tc.cpuinfo); got != tc.want {
			t.Errorf("hasVirtFlag(%q) = %v, want %v", tc.cpuinfo, got, tc.want)
		}
	}
}

// TestNICArgs: no forward, no NIC; forwards listen on the host's loopback
// only and land on the guest address, on a user network restricted so the
// guest reaches nothing outside.
func TestNICArgs(t *testing.T) {
	if got := strings.Join(nicArgs(nil), " "); got != "-nic none" {
		t.Errorf("no forwards: %q", got)
	}
	got := strings.Join(nicArgs([]Forward{{Host: 18080, Guest: 80}, {Host: 18081, Guest: 81}}), " ")
	want := "-nic user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:18080-10.0.2.15:80,hostfwd=tcp:127.0.0.1:18081-10.0.2.15:81"
	if got != want {
		t.Errorf("forwards: %q, want %q", got, want)
	}
	if !needsVM(Options{HostForward: []Forward{{1, 2}}}) || needsVM(Options{}) {
		t.Error("a forward must boot a guest, nothing else must")
	}
}
