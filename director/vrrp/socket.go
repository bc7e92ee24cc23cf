package vrrp

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// packetInfo is what the kernel tells about a received advert.
type packetInfo struct {
	src, dst netip.Addr
	ttl      int // IPv4 TTL or IPv6 hop limit; -1 when absent
	ifIndex  int
}

// advertConn is a raw IP socket for protocol 112 on one interface. The
// kernel builds the IP header (no IP_HDRINCL), with TTL / hop limit 255.
type advertConn interface {
	read(b []byte) (int, packetInfo, error)
	write(b []byte, src, dst netip.Addr) error
	close() error
}

func openAdvertConn(ifi *net.Interface, v6, multicast bool) (advertConn, error) {
	if v6 {
		return openV6(ifi, multicast)
	}
	return openV4(ifi, multicast)
}

type v4conn struct {
	ifi *net.Interface
	c   net.PacketConn
	p   *ipv4.PacketConn
}

func openV4(ifi *net.Interface, multicast bool) (advertConn, error) {
	c, err := net.ListenPacket("ip4:"+strconv.Itoa(Protocol), "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("vrrp: raw IPv4 socket: %w", err)
	}
	p := ipv4.NewPacketConn(c)
	setup := []struct {
		what string
		err  func() error
	}{
		{"TTL", func() error { return p.SetTTL(TTL) }},
		{"multicast TTL", func() error { return p.SetMulticastTTL(TTL) }},
		{"multicast loopback", func() error { return p.SetMulticastLoopback(false) }},
		{"multicast interface", func() error { return p.SetMulticastInterface(ifi) }},
		{"control messages", func() error {
			return p.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true)
		}},
	}
	if multicast {
		setup = append(setup, struct {
			what string
			err  func() error
		}{"join " + GroupV4.String(), func() error {
			return p.JoinGroup(ifi, &net.IPAddr{IP: GroupV4.AsSlice()})
		}})
	}
	for _, s := range setup {
		if err := s.err(); err != nil {
			c.Close()
			return nil, fmt.Errorf("vrrp: IPv4 socket %s on %s: %w", s.what, ifi.Name, err)
		}
	}
	return &v4conn{ifi: ifi, c: c, p: p}, nil
}

func (c *v4conn) read(b []byte) (int, packetInfo, error) {
	n, cm, from, err := c.p.ReadFrom(b)
	if err != nil {
		return 0, packetInfo{}, err
	}
	info := packetInfo{ttl: -1}
	if a, ok := from.(*net.IPAddr); ok {
		info.src, _ = netip.AddrFromSlice(a.IP.To4())
	}
	if cm != nil {
		info.ttl = cm.TTL
		info.ifIndex = cm.IfIndex
		info.dst, _ = netip.AddrFromSlice(cm.Dst.To4())
	}
	return n, info, nil
}

func (c *v4conn) write(b []byte, src, dst netip.Addr) error {
	cm := &ipv4.ControlMessage{Src: src.AsSlice(), IfIndex: c.ifi.Index}
	_, err := c.p.WriteTo(b, cm, &net.IPAddr{IP: dst.AsSlice()})
	return err
}

func (c *v4conn) close() error { return c.c.Close() }

type v6conn struct {
	ifi *net.Interface
	c   net.PacketConn
	p   *ipv6.PacketConn
}

func openV6(ifi *net.Interface, multicast bool) (advertConn, error) {
	c, err := net.ListenPacket("ip6:"+strconv.Itoa(Protocol), "::")
	if err != nil {
		return nil, fmt.Errorf("vrrp: raw IPv6 socket: %w", err)
	}
	p := ipv6.NewPacketConn(c)
	setup := []struct {
		what string
		err  func() error
	}{
		// Raw IPv6 sockets have no checksum offload by default: with
		// IPV6_CHECKSUM at offset 6 the kernel fills it on send (over the
		// pseudo-header with the source it picked) and verifies on receive.
		{"checksum offset", func() error { return p.SetChecksum(true, 6) }},
		{"hop limit", func() error { return p.SetHopLimit(TTL) }},
		{"multicast hop limit", func() error { return p.SetMulticastHopLimit(TTL) }},
		{"multicast loopback", func() error { return p.SetMulticastLoopback(false) }},
		{"multicast interface", func() error { return p.SetMulticastInterface(ifi) }},
		{"control messages", func() error {
			return p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true)
		}},
	}
	if multicast {
		setup = append(setup, struct {
			what string
			err  func() error
		}{"join " + GroupV6.String(), func() error {
			return p.JoinGroup(ifi, &net.IPAddr{IP: GroupV6.AsSlice()})
		}})
	}
	for _, s := range setup {
		if err := s.err(); err != nil {
			c.Close()
			return nil, fmt.Errorf("vrrp: IPv6 socket %s on %s: %w", s.what, ifi.Name, err)
		}
	}
	return &v6conn{ifi: ifi, c: c, p: p}, nil
}

func (c *v6conn) read(b []byte) (int, packetInfo, error) {
	n, cm, from, err := c.p.ReadFrom(b)
	if err != nil {
		return 0, packetInfo{}, err
	}
	info := packetInfo{ttl: -1}
	if a, ok := from.(*net.IPAddr); ok {
		info.src, _ = netip.AddrFromSlice(a.IP.To16())
	}
	if cm != nil {
		info.ttl = cm.HopLimit
		info.ifIndex = cm.IfIndex
		info.dst, _ = netip.AddrFromSlice(cm.Dst.To16())
	}
	return n, info, nil
}

func (c *v6conn) write(b []byte, src, dst netip.Addr) error {
	cm := &ipv6.ControlMessage{Src: src.AsSlice(), IfIndex: c.ifi.Index, HopLimit: TTL}
	_, err := c.p.WriteTo(b, cm, &net.IPAddr{IP: dst.AsSlice(), Zone: c.ifi.Name})
	return err
}

func (c *v6conn) close() error { return c.c.Close() }
