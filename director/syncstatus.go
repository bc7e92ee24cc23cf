package director

import (
	"context"

	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/director/status"
)

// SyncStatus is what status and metrics show of connection sync (see
// package status).
type SyncStatus = status.SyncStatus

// ReadSyncStatus reads the running daemons from k and the connection
// origins with origins (ipvs.ReadConnOrigins in the director). A failed
// origins read is left out, not an error: the daemons are what matters.
func ReadSyncStatus(ctx context.Context, k ipvs.SyncDaemons, want []ipvs.SyncDaemon, origins func() (ipvs.ConnOrigins, error)) (SyncStatus, error) {
	st := SyncStatus{Want: want}
	running, err := k.Daemons(ctx)
	if err != nil {
		return st, err
	}
	st.Running = running
	if origins != nil {
		if o, err := origins(); err == nil {
			st.Origins = &o
		}
	}
	return st, nil
}
