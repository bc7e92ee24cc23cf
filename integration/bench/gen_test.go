package bench

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director"
	"github.com/golvs/golvs/director/ipvs"
)

// TestTopologyLoads checks that the generated topology is a valid file
// with the table the other contenders get.
func TestTopologyLoads(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "t.toml")
	if err := os.WriteFile(p, topology(dir, table{n: 50, backends: 4}, 7), 0o644); err != nil {
		t.Fatal(err)
	}
	topo, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Services) != 50 {
		t.Fatalf("%d services, want 50", len(topo.Services))
	}
	for i, s := range topo.Services {
		if len(s.Backends) != 4 || s.Port != uint16(firstPort+i) || s.Address.String() != oneVIP {
			t.Fatalf("service %d: %d backends, port %d", i, len(s.Backends), s.Port)
		}
		if w := s.Backends[0].Weight; (i == 7) != (w == 2) {
			t.Fatalf("service %d: first backend weight %d", i, w)
		}
	}
}

// In the many-VIP layout every service has a VIP of its own on port 80,
// the same in all three contenders' input, and the last service sorts
// last among the director's keys (waitFull watches it as the witness that
// the table is full).
func TestManyVIPLayout(t *testing.T) {
	tab := table{n: 600, backends: 3, manyVIPs: true}
	dir := t.TempDir()
	p := filepath.Join(dir, "t.toml")
	if err := os.WriteFile(p, topology(dir, tab, 7), 0o644); err != nil {
		t.Fatal(err)
	}
	topo, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Services) != tab.n {
		t.Fatalf("%d services, want %d", len(topo.Services), tab.n)
	}
	want := tab.vips()
	if got := director.VIPs(topo); !slices.Equal(got, want) {
		t.Fatalf("the director would hold %d VIPs %v..., want %d %v...", len(got), got[:3], len(want), want[:3])
	}
	for i, a := range map[int]string{0: "198.18.0.1", 249: "198.18.0.250", 250: "198.18.1.1", 599: "198.18.2.100"} {
		if got := tab.addr(i).String(); got != a {
			t.Errorf("service %d on %s, want %s", i, got, a)
		}
	}
	keys := make([]ipvs.ServiceKey, len(topo.Services))
	for i := range topo.Services {
		s := &topo.Services[i]
		keys[i] = director.Key(s)
		if s.Address != tab.addr(i) || s.Port != 80 || len(s.Backends) != 3 {
			t.Fatalf("service %d: %s:%d with %d backends", i, s.Address, s.Port, len(s.Backends))
		}
		if w := s.Backends[0].Weight; (i == 7) != (w == 2) {
			t.Fatalf("service %d: first backend weight %d", i, w)
		}
	}
	if !slices.IsSortedFunc(keys, ipvs.KeyCompare) {
		t.Error("the director's key order is not the file's: the last service is not the last programmed")
	}

	// ipvsadm and keepalived get the same services and real servers.
	rules := string(ipvsadmRules(tab))
	conf := string(keepalivedConf(tab))
	for _, i := range []int{0, 7, 250, tab.n - 1} {
		a := tab.addr(i)
		if !strings.Contains(rules, fmt.Sprintf("-A -t %s:80 -s rr\n-a -t %s:80 -r 10.2.0.1:80 -m -w 1\n", a, a)) {
			t.Errorf("ipvsadm rules lack service %d (%s:80)", i, a)
		}
		if !strings.Contains(conf, fmt.Sprintf("virtual_server %s 80 {", a)) {
			t.Errorf("keepalived.conf lacks service %d (%s 80)", i, a)
		}
	}
	if got := strings.Count(rules, "-A -t "); got != tab.n {
		t.Errorf("ipvsadm rules: %d services, want %d", got, tab.n)
	}
	if got := strings.Count(rules, "-a -t "); got != tab.n*tab.backends {
		t.Errorf("ipvsadm rules: %d real servers, want %d", got, tab.n*tab.backends)
	}
	if got := strings.Count(conf, "virtual_server "); got != tab.n {
		t.Errorf("keepalived.conf: %d virtual servers, want %d", got, tab.n)
	}
	if got := strings.Count(conf, "real_server "); got != tab.n*tab.backends {
		t.Errorf("keepalived.conf: %d real servers, want %d", got, tab.n*tab.backends)
	}
}

// The largest many-VIP table still has distinct VIPs, all in
// 198.18.0.0/15, none a network or broadcast address of its /24.
func TestManyVIPRange(t *testing.T) {
	tab := table{n: maxManyVIPs, manyVIPs: true}
	bench := netip.MustParsePrefix("198.18.0.0/15")
	seen := make(map[netip.Addr]bool, tab.n)
	for _, a := range tab.vips() {
		b := a.As4()
		if !bench.Contains(a) || b[3] == 0 || b[3] == 255 || seen[a] {
			t.Fatalf("VIP %s: outside %s, a network/broadcast address, or repeated", a, bench)
		}
		seen[a] = true
	}
	// The default layout keeps one VIP whatever the size.
	if vs := (table{n: 100}).vips(); len(vs) != 1 || vs[0].String() != oneVIP {
		t.Errorf("default layout VIPs %v, want [%s]", vs, oneVIP)
	}
}

func BenchmarkLoad5000(b *testing.B) {
	dir := b.TempDir()
	p := filepath.Join(dir, "t.toml")
	if err := os.WriteFile(p, topology(dir, table{n: 5000, backends: 4}, -1), 0o644); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := config.Load(p); err != nil {
			b.Fatal(err)
		}
	}
}

// Rounds merge to the best time of each figure and keep every round's
// write counts.
func TestMergeKeepsBest(t *testing.T) {
	a := Result{Services: 10, Rounds: 1, Cold: 5, KeepalivedCold: 2, NoopPass: 9, NoopDump: 8, Unchanged: []uint64{0}, ChangeWrites: 1, RSSKB: 100}
	b := Result{Services: 10, Rounds: 1, Cold: 3, KeepalivedCold: 4, NoopPass: 7, NoopDump: 1, Unchanged: []uint64{2}, ChangeWrites: 1, RSSKB: 50}
	m := merge(a, b)
	if m.Cold != 3 || m.KeepalivedCold != 2 || m.NoopPass != 7 || m.NoopDump != 1 || m.RSSKB != 100 || m.Rounds != 2 {
		t.Errorf("merged %+v", m)
	}
	if len(m.Unchanged) != 2 || m.Unchanged[1] != 2 {
		t.Errorf("unchanged writes %v, want both rounds'", m.Unchanged)
	}
	if len(a.Unchanged) != 1 {
		t.Error("merge changed its input")
	}
}
