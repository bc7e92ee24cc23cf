package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/integration/lab"
)

// TestDeb builds the package as `make deb` does and checks it the way
// Debian would: lintian reports no error, the conffiles are conffiles, the
// binaries carry the package's version, and the shipped topology file
// keeps the units from starting while its example is valid once
// uncommented. lintian is installed when missing (as `make prereqs` does);
// the test never skips.
func TestDeb(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := lab.EnsurePrereqs(ctx, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))); err != nil {
		t.Fatalf("prerequisites (lintian, dpkg-deb): %v", err)
	}
	out := t.TempDir()
	deb, err := build(options{outDir: out})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`/golvs_[0-9][^_/]*-1_amd64\.deb$`).MatchString(deb) {
		t.Errorf("package file name %s", deb)
	}

	// lintian: any E: line fails (warnings such as no-manual-page do not).
	lint := exec.CommandContext(ctx, "lintian", "--fail-on", "error", "--tag-display-limit", "0", deb)
	lout, lerr := lint.CombinedOutput()
	var errs []string
	for _, l := range strings.Split(string(lout), "\n") {
		if strings.HasPrefix(l, "E: ") {
			errs = append(errs, l)
		}
	}
	if lerr != nil || len(errs) > 0 {
		t.Errorf("lintian: %v\n%s", lerr, lout)
	}
	t.Logf("lintian:\n%s", lout)

	field := func(name string) string {
		b, err := exec.Command("dpkg-deb", "-f", deb, name).Output()
		if err != nil {
			t.Fatalf("dpkg-deb -f %s: %v", name, err)
		}
		return strings.TrimSpace(string(b))
	}
	version := field("Version")
	ctrl := t.TempDir()
	if b, err := exec.Command("dpkg-deb", "-e", deb, ctrl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v\n%s", err, b)
	}
	conf, _ := os.ReadFile(filepath.Join(ctrl, "conffiles"))
	for _, want := range []string{"/etc/golvs/topology.toml", "/etc/default/golvs"} {
		if !strings.Contains(string(conf), want+"\n") {
			t.Errorf("conffiles %q lacks %s", conf, want)
		}
	}

	root := t.TempDir()
	if b, err := exec.Command("dpkg-deb", "-x", deb, root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, b)
	}
	for _, prog := range []string{"director", "realserver"} {
		b, err := exec.Command(filepath.Join(root, "usr/sbin", prog), "version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(b), prog+" "+version+" (commit ") {
			t.Errorf("%s version: %q, %v; want the package version %s", prog, b, err, version)
		}
	}
	for _, unit := range []string{"golvs-director.service", "golvs-realserver.service"} {
		if _, err := os.Stat(filepath.Join(root, "lib/systemd/system", unit)); err != nil {
			t.Error(err)
		}
	}

	// The shipped file: valid, no service, so ExecCondition skips the unit.
	director := filepath.Join(root, "usr/sbin/director")
	shipped := filepath.Join(root, "etc/golvs/topology.toml")
	cmd := exec.Command(director, "check", "--exec-condition", "-config", shipped)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "no [[service]]") {
		t.Errorf("check --exec-condition of the shipped file: %v %q; want exit 1 (skip the unit)", err, stderr.String())
	}
	// Its example, uncommented, is a valid one-service file.
	src, _ := os.ReadFile(shipped)
	_, example, ok := strings.Cut(string(src), "A direct-routing example:\n#\n")
	if !ok {
		t.Fatal("shipped topology.toml has no example")
	}
	var b strings.Builder
	for _, l := range strings.Split(example, "\n") {
		l = strings.TrimPrefix(l, "#")
		b.WriteString(strings.TrimPrefix(l, " ") + "\n")
	}
	ex := filepath.Join(t.TempDir(), "example.toml")
	os.WriteFile(ex, []byte(b.String()), 0o644)
	topo, err := config.Load(ex)
	if err != nil {
		t.Fatalf("the shipped example, uncommented: %v\n%s", err, b.String())
	}
	if len(topo.Services) != 1 {
		t.Errorf("the shipped example has %d services, want 1", len(topo.Services))
	}
}
