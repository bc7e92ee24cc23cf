package status

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"
)

// BGP is a routed director's ([bgp]) state: its sessions and which VIPs
// it announces now.
type BGP struct {
	ASN      uint32     `json:"asn"`
	RouterID netip.Addr `json:"router_id"`
	// Running: the speaker is up (false before it started, after it
	// stopped).
	Running bool `json:"running"`
	// SelfDrained: `director drain-self` is in force: nothing is
	// announced while the director keeps forwarding.
	SelfDrained bool `json:"self_drained"`
	// Leaving: the director is stopping and withdrew everything.
	Leaving bool      `json:"leaving,omitempty"`
	Peers   []BGPPeer `json:"peers"`
	VIPs    []BGPVIP  `json:"vips"`
	Error   string    `json:"error,omitempty"` // reading the sessions failed
}

// BGPPeer is one configured neighbour's session.
type BGPPeer struct {
	Address netip.Addr `json:"address"`
	ASN     uint32     `json:"asn"`
	// State is the BGP FSM state: idle, connect, active, opensent,
	// openconfirm, established.
	State string `json:"state"`
	// Since is when the session was last established (State
	// established) or last went down; zero when it never was.
	Since time.Time `json:"since,omitzero"`
	// BFD is the BFD session state (up, down, init, admin_down); "" when
	// BFD is off for this peer.
	BFD string `json:"bfd,omitempty"`
	// Advertised counts the routes sent to the peer, Received those the
	// peer sent (a director accepts none of them).
	Advertised uint64 `json:"advertised"`
	Received   uint64 `json:"received"`
}

// BGPVIP is one VIP of the file and whether it is announced.
type BGPVIP struct {
	Address   netip.Addr `json:"address"`
	Announced bool       `json:"announced"`
	// Reason says why a VIP is not announced ("" when it is).
	Reason string `json:"reason,omitempty"`
}

// Announced lists the VIPs announced now.
func (b *BGP) Announced() []netip.Addr {
	var out []netip.Addr
	for _, v := range b.VIPs {
		if v.Announced {
			out = append(out, v.Address)
		}
	}
	return out
}

// Peer finds a peer by address.
func (b *BGP) Peer(a netip.Addr) (BGPPeer, bool) {
	for _, p := range b.Peers {
		if p.Address == a {
			return p, true
		}
	}
	return BGPPeer{}, false
}

// WriteText writes the BGP lines of `director status`.
func (b *BGP) WriteText(w io.Writer) error {
	state := "running"
	switch {
	case !b.Running:
		state = "NOT RUNNING"
	case b.Leaving:
		state = "leaving (routes withdrawn)"
	case b.SelfDrained:
		state = "DRAINED by operator (drain-self): nothing announced, still forwarding"
	}
	fmt.Fprintf(w, "bgp: AS %d, router id %s, %s\n", b.ASN, b.RouterID, state)
	if b.Error != "" {
		fmt.Fprintf(w, "  sessions unknown: %s\n", b.Error)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  PEER\tAS\tSTATE\tSINCE\tBFD\tSENT\tRECEIVED\n")
	for _, p := range b.Peers {
		since, bfd := "-", "-"
		if !p.Since.IsZero() {
			since = p.Since.UTC().Format(time.RFC3339)
		}
		if p.BFD != "" {
			bfd = p.BFD
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\t%d\t%d\n", p.Address, p.ASN, p.State, since, bfd, p.Advertised, p.Received)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var on, off []string
	for _, v := range b.VIPs {
		if v.Announced {
			on = append(on, v.Address.String())
		} else {
			off = append(off, fmt.Sprintf("%s (%s)", v.Address, v.Reason))
		}
	}
	if len(on) == 0 {
		on = []string{"none"}
	}
	fmt.Fprintf(w, "  announced: %s\n", strings.Join(on, ", "))
	if len(off) > 0 {
		fmt.Fprintf(w, "  not announced: %s\n", strings.Join(off, ", "))
	}
	return nil
}
