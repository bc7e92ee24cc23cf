package ipvsfake

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/golvs/golvs/director/ipvs"
	"golang.org/x/sys/unix"
)

var (
	key = ipvs.ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Address: netip.MustParseAddr("10.0.0.1"), Port: 80}
	svc = ipvs.Service{ServiceKey: key, Scheduler: "rr", Netmask: 0xffffffff}
	d1  = ipvs.Destination{Address: netip.MustParseAddr("10.0.1.1"), Port: 80, Weight: 1, Forwarding: ipvs.Route}
	d2  = ipvs.Destination{Address: netip.MustParseAddr("10.0.1.2"), Port: 80, Weight: 1, Forwarding: ipvs.Route}
)

func TestErrnosLikeTheKernel(t *testing.T) {
	ctx := context.Background()
	f := New()
	check := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: err = %v, want %v", what, err, want)
		}
	}
	check("update missing service", f.UpdateService(ctx, svc), unix.ESRCH)
	check("delete missing service", f.DeleteService(ctx, key), unix.ESRCH)
	check("add dest to missing service", f.AddDestination(ctx, key, d1), unix.ESRCH)
	if err := f.AddService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	check("duplicate service", f.AddService(ctx, svc), unix.EEXIST)
	check("update missing dest", f.UpdateDestination(ctx, key, d1), unix.ENOENT)
	check("delete missing dest", f.DeleteDestination(ctx, key, d1), unix.ENOENT)
	if err := f.AddDestination(ctx, key, d1); err != nil {
		t.Fatal(err)
	}
	check("duplicate dest", f.AddDestination(ctx, key, d1), unix.EEXIST)
	v6 := svc
	v6.Family, v6.Address, v6.Netmask = unix.AF_INET6, netip.MustParseAddr("2001:db8::1"), 0
	check("ipv6 netmask 0", f.AddService(ctx, v6), unix.EINVAL)
}

func TestHashedMaskedAndDeterministicDump(t *testing.T) {
	ctx := context.Background()
	f := New()
	s := svc
	s.Flags = ipvs.FlagHashed | ipvs.FlagPersistent
	if err := f.AddService(ctx, s); err != nil {
		t.Fatal(err)
	}
	for _, d := range []ipvs.Destination{d2, d1} {
		if err := f.AddDestination(ctx, key, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.SetConns(key, d1.Key(), 2, 3); err != nil {
		t.Fatal(err)
	}
	// An update does not reset the kernel's counters.
	if err := f.UpdateDestination(ctx, key, d1); err != nil {
		t.Fatal(err)
	}
	got, err := f.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Service.Flags != ipvs.FlagPersistent {
		t.Fatalf("dump = %+v, want one service with HASHED masked", got)
	}
	ds := got[0].Destinations
	if len(ds) != 2 || ds[0].Address != d1.Address || ds[1].Address != d2.Address {
		t.Errorf("destinations not sorted: %+v", ds)
	}
	if ds[0].ActiveConns != 2 || ds[0].InactiveConns != 3 {
		t.Errorf("counters lost: %+v", ds[0])
	}
}

func TestFailHookAndWrites(t *testing.T) {
	ctx := context.Background()
	f := New()
	boom := errors.New("boom")
	f.Fail = func(op string, k ipvs.ServiceKey, d *ipvs.Destination) error {
		if op == ipvs.WriteAddDest.String() && d.Address == d2.Address {
			return boom
		}
		return nil
	}
	if err := f.AddService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if err := f.AddDestination(ctx, key, d1); err != nil {
		t.Fatal(err)
	}
	if err := f.AddDestination(ctx, key, d2); !errors.Is(err, boom) {
		t.Errorf("injected failure: err = %v", err)
	}
	if _, err := f.Dump(ctx); err != nil {
		t.Fatal(err)
	}
	m, n := f.WritesByKind()
	if n != 2 || m[ipvs.WriteAddService] != 1 || m[ipvs.WriteAddDest] != 1 {
		t.Errorf("writes = %v (%d), want one service add and one destination add", m, n)
	}
	got, _ := f.Dump(ctx)
	if len(got[0].Destinations) != 1 {
		t.Errorf("failed add changed the table: %+v", got)
	}
}

// A batch through the interface applies in order, and a failed change
// does not stop the next (as the kernel client's batches do).
func TestWriteBatchInOrder(t *testing.T) {
	ctx := context.Background()
	var k ipvs.IPVS = New()
	errs := k.WriteBatch(ctx, []ipvs.Write{
		{Kind: ipvs.WriteAddService, Service: svc},
		{Kind: ipvs.WriteAddService, Service: svc}, // exists
		{Kind: ipvs.WriteAddDest, Service: svc, Dest: d1},
		{Kind: ipvs.WriteUpdateDest, Service: svc, Dest: ipvs.Destination{Address: d1.Address, Port: d1.Port, Weight: 3, Forwarding: d1.Forwarding}},
	})
	if errs[0] != nil || !errors.Is(errs[1], unix.EEXIST) || errs[2] != nil || errs[3] != nil {
		t.Fatalf("errors %v", errs)
	}
	got, err := k.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].Destinations) != 1 || got[0].Destinations[0].Weight != 3 {
		t.Errorf("table %+v", got)
	}
	if k.Writes() != 4 {
		t.Errorf("writes = %d, want 4", k.Writes())
	}
}

