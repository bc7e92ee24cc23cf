package bench

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// waitAddrs waits until every address in want is on benchIface in ns and
// returns when they were, as time since start: notBefore if they all were
// at the first look (the caller's own earlier moment, so a look made only
// after the table was full does not count against the director), or else
// the look that first found them all. Looks are one address dump every
// 5 ms, made only while some are missing.
func waitAddrs(ctx context.Context, ns netns, start time.Time, notBefore time.Duration, want []netip.Addr, exited <-chan error) (time.Duration, error) {
	nsh, err := vnetns.GetFromPath(ns.path())
	if err != nil {
		return 0, err
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh, unix.NETLINK_ROUTE)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	link, err := h.LinkByName(benchIface)
	if err != nil {
		return 0, err
	}
	deadline := time.After(10 * time.Minute)
	for first := true; ; first = false {
		have, err := countAddrs(h, link, want)
		if err != nil {
			return 0, err
		}
		if have == len(want) {
			if first {
				return notBefore, nil
			}
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-deadline:
			return 0, fmt.Errorf("VIPs never all on %s: %d/%d", benchIface, have, len(want))
		case err := <-exited:
			return 0, fmt.Errorf("exited before every VIP was on %s (%d/%d): %v", benchIface, have, len(want), err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// countAddrs counts the addresses of want on link (as /32 or /128, as
// the director puts them).
func countAddrs(h *netlink.Handle, link netlink.Link, want []netip.Addr) (int, error) {
	as, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return 0, fmt.Errorf("address dump: %w", err)
	}
	wanted := make(map[netip.Addr]bool, len(want))
	for _, a := range want {
		wanted[a] = true
	}
	n := 0
	for _, a := range as {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, bits := a.Mask.Size()
		if ip = ip.Unmap(); wanted[ip] && ones == bits {
			delete(wanted, ip)
			n++
		}
	}
	return n, nil
}
