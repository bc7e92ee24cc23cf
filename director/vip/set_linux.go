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

// Set makes want the addresses this Holder holds, each as a host address
// (/32 or /128): see SetPrefixes.
func (h *Holder) Set(ctx context.Context, want []netip.Addr) error {
	return h.SetPrefixes(ctx, hosts(want))
}

// SetPrefixes makes want the addresses this Holder holds, each with its
// prefix length (10.0.1.1/24 also routes 10.0.1.0/24 on the interface):
// it adds the missing ones, then removes the ones it held, added or
// claimed that are no longer wanted. It is idempotent and applies each
// direction as one netlink batch (one send, then the acks), with one
// summary log line: a thousand VIPs cost one round trip, not a thousand.
// Every address is tried; what failed is retried by the next call.
func (h *Holder) SetPrefixes(ctx context.Context, want []netip.Prefix) error {
	h.mu.Lock()
	wantSet := make(map[netip.Prefix]bool, len(want))
	for _, p := range want {
		wantSet[unmap(p)] = true
	}
	var drop []netip.Prefix
	for p := range h.added {
		if !wantSet[p] {
			drop = append(drop, p)
		}
	}
	for p := range h.claimed {
		if !wantSet[p] && !h.added[p] {
			drop = append(drop, p)
		}
	}
	h.mu.Unlock()
	add := make([]netip.Prefix, 0, len(wantSet))
	for p := range wantSet {
		add = append(add, p)
	}
	slices.SortFunc(add, comparePrefix)
	slices.SortFunc(drop, comparePrefix)

	s, index, err := h.socket(ctx)
	if err != nil {
		return fmt.Errorf("set addresses on %s: %w", h.iface, err)
	}
	defer s.Close()
	var errs *multierror.Error
	addErrs := batch(s, unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, index, add)
	n := 0
	h.mu.Lock()
	for i, p := range add {
		switch err := addErrs[i]; {
		case err == nil:
			h.added[p] = true
			n++
		case errors.Is(err, unix.EEXIST):
			h.added[p] = true // ours now: it is wanted
		default:
			errs = multierror.Append(errs, fmt.Errorf("add %s to %s: %w", p, h.iface, err))
		}
	}
	h.mu.Unlock()
	delErrs := batch(s, unix.RTM_DELADDR, 0, index, drop)
	m := 0
	h.mu.Lock()
	for i, p := range drop {
		err := delErrs[i]
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
			errs = multierror.Append(errs, fmt.Errorf("remove %s from %s: %w", p, h.iface, err))
			continue
		}
		delete(h.added, p)
		delete(h.claimed, p)
		if err == nil {
			m++
		}
	}
	h.mu.Unlock()
	if n > 0 || m > 0 {
		h.log.Info("addresses set", "interface", h.iface, "added", n, "removed", m, "held", len(add))
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
// call's deadline as its timeouts, and finds the interface's index.
func (h *Holder) socket(ctx context.Context) (*nl.NetlinkSocket, int, error) {
	nh, link, err := h.handle(ctx)
	if err != nil {
		return nil, 0, err
	}
	index := link.Attrs().Index
	nh.Close()
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
			return nil, 0, fmt.Errorf("netns %s: %w", h.NetnsPath, err)
		}
		defer ns.Close()
	}
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, 0, fmt.Errorf("netlink: %w", err)
	}
	tv := unix.NsecToTimeval(max(timeout, time.Millisecond).Nanoseconds())
	err = s.SetSendTimeout(&tv)
	if err == nil {
		err = s.SetReceiveTimeout(&tv)
	}
	if err != nil {
		s.Close()
		return nil, 0, fmt.Errorf("netlink: %w", err)
	}
	return s, index, nil
}

// window is how many requests batch sends before reading their acks: the
// acks of a larger window overflow the socket's receive buffer.
const window = 128

// batch sends the address requests in windows, each sent whole before
// its acks are read, and returns each one's outcome.
func batch(s *nl.NetlinkSocket, typ, flags int, index int, addrs []netip.Prefix) []error {
	errs := make([]error, len(addrs))
	for lo := 0; lo < len(addrs); lo += window {
		hi := min(lo+window, len(addrs))
		sendWindow(s, typ, flags, index, addrs[lo:hi], errs[lo:hi])
	}
	return errs
}

func sendWindow(s *nl.NetlinkSocket, typ, flags int, index int, addrs []netip.Prefix, errs []error) {
	seqs := make(map[uint32]int, len(addrs))
	for i, p := range addrs {
		a := p.Addr()
		req := nl.NewNetlinkRequest(typ, flags|unix.NLM_F_ACK)
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
		if err := s.Send(req); err != nil {
			for j := i; j < len(addrs); j++ {
				errs[j] = fmt.Errorf("send: %w", err)
			}
			break
		}
		seqs[req.Seq] = i
	}
	for len(seqs) > 0 {
		msgs, _, err := s.Receive()
		if err != nil {
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
		}
	}
}