// The kernel's list order, as TestMHOrderCanonical saw it in the lab:
// adds go to the head, edits keep the place, and a destination deleted
// with connections and added again comes back with them.
func TestListOrderLikeTheKernel(t *testing.T) {
	ctx := context.Background()
	f := New()
	mh := svc
	mh.Scheduler = "mh"
	if err := f.AddService(ctx, mh); err != nil {
		t.Fatal(err)
	}
	d3 := d2
	d3.Address = netip.MustParseAddr("10.0.1.3")
	order := func() []netip.AddrPort {
		t.Helper()
		es, err := f.Dump(ctx)
		if err != nil || len(es) != 1 {
			t.Fatalf("dump: %v %v", es, err)
		}
		if !slices.IsSortedFunc(es[0].Destinations, ipvs.CompareDests) {
			t.Errorf("destinations not sorted: %v", es[0].Destinations)
		}
		return es[0].Order
	}
	for _, d := range []ipvs.Destination{d1, d3, d2} {
		if err := f.AddDestination(ctx, key, d); err != nil {
			t.Fatal(err)
		}
	}
	want := []netip.AddrPort{d2.Key(), d3.Key(), d1.Key()}
	if got := order(); !slices.Equal(got, want) {
		t.Errorf("after adds .1 .3 .2: order %v, want %v", got, want)
	}
	heavier := d1
	heavier.Weight = 5
	if err := f.UpdateDestination(ctx, key, heavier); err != nil {
		t.Fatal(err)
	}
	if got := order(); !slices.Equal(got, want) {
		t.Errorf("after an edit: order %v, want %v", got, want)
	}
	if err := f.SetConns(key, d1.Key(), 4, 1); err != nil {
		t.Fatal(err)
	}
	if err := f.DeleteDestination(ctx, key, d1); err != nil {
		t.Fatal(err)
	}
	if err := f.AddDestination(ctx, key, d1); err != nil {
		t.Fatal(err)
	}
	want = []netip.AddrPort{d1.Key(), d2.Key(), d3.Key()}
	if got := order(); !slices.Equal(got, want) {
		t.Errorf("after .1 deleted and re-added: order %v, want %v", got, want)
	}
	es, _ := f.Dump(ctx)
	if d := es[0].Destinations[0]; d.ActiveConns != 4 || d.InactiveConns != 1 {
		t.Errorf("re-added .1 has connections %d/%d, want its 4/1 back", d.ActiveConns, d.InactiveConns)
	}
	// Only ListOrdered services report the order.
	if err := f.UpdateService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if got := order(); got != nil {
		t.Errorf("rr service: order %v, want none", got)
	}
}
