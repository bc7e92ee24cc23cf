//go:build lab

package integration

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// binDir holds the binaries under test ($GOLVS_BIN), set by TestMain.
var binDir string

// TestMain refuses to run anywhere but in a place with real IPVS: these
// tests must fail loudly, never skip, when the lab is not there.
func TestMain(m *testing.M) {
	flag.Parse()
	// Listing the tests needs no lab: the lab command lists them on the
	// host to split the suite over guests.
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run())
	}
	if err := checkLab(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the end-to-end tests need the lab: %v\n"+
			"run them with `go run ./integration/cmd/lab test` (see integration/README.md)\n", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func checkLab() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("not root (euid %d)", os.Geteuid())
	}
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		return fmt.Errorf("this kernel has no IPVS: %w", err)
	}
	binDir = os.Getenv("GOLVS_BIN")
	if binDir == "" {
		return fmt.Errorf("GOLVS_BIN is not set (the directory with director and labhost)")
	}
	for _, b := range []string{"labhost"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return fmt.Errorf("helper binary missing: %w", err)
		}
	}
	return nil
}

// bin returns the path of a binary under test, failing the test when it
// was not built.
func bin(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(binDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("binary %s not built: %v", name, err)
	}
	return p
}
