package director

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/director/ipvs/ipvsfake"
)

func TestSyncStatus(t *testing.T) {
	ctx := context.Background()
	k := ipvsfake.New()
	want := WantDaemons(syncFailover())
	if err := k.StartDaemon(ctx, want[0]); err != nil {
		t.Fatal(err)
	}
	if err := k.StartDaemon(ctx, ipvs.SyncDaemon{State: ipvs.SyncBackup, Interface: "eth9", SyncID: 51}); err != nil {
		t.Fatal(err)
	}
	origins := func() (ipvs.ConnOrigins, error) {
		return ipvs.ConnOrigins{Local: 3, Synced: 7, SyncedByState: map[string]int{"ESTABLISHED": 6, "FIN_WAIT": 1}}, nil
	}
	st, err := ReadSyncStatus(ctx, k, want, origins)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.DaemonState(ipvs.SyncMaster); got != "running" {
		t.Errorf("master %s", got)
	}
	if got := st.DaemonState(ipvs.SyncBackup); got != "differs" {
		t.Errorf("backup on another interface: %s", got)
	}
	var b strings.Builder
	st.WriteText(&b)
	if want := "sync: master running, backup differs (interface eth1, sync id 51); connections: 3 local, 7 from the peer (6 established)\n"; b.String() != want {
		t.Errorf("text %q\nwant %q", b.String(), want)
	}
	if err := k.StopDaemon(ctx, ipvs.SyncBackup); err != nil {
		t.Fatal(err)
	}
	st, _ = ReadSyncStatus(ctx, k, want, func() (ipvs.ConnOrigins, error) { return ipvs.ConnOrigins{}, errors.New("no proc") })
	if st.DaemonState(ipvs.SyncBackup) != "stopped" || st.Origins != nil {
		t.Errorf("after the stop: %+v", st)
	}
}
