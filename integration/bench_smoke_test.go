//go:build lab

package integration

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/integration/bench"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

// TestBenchSmoke runs `make bench`'s harness at 100 services, and the
// many-VIP layout at 30, so that it cannot rot: every contender fills the
// table (and the director puts every VIP on its interface), an unchanged
// reload writes nothing and a one-weight change writes once. (The figures
// themselves belong to `make bench`.) Each contender runs in a namespace
// of its own.
func TestBenchSmoke(t *testing.T) {
	for _, tc := range []struct {
		n        int
		manyVIPs bool
	}{{100, false}, {30, true}} {
		benchSmoke(t, tc.n, tc.manyVIPs)
	}
}

func benchSmoke(t *testing.T, n int, manyVIPs bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress strings.Builder
	rs, err := bench.Run(ctx, bench.Options{Sizes: []int{n}, Director: bin(t, "director"), Work: t.TempDir(), Progress: &progress, ManyVIPs: manyVIPs})
	if err != nil {
		t.Fatalf("bench (many VIPs: %v): %v\n%s", manyVIPs, err, progress.String())
	}
	var table strings.Builder
	bench.Table(&table, rs)
	t.Logf("many VIPs: %v\n%s", manyVIPs, table.String())
	r := rs[0]
	if r.Services != n || r.ManyVIPs != manyVIPs || r.ColdWrites != uint64(4*n+n) {
		t.Errorf("cold pass: %d services (many VIPs: %v), %d writes; want %d and %d", r.Services, r.ManyVIPs, r.ColdWrites, n, 5*n)
	}
	if r.IpvsadmRestore <= 0 || r.KeepalivedCold <= 0 || r.Cold <= 0 || r.Change <= 0 || r.NoopPass <= 0 {
		t.Errorf("a figure is missing: %+v", r)
	}
	for i, w := range r.Unchanged {
		if w != 0 {
			t.Errorf("unchanged reload %d wrote %d times", i, w)
		}
	}
	if len(r.Unchanged) == 0 {
		t.Error("no unchanged reload measured")
	}
	if r.ChangeWrites != 1 {
		t.Errorf("one-weight change: %d writes, want 1", r.ChangeWrites)
	}
}

