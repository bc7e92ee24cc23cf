package vrrp

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var testMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}

func TestGratuitousARP(t *testing.T) {
	vip := netip.MustParseAddr("192.168.0.198")
	request := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06, // Ethernet
		0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, // Ethernet/IPv4, op request
		0x02, 0, 0, 0, 0, 0x01, 192, 168, 0, 198, // sender = us, VIP
		0, 0, 0, 0, 0, 0, 192, 168, 0, 198, // target hw unknown, VIP
	}
	reply := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06,
		0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02, // op reply
		0x02, 0, 0, 0, 0, 0x01, 192, 168, 0, 198,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 192, 168, 0, 198,
	}
	if diff := cmp.Diff(request, GratuitousARP(testMAC, vip, arpRequest)); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(reply, GratuitousARP(testMAC, vip, arpReply)); diff != "" {
		t.Errorf("reply (-want +got):\n%s", diff)
	}
}

func TestUnsolicitedNA(t *testing.T) {
	// ICMPv6 checksum 0x279e was computed independently (a separate
	// one's-complement implementation over pseudo-header fe80::1 -> ff02::1,
	// length 32, next header 58, and the 32-byte message below).
	want := []byte{
		0x33, 0x33, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 0x01, 0x86, 0xdd, // Ethernet
		0x60, 0, 0, 0, 0, 32, 58, 255, // IPv6: payload 32, ICMPv6, hop limit 255
		0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
		0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
		136, 0, 0x27, 0x9e, 0x20, 0, 0, 0, // NA, checksum, flags: Override only
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc6, // target
		2, 1, 0x02, 0, 0, 0, 0, 0x01, // target link-layer address option
	}
	got := UnsolicitedNA(testMAC, netip.MustParseAddr("fe80::1"), netip.MustParseAddr("2001:db8::c6"))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("NA (-want +got):\n%s", diff)
	}
}
