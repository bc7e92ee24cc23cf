// Package status holds what `director status`, the control socket and
// the metrics report: per service, per backend. It is plain data, so every
// reader (CLI, metrics, status page) shares one vocabulary.
package status

import (
	"fmt"
	"io"
	"net/netip"
	"text/tabwriter"
)

// Status is what `director status` shows: per service, per backend.
type Status struct {
	Services []ServiceStatus `json:"services"`
	// VRRP is the failover state ("master", "backup", ...), "" without
	// failover; filled in by the control server.
	VRRP string `json:"vrrp,omitempty"`
	// VRRPTransitions are the last state changes with their reasons,
	// newest first.
	VRRPTransitions []string `json:"vrrp_transitions,omitempty"`
	// BGP is the routed director's sessions and announcements; nil
	// without [bgp]. Filled in by the control server.
	BGP *BGP `json:"bgp,omitempty"`
}

// ServiceStatus is one configured service.
type ServiceStatus struct {
	Name     string `json:"name"`
	Key      string `json:"key"`
	InKernel bool   `json:"in_kernel"`
	// Quorum is the service's quorum rule (0: none), Serving how many of
	// its backends count towards it, QuorumLost whether Serving < Quorum.
	Quorum     int             `json:"quorum,omitempty"`
	Serving    int             `json:"serving"`
	QuorumLost bool            `json:"quorum_lost,omitempty"`
	Backends   []BackendStatus `json:"backends"`
}

// BackendStatus is one backend: configured, or still draining after it
// left the file, or the sorry server.
type BackendStatus struct {
	Address          netip.AddrPort `json:"address"`
	Configured       bool           `json:"configured"`
	ConfiguredWeight int            `json:"configured_weight"`
	InKernel         bool           `json:"in_kernel"`
	KernelWeight     int            `json:"kernel_weight"`
	ActiveConns      int            `json:"active_conns"`
	InactiveConns    int            `json:"inactive_conns"`
	// Conns is the kernel's count of connections ever scheduled to it.
	Conns         uint64 `json:"conns"`
	Health        string `json:"health"` // up | down | drain
	OperatorDrain bool   `json:"operator_drain"`
	Draining      bool   `json:"draining"` // leaving: weight 0 until its connections end
	// ExcusedProbes counts the probes the director failed itself (its
	// own stalls, local errors): they left the health as it was.
	ExcusedProbes uint64 `json:"excused_probes,omitempty"`
}

// WriteText writes the status as the table `director status` prints.
func (s Status) WriteText(w io.Writer) error {
	if s.VRRP != "" {
		fmt.Fprintf(w, "vrrp: %s\n", s.VRRP)
	}
	for _, t := range s.VRRPTransitions {
		fmt.Fprintf(w, "  %s\n", t)
	}
	if s.BGP != nil {
		if err := s.BGP.WriteText(w); err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, sv := range s.Services {
		state := "in kernel"
		if !sv.InKernel {
			state = "NOT IN KERNEL"
		}
		if sv.QuorumLost {
			state += fmt.Sprintf(", QUORUM LOST (%d of %d serving)", sv.Serving, sv.Quorum)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", sv.Name, sv.Key, state)
		fmt.Fprintf(tw, "  BACKEND\tHEALTH\tWEIGHT\tKERNEL\tACTIVE\tINACTIVE\tNOTE\n")
		for _, b := range sv.Backends {
			weight, kernel := "-", "-"
			if b.Configured {
				weight = fmt.Sprint(b.ConfiguredWeight)
			}
			if b.InKernel {
				kernel = fmt.Sprint(b.KernelWeight)
			}
			note := ""
			switch {
			case b.OperatorDrain:
				note = "drained by operator"
			case b.Draining:
				note = "draining"
			case !b.Configured:
				note = "not configured"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%d\t%s\n", b.Address, b.Health, weight, kernel, b.ActiveConns, b.InactiveConns, note)
		}
	}
	return tw.Flush()
}
