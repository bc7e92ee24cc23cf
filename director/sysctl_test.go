package director

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golvs/golvs/config"
	"github.com/google/go-cmp/cmp"
)

func TestNeededSysctls(t *testing.T) {
	dr := webService(backend(be1, 1))
	nat6 := config.Service{Name: "v6", Address: vip6, Port: 80, Forwarding: config.NAT,
		Backends: []config.Backend{{Address: netip.MustParseAddr("2001:db8::2"), Port: 80, Forwarding: config.NAT}}}
	natOverride := webService(config.Backend{Address: be1, Port: 80, Forwarding: config.NAT})
	keys := func(ss []Sysctl) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Key)
		}
		return out
	}
	if got := NeededSysctls(topo(dr)); len(got) != 0 {
		t.Errorf("dr only: %v, want none", got)
	}
	if diff := cmp.Diff([]string{"net/ipv4/ip_forward", "net/ipv4/vs/conntrack"}, keys(NeededSysctls(topo(dr, natOverride)))); diff != "" {
		t.Errorf("v4 nat backend (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"net/ipv6/conf/all/forwarding", "net/ipv4/vs/conntrack"}, keys(NeededSysctls(topo(nat6)))); diff != "" {
		t.Errorf("v6 nat (-want +got):\n%s", diff)
	}
}

func TestApplyAndRestoreSysctls(t *testing.T) {
	root := t.TempDir()
	write := func(k, v string) {
		p := filepath.Join(root, k)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(k string) string {
		b, err := os.ReadFile(filepath.Join(root, k))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	write("net/ipv4/ip_forward", "0\n")
	write("net/ipv6/conf/all/forwarding", "1\n")
	// net/ipv4/vs/conntrack is absent: optional, skipped.
	changes, err := ApplySysctls(root, []Sysctl{ipv4Forward, ipv6Forward, ipvsConntrack}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Key != "net/ipv4/ip_forward" || changes[0].Old != "0" {
		t.Errorf("changes = %+v, want only ip_forward from 0", changes)
	}
	if read("net/ipv4/ip_forward") != "1" {
		t.Error("ip_forward not set")
	}
	if err := RestoreSysctls(root, changes); err != nil {
		t.Fatal(err)
	}
	if read("net/ipv4/ip_forward") != "0" {
		t.Error("ip_forward not restored")
	}
	// A required setting that is missing is an error.
	if _, err := ApplySysctls(t.TempDir(), []Sysctl{ipv4Forward}, nil); err == nil {
		t.Error("missing required sysctl: no error")
	}
}
