package bgp

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// RouterIDOf returns the first IPv4 address of the named interface: the
// router id when [bgp] names none.
func RouterIDOf(iface string) (netip.Addr, error) {
	link, err := netlink.LinkByName(iface)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("bgp: router id: interface %q: %w", iface, err)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("bgp: router id: addresses of %q: %w", iface, err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			return ip.Unmap(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("bgp: router id: %q has no IPv4 address; set router_id", iface)
}
