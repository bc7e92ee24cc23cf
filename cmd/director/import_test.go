package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestImportCommand runs `director import` as a user would: the exit code
// says whether everything converted, stderr lists what did not as
// FILE:LINE: not converted: WHAT (WHY), and the output passes `check`.
func TestImportCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	complete := write("complete.conf", `vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    version 3
    virtual_ipaddress {
        192.0.2.100/24
    }
}
virtual_server 192.0.2.100 80 {
    lb_algo rr
    lb_kind DR
    protocol TCP
    inhibit_on_failure
    alpha
    real_server 192.0.2.11 80 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`)
	partial := write("partial.conf", "global_defs {\n    router_id x\n}\n"+string(mustRead(t, complete)))
	broken := write("broken.conf", "virtual_server 192.0.2.100 80 {\n    lb_algo rr\n    real_server \"192.0.2.11 80 {\n")

	run1 := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"import"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}

	// Everything converts: exit 0, nothing on stderr, a valid topology.
	topo := filepath.Join(dir, "out.toml")
	if code, _, stderr := run1("-o", topo, complete); code != 0 || stderr != "" {
		t.Fatalf("complete: exit %d, stderr %q", code, stderr)
	}
	var checkOut bytes.Buffer
	if code := run([]string{"check", "-config", topo}, &checkOut, &checkOut); code != 0 {
		t.Fatalf("check of the imported file: exit %d: %s", code, checkOut.String())
	}

	// Something does not convert: exit 3, the topology on stdout, each
	// loss on stderr with FILE:LINE.
	code, stdout, stderr := run1(partial)
	if code != 3 || !strings.Contains(stdout, "[[service]]") {
		t.Fatalf("partial: exit %d, stdout:\n%s", code, stdout)
	}
	line := regexp.MustCompile(`^` + regexp.QuoteMeta(partial) + `:2: not converted: router_id x \(.+\)$`)
	if !line.MatchString(strings.TrimSpace(stderr)) {
		t.Errorf("partial: stderr = %q, want one FILE:LINE: not converted: WHAT (WHY) line", stderr)
	}

	// Not valid keepalived syntax: exit 1 with FILE:LINE, nothing written.
	code, stdout, stderr = run1(broken)
	if code != 1 || stdout != "" || !strings.HasPrefix(stderr, broken+":3: ") {
		t.Errorf("broken: exit %d, stdout %q, stderr %q; want 1 and FILE:LINE", code, stdout, stderr)
	}

	// Usage.
	if code, _, _ := run1(); code != 2 {
		t.Errorf("no file: exit %d, want 2", code)
	}
	if code, _, stderr := run1(filepath.Join(dir, "missing.conf")); code != 1 || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing file: exit %d, stderr %q", code, stderr)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
