package vrrp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/hashicorp/go-multierror"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// announcer sends gratuitous ARP and unsolicited NA frames on one interface.
// Its packet sockets are opened on first use and kept until close, so a
// takeover does not pay for socket set-up on every round.
type announcer struct {
	ifi   *net.Interface
	ll    netip.Addr // IPv6 link-local source; zero = use the VIP
	conns map[int]*packet.Conn
}

// dropAll is a classic BPF program that accepts no frame: the sockets only
// send, so the kernel must not queue every ARP or IPv6 frame on the link
// for them.
var dropAll = []bpf.RawInstruction{{Op: unix.BPF_RET | unix.BPF_K, K: 0}}

func (a *announcer) conn(proto int) (*packet.Conn, error) {
	if c, ok := a.conns[proto]; ok {
		return c, nil
	}
	c, err := packet.Listen(a.ifi, packet.Raw, proto, &packet.Config{Filter: dropAll})
	if err != nil {
		return nil, fmt.Errorf("vrrp: packet socket on %s: %w", a.ifi.Name, err)
	}
	if a.conns == nil {
		a.conns = map[int]*packet.Conn{}
	}
	a.conns[proto] = c
	return c, nil
}

func (a *announcer) close() {
	for p, c := range a.conns {
		c.Close()
		delete(a.conns, p)
	}
}

// announce sends one round for every VIP: ARP request and reply for IPv4,
// one NA for IPv6. Errors are collected; one bad VIP does not stop the rest.
func (a *announcer) announce(vips []netip.Addr) error {
	if len(a.ifi.HardwareAddr) != 6 {
		return fmt.Errorf("vrrp: %s has no Ethernet address", a.ifi.Name)
	}
	var errs *multierror.Error
	send := func(proto int, dst net.HardwareAddr, frames ...[]byte) {
		c, err := a.conn(proto)
		if err != nil {
			errs = multierror.Append(errs, err)
			return
		}
		for _, f := range frames {
			_, err := c.WriteTo(f, &packet.Addr{HardwareAddr: dst})
			if errors.Is(err, unix.ENETDOWN) {
				// The kernel reports a link that went down to a packet
				// socket once, on its next send, even after the link is
				// back: the first frame after a flap fails; try it again.
				_, err = c.WriteTo(f, &packet.Addr{HardwareAddr: dst})
			}
			if err != nil {
				errs = multierror.Append(errs, fmt.Errorf("vrrp: gratuitous frame on %s: %w", a.ifi.Name, err))
			}
		}
	}
	var arp, na [][]byte
	for _, v := range vips {
		if v.Is4() {
			arp = append(arp, GratuitousARP(a.ifi.HardwareAddr, v, arpRequest), GratuitousARP(a.ifi.HardwareAddr, v, arpReply))
			continue
		}
		src := a.ll
		if !src.IsValid() {
			src = v
		}
		na = append(na, UnsolicitedNA(a.ifi.HardwareAddr, src, v))
	}
	if len(arp) > 0 {
		send(unix.ETH_P_ARP, broadcastMAC, arp...)
	}
	if len(na) > 0 {
		send(unix.ETH_P_IPV6, allNodesMAC, na...)
	}
	return errs.ErrorOrNil()
}
