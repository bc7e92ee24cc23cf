package metrics

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/director/status"
)

func TestSyncMetrics(t *testing.T) {
	want := []ipvs.SyncDaemon{{State: ipvs.SyncMaster, Interface: "eth1", SyncID: 51}, {State: ipvs.SyncBackup, Interface: "eth1", SyncID: 51}}
	st := status.SyncStatus{Want: want, Running: []ipvs.SyncDaemon{want[0]},
		Origins: &ipvs.ConnOrigins{Local: 4, Synced: 9, SyncedByState: map[string]int{"ESTABLISHED": 9}}}
	src := Source{Status: fixedStatus, Sync: func(context.Context) (status.SyncStatus, error) { return st, nil }}
	_, body := get(t, src, "/metrics")
	for _, w := range []string{
		`golvs_sync_daemon_running{state="master"} 1`,
		`golvs_sync_daemon_running{state="backup"} 0`,
		`golvs_sync_daemon_as_configured{state="master"} 1`,
		`golvs_sync_connections{origin="local"} 4`,
		`golvs_sync_connections{origin="sync"} 9`,
		`golvs_sync_synced_connections{state="ESTABLISHED"} 9`,
		`golvs_sync_status_error 0`,
	} {
		if !strings.Contains(body, w+"\n") {
			t.Errorf("missing %q", w)
		}
	}
	src.Sync = func(context.Context) (status.SyncStatus, error) {
		return status.SyncStatus{}, errors.New("netlink")
	}
	if _, body := get(t, src, "/metrics"); !strings.Contains(body, "golvs_sync_status_error 1\n") {
		t.Error("a failed read must show golvs_sync_status_error 1")
	}
	// Without sync there are no sync series at all.
	src.Sync = nil
	if _, body := get(t, src, "/metrics"); strings.Contains(body, "golvs_sync_") {
		t.Error("sync series without [failover.sync]")
	}
}
