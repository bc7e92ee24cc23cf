// Package realserver prepares a real-server host for LVS direct routing (dr)
// and IP-in-IP tunnelling (tun): the VIP on lo or on the tunnel device, the
// ARP and rp_filter sysctls, and an exact restore of what it changed. It also
// serves the agent endpoint that the director's "agent" check reads.
//
// The work is split the usual way: Desired is computed from the topology
// (pure), Plan diffs it against a HostState snapshot (pure), and Kernel
// applies the ops, recording each change in a Journal so it can be undone.
package realserver

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/golvs/golvs/config"
)

// Errors the planner reports; all mean "change nothing and exit 1".
var (
	ErrNoLocalBackend = errors.New("no dr or tun service has a backend on this host")
	ErrVIPElsewhere   = errors.New("VIP is already on another interface")
	ErrBadMode        = errors.New("unknown forwarding mode (want dr or tun)")
	ErrUnsupported    = errors.New("not supported")
	ErrNotTunnel      = errors.New("tunnel interface exists but is not an ipip device")
)

// Loopback is where dr VIPs live.
const Loopback = "lo"

// Assign is one VIP that must be on one device.
type Assign struct {
	Dev      string
	Prefix   netip.Prefix // /32 or /128
	Services []string     // for messages
}

// LinkWant is a device that must exist and be up.
type LinkWant struct {
	Name   string
	Tunnel bool // an ipip device we may create when it is missing
}

// Desired is the host state the agent maintains.
type Desired struct {
	Links   []LinkWant
	Addrs   []Assign
	Sysctls []Sysctl
}

// HostAddr is one address on one device, as the kernel reports it.
type HostAddr struct {
	Dev    string
	Prefix netip.Prefix
}

// LinkState is what the planner needs to know about a device.
type LinkState struct {
	Up   bool
	Kind string // "ipip", "device", "veth", ... as netlink reports it
}

// HostState is a snapshot of the parts of the host the agent manages.
type HostState struct {
	Links   map[string]LinkState
	Addrs   []HostAddr
	Sysctls map[string]string // path -> value; absent = file does not exist
}

// LocalAddrs lists every address on every device (the input to FromTopology).
func (h HostState) LocalAddrs() []netip.Addr {
	out := make([]netip.Addr, 0, len(h.Addrs))
	for _, a := range h.Addrs {
		out = append(out, a.Prefix.Addr())
	}
	return out
}

// VIP is one address this host serves, and how it arrives.
type VIP struct {
	Addr     netip.Addr
	Mode     config.Forwarding // DR or TUN
	Services []string
	// Backend is this host's backend address; it decides the tunnel
	// family for tun.
	Backend netip.Addr
}

// LocalVIPs finds the dr and tun services that have one of local as a
// backend. Firewall-mark services name no VIP and are returned in skipped.
func LocalVIPs(topo *config.Topology, local []netip.Addr) (vips []VIP, skipped []string) {
	mine := make(map[netip.Addr]bool, len(local))
	for _, a := range local {
		mine[a.Unmap()] = true
	}
	type key struct {
		addr netip.Addr
		mode config.Forwarding
	}
	idx := map[key]int{}
	for _, svc := range topo.Services {
		for _, be := range svc.Backends {
			mode := be.Forwarding
			if mode == "" {
				mode = svc.Forwarding
			}
			if (mode != config.DR && mode != config.TUN) || !mine[be.Address.Unmap()] {
				continue
			}
			if svc.FWMark != 0 {
				skipped = append(skipped, svc.Name)
				break
			}
			k := key{svc.Address.Unmap(), mode}
			if i, ok := idx[k]; ok {
				if !slices.Contains(vips[i].Services, svc.Name) {
					vips[i].Services = append(vips[i].Services, svc.Name)
				}
				continue
			}
			idx[k] = len(vips)
			vips = append(vips, VIP{Addr: k.addr, Mode: mode, Services: []string{svc.Name}, Backend: be.Address.Unmap()})
		}
	}
	return vips, skipped
}

// ParseMode turns the --mode flag into a forwarding method.
func ParseMode(s string) (config.Forwarding, error) {
	switch m := config.Forwarding(s); m {
	case config.DR, config.TUN:
		return m, nil
	}
	return "", fmt.Errorf("mode %q: %w", s, ErrBadMode)
}

// Build turns the VIPs into the desired host state. tunnelDev is the
// [realserver] tunnel_interface.
func Build(vips []VIP, tunnelDev string) (Desired, error) {
	if len(vips) == 0 {
		return Desired{}, ErrNoLocalBackend
	}
	var d Desired
	var anyV4, anyTun bool
	for _, v := range vips {
		dev := Loopback
		switch v.Mode {
		case config.DR:
		case config.TUN:
			// IPIP (tunl0) carries IPv4 in IPv4 only. IPv6 VIPs, or an
			// IPv4 VIP reached through an IPv6 backend address, need an
			// ip6tnl device and the ip6_tunnel module; not supported yet.
			if v.Addr.Is6() {
				return Desired{}, fmt.Errorf("VIP %s (service %s): tun with an IPv6 VIP needs ip6tnl: %w",
					v.Addr, strings.Join(v.Services, ", "), ErrUnsupported)
			}
			if v.Backend.IsValid() && v.Backend.Is6() {
				return Desired{}, fmt.Errorf("VIP %s (service %s): tun to an IPv6 backend address needs ip6tnl: %w",
					v.Addr, strings.Join(v.Services, ", "), ErrUnsupported)
			}
			anyTun = true
			dev = tunnelDev
		default:
			return Desired{}, fmt.Errorf("VIP %s: mode %q: %w", v.Addr, v.Mode, ErrBadMode)
		}
		if v.Addr.Is4() {
			anyV4 = true
		}
		d.Addrs = append(d.Addrs, Assign{Dev: dev, Prefix: netip.PrefixFrom(v.Addr, v.Addr.BitLen()), Services: v.Services})
	}
	// lo is not managed: it is up on every working host, and bringing it
	// up has side effects (127.0.0.1, ::1) that setting it down again does
	// not undo, so no exact restore would be possible.
	if anyTun {
		d.Links = append(d.Links, LinkWant{Name: tunnelDev, Tunnel: true})
	}
	d.Sysctls = Sysctls(anyV4, anyTun, tunnelDev)
	return d, nil
}

