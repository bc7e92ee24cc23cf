//go:build lab

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/golvs/golvs/integration/labnet"
)

// TestRealserverMarksItsTunnel: in a namespace without the ipip module's
// catch-all tunl0 (net.core.fb_tunnels_only_for_init_net = 2, as in many
// container hosts), the agent creates its own ipip device. It marks it
// (alias golvs-realserver) before recording it, and a cleanup after a
// crash deletes it. An ipip device the agent did not create, named in a
// planted journal, is refused: the command fails and the device stays
// (issue 18.7: a planted journal deleted an unrelated interface).
func TestRealserverMarksItsTunnel(t *testing.T) {
	const fb = "/proc/sys/net/core/fb_tunnels_only_for_init_net"
	old, err := os.ReadFile(fb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fb, []byte("2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lab := labnet.NewLab(t)
	h := lab.Host("rs", lab.Segment("lan"), "10.0.0.2/24")
	// Only namespaces made meanwhile go without tunl0.
	if err := os.WriteFile(fb, old, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := h.Exec("ip", "link", "show", "tunl0"); err == nil {
		t.Fatalf("the namespace has tunl0 after all:\n%s", out)
	}

	dir := t.TempDir()
	file := labnet.TempFile(t, dir, "topology.toml", `[director]
interface = "eth0"

[realserver]
tunnel_interface = "golvs0"

[[service]]
name = "web"
address = "192.0.2.10"
port = 80
forwarding = "tun"
[[service.backend]]
address = "10.0.0.2"
`)
	state := filepath.Join(dir, "rs.state")
	realserver := bin(t, "realserver")
	p := h.Start("", realserver, "run", "-config", file, "--state-file", state, "--agent-address", "", "--drain-grace", "0s")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent output:\n%s", p.Output())
		}
	})
	eventually(t, 20*eventuallyScale, "VIP on the agent's own tunnel", func() error {
		out, _ := h.Exec("ip", "-d", "link", "show", "golvs0")
		if !strings.Contains(out, "ipip") || !strings.Contains(out, "alias golvs-realserver") {
			return fmt.Errorf("golvs0 is not a marked ipip device:\n%s", out)
		}
		if out, _ := h.Exec("ip", "-4", "addr", "show", "dev", "golvs0"); !strings.Contains(out, " 192.0.2.10/32") {
			return fmt.Errorf("no VIP on golvs0:\n%s", out)
		}
		return nil
	})
	if b, err := os.ReadFile(state); err != nil || !strings.Contains(string(b), `"tunnel-created"`) {
		t.Fatalf("the journal does not record the tunnel: %q, %v", b, err)
	}
	// A crash, then the cleanup: the marked device goes.
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*eventuallyScale, "the agent gone", func() error {
		if done, _ := p.Exited(); !done {
			return fmt.Errorf("still running")
		}
		return nil
	})
	if out, err := h.Exec(realserver, "run", "--cleanup", "--state-file", state); err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out)
	}
	if out, err := h.Exec("ip", "link", "show", "golvs0"); err == nil {
		t.Errorf("golvs0 still there after the cleanup:\n%s", out)
	}

	// Someone else's ipip device, named in a planted journal.
	h.IP("link", "add", "other0", "type", "ipip", "local", "10.0.0.2", "remote", "10.0.0.9")
	planted := labnet.TempFile(t, dir, "planted.state", `{"version": 1, "changes": [{"kind": "tunnel-created", "dev": "other0"}]}`)
	if err := os.Chmod(planted, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := h.Exec(realserver, "run", "--cleanup", "--state-file", planted)
	if err == nil || !strings.Contains(out, "lacks the agent's marker") {
		t.Errorf("the planted journal was not refused: %v\n%s", err, out)
	}
	if out, err := h.Exec("ip", "link", "show", "other0"); err != nil {
		t.Errorf("other0 was deleted by a planted journal: %v\n%s", err, out)
	}
}
