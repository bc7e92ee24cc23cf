// Package vip puts the virtual service addresses on the director's
// interface (as /32 or /128) and takes them off again: the announcer for
// VIPs held by this host (always, or while VRRP master). The same Holder,
// one per interface, holds the other addresses that follow the master
// with their prefix ([[failover.address]], e.g. a NAT pair's gateway as
// 10.0.1.1/24), through SetPrefixes. The director decides which addresses
// to hold (director.Announce); Set and SetPrefixes apply that whole set.
package vip

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DefaultTimeout bounds one Hold or Release when ctx has no earlier
// deadline.
const DefaultTimeout = 5 * time.Second

// Holder adds and removes VIPs on one interface. It removes only addresses
// it added itself or was told may be its own (Claim), so an operator's
// own addresses on the interface are never taken away. Build it with New;
// it opens a netlink socket per call, none in between.
type Holder struct {
	iface string
	log   *slog.Logger

	// NetnsPath, when set, is the network namespace (e.g.
	// /var/run/netns/NAME) whose interface is managed; "" = our own.
	NetnsPath string
	// Timeout bounds each call; 0 = DefaultTimeout.
	Timeout time.Duration

	mu      sync.Mutex
	added   map[netip.Prefix]bool // put there (or found there, wanted) by this Holder
	claimed map[netip.Prefix]bool // may be there from before (Claim)
}

// New returns a Holder for the named interface.
func New(iface string, log *slog.Logger) *Holder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Holder{iface: iface, log: log, added: map[netip.Prefix]bool{}, claimed: map[netip.Prefix]bool{}}
}

// Added returns the addresses this Holder put on the interface, sorted.
func (h *Holder) Added() []netip.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]netip.Addr, 0, len(h.added))
	for p := range h.added {
		out = append(out, p.Addr())
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
