package vrrp

import (
	"encoding/binary"
	"net"
	"net/netip"
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