// OpKind names one change to the host.
type OpKind int

const (
	OpCreateTunnel OpKind = iota + 1
	OpLinkUp
	OpAddAddr
	OpSetSysctl
	// Undo of changes that are no longer wanted (after a reload).
	OpUndo
)

// Op is one change Plan asks for.
type Op struct {
	Kind   OpKind
	Dev    string
	Prefix netip.Prefix
	Sysctl Sysctl
	Old    string // current sysctl value; "" when the file is not there yet
	Undo   Change // OpUndo
}

func (o Op) String() string {
	switch o.Kind {
	case OpCreateTunnel:
		return fmt.Sprintf("create ipip device %s (loads the ipip module)", o.Dev)
	case OpLinkUp:
		return fmt.Sprintf("set link %s up", o.Dev)
	case OpAddAddr:
		return fmt.Sprintf("add address %s to %s", o.Prefix, o.Dev)
	case OpSetSysctl:
		old := o.Old
		if old == "" {
			old = "?"
		}
		return fmt.Sprintf("set %s = %s (now %s)", o.Sysctl.Name(), o.Sysctl.Value, old)
	case OpUndo:
		return "undo: " + o.Undo.String()
	}
	return fmt.Sprintf("op(%d)", int(o.Kind))
}

// Plan lists the ops that bring actual to desired, in the order they must
// run: devices, then addresses, then sysctls (a device's sysctl directory
// exists only once the device does). owned is what this agent changed
// earlier (its journal): owned changes that desired no longer asks for are
// undone first. Plan fails, asking for nothing, when a VIP sits on a device
// other than lo or the tunnel, or the tunnel name belongs to another kind
// of device.
func Plan(desired Desired, actual HostState, owned []Change) ([]Op, error) {
	var errs []error
	ours := map[string]bool{Loopback: true}
	for _, l := range desired.Links {
		ours[l.Name] = true
		if st, ok := actual.Links[l.Name]; ok && l.Tunnel && st.Kind != "ipip" {
			errs = append(errs, fmt.Errorf("%s is a %q device: %w", l.Name, st.Kind, ErrNotTunnel))
		}
	}
	for _, a := range desired.Addrs {
		for _, h := range actual.Addrs {
			if h.Prefix.Addr() == a.Prefix.Addr() && !ours[h.Dev] {
				errs = append(errs, fmt.Errorf("VIP %s (service %s) is on %s: %w",
					a.Prefix.Addr(), strings.Join(a.Services, ", "), h.Dev, ErrVIPElsewhere))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	var ops []Op
	// Undo, newest first, what we own but no longer want.
	for i := len(owned) - 1; i >= 0; i-- {
		if c := owned[i]; !desired.wants(c) {
			ops = append(ops, Op{Kind: OpUndo, Undo: c})
		}
	}
	for _, l := range desired.Links {
		st, ok := actual.Links[l.Name]
		if !ok && l.Tunnel {
			ops = append(ops, Op{Kind: OpCreateTunnel, Dev: l.Name})
		}
		if !st.Up {
			ops = append(ops, Op{Kind: OpLinkUp, Dev: l.Name})
		}
	}
	for _, a := range desired.Addrs {
		present := slices.ContainsFunc(actual.Addrs, func(h HostAddr) bool {
			return h.Dev == a.Dev && h.Prefix.Addr() == a.Prefix.Addr()
		})
		if !present {
			ops = append(ops, Op{Kind: OpAddAddr, Dev: a.Dev, Prefix: a.Prefix})
		}
	}
	for _, s := range desired.Sysctls {
		cur, ok := actual.Sysctls[s.Path]
		if !ok || cur != s.Value {
			ops = append(ops, Op{Kind: OpSetSysctl, Sysctl: s, Old: cur})
		}
	}
	return ops, nil
}

// wants reports whether the owned change c is still part of d.
func (d Desired) wants(c Change) bool {
	switch c.Kind {
	case ChangeAddr:
		return slices.ContainsFunc(d.Addrs, func(a Assign) bool { return a.Dev == c.Dev && a.Prefix == c.Prefix })
	case ChangeLinkUp, ChangeTunnelCreated:
		return slices.ContainsFunc(d.Links, func(l LinkWant) bool { return l.Name == c.Dev })
	case ChangeSysctl:
		return slices.ContainsFunc(d.Sysctls, func(s Sysctl) bool { return s.Path == c.Path })
	}
	return false
}
