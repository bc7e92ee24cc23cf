package status

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/golvs/golvs/director/ipvs"
)

// SyncStatus is what `director status` and /metrics show of connection
// sync: the daemons wanted and running, and the kernel's connections by
// origin.
type SyncStatus struct {
	Want    []ipvs.SyncDaemon
	Running []ipvs.SyncDaemon
	// Origins is nil when the connection table could not be read.
	Origins *ipvs.ConnOrigins
}

// DaemonState is one wanted daemon's state: "running", "stopped", or
// "differs" (running with other settings; the next pass restarts it).
func (s SyncStatus) DaemonState(state ipvs.SyncState) string {
	want := slices.IndexFunc(s.Want, func(d ipvs.SyncDaemon) bool { return d.State == state })
	i := slices.IndexFunc(s.Running, func(d ipvs.SyncDaemon) bool { return d.State == state })
	switch {
	case i < 0:
		return "stopped"
	case want >= 0 && !s.Running[i].Satisfies(s.Want[want]):
		return "differs"
	}
	return "running"
}

// WriteText writes the sync lines of the status text.
func (s SyncStatus) WriteText(w io.Writer) {
	var parts []string
	for _, d := range s.Want {
		parts = append(parts, fmt.Sprintf("%s %s", d.State, s.DaemonState(d.State)))
	}
	line := "sync: " + strings.Join(parts, ", ")
	if len(s.Want) > 0 {
		d := s.Want[0]
		line += fmt.Sprintf(" (interface %s, sync id %d)", d.Interface, d.SyncID)
	}
	if o := s.Origins; o != nil {
		line += fmt.Sprintf("; connections: %d local, %d from the peer (%d established)", o.Local, o.Synced, o.SyncedByState["ESTABLISHED"])
	}
	fmt.Fprintln(w, line)
}
