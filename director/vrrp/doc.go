// Package vrrp implements VRRPv3 (RFC 9568) for director failover.
//
// Three layers, each usable alone:
//
//   - advert.go, auth.go: the advertisement codec (checksum over the IPv4 or
//     IPv6 pseudo-header) and the golvs-only HMAC-SHA256 trailer, keyed from
//     a 0600 file, whose per-run epochs and echoes tell a live peer from a
//     replayed capture without clocks or state files (see auth.go).
//   - machine.go: the pure state machine. Machine.Step(event, now) returns
//     actions; it owns no clock, socket or goroutine. Beyond RFC 9568 it
//     bounds what another router can make it do: the learned interval is
//     clamped, answers to weaker adverts are rate-limited, and unproven
//     (possibly replayed) adverts never make a master yield.
//   - runner.go: Runner.Run(ctx) opens a raw IP socket (protocol 112) on one
//     interface, drives the machine with real timers and calls the
//     director's Hooks; it sends gratuitous ARP / unsolicited NA itself
//     after OnMaster and runs the notify program.
//
// The director uses it like this:
//
//	r, err := vrrp.NewRunner(vrrp.Config{
//		Interface: cfg.Director.Interface,
//		Failover:  *cfg.Failover,
//		VIPs:      vips,
//		Logger:    log,
//	}, vrrp.Hooks{OnMaster: addVIPs, OnBackup: removeVIPs})
//	...
//	go r.Run(ctx)                        // returns after a priority-0 advert and OnBackup
//	r.SetFault(ctx, true, "quorum lost") // tracking
//	st := r.Status()                     // for `director status`
//	lines := vrrp.FormatTransitions(st.Transitions) // newest first
package vrrp
