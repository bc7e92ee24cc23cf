package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/vrrp"
)

// TestKeyCheckAgreesWithLoadKey: a key file `director check` accepts is
// one the VRRP runner can load, and one it refuses for its content or
// mode the runner refuses too. (check is stricter on purpose where the
// runner would be fooled: symlinks, FIFOs, other owners, a file longer
// than the 4096 bytes the runner reads.)
func TestKeyCheckAgreesWithLoadKey(t *testing.T) {
	for i, c := range []struct {
		content string
		mode    os.FileMode
	}{
		{"0123456789abcdef", 0o600},
		{"0123456789abcdef\n", 0o400},
		{"\t 0123456789abcdef \n", 0o600},
		{"0123456789abcde\n", 0o600},
		{" 0123456789abcde \n", 0o600},
		{"", 0o600},
		{"0123456789abcdef", 0o640},
		{"0123456789abcdef", 0o604},
		{strings.Repeat("k", 4096), 0o600},
	} {
		d := t.TempDir()
		os.Chmod(d, 0o755)
		key := filepath.Join(d, "vrrp.key")
		if err := os.WriteFile(key, []byte(c.content), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chmod(key, c.mode)
		topo := filepath.Join(d, "t.toml")
		src := fmt.Sprintf("[director]\nstate_file = %q\ncontrol_socket = %q\n[failover]\nvirtual_router_id = 1\nauth_key_file = %q\n",
			filepath.Join(d, "s"), filepath.Join(d, "c"), key)
		os.WriteFile(topo, []byte(src), 0o644)
		_, checkErr := config.Load(topo)
		_, loadErr := vrrp.LoadKey(key)
		if (checkErr == nil) != (loadErr == nil) {
			t.Errorf("case %d (%q, %04o): check says %v, LoadKey says %v", i, c.content, c.mode, checkErr, loadErr)
		}
	}
}
