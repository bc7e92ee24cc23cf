package vrrp

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/golvs/golvs/config"
)

// TestRunnerKeepsLastTransitions: after many flaps Status holds exactly the
// last DefaultHistoryLen transitions, oldest first, each with its reason.
func TestRunnerKeepsLastTransitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn := newFakeConn()
		r, err := NewRunner(Config{
			Interface: "fake0",
			Failover:  config.Failover{VirtualRouterID: 51, Priority: 100, AdvertInterval: time.Second, Preempt: true},
			VIPs:      []netip.Addr{testVI},
		}, (&hookLog{start: conn.start}).hooks())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.serve(ctx, env{conn: conn, ann: &fakeAnn{start: conn.start}, ifIndex: 2, local: me,
			dsts: []netip.Addr{GroupV4}, multicast: true, addrs: []netip.Addr{testVI}})
		time.Sleep(5 * time.Second) // backup, then master
		for i := range 20 {
			if err := r.SetFault(ctx, i%2 == 0, fmt.Sprintf("flap %d", i)); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			time.Sleep(time.Second)
		}
		st := r.Status()
		if len(st.Transitions) != DefaultHistoryLen {
			t.Fatalf("%d transitions kept, want %d", len(st.Transitions), DefaultHistoryLen)
		}
		// 22 transitions happened (backup, master, then 20 flaps between
		// fault and backup); the last 16 are flaps 4..19.
		for i, tr := range st.Transitions {
			n := i + 4
			want := Transition{From: Backup, To: Fault, Reason: fmt.Sprintf("flap %d", n)}
			if n%2 == 1 {
				want = Transition{From: Fault, To: Backup, Reason: "fault cleared"}
			}
			if tr.From != want.From || tr.To != want.To || tr.Reason != want.Reason {
				t.Errorf("transition %d = %v -> %v (%q), want %v -> %v (%q)", i, tr.From, tr.To, tr.Reason, want.From, want.To, want.Reason)
			}
		}
		lines := FormatTransitions(st.Transitions)
		if len(lines) != DefaultHistoryLen || lines[0] != FormatTransitions(st.Transitions[len(st.Transitions)-1:])[0] {
			t.Errorf("FormatTransitions is not newest first: %q", lines)
		}
	})
}

func TestFormatTransitions(t *testing.T) {
	at := time.Date(2026, 12, 2, 6, 55, 1, 250e6, time.FixedZone("CET", 3600))
	got := FormatTransitions([]Transition{
		{Time: at, From: Init, To: Backup, Reason: "startup"},
		{Time: at.Add(3609375 * time.Microsecond), From: Backup, To: Master, Reason: "master down timer expired"},
		{Time: at.Add(time.Minute), From: Master, To: Init},
	})
	want := []string{
		"2026-12-02T05:56:01.250Z master -> init",
		"2026-12-02T05:55:04.859Z backup -> master: master down timer expired",
		"2026-12-02T05:55:01.250Z init -> backup: startup",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FormatTransitions (-want +got):\n%s", diff)
	}
	if got := FormatTransitions(nil); len(got) != 0 {
		t.Errorf("FormatTransitions(nil) = %q", got)
	}
}
