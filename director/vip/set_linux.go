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
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range addrs {
		h.claimed[a.Unmap()] = true
	}
}

// Set makes want the addresses this Holder holds: it adds the missing
// ones, then removes the ones it held, added or claimed that are no
// longer wanted. It is idempotent and applies each direction as one
// netlink batch (one send, then the acks), with one summary log line:
// a thousand VIPs cost one round trip, not a thousand. Every address is
// tried; what failed is retried by the next Set.
func (h *Holder) Set(ctx context.Context, want []netip.Addr) error {
	h.mu.Lock()
	wantSet := make(map[netip.Addr]bool, len(want))
	for _, a := range want {
		wantSet[a.Unmap()] = true
	}
	var drop []netip.Addr
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
	add := make([]netip.Addr, 0, len(wantSet))
	for a := range wantSet {
		add = append(add, a)
	}
	slices.SortFunc(add, netip.Addr.Compare)
	slices.SortFunc(drop, netip.Addr.Compare)

	s, index, err := h.socket(ctx)
	if err != nil {
		return fmt.Errorf("set VIPs: %w", err)
	}
	defer s.Close()
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
		h.log.Info("VIPs set", "interface", h.iface, "added", n, "removed", m, "held", len(add))
	}
	return errs.ErrorOrNil()
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
func batch(s *nl.NetlinkSocket, typ, flags int, index int, addrs []netip.Addr) []error {
	errs := make([]error, len(addrs))
	for lo := 0; lo < len(addrs); lo += window {
		hi := min(lo+window, len(addrs))
		sendWindow(s, typ, flags, index, addrs[lo:hi], errs[lo:hi])
	}
	return errs
}

func sendWindow(s *nl.NetlinkSocket, typ, flags int, index int, addrs []netip.Addr, errs []error) {
	seqs := make(map[uint32]int, len(addrs))
	for i, a := range addrs {
		req := nl.NewNetlinkRequest(typ, flags|unix.NLM_F_ACK)
		fam := nl.FAMILY_V4
		if a.Is6() {
			fam = nl.FAMILY_V6
		}
		msg := nl.NewIfAddrmsg(fam)
		msg.Index = uint32(index)
		msg.Prefixlen = uint8(a.BitLen())
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
