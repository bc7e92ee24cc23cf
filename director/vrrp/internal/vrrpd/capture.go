package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/golvs/golvs/director/vrrp"
)

// captureAdverts records, one hex line each, the next count VRRP payloads
// that src sends to the IPv4 group on iface: what an attacker on the
// segment would keep to replay later.
func captureAdverts(iface, src, path string, count int) error {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return err
	}
	from, err := netip.ParseAddr(src)
	if err != nil {
		return err
	}
	c, err := net.ListenPacket("ip4:"+strconv.Itoa(vrrp.Protocol), "0.0.0.0")
	if err != nil {
		return err
	}
	defer c.Close()
	if err := ipv4.NewPacketConn(c).JoinGroup(ifi, &net.IPAddr{IP: vrrp.GroupV4.AsSlice()}); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	fmt.Println("CAPTURING")
	buf := make([]byte, 1500)
	for n := 0; n < count; {
		m, addr, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		if a, ok := addr.(*net.IPAddr); !ok || !a.IP.Equal(from.AsSlice()) {
			continue
		}
		fmt.Fprintln(f, hex.EncodeToString(buf[:m]))
		n++
	}
	return f.Close()
}

// replayAdverts sends each recorded payload again from src (an address of
// this namespace) to the IPv4 group with TTL 255, one per every, printing
// "SENT <unix-nanos>" for each.
func replayAdverts(iface, src, path string, every time.Duration) error {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	c, err := net.ListenPacket("ip4:"+strconv.Itoa(vrrp.Protocol), src)
	if err != nil {
		return err
	}
	defer c.Close()
	p := ipv4.NewPacketConn(c)
	if err := p.SetMulticastTTL(vrrp.TTL); err != nil {
		return err
	}
	if err := p.SetMulticastInterface(ifi); err != nil {
		return err
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		pkt, err := hex.DecodeString(sc.Text())
		if err != nil {
			return err
		}
		if _, err := p.WriteTo(pkt, nil, &net.IPAddr{IP: vrrp.GroupV4.AsSlice()}); err != nil {
			return err
		}
		fmt.Printf("SENT %d\n", time.Now().UnixNano())
		time.Sleep(every)
	}
	return sc.Err()
}

// forgeAdverts sends count plain adverts for vrid from src (an address of
// this namespace) to the IPv4 group, at prio with the interval cs, one per
// every: what anyone on the segment can do without auth. It prints
// "FORGED <unix-nanos>" for each.
func forgeAdverts(iface, src string, vrid, prio uint8, cs uint16, vips []netip.Addr, count int, every time.Duration) error {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return err
	}
	from, err := netip.ParseAddr(src)
	if err != nil {
		return err
	}
	pkt, err := vrrp.Advert{VRID: vrid, Priority: prio, MaxAdvertInterval: cs, Addrs: vips}.Marshal(from, vrrp.GroupV4)
	if err != nil {
		return err
	}
	c, err := net.ListenPacket("ip4:"+strconv.Itoa(vrrp.Protocol), src)
	if err != nil {
		return err
	}
	defer c.Close()
	p := ipv4.NewPacketConn(c)
	if err := p.SetMulticastTTL(vrrp.TTL); err != nil {
		return err
	}
	if err := p.SetMulticastInterface(ifi); err != nil {
		return err
	}
	for range count {
		if _, err := p.WriteTo(pkt, nil, &net.IPAddr{IP: vrrp.GroupV4.AsSlice()}); err != nil {
			return err
		}
		fmt.Printf("FORGED %d\n", time.Now().UnixNano())
		time.Sleep(every)
	}
	return nil
}
