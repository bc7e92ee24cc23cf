package director

import (
	"context"
	"net/netip"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/vip"
	"github.com/golvs/golvs/director/vrrp"
	"github.com/hashicorp/go-multierror"
)

// extraFor returns the announcer of iface's failover addresses, made on
// first use and kept: an interface the file no longer names still gets
// the Set that takes its addresses off. Call with holdMu held (or before
// anything runs).
func (rt *Runtime) extraFor(iface string) PrefixAnnouncer {
	if a, ok := rt.extra[iface]; ok {
		return a
	}
	if rt.extra == nil {
		rt.extra = map[string]PrefixAnnouncer{}
	}
	var a PrefixAnnouncer
	if rt.ExtraAnnouncer != nil {
		a = rt.ExtraAnnouncer(iface)
	} else {
		h := vip.New(iface, rt.Log.With("part", "failover-address", "interface", iface))
		h.NetnsPath = rt.NetnsPath
		a = h
	}
	rt.extra[iface] = a
	return a
}

// claimExtra marks the file's failover addresses as possibly a previous
// run's, like the VIPs: ours to remove while this director is not master.
func (rt *Runtime) claimExtra(topo *config.Topology) {
	rt.holdMu.Lock()
	defer rt.holdMu.Unlock()
	rt.heldOK = false // claimed addresses may have to go: apply in full
	for iface, ps := range byInterface(FailoverAddresses(topo)) {
		rt.extraFor(iface).ClaimPrefixes(ps)
	}
}

// setExtra applies the decision's failover addresses: every interface
// that has or had some gets its whole wanted set. Call with holdMu held.
func (rt *Runtime) setExtra(ctx context.Context, want []config.FailoverAddress) error {
	by := byInterface(want)
	for iface := range by {
		rt.extraFor(iface)
	}
	var errs *multierror.Error
	for iface, a := range rt.extra {
		if err := a.SetPrefixes(ctx, by[iface]); err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	return errs.ErrorOrNil()
}

func byInterface(addrs []config.FailoverAddress) map[string][]netip.Prefix {
	out := map[string][]netip.Prefix{}
	for _, a := range addrs {
		out[a.Interface] = append(out[a.Interface], a.Prefix)
	}
	return out
}

// vrrpExtra is what VRRP announces besides the VIPs on becoming master.
func vrrpExtra(topo *config.Topology) []vrrp.ExtraAddress {
	var out []vrrp.ExtraAddress
	for _, a := range FailoverAddresses(topo) {
		out = append(out, vrrp.ExtraAddress{Interface: a.Interface, Addr: a.Prefix.Addr()})
	}
	return out
}
