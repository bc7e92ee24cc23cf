package vip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Claim marks addresses that may be on the interface from before this
// process (a restarted director): the next Set removes those it does not
// want. Only claimed, set or added addresses are ever removed, so an
// operator's own addresses on the interface are never taken away.
func (h *Holder) Claim(addrs []netip.Addr) {
	h.ClaimPrefixes(hosts(addrs))
}

// ClaimPrefixes is Claim for addresses held with their prefix.
func (h *Holder) ClaimPrefixes(want []netip.Prefix) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range want {
		h.claimed[unmap(p)] = true
	}
}

// Set makes want the addresses this Holder holds: it adds the missing
// ones, then removes the ones it held, added or claimed that are no
// longer wanted. It is idempotent: it reads the interface's addresses
// (one dump) and sends only the difference, so a Set that changes nothing
// costs one round trip, and an address removed behind its back is put
// back. Each direction goes in netlink batches (one send of up to 128
// requests, one reply unless some fail), with one summary log line: a
// thousand VIPs cost eight round trips, not a thousand. Every address is
// tried; what failed is retried by the next Set.
func (h *Holder) Set(ctx context.Context, want []netip.Addr) error {
	return h.SetPrefixes(ctx, hosts(want))
}

// SetPrefixes is Set for addresses held with their prefix length
// (10.0.1.1/24 also routes 10.0.1.0/24 on the interface).
func (h *Holder) SetPrefixes(ctx context.Context, want []netip.Prefix) error {
	start := time.Now()
	h.mu.Lock()
	wantSet := make(map[netip.Prefix]bool, len(want))
	for _, p := range want {
		wantSet[unmap(p)] = true
	}
	var drop []netip.Prefix
	for a := range h.added {
		if !wantSet[a] {
			drop = append(drop, a)
		}
	}
	for a := range h.claimed {
		if !wantSet[a] && !h.added[a] {
			drop = append(drop, a)
		}
	}
	h.mu.Unlock()
	add := make([]netip.Prefix, 0, len(wantSet))
	for a := range wantSet {
		add = append(add, a)
	}
	slices.SortFunc(add, comparePrefix)
	slices.SortFunc(drop, comparePrefix)

	s, index, present, err := h.socket(ctx)
	if err != nil {
		return fmt.Errorf("set addresses on %s: %w", h.iface, err)
	}
	defer s.Close()
	// What is there already is not sent: a wanted one is ours (as an add
	// failing with EEXIST would make it), one to drop that is gone is
	// forgotten (as EADDRNOTAVAIL would). Adds of a thousand VIPs that
	// are all there cost the kernel more than one dump of them.
	held := len(add)
	h.mu.Lock()
	add = slices.DeleteFunc(add, func(a netip.Prefix) bool {
		if present[a] {
			h.added[a] = true
		}
		return present[a]
	})
	drop = slices.DeleteFunc(drop, func(a netip.Prefix) bool {
		if !present[a] {
			delete(h.added, a)
			delete(h.claimed, a)
		}
		return !present[a]
	})
	h.mu.Unlock()
	var errs *multierror.Error
	addErrs := batch(s, unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, index, add)
	n := 0
	h.mu.Lock()
	for i, a := range add {
		switch err := addErrs[i]; {
		case err == nil:
			h.added[a] = true
			n++
		case errors.Is(err, unix.EEXIST):
			h.added[a] = true // ours now: it is wanted
		default:
			errs = multierror.Append(errs, fmt.Errorf("add %s to %s: %w", a, h.iface, err))
		}
	}
	h.mu.Unlock()
	delErrs := batch(s, unix.RTM_DELADDR, 0, index, drop)
	m := 0
	h.mu.Lock()
	for i, a := range drop {
		err := delErrs[i]
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
			errs = multierror.Append(errs, fmt.Errorf("remove %s from %s: %w", a, h.iface, err))
			continue
		}
		delete(h.added, a)
		delete(h.claimed, a)
		if err == nil {
			m++
		}
	}
	h.mu.Unlock()
	if n > 0 || m > 0 {
		h.log.Info("addresses set", "interface", h.iface, "added", n, "removed", m, "held", held, "took", time.Since(start))
	}
	return errs.ErrorOrNil()
}

// hosts turns addresses into host prefixes (/32, /128).
func hosts(addrs []netip.Addr) []netip.Prefix {
	out := make([]netip.Prefix, len(addrs))
	for i, a := range addrs {
		a = a.Unmap()
		out[i] = netip.PrefixFrom(a, a.BitLen())
	}
	return out
}

