package bgp

import (
	"context"
	"net/netip"
	"slices"
	"sync"

	"github.com/hashicorp/go-multierror"
)

// Device holds addresses on the local device (vip_interface) so the
// kernel accepts the VIPs' traffic; *vip.Holder on "lo" is one. Set
// makes its argument the whole set held.
type Device interface {
	Set(ctx context.Context, want []netip.Addr) error
}

// Routes announces host routes; *Speaker is one.
type Routes interface {
	Set(ctx context.Context, want []netip.Addr) error
	WithdrawAll(ctx context.Context) error
}

// Announcer is the BGP announcer the director drives: a VIP is put on the
// device before its route is announced (so the first packet the router
// sends is accepted), and taken off only after its route is withdrawn.
type Announcer struct {
	Device Device
	Routes Routes

	mu   sync.Mutex
	held []netip.Addr // on the device because of an earlier Set
}

// Set makes want the announced set: hold, announce, withdraw, release.
// It is idempotent; every step is tried, the errors are joined.
func (a *Announcer) Set(ctx context.Context, want []netip.Addr) error {
	return a.SetRoutes(ctx, want, want)
}

// SetRoutes holds want on the device and announces the routes of those
// of them in routes: a drained director (drain-self) withdraws its routes
// yet keeps the VIPs, and so goes on forwarding the flows the routers
// still send while they converge, and those of ECMP groups elsewhere.
func (a *Announcer) SetRoutes(ctx context.Context, want, routes []netip.Addr) error {
	want = normalize(want)
	var errs *multierror.Error
	a.mu.Lock()
	prev := a.held
	a.mu.Unlock()
	held := want
	// First the new VIPs on the device, the old ones kept until their
	// routes are withdrawn.
	if err := a.Device.Set(ctx, union(want, prev)); err != nil {
		errs = multierror.Append(errs, err)
		// A VIP that may not be on the device is not announced: its
		// traffic would be dropped (or routed back) here. Those already
		// held stay; the next Set retries the rest.
		held = intersect(want, prev)
	}
	announce := intersect(held, normalize(routes))
	errs = multierror.Append(errs, a.Routes.Set(ctx, announce))
	var gone []netip.Addr
	for _, h := range prev {
		if !contains(want, h) {
			gone = append(gone, h)
		}
	}
	a.mu.Lock()
	a.held = held
	a.mu.Unlock()
	if len(gone) > 0 {
		if err := a.Device.Set(ctx, want); err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	return errs.ErrorOrNil()
}

// Leave withdraws every route and leaves the VIPs on the device, so that
// flows the routers still send during their convergence keep being
// forwarded until the director stops.
func (a *Announcer) Leave(ctx context.Context) error {
	return a.Routes.WithdrawAll(ctx)
}

// contains reports whether the sorted set s holds a.
func contains(s []netip.Addr, a netip.Addr) bool {
	_, found := slices.BinarySearchFunc(s, a, netip.Addr.Compare)
	return found
}

func intersect(a, b []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, x := range a {
		if contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// union is the sorted union of two sorted sets.
func union(a, b []netip.Addr) []netip.Addr {
	out := slices.Clone(a)
	for _, x := range b {
		if !contains(a, x) {
			out = append(out, x)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
