package ipvsfake

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/golvs/golvs/director/ipvs"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

func TestFakeDaemonsLikeTheKernel(t *testing.T) {
	ctx := context.Background()
	f := New()
	f.Interfaces = []string{"eth0", "eth1"}
	if err := f.StopDaemon(ctx, ipvs.SyncMaster); !errors.Is(err, unix.ESRCH) {
		t.Errorf("stop with none running: %v, want ESRCH", err)
	}
	if err := f.StartDaemon(ctx, ipvs.SyncDaemon{State: ipvs.SyncMaster, Interface: "eth9", SyncID: 1}); !errors.Is(err, unix.ENODEV) {
		t.Errorf("unknown interface: %v, want ENODEV", err)
	}
	if err := f.StartDaemon(ctx, ipvs.SyncDaemon{State: 3, Interface: "eth0"}); !errors.Is(err, unix.EINVAL) {
		t.Errorf("bad state: %v, want EINVAL", err)
	}
	if err := f.StartDaemon(ctx, ipvs.SyncDaemon{State: ipvs.SyncMaster, Interface: "eth0", SyncID: 51}); err != nil {
		t.Fatal(err)
	}
	if err := f.StartDaemon(ctx, ipvs.SyncDaemon{State: ipvs.SyncMaster, Interface: "eth1", SyncID: 52}); !errors.Is(err, unix.EEXIST) {
		t.Errorf("second master: %v, want EEXIST", err)
	}
	// A backup runs beside the master, with its own settings.
	if err := f.StartDaemon(ctx, ipvs.SyncDaemon{State: ipvs.SyncBackup, Interface: "eth1", SyncID: 7,
		Group: netip.MustParseAddr("ff02::81"), Port: 9000, TTL: 2, MaxLen: 4000}); err != nil {
		t.Fatal(err)
	}
	got, err := f.Daemons(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []ipvs.SyncDaemon{
		{State: ipvs.SyncMaster, Interface: "eth0", SyncID: 51, MaxLen: 1472, Group: netip.MustParseAddr("224.0.0.81"), Port: 8848, TTL: 1},
		{State: ipvs.SyncBackup, Interface: "eth1", SyncID: 7, MaxLen: 4000, Group: netip.MustParseAddr("ff02::81"), Port: 9000, TTL: 2},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("daemons (-want +got):\n%s", diff)
	}
	if err := f.StopDaemon(ctx, ipvs.SyncMaster); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Daemons(ctx); len(got) != 1 || got[0].State != ipvs.SyncBackup {
		t.Errorf("after stopping the master: %+v", got)
	}
	byOp, total := f.DaemonWrites()
	if byOp[OpStartDaemon] != 5 || byOp[OpStopDaemon] != 2 || total != 7 {
		t.Errorf("writes %v (%d), want 5 starts and 2 stops", byOp, total)
	}
	injected := errors.New("injected")
	f.Fail = func(op string, _ ipvs.ServiceKey, _ *ipvs.Destination) error {
		if op == OpDaemons {
			return injected
		}
		return nil
	}
	if _, err := f.Daemons(ctx); !errors.Is(err, injected) {
		t.Errorf("failure hook: %v", err)
	}
}
