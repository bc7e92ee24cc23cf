package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director"
	"github.com/golvs/golvs/director/ipvs/ipvsfake"
)

// topology writes a topology file: one NAT service on 192.0.2.10:80
// (no checks, so backends are up at once) with the given backend weights.
func topology(t *testing.T, dir, iface string, weights ...int) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `[director]
interface = %q
resync_interval = "1h"
control_socket = %q
state_file = %q

[[service]]
name = "web"
address = "192.0.2.10"
port = 80
forwarding = "nat"
`, iface, filepath.Join(dir, "ctl", "d.sock"), filepath.Join(dir, "state", "d.state"))
	for i, w := range weights {
		fmt.Fprintf(&b, "\n[[service.backend]]\naddress = \"10.0.1.%d\"\nport = 8080\nweight = %d\n", i+1, w)
	}
	p := filepath.Join(dir, "topology.toml")
	writeAtomic(t, p, b.String())
	return p
}

// writeAtomic replaces a file the way editors and config management do,
// so a reload never reads half a file.
func writeAtomic(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p+".tmp", []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
}

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := topology(t, dir, "eth0", 1, 2)
	for _, flagName := range []string{"-config", "--config"} {
		if code, out, errs := runCmd("check", flagName, good); code != 0 || !strings.Contains(out, "ok") {
			t.Errorf("check %s good: code %d, out %q, err %q", flagName, code, out, errs)
		}
	}

	bad := filepath.Join(dir, "bad.toml")
	src := "[director]\ninterface = \"eth0\"\n\n[[service]]\nname = \"web\"\naddress = \"192.0.2.10\"\nport = 80\nscheduler = \"nope\"\n\n[[service.backend]]\naddress = \"10.0.1.1\"\nweight = -1\n"
	if err := os.WriteFile(bad, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCmd("check", "-config", bad)
	if code != 1 {
		t.Errorf("check bad: code %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	if len(lines) < 2 {
		t.Fatalf("check bad: want every error, got:\n%s", errs)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, bad+":") {
			t.Errorf("error line without FILE:LINE:COL: %q", l)
		}
	}
	if !strings.Contains(errs, "weight") || !strings.Contains(errs, "scheduler") {
		t.Errorf("check bad: missing an error:\n%s", errs)
	}
}

func TestUsageErrors(t *testing.T) {
	if code, _, _ := runCmd(); code != 2 {
		t.Errorf("no command: code %d", code)
	}
	if code, _, _ := runCmd("frobnicate"); code != 2 {
		t.Errorf("unknown command: code %d", code)
	}
	if code, _, _ := runCmd("drain", "--socket", "/nonexistent", "web"); code != 2 {
		t.Errorf("drain with one argument: code %d", code)
	}
	if code, _, _ := runCmd("run", "--priority", "300", "-config", "/nonexistent"); code != 2 {
		t.Errorf("run --priority 300: code %d", code)
	}
}

// startControl serves a reconciler over the fake kernel on a socket.
func startControl(t *testing.T, topo *config.Topology, fake *ipvsfake.Fake) (*director.Reconciler, string) {
	t.Helper()
	r := director.NewReconciler(director.Options{Kernel: fake, StateFile: filepath.Join(t.TempDir(), "s")}, topo)
	if err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "d.sock")
	srv := &director.ControlServer{Path: path, Controller: r}
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, path
}

func TestDrainAndStatusCommands(t *testing.T) {
	dir := t.TempDir()
	topo, err := config.Load(topology(t, dir, "eth0", 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	fake := ipvsfake.New()
	r, sock := startControl(t, topo, fake)

	// Flags after the arguments work too.
	if code, out, errs := runCmd("drain", "web", "10.0.1.2:8080", "--socket", sock); code != 0 {
		t.Fatalf("drain: code %d %s %s", code, out, errs)
	}
	if err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd("status", "--socket", sock)
	if code != 0 {
		t.Fatalf("status: code %d: %s", code, errs)
	}
	if !strings.Contains(out, "10.0.1.2:8080") || !strings.Contains(out, "drained by operator") {
		t.Errorf("status does not show the drain:\n%s", out)
	}
	code, out, _ = runCmd("status", "--socket", sock, "--json")
	var st director.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.Services) != 1 {
		t.Fatalf("status --json: code %d:\n%s", code, out)
	}
	if b := st.Services[0].Backends[1]; b.KernelWeight != 0 || !b.OperatorDrain {
		t.Errorf("drained backend in status: %+v", b)
	}
	if code, _, errs := runCmd("undrain", "--socket", sock, "web", "10.0.1.2:8080"); code != 0 {
		t.Fatalf("undrain: %s", errs)
	}
	if code, _, errs := runCmd("drain", "--socket", sock, "nope", "10.0.1.2:8080"); code != 1 || !strings.Contains(errs, "unknown service") {
		t.Errorf("drain unknown service: code %d, %q", code, errs)
	}
}