// TestKernelClientRoundTrip checks golvs's own IPVS netlink client against
// the real kernel: what it writes (every kind of service setting) reads
// back equal, updates and deletes land, errors carry the errno, and a
// batch keeps per-change errors without stopping.
func TestKernelClientRoundTrip(t *testing.T) {
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	k := ipvs.NewKernel()
	defer k.Close()
	v4 := netip.MustParseAddr("198.51.100.77")
	v6 := netip.MustParseAddr("2001:db8::77")
	svcs := []ipvs.Entry{
		{Service: ipvs.Service{ServiceKey: ipvs.ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Address: v4, Port: 80},
			Scheduler: "wrr", Flags: ipvs.FlagPersistent, Timeout: 300, Netmask: 0xffffff00},
			Destinations: []ipvs.Destination{
				{Address: netip.MustParseAddr("10.9.0.1"), Port: 8080, Weight: 100, Forwarding: ipvs.Masq, UpperThreshold: 2000, LowerThreshold: 1500},
				{Address: netip.MustParseAddr("10.9.0.2"), Port: 80, Weight: 0, Forwarding: ipvs.Route},
			}},
		{Service: ipvs.Service{ServiceKey: ipvs.ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_UDP, Address: v4, Port: 53},
			Scheduler: "sh", Flags: ipvs.FlagSched1 | ipvs.FlagSched2, Netmask: 0xffffffff},
			Destinations: []ipvs.Destination{{Address: netip.MustParseAddr("10.9.0.3"), Port: 53, Weight: 1, Forwarding: ipvs.Tunnel}}},
		{Service: ipvs.Service{ServiceKey: ipvs.ServiceKey{Family: unix.AF_INET6, Protocol: unix.IPPROTO_TCP, Address: v6, Port: 443},
			Scheduler: "rr", Flags: ipvs.FlagPersistent, Timeout: 60, Netmask: 64},
			Destinations: []ipvs.Destination{{Address: netip.MustParseAddr("2001:db8:1::1"), Port: 443, Weight: 5, Forwarding: ipvs.Masq}}},
		{Service: ipvs.Service{ServiceKey: ipvs.ServiceKey{Family: unix.AF_INET, FWMark: 77}, Scheduler: "lc", Netmask: 0xffffffff},
			Destinations: []ipvs.Destination{{Address: netip.MustParseAddr("10.9.0.4"), Port: 0, Weight: 2, Forwarding: ipvs.Route}}},
	}
	var ws []ipvs.Write
	for _, e := range svcs {
		ws = append(ws, ipvs.Write{Kind: ipvs.WriteAddService, Service: e.Service})
		for _, d := range e.Destinations {
			ws = append(ws, ipvs.Write{Kind: ipvs.WriteAddDest, Service: e.Service, Dest: d})
		}
	}
	// A duplicate in the middle fails alone.
	dup := ipvs.Write{Kind: ipvs.WriteAddService, Service: svcs[0].Service}
	ws = append(ws[:2], append([]ipvs.Write{dup}, ws[2:]...)...)
	cleanup := func() {
		for _, e := range svcs {
			k.DeleteService(ctx, e.Service.ServiceKey)
		}
	}
	cleanup()
	defer cleanup()
	before := k.Writes()
	for i, err := range k.WriteBatch(ctx, ws) {
		if i == 2 {
			if !errors.Is(err, unix.EEXIST) {
				t.Errorf("duplicate add: %v, want EEXIST", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("write %d (%s): %v", i, ws[i], err)
		}
	}
	if got := k.Writes() - before; got != uint64(len(ws)) {
		t.Errorf("write counter moved by %d, want %d", got, len(ws))
	}
	got := dumpOf(t, k, svcs)
	ipvs.SortEntries(svcs)
	if diff := cmp.Diff(svcs, got); diff != "" {
		t.Fatalf("dump differs from what was written (-want +got):\n%s", diff)
	}

	// Updates and deletes, one call each.
	svcs[0].Service.Scheduler, svcs[0].Service.Timeout = "wlc", 120
	if err := k.UpdateService(ctx, svcs[0].Service); err != nil {
		t.Fatal(err)
	}
	svcs[0].Destinations[0].Weight = 7
	if err := k.UpdateDestination(ctx, svcs[0].Service.ServiceKey, svcs[0].Destinations[0]); err != nil {
		t.Fatal(err)
	}
	if err := k.DeleteDestination(ctx, svcs[0].Service.ServiceKey, svcs[0].Destinations[1]); err != nil {
		t.Fatal(err)
	}
	svcs[0].Destinations = svcs[0].Destinations[:1]
	if diff := cmp.Diff(svcs, dumpOf(t, k, svcs)); diff != "" {
		t.Fatalf("after updates (-want +got):\n%s", diff)
	}
	if err := k.DeleteService(ctx, svcs[1].Service.ServiceKey); err != nil {
		t.Fatal(err)
	}
	if err := k.DeleteService(ctx, svcs[1].Service.ServiceKey); !errors.Is(err, unix.ESRCH) {
		t.Errorf("deleting a missing service: %v, want ESRCH", err)
	}
	if err := k.AddDestination(ctx, svcs[1].Service.ServiceKey, svcs[1].Destinations[0]); !errors.Is(err, unix.ESRCH) {
		t.Errorf("adding to a missing service: %v, want ESRCH", err)
	}
	// Survey agrees with Dump except for thresholds (not in /proc) and
	// the fwmark service (inexact: /proc does not give its family).
	surveyed, inexact, err := k.Survey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(inexact) != 1 || inexact[0] != svcs[3].Service.ServiceKey {
		t.Errorf("survey inexact %v, want only the fwmark service", inexact)
	}
	var wantSurvey []ipvs.Entry
	for _, e := range dumpOf(t, k, svcs) {
		e.Destinations = slices.Clone(e.Destinations)
		for i := range e.Destinations {
			e.Destinations[i].UpperThreshold, e.Destinations[i].LowerThreshold = 0, 0
		}
		if e.Service.FWMark != 0 {
			e.Destinations = nil
		}
		wantSurvey = append(wantSurvey, e)
	}
	var gotSurvey []ipvs.Entry
	for _, e := range surveyed {
		for _, w := range svcs {
			if e.Service.ServiceKey == w.Service.ServiceKey {
				for i := range e.Destinations {
					e.Destinations[i].ActiveConns, e.Destinations[i].InactiveConns = 0, 0
				}
				gotSurvey = append(gotSurvey, e)
			}
		}
	}
	if diff := cmp.Diff(wantSurvey, gotSurvey, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Survey differs from Dump (-dump +survey):\n%s", diff)
	}

	// DumpServices reads just the services asked for (a missing one is
	// left out) exactly as Dump shows them.
	ask := []ipvs.ServiceKey{svcs[3].Service.ServiceKey, svcs[1].Service.ServiceKey, svcs[0].Service.ServiceKey}
	some, err := k.DumpServices(ctx, ask)
	if err != nil {
		t.Fatal(err)
	}
	for i := range some {
		for j := range some[i].Destinations {
			some[i].Destinations[j].ActiveConns, some[i].Destinations[j].InactiveConns = 0, 0
		}
	}
	wantSome := []ipvs.Entry{svcs[0], svcs[3]}
	ipvs.SortEntries(wantSome)
	if diff := cmp.Diff(wantSome, some); diff != "" {
		t.Errorf("DumpServices (-want +got):\n%s", diff)
	}

	// A service with more destinations than one page-sized reply holds
	// (destination dumps use page-sized buffers): every one comes back.
	big := ipvs.Entry{Service: ipvs.Service{ServiceKey: ipvs.ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Address: v4, Port: 9999},
		Scheduler: "rr", Netmask: 0xffffffff}}
	ws = []ipvs.Write{{Kind: ipvs.WriteAddService, Service: big.Service}}
	for i := range 300 {
		d := ipvs.Destination{Address: netip.AddrFrom4([4]byte{10, 8, byte(i / 250), byte(1 + i%250)}), Port: 9999, Weight: 1 + i, Forwarding: ipvs.Masq}
		big.Destinations = append(big.Destinations, d)
		ws = append(ws, ipvs.Write{Kind: ipvs.WriteAddDest, Service: big.Service, Dest: d})
	}
	defer k.DeleteService(ctx, big.Service.ServiceKey)
	for i, err := range k.WriteBatch(ctx, ws) {
		if err != nil {
			t.Fatalf("big service write %d: %v", i, err)
		}
	}
	ipvs.SortDestinations(big.Destinations)
	if diff := cmp.Diff([]ipvs.Entry{big}, dumpOf(t, k, []ipvs.Entry{big})); diff != "" {
		t.Errorf("300-destination service (-want +got):\n%s", diff)
	}

	// A cancelled call fails with the context's error, and the next works.
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if _, err := k.Dump(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled dump: %v", err)
	}
	if _, err := k.Dump(ctx); err != nil {
		t.Errorf("dump after a cancelled call: %v", err)
	}
}

// dumpOf dumps the kernel and keeps the services named in want (the
// counters zeroed).
func dumpOf(t *testing.T, k *ipvs.Kernel, want []ipvs.Entry) []ipvs.Entry {
	t.Helper()
	all, err := k.Dump(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	keep := map[ipvs.ServiceKey]bool{}
	for _, e := range want {
		keep[e.Service.ServiceKey] = true
	}
	var out []ipvs.Entry
	for _, e := range all {
		if keep[e.Service.ServiceKey] {
			for i := range e.Destinations {
				e.Destinations[i].ActiveConns, e.Destinations[i].InactiveConns = 0, 0
			}
			out = append(out, e)
		}
	}
	return out
}
