// Package vip puts the virtual service addresses on the director's
// interface (as /32 or /128) and takes them off again. Without failover the
// director holds them always; with failover the VRRP state machine calls
// Hold on becoming master and Release on leaving it.
package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DefaultTimeout bounds one Hold or Release when ctx has no earlier
// deadline.
const DefaultTimeout = 5 * time.Second

// Holder adds and removes VIPs on one interface. It removes only addresses
// it added itself or that are VIPs of the topology (SetVIPs), so an
// operator's own addresses on the interface are never taken away. Build it
// with New; it opens a netlink socket per call, none in between.
type Holder struct {
	iface string
	log   *slog.Logger

	// NetnsPath, when set, is the network namespace (e.g.
	// /var/run/netns/NAME) whose interface is managed; "" = our own.
	NetnsPath string
	// Timeout bounds each call; 0 = DefaultTimeout.
	Timeout time.Duration

	mu    sync.Mutex
	vips  map[netip.Addr]bool // from the topology file
	added map[netip.Addr]bool // put there by this Holder
}

// New returns a Holder for the named interface.
func New(iface string, log *slog.Logger) *Holder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Holder{iface: iface, log: log, vips: map[netip.Addr]bool{}, added: map[netip.Addr]bool{}}
}

// SetVIPs records the topology's VIPs: they may be released even when this
// process did not add them (a restarted director, a peer's takeover).
func (h *Holder) SetVIPs(addrs []netip.Addr) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.vips = make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		h.vips[a.Unmap()] = true
	}
}

// Added returns the addresses this Holder put on the interface, sorted.
func (h *Holder) Added() []netip.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]netip.Addr, 0, len(h.added))
	for a := range h.added {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// handle opens a netlink handle in the right namespace with socket
// timeouts set to the call's deadline, and finds the interface.
func (h *Holder) handle(ctx context.Context) (*netlink.Handle, netlink.Link, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout < time.Millisecond {
		return nil, nil, context.DeadlineExceeded
	}
	ns := netns.None()
	if h.NetnsPath != "" {
		var err error
		ns, err = netns.GetFromPath(h.NetnsPath)
		if err != nil {
			return nil, nil, fmt.Errorf("netns %s: %w", h.NetnsPath, err)
		}
		defer ns.Close()
	}
	nh, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, nil, fmt.Errorf("netlink: %w", err)
	}
	if err := nh.SetSocketTimeout(timeout); err != nil {
		nh.Close()
		return nil, nil, fmt.Errorf("netlink: %w", err)
	}
	link, err := nh.LinkByName(h.iface)
	if err != nil {
		nh.Close()
		return nil, nil, fmt.Errorf("interface %q: %w", h.iface, err)
	}
	return nh, link, nil
}

// nlAddr is a VIP as a host address; IPv6 without duplicate address
// detection, so it is usable at once instead of "tentative" for a second.
func nlAddr(a netip.Addr) *netlink.Addr {
	a = a.Unmap()
	bits := a.BitLen()
	na := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(bits, bits)}}
	if a.Is6() {
		na.Flags = unix.IFA_F_NODAD
	}
	return na
}

// Hold puts every address on the interface. Addresses already there are
// left as they are. It is idempotent; every address is tried.
func (h *Holder) Hold(ctx context.Context, addrs []netip.Addr) error {
	nh, link, err := h.handle(ctx)
	if err != nil {
		return fmt.Errorf("hold VIPs: %w", err)
	}
	defer nh.Close()
	var errs *multierror.Error
	for _, a := range addrs {
		a = a.Unmap()
		err := nh.AddrAdd(link, nlAddr(a))
		switch {
		case errors.Is(err, unix.EEXIST):
			continue
		case err != nil:
			errs = multierror.Append(errs, fmt.Errorf("add %s to %s: %w", a, h.iface, err))
			continue
		}
		h.mu.Lock()
		h.added[a] = true
		h.mu.Unlock()
		h.log.Info("VIP added", "address", a, "interface", h.iface)
	}
	return errs.ErrorOrNil()
}

// Release takes addresses off the interface, but only those this Holder
// added or that are VIPs of the topology; others are skipped. Addresses
// already gone are fine.
func (h *Holder) Release(ctx context.Context, addrs []netip.Addr) error {
	nh, link, err := h.handle(ctx)
	if err != nil {
		return fmt.Errorf("release VIPs: %w", err)
	}
	defer nh.Close()
	var errs *multierror.Error
	for _, a := range addrs {
		a = a.Unmap()
		h.mu.Lock()
		mine := h.added[a] || h.vips[a]
		h.mu.Unlock()
		if !mine {
			h.log.Warn("not releasing an address that is not ours", "address", a, "interface", h.iface)
			continue
		}
		err := nh.AddrDel(link, nlAddr(a))
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
			errs = multierror.Append(errs, fmt.Errorf("remove %s from %s: %w", a, h.iface, err))
			continue
		}
		h.mu.Lock()
		delete(h.added, a)
		h.mu.Unlock()
		if err == nil {
			h.log.Info("VIP removed", "address", a, "interface", h.iface)
		}
	}
	return errs.ErrorOrNil()
}