// unmap keeps the address's host bits (10.0.1.1/24 stays itself).
func unmap(p netip.Prefix) netip.Prefix {
	a := p.Addr()
	if !a.Is4In6() {
		return p
	}
	return netip.PrefixFrom(a.Unmap(), max(p.Bits()-96, 0))
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// socket opens a route netlink socket in the Holder's namespace with the
// call's deadline as its timeouts, finds the interface's index, and reads
// the addresses on it, each with its prefix length.
func (h *Holder) socket(ctx context.Context) (*nl.NetlinkSocket, int, map[netip.Prefix]bool, error) {
	nh, link, err := h.handle(ctx)
	if err != nil {
		return nil, 0, nil, err
	}
	index := link.Attrs().Index
	as, err := nh.AddrList(link, netlink.FAMILY_ALL)
	nh.Close()
	if err != nil {
		return nil, 0, nil, fmt.Errorf("addresses of %s: %w", h.iface, err)
	}
	present := make(map[netip.Prefix]bool, len(as))
	for _, a := range as {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		ones, _ := a.Mask.Size()
		present[netip.PrefixFrom(ip, ones)] = true
	}
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	ns := netns.None()
	if h.NetnsPath != "" {
		ns, err = netns.GetFromPath(h.NetnsPath)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("netns %s: %w", h.NetnsPath, err)
		}
		defer ns.Close()
	}
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("netlink: %w", err)
	}
	tv := unix.NsecToTimeval(max(timeout, time.Millisecond).Nanoseconds())
	err = s.SetSendTimeout(&tv)
	if err == nil {
		err = s.SetReceiveTimeout(&tv)
	}
	if err != nil {
		s.Close()
		return nil, 0, nil, fmt.Errorf("netlink: %w", err)
	}
	return s, index, present, nil
}

// window is how many requests batch sends at once: the error replies of
// a whole window that fails (a restart finds every VIP there already)
// must fit in the socket's receive buffer.
const window = 128

// batch sends the address requests in windows and returns each one's
// outcome.
func batch(s *nl.NetlinkSocket, typ, flags int, index int, addrs []netip.Prefix) []error {
	errs := make([]error, len(addrs))
	for lo := 0; lo < len(addrs); lo += window {
		hi := min(lo+window, len(addrs))
		sendWindow(s, typ, flags, index, addrs[lo:hi], errs[lo:hi])
	}
	return errs
}

// sendWindow sends a window's requests in one sendmsg (the kernel handles
// every message of it in order, and goes on after a failed one). Only the
// last asks for an ACK: the kernel answers the others only when they fail,
// so success costs no reply, and the last one's reply closes the window.
// Per address, a reply each cost a receive (and a 64 KiB buffer) each.
func sendWindow(s *nl.NetlinkSocket, typ, flags int, index int, addrs []netip.Prefix, errs []error) {
	if len(addrs) == 0 {
		return
	}
	var buf []byte
	seqs := make(map[uint32]int, len(addrs))
	var last uint32
	for i, p := range addrs {
		a := p.Addr()
		f := flags
		if i == len(addrs)-1 {
			f |= unix.NLM_F_ACK
		}
		req := nl.NewNetlinkRequest(typ, f)
		fam := nl.FAMILY_V4
		if a.Is6() {
			fam = nl.FAMILY_V6
		}
		msg := nl.NewIfAddrmsg(fam)
		msg.Index = uint32(index)
		msg.Prefixlen = uint8(p.Bits())
		req.AddData(msg)
		ip := a.AsSlice()
		req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, ip))
		req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, ip))
		if a.Is6() {
			// Usable at once instead of "tentative" for a second.
			req.AddData(nl.NewRtAttr(unix.IFA_FLAGS, nl.Uint32Attr(unix.IFA_F_NODAD)))
		}
		buf = append(buf, req.Serialize()...)
		seqs[req.Seq] = i
		last = req.Seq
	}
	if err := sendAll(s, buf); err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("send: %w", err)
		}
		return
	}
	for {
		msgs, _, err := s.Receive()
		if err != nil {
			// What no reply was read for is unknown: the next Set retries.
			for _, i := range seqs {
				errs[i] = fmt.Errorf("no reply: %w", err)
			}
			return
		}
		for _, m := range msgs {
			i, ok := seqs[m.Header.Seq]
			if !ok || m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4 {
				continue
			}
			delete(seqs, m.Header.Seq)
			if code := int32(nl.NativeEndian().Uint32(m.Data[:4])); code != 0 {
				errs[i] = syscall.Errno(-code)
			}
			if m.Header.Seq == last {
				return // the kernel handled the others before it
			}
		}
	}
}

// sendAll sends buf, several requests, in one sendmsg to the kernel. The
// socket is non-blocking, but a send to the kernel is handled within the
// call and never waits for room.
func sendAll(s *nl.NetlinkSocket, buf []byte) error {
	for {
		err := unix.Sendto(s.GetFd(), buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if err != unix.EINTR {
			return err
		}
	}
}
