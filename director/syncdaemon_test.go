package director

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/director/ipvs/ipvsfake"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

var eqAddr = cmpopts.EquateComparable(netip.Addr{})

func syncFailover() *config.Failover {
	return &config.Failover{VirtualRouterID: 51, Sync: &config.Sync{Interface: "eth1", SyncID: 51,
		Group: config.DefaultSyncGroup, Port: config.DefaultSyncPort, TTL: config.DefaultSyncTTL}}
}

func daemon(state ipvs.SyncState, iface string, id uint8) ipvs.SyncDaemon {
	return ipvs.SyncDaemon{State: state, Interface: iface, SyncID: id, Group: config.DefaultSyncGroup, Port: 8848, TTL: 1}
}

func TestWantDaemons(t *testing.T) {
	if got := WantDaemons(nil); got != nil {
		t.Errorf("no [failover]: %v", got)
	}
	if got := WantDaemons(&config.Failover{VirtualRouterID: 1}); got != nil {
		t.Errorf("no [failover.sync]: %v", got)
	}
	f := syncFailover()
	f.Sync.MaxLen = 8952
	want := []ipvs.SyncDaemon{daemon(ipvs.SyncMaster, "eth1", 51), daemon(ipvs.SyncBackup, "eth1", 51)}
	want[0].MaxLen, want[1].MaxLen = 8952, 8952
	if diff := cmp.Diff(want, WantDaemons(f), eqAddr); diff != "" {
		t.Errorf("both daemons, same settings (-want +got):\n%s", diff)
	}
}

