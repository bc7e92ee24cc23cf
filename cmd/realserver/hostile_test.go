package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCleanupRefusesPlantedJournal mounts issue 18.7's attack: a journal
// planted where the agent keeps it made `realserver run --cleanup` write
// /tmp/victim-file (a sysctl path joined onto /proc/sys unchecked) and
// delete an unrelated interface. Each planted journal is now refused: the
// command fails, says why, and the namespace (addresses, links, sysctls)
// and the victim file are as they were.
func TestCleanupRefusesPlantedJournal(t *testing.T) {
	requireRoot(t)
	victimDir := t.TempDir()
	victim := filepath.Join(victimDir, "victim-file")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// From /proc/sys, ../../ is /.
	escape := "../.." + victim
	for _, tt := range []struct {
		name    string
		journal string
		mode    os.FileMode
		owner   int // -1: root, as written
		setup   func(t *testing.T, ns string)
		want    string
	}{
		{"sysctl path out of /proc/sys", `{"kind": "sysctl", "path": "` + escape + `", "old": "1", "new": "0"}`, 0o600, -1, nil,
			"is not one the agent sets"},
		{"sysctl the agent never sets", `{"kind": "sysctl", "path": "net/ipv4/conf/all/forwarding", "old": "1", "new": "0"}`, 0o600, -1, nil,
			"is not one the agent sets"},
		{"delete an unrelated interface", `{"kind": "tunnel-created", "dev": "e1"}`, 0o600, -1, nil,
			`e1 is a "veth" device, not an ipip tunnel`},
		{"set the uplink down", `{"kind": "link-up", "dev": "e0"}`, 0o600, -1, nil,
			`e0 is a "veth" device, not an ipip tunnel`},
		{"remove the host's own address", `{"kind": "addr", "dev": "e0", "prefix": "10.0.0.2/32"}`, 0o600, -1, nil,
			`e0 is a "veth" device, not an ipip tunnel`},
		{"a world-writable journal", `{"kind": "addr", "dev": "lo", "prefix": "192.0.2.10/32"}`, 0o666, -1,
			func(t *testing.T, ns string) { sh(t, "ip", "-n", ns, "addr", "add", "192.0.2.10/32", "dev", "lo") },
			"is writable by group or others (mode 0666)"},
		{"another user's journal", `{"kind": "addr", "dev": "lo", "prefix": "192.0.2.10/32"}`, 0o600, 65534,
			func(t *testing.T, ns string) { sh(t, "ip", "-n", ns, "addr", "add", "192.0.2.10/32", "dev", "lo") },
			"is owned by uid 65534"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNS(t)
			if tt.setup != nil {
				tt.setup(t, ns)
			}
			dir := t.TempDir()
			state := filepath.Join(dir, "rs.state")
			planted := fmt.Sprintf(`{"version": 1, "changes": [%s]}`, tt.journal)
			if err := os.WriteFile(state, []byte(planted), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(state, tt.mode); err != nil {
				t.Fatal(err)
			}
			if tt.owner >= 0 {
				if err := os.Chown(state, tt.owner, tt.owner); err != nil {
					t.Fatal(err)
				}
			}
			before := hostState(t, ns)
			code, out := runOnce(t, ns, "run", "--cleanup", "--state-file", state)
			if code != 1 {
				t.Errorf("exit %d, want 1:\n%s", code, out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("message lacks %q:\n%s", tt.want, out)
			}
			if after := hostState(t, ns); after != before {
				t.Errorf("the planted journal changed the host.\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if b, err := os.ReadFile(victim); err != nil || string(b) != "precious\n" {
				t.Errorf("the victim file was written: %q, %v", b, err)
			}
			// The journal is left for the operator to look at.
			if b, err := os.ReadFile(state); err != nil || string(b) != planted {
				t.Errorf("the planted journal was changed: %q, %v", b, err)
			}
		})
	}
}
