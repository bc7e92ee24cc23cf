package vrrp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/hashicorp/go-multierror"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

const (
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
	arpRequest    = 1
	arpReply      = 2
	icmpv6NA      = 136
	icmpv6Proto   = 58
)

var (
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	// allNodesMAC is the Ethernet group for ff02::1 (33:33 + low 32 bits).
	allNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	allNodes    = netip.MustParseAddr("ff02::1")
)

// GratuitousARP returns a broadcast Ethernet frame announcing vip at mac:
// sender and target protocol address are both the VIP. op is 1 (request)
// or 2 (reply); hosts differ in which form they learn from, so both are sent.
func GratuitousARP(mac net.HardwareAddr, vip netip.Addr, op uint16) []byte {
	f := make([]byte, 14+28)
	copy(f[0:6], broadcastMAC)
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:], etherTypeARP)
	a := f[14:]
	binary.BigEndian.PutUint16(a[0:], 1) // hardware type Ethernet
	binary.BigEndian.PutUint16(a[2:], 0x0800)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], op)
	ip := vip.As4()
	copy(a[8:14], mac)
	copy(a[14:18], ip[:])
	if op == arpReply {
		copy(a[18:24], broadcastMAC)
	} // a request leaves the target hardware address zero
	copy(a[24:28], ip[:])
	return f
}

// UnsolicitedNA returns an Ethernet frame carrying an unsolicited neighbour
// advertisement for vip to ff02::1 (RFC 4861 7.2.6): Override set,
// Solicited clear, with the target link-layer address option. src is the
// IPv6 source (the interface's link-local address).
func UnsolicitedNA(mac net.HardwareAddr, src, vip netip.Addr) []byte {
	const icmpLen = 4 + 4 + 16 + 8
	f := make([]byte, 14+40+icmpLen)
	copy(f[0:6], allNodesMAC)
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:], etherTypeIPv6)
	ip := f[14:54]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], icmpLen)
	ip[6] = icmpv6Proto
	ip[7] = 255 // hop limit, required for ND
	s, d := src.As16(), allNodes.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	m := f[54:]
	m[0] = icmpv6NA
	m[4] = 0x20 // Override
	t := vip.As16()
	copy(m[8:24], t[:])
	m[24], m[25] = 2, 1 // target link-layer address, 8 bytes
	copy(m[26:32], mac)
	binary.BigEndian.PutUint16(m[2:], pseudoChecksum(m, src, allNodes, icmpv6Proto))
	return f
}

// pseudoChecksum is the Internet checksum of an upper-layer message with
// the pseudo-header for proto.
func pseudoChecksum(b []byte, src, dst netip.Addr, proto uint32) uint16 {
	var sum uint32
	add := func(p []byte) {
		for ; len(p) >= 2; p = p[2:] {
			sum += uint32(p[0])<<8 | uint32(p[1])
		}
		if len(p) == 1 {
			sum += uint32(p[0]) << 8
		}
	}
	add(src.AsSlice())
	add(dst.AsSlice())
	sum += uint32(len(b))&0xffff + uint32(len(b))>>16 + proto
	add(b)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

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
			if _, err := c.WriteTo(f, &packet.Addr{HardwareAddr: dst}); err != nil {
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