func TestPlanDaemons(t *testing.T) {
	m, b := daemon(ipvs.SyncMaster, "eth1", 51), daemon(ipvs.SyncBackup, "eth1", 51)
	kernel := func(d ipvs.SyncDaemon) ipvs.SyncDaemon { d.MaxLen = 1472; return d } // as reported
	tests := []struct {
		name       string
		have, want []ipvs.SyncDaemon
		changes    []string
	}{
		{"nothing wanted, nothing touched", []ipvs.SyncDaemon{kernel(m)}, nil, nil},
		{"fresh start", nil, []ipvs.SyncDaemon{m, b}, []string{"start " + m.String(), "start " + b.String()}},
		{"running as wanted", []ipvs.SyncDaemon{kernel(m), kernel(b)}, []ipvs.SyncDaemon{m, b}, nil},
		{"backup stopped behind our back", []ipvs.SyncDaemon{kernel(m)}, []ipvs.SyncDaemon{m, b}, []string{"start " + b.String()}},
		{"master on another interface is restarted", []ipvs.SyncDaemon{kernel(daemon(ipvs.SyncMaster, "eth0", 51)), kernel(b)},
			[]ipvs.SyncDaemon{m, b}, []string{"stop " + kernel(daemon(ipvs.SyncMaster, "eth0", 51)).String(), "start " + m.String()}},
		{"sync id changed: both restarted", []ipvs.SyncDaemon{kernel(m), kernel(b)},
			[]ipvs.SyncDaemon{daemon(ipvs.SyncMaster, "eth1", 9), daemon(ipvs.SyncBackup, "eth1", 9)}, []string{
				"stop " + kernel(m).String(), "start " + daemon(ipvs.SyncMaster, "eth1", 9).String(),
				"stop " + kernel(b).String(), "start " + daemon(ipvs.SyncBackup, "eth1", 9).String()}},
		{"only the wanted states are managed", []ipvs.SyncDaemon{kernel(daemon(ipvs.SyncBackup, "eth7", 3))},
			[]ipvs.SyncDaemon{m}, []string{"start " + m.String()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, c := range PlanDaemons(tt.have, tt.want) {
				got = append(got, c.String())
			}
			if diff := cmp.Diff(tt.changes, got); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEnsureDaemonsStates steps the reconcile through a sequence of kernel
// states, as the director's passes would see them.
func TestEnsureDaemonsStates(t *testing.T) {
	ctx := context.Background()
	k := ipvsfake.New()
	k.Interfaces = []string{"eth0", "eth1"}
	want := WantDaemons(syncFailover())
	wantKernel := []ipvs.SyncDaemon{daemon(ipvs.SyncMaster, "eth1", 51), daemon(ipvs.SyncBackup, "eth1", 51)}
	wantKernel[0].MaxLen, wantKernel[1].MaxLen = 1472, 1472
	check := func(step string, wantChanges int) {
		t.Helper()
		changes, err := EnsureDaemons(ctx, k, want)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if len(changes) != wantChanges {
			t.Errorf("%s: changes %q, want %d", step, changes, wantChanges)
		}
		got, _ := k.Daemons(ctx)
		if diff := cmp.Diff(wantKernel, got, eqAddr); diff != "" {
			t.Errorf("%s: kernel daemons (-want +got):\n%s", step, diff)
		}
	}
	check("first pass starts both", 2)
	check("second pass changes nothing", 0)
	if err := k.StopDaemon(ctx, ipvs.SyncBackup); err != nil { // ipvsadm --stop-daemon backup
		t.Fatal(err)
	}
	check("a daemon stopped behind our back is restarted", 1)
	if err := k.StopDaemon(ctx, ipvs.SyncMaster); err != nil {
		t.Fatal(err)
	}
	if err := k.StartDaemon(ctx, ipvs.SyncDaemon{State: ipvs.SyncMaster, Interface: "eth0", SyncID: 4}); err != nil {
		t.Fatal(err)
	}
	check("a foreign master is replaced", 2)

	// Stopping is separate: for a reload that drops [failover.sync].
	done, err := StopDaemons(ctx, k, ipvs.SyncMaster, ipvs.SyncBackup)
	if err != nil || len(done) != 2 {
		t.Fatalf("StopDaemons: %q, %v", done, err)
	}
	if done, err := StopDaemons(ctx, k, ipvs.SyncMaster); err != nil || len(done) != 0 {
		t.Errorf("stopping what does not run: %q, %v; want nothing and no error", done, err)
	}
	if changes, err := EnsureDaemons(ctx, k, nil); err != nil || changes != nil {
		t.Errorf("no sync wanted: %q, %v", changes, err)
	}
}

// One daemon failing does not stop the other; the error names it and the
// errno survives.
func TestEnsureDaemonsErrors(t *testing.T) {
	ctx := context.Background()
	k := ipvsfake.New()
	k.Interfaces = []string{"eth0"} // eth1 is missing: ENODEV
	changes, err := EnsureDaemons(ctx, k, WantDaemons(syncFailover()))
	if !errors.Is(err, unix.ENODEV) || len(changes) != 0 {
		t.Errorf("missing interface: %q, %v", changes, err)
	}
	k.Interfaces = nil
	var calls int
	k.Fail = func(op string, _ ipvs.ServiceKey, _ *ipvs.Destination) error {
		if op == ipvsfake.OpStartDaemon {
			calls++
			if calls == 1 {
				return unix.ENOMEM
			}
		}
		return nil
	}
	changes, err = EnsureDaemons(ctx, k, WantDaemons(syncFailover()))
	if !errors.Is(err, unix.ENOMEM) || len(changes) != 1 || calls != 2 {
		t.Errorf("first start failing: %q, %v after %d starts; want the second started", changes, err, calls)
	}
	changes, err = EnsureDaemons(ctx, k, WantDaemons(syncFailover()))
	if err != nil || len(changes) != 1 {
		t.Errorf("next pass: %q, %v; want the failed one started", changes, err)
	}
	k.Fail = func(op string, _ ipvs.ServiceKey, _ *ipvs.Destination) error {
		if op == ipvsfake.OpDaemons {
			return unix.EIO
		}
		return nil
	}
	if _, err := EnsureDaemons(ctx, k, WantDaemons(syncFailover())); !errors.Is(err, unix.EIO) {
		t.Errorf("unreadable daemons: %v", err)
	}
}

func TestSyncSysctls(t *testing.T) {
	if got := SyncSysctls(&config.Failover{VirtualRouterID: 1}); got != nil {
		t.Errorf("without sync: %v", got)
	}
	var keys []string
	for _, s := range SyncSysctls(syncFailover()) {
		keys = append(keys, s.Key+"="+s.Value)
	}
	want := []string{"net/ipv4/vs/sync_version=1", "net/ipv4/vs/sync_persist_mode=0",
		"net/ipv4/vs/sync_threshold=3\t0", "net/ipv4/vs/sync_refresh_period=5"}
	if !slices.Equal(keys, want) {
		t.Errorf("sysctls %q, want %q", keys, want)
	}
	if got := SyncSettleTime(syncFailover()); got != 7*time.Second {
		t.Errorf("settle time %v", got)
	}
}

func TestPreemptDelay(t *testing.T) {
	zero, long := time.Duration(0), 30*time.Second
	noSync := &config.Failover{VirtualRouterID: 51}
	for _, tc := range []struct {
		name string
		f    *config.Failover
		want time.Duration
	}{
		{"no failover", nil, 0},
		{"no sync: preempt at once", noSync, 0},
		{"sync: wait for it to settle", syncFailover(), SyncSettleTime(syncFailover())},
		{"sync, preempt_delay 0", withDelay(syncFailover(), &zero), 0},
		{"no sync, preempt_delay 30s", withDelay(noSync, &long), long},
	} {
		if got := PreemptDelay(tc.f); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func withDelay(f *config.Failover, d *time.Duration) *config.Failover {
	c := *f
	c.PreemptDelay = d
	return &c
}
