package realserver

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/golvs/golvs/config"
)

var (
	vipA = netip.MustParsePrefix("192.0.2.10/32")
	vipB = netip.MustParsePrefix("192.0.2.11/32")
	vipT = netip.MustParsePrefix("192.0.2.20/32")
)

func desiredOf(t *testing.T, vips ...VIP) Desired {
	t.Helper()
	d, err := Build(vips, "tunl0")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func dr(p netip.Prefix) VIP {
	return VIP{Addr: p.Addr(), Mode: config.DR, Services: []string{p.Addr().String()}}
}
func tun(p netip.Prefix) VIP {
	return VIP{Addr: p.Addr(), Mode: config.TUN, Services: []string{p.Addr().String()}}
}

var stateOpts = cmp.Options{
	cmpopts.EquateComparable(netip.Prefix{}),
	cmpopts.SortSlices(func(a, b HostAddr) bool { return a.Dev+a.Prefix.String() < b.Dev+b.Prefix.String() }),
	cmpopts.EquateEmpty(),
}

// TestAdopt: the decision a start makes about the journal an earlier run
// left and the host as it finds it.
func TestAdopt(t *testing.T) {
	two := desiredOf(t, dr(vipA), dr(vipB))
	both := converged()
	both.Addrs = append(both.Addrs, HostAddr{Dev: "lo", Prefix: vipB})
	sysctls := []Change{
		{Kind: ChangeSysctl, Path: "net/ipv4/conf/all/arp_ignore", Old: "2", New: "1"},
		{Kind: ChangeSysctl, Path: "net/ipv4/conf/all/arp_announce", Old: "0", New: "2"},
		{Kind: ChangeSysctl, Path: "net/ipv4/conf/lo/arp_ignore", Old: "0", New: "1"},
		{Kind: ChangeSysctl, Path: "net/ipv4/conf/lo/arp_announce", Old: "0", New: "2"},
	}
	addA := Change{Kind: ChangeAddr, Dev: "lo", Prefix: vipA}
	addB := Change{Kind: ChangeAddr, Dev: "lo", Prefix: vipB}
	journal := append([]Change{addA, addB}, sysctls...)
	drifted := cloneState(both)
	drifted.Addrs = drifted.Addrs[:len(drifted.Addrs)-1] // B deleted while no agent ran
	drifted.Sysctls["net/ipv4/conf/all/arp_ignore"] = "0"
	elsewhere := cloneState(both)
	elsewhere.Addrs[1].Dev = "eth0"

	tests := []struct {
		name     string
		desired  Desired
		actual   HostState
		journal  []Change
		adopted  []Change
		keep     []Change
		ops      []string
		wantErr  error
		unwanted []string // substrings no op may have
	}{
		{
			name: "first start: no journal", desired: two, actual: fresh(),
			ops: []string{
				"add address 192.0.2.10/32 to lo", "add address 192.0.2.11/32 to lo",
				"set net.ipv4.conf.all.arp_ignore = 1 (now 2)", "set net.ipv4.conf.all.arp_announce = 2 (now 0)",
				"set net.ipv4.conf.lo.arp_ignore = 1 (now 0)", "set net.ipv4.conf.lo.arp_announce = 2 (now 0)",
			},
		},
		{
			name:    "restart on the host the crashed run left: adopt all, change nothing",
			desired: two, actual: both, journal: journal, adopted: journal,
		},
		{
			name:    "restart after drift while down: only the difference, the journal's old values kept",
			desired: two, actual: drifted, journal: journal, adopted: journal,
			ops: []string{"add address 192.0.2.11/32 to lo", "set net.ipv4.conf.all.arp_ignore = 1 (now 0)"},
		},
		{
			name:    "restart with a file that dropped a VIP: undo that one only",
			desired: desiredOf(t, dr(vipA)), actual: both, journal: journal, adopted: append([]Change{addA}, sysctls...),
			ops: []string{"undo: remove address 192.0.2.11/32 from lo"}, unwanted: []string{"192.0.2.10"},
		},
		{
			name:    "a wanted VIP no record claims is the host's own",
			desired: two, actual: both, journal: append([]Change{addA}, sysctls...), adopted: append([]Change{addA}, sysctls...),
			keep: []Change{addB},
		},
		{
			name: "a VIP on another device: nothing", desired: two, actual: elsewhere, journal: journal,
			wantErr: ErrVIPElsewhere,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Adopt(tc.desired, tc.actual, tc.journal)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil && (a.Ops != nil || a.Adopted != nil || a.Keep != nil) {
				t.Fatalf("a failed adoption decided something: %+v", a)
			}
			if diff := cmp.Diff(tc.ops, opStrings(a.Ops), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ops (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.adopted, a.Adopted, stateOpts); diff != "" {
				t.Errorf("adopted (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.keep, a.Keep, stateOpts); diff != "" {
				t.Errorf("keep (-want +got):\n%s", diff)
			}
			for _, op := range opStrings(a.Ops) {
				for _, u := range tc.unwanted {
					if strings.Contains(op, u) {
						t.Errorf("op %q touches %s, which stays wanted", op, u)
					}
				}
			}
		})
	}
}

// TestRestartAdoptsOnFake runs the agent's start twice on a fake kernel
// with a "crash" between (the journal reread from its file, the process
// state gone): the second start changes only what differs from the file,
// never takes a wanted VIP away, and a clean exit afterwards restores the
// host as it was before the first start.
func TestRestartAdoptsOnFake(t *testing.T) {
	withOwn := fresh()
	withOwn.Addrs = append(withOwn.Addrs, HostAddr{Dev: "lo", Prefix: vipB})
	tests := []struct {
		name          string
		before        HostState
		first, second Desired
		between       func(*fakeHost) // while no agent runs
		want          []string        // the second start's changes to the host
	}{
		{
			name: "dr, nothing changed", before: fresh(),
			first: desiredOf(t, dr(vipA), dr(vipB)), second: desiredOf(t, dr(vipA), dr(vipB)),
		},
		{
			name: "tun, nothing changed", before: fresh(),
			first: desiredOf(t, tun(vipT)), second: desiredOf(t, tun(vipT)),
		},
		{
			name: "drift while down", before: fresh(),
			first: desiredOf(t, dr(vipA), dr(vipB)), second: desiredOf(t, dr(vipA), dr(vipB)),
			between: func(f *fakeHost) {
				f.Undo(context.Background(), Change{Kind: ChangeAddr, Dev: "lo", Prefix: vipB})
				f.setSysctl("net/ipv4/conf/lo/arp_announce", "1")
			},
			want: []string{"add 192.0.2.11/32 lo", "set net/ipv4/conf/lo/arp_announce 2"},
		},
		{
			name: "the file lost a VIP while down", before: fresh(),
			first: desiredOf(t, dr(vipA), dr(vipB)), second: desiredOf(t, dr(vipA)),
			want: []string{"del 192.0.2.11/32 lo"},
		},
		{
			name: "the file moved from tun to dr while down", before: fresh(),
			first: desiredOf(t, tun(vipT)), second: desiredOf(t, dr(vipA)),
			want: []string{
				"set net/ipv4/conf/tunl0/arp_announce 0", "set net/ipv4/conf/tunl0/arp_ignore 0",
				"set net/ipv4/conf/all/rp_filter 1",
				"del 192.0.2.20/32 tunl0", "down tunl0", "delete tunl0", "add 192.0.2.10/32 lo",
			},
		},
		{
			name: "the host's own VIP", before: withOwn,
			first: desiredOf(t, dr(vipA), dr(vipB)), second: desiredOf(t, dr(vipA), dr(vipB)),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "rs.state")
			f := newFakeHost(tc.before)
			j, err := OpenJournal(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := (&runner{log: quiet, k: f, j: j, desired: tc.first}).start(ctx); err != nil {
				t.Fatalf("first start: %v", err)
			}
			assertConverged(t, f, tc.first, j)

			// Crash: all that survives is the host and the state file.
			if tc.between != nil {
				tc.between(f)
			}
			f.changes = nil
			j, err = OpenJournal(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := (&runner{log: quiet, k: f, j: j, desired: tc.second}).start(ctx); err != nil {
				t.Fatalf("second start: %v", err)
			}
			if diff := cmp.Diff(tc.want, f.changes, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("the restart's changes to the host (-want +got):\n%s", diff)
			}
			assertConverged(t, f, tc.second, j)

			if err := Restore(ctx, f, j); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.before, f.st, stateOpts); diff != "" {
				t.Errorf("the exit after the restart did not restore the host (-before +after):\n%s", diff)
			}
		})
	}
}

func assertConverged(t *testing.T, f *fakeHost, d Desired, j *Journal) {
	t.Helper()
	st, _ := f.Snapshot(context.Background(), sysctlPaths(d))
	ops, err := Plan(d, st, j.Changes())
	if err != nil || len(ops) > 0 {
		t.Fatalf("host not as desired: %v %v", opStrings(ops), err)
	}
}
