package ipvs_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/director/ipvs/ipvsfake"
	"golang.org/x/sys/unix"
)

// Without batching, ApplyWrites makes one call per change, in order, and
// a failed change does not stop the next.
func TestApplyWritesOneByOne(t *testing.T) {
	ctx := context.Background()
	fake := ipvsfake.New()
	svc := ipvs.Service{ServiceKey: ipvs.ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP,
		Address: netip.MustParseAddr("192.0.2.1"), Port: 80}, Scheduler: "rr", Netmask: 0xffffffff}
	d := ipvs.Destination{Address: netip.MustParseAddr("10.0.0.1"), Port: 80, Weight: 1}
	errs := ipvs.ApplyWrites(ctx, fake, []ipvs.Write{
		{Kind: ipvs.WriteAddService, Service: svc},
		{Kind: ipvs.WriteAddService, Service: svc}, // exists
		{Kind: ipvs.WriteAddDest, Service: svc, Dest: d},
		{Kind: ipvs.WriteUpdateDest, Service: svc, Dest: ipvs.Destination{Address: d.Address, Port: 80, Weight: 3}},
	})
	if errs[0] != nil || !errors.Is(errs[1], unix.EEXIST) || errs[2] != nil || errs[3] != nil {
		t.Fatalf("errors %v", errs)
	}
	got, err := fake.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].Destinations) != 1 || got[0].Destinations[0].Weight != 3 {
		t.Errorf("table %+v", got)
	}
}
