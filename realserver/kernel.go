package realserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrNoIPIP means the kernel could not make an ipip device: the module is
// missing (CONFIG_NET_IPIP) or cannot be loaded.
var ErrNoIPIP = errors.New("the kernel has no ipip support (module ipip, CONFIG_NET_IPIP)")

// DefaultNetlinkTimeout bounds every netlink request: a reply that never
// comes must not hang the agent.
const DefaultNetlinkTimeout = 5 * time.Second

// Kernel reads and changes the host through netlink and /proc/sys.
type Kernel struct {
	mu         sync.Mutex // netlink.Handle is not safe for concurrent use
	h          *netlink.Handle
	sysctlRoot string
}

// OpenKernel opens a netlink handle whose requests time out after timeout.
// Close it when done.
func OpenKernel(timeout time.Duration) (*Kernel, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	if err := h.SetSocketTimeout(timeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return &Kernel{h: h, sysctlRoot: "/proc/sys"}, nil
}

// Close releases the netlink handle.
func (k *Kernel) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.h.Close()
}

// Snapshot reads every device and address, and the sysctls at paths.
func (k *Kernel) Snapshot(ctx context.Context, paths []string) (HostState, error) {
	if err := ctx.Err(); err != nil {
		return HostState{}, err
	}
	links, addrs, err := k.dump()
	if err != nil {
		return HostState{}, fmt.Errorf("netlink dump: %w", err)
	}
	st := HostState{Links: map[string]LinkState{}, Sysctls: map[string]string{}}
	names := map[int]string{}
	for _, l := range links {
		a := l.Attrs()
		names[a.Index] = a.Name
		st.Links[a.Name] = LinkState{Up: a.Flags&net.FlagUp != 0, Kind: l.Type()}
	}
	for _, a := range addrs {
		p, ok := prefixOf(a.IPNet)
		if !ok {
			continue
		}
		st.Addrs = append(st.Addrs, HostAddr{Dev: names[a.LinkIndex], Prefix: p})
	}
	for _, p := range paths {
		v, err := k.readSysctl(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return HostState{}, err
		}
		st.Sysctls[p] = v
	}
	return st, nil
}

// dumpAttempts bounds the retries of an interrupted dump.
const dumpAttempts = 5

// dump lists links and addresses. The kernel flags a dump interrupted
// when the list changed while it was read (on a host just brought up, an
// IPv6 link-local address finishing DAD is enough); the answer may then
// be incomplete, so it is read again.
func (k *Kernel) dump() ([]netlink.Link, []netlink.Addr, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var err error
	for range dumpAttempts {
		var links []netlink.Link
		var addrs []netlink.Addr
		links, err = k.h.LinkList()
		if err == nil {
			addrs, err = k.h.AddrList(nil, netlink.FAMILY_ALL)
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return links, addrs, err
		}
	}
	return nil, nil, err
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

func (k *Kernel) readSysctl(path string) (string, error) {
	if err := checkSysctlPath(path); err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(k.sysctlRoot, path))
	if err != nil {
		return "", fmt.Errorf("sysctl: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// writeSysctl writes one of the agent's settings; any other path (a
// journal naming ../../tmp/x) is refused before anything is opened.
func (k *Kernel) writeSysctl(path, value string) error {
	if err := checkSysctlPath(path); err != nil {
		return err
	}
	if !sysctlValue(value) {
		return fmt.Errorf("sysctl %s: value %q is not an integer: %w", path, clipped(value), ErrBadRecord)
	}
	f, err := os.OpenFile(filepath.Join(k.sysctlRoot, path), os.O_WRONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("sysctl: %w", err)
	}
	_, werr := f.WriteString(value + "\n")
	if err := errors.Join(werr, f.Close()); err != nil {
		return fmt.Errorf("sysctl %s: %w", path, err)
	}
	return nil
}

// Apply carries out op and records in j what it changed, reading the
// state again at that moment so that only real changes are recorded.
func (k *Kernel) Apply(ctx context.Context, op Op, j *Journal) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch op.Kind {
	case OpCreateTunnel:
		return k.createTunnel(op.Dev, j)
	case OpLinkUp:
		return k.linkUp(op.Dev, j)
	case OpAddAddr:
		return k.addAddr(op.Dev, op.Prefix, j)
	case OpSetSysctl:
		return k.setSysctl(op.Sysctl, j)
	case OpUndo:
		if err := k.Undo(ctx, op.Undo); err != nil {
			return err
		}
		return j.Forget(op.Undo)
	}
	return fmt.Errorf("unknown op %d", op.Kind)
}

func (k *Kernel) createTunnel(dev string, j *Journal) error {
	k.mu.Lock()
	// Asking for kind "ipip" makes the kernel load the module itself
	// (request_module "rtnl-link-ipip"); loading it also creates the
	// fallback device tunl0, so EEXIST for tunl0 is success, not ours.
	err := k.h.LinkAdd(&netlink.Iptun{LinkAttrs: netlink.LinkAttrs{Name: dev}})
	var lerr error
	if errors.Is(err, unix.EEXIST) {
		_, lerr = k.h.LinkByName(dev)
	}
	k.mu.Unlock()
	switch {
	case errors.Is(err, unix.EEXIST) && lerr != nil:
		// The kernel allows one ipip device without local and remote
		// addresses per namespace, and the module's tunl0 is one.
		return fmt.Errorf("create %s: a catch-all ipip device (tunl0) already exists; "+
			"set [realserver] tunnel_interface to it: %w", dev, err)
	case errors.Is(err, unix.EEXIST):
		return nil
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOENT):
		return fmt.Errorf("create %s: %w: %w", dev, ErrNoIPIP, err)
	case err != nil:
		return fmt.Errorf("create %s: %w", dev, err)
	}
	// The marker a cleanup checks before deleting the device: the
	// kernel ignores an alias given with the creation itself. It is set
	// before the record, so every recorded device carries it.
	k.mu.Lock()
	l, err := k.h.LinkByName(dev)
	if err == nil {
		if err = k.h.LinkSetAlias(l, TunnelMarker); err != nil {
			k.h.LinkDel(l)
		}
	}
	k.mu.Unlock()
	if err != nil {
		return fmt.Errorf("mark %s as the agent's: %w", dev, err)
	}
	return j.Record(Change{Kind: ChangeTunnelCreated, Dev: dev})
}

func (k *Kernel) linkUp(dev string, j *Journal) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	l, err := k.h.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("link %s: %w", dev, err)
	}
	if l.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	// Record first: a crash between the two leaves a harmless extra undo.
	if err := j.Record(Change{Kind: ChangeLinkUp, Dev: dev}); err != nil {
		return err
	}
	if err := k.h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", dev, err)
	}
	return nil
}

func (k *Kernel) addAddr(dev string, p netip.Prefix, j *Journal) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	l, err := k.h.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("link %s: %w", dev, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		// No duplicate address detection: the VIP is meant to exist on
		// many hosts at once, and DAD would mark it tentative/dadfailed.
		addr.Flags = unix.IFA_F_NODAD
	}
	c := Change{Kind: ChangeAddr, Dev: dev, Prefix: p}
	// Record before adding: a crash in between leaves a record whose undo
	// finds nothing to delete, never an address nobody will remove.
	recorded := j.Has(c)
	if err := j.Record(c); err != nil {
		return err
	}
	err = k.h.AddrAdd(l, addr)
	if errors.Is(err, unix.EEXIST) {
		// Someone else put it there between snapshot and now: not ours.
		if !recorded {
			return j.Forget(c)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("add %s to %s: %w", p, dev, err)
	}
	return nil
}

func (k *Kernel) setSysctl(s Sysctl, j *Journal) error {
	cur, err := k.readSysctl(s.Path)
	if err != nil {
		return err
	}
	if cur == s.Value {
		return nil
	}
	if err := j.Record(Change{Kind: ChangeSysctl, Path: s.Path, Old: cur, New: s.Value}); err != nil {
		return err
	}
	return k.writeSysctl(s.Path, s.Value)
}

// Undo reverses one recorded change. Something already gone (the address,
// the device) counts as undone. A record the agent could not have written,
// or one that names a device it does not manage (see journalcheck.go), is
// refused with nothing changed.
func (k *Kernel) Undo(ctx context.Context, c Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	switch c.Kind {
	case ChangeSysctl:
		err := k.writeSysctl(c.Path, c.Old)
		if errors.Is(err, os.ErrNotExist) {
			return nil // the device went away
		}
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	l, err := k.h.LinkByName(c.Dev)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("link %s: %w", c.Dev, err)
	}
	if err := undoable(c, l); err != nil {
		return err
	}
	switch c.Kind {
	case ChangeAddr:
		p := c.Prefix
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		err := k.h.AddrDel(l, addr)
		if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("remove %s from %s: %w", p, c.Dev, err)
		}
	case ChangeLinkUp:
		if err := k.h.LinkSetDown(l); err != nil {
			return fmt.Errorf("set %s down: %w", c.Dev, err)
		}
	case ChangeTunnelCreated:
		if err := k.h.LinkDel(l); err != nil {
			return fmt.Errorf("delete %s: %w", c.Dev, err)
		}
	default:
		return fmt.Errorf("unknown change kind %q", c.Kind)
	}
	return nil
}

// undoable checks the device of c as it is now: only lo and ipip devices
// are the agent's to change, and only a device with its marker to delete.
func undoable(c Change, l netlink.Link) error {
	kind, alias := l.Type(), l.Attrs().Alias
	switch {
	case c.Kind == ChangeAddr && c.Dev == Loopback:
		return nil
	case kind != "ipip":
		return fmt.Errorf("%s: %s is a %q device, not an ipip tunnel: %w", c, c.Dev, kind, ErrNotOurs)
	case c.Kind == ChangeTunnelCreated && alias != TunnelMarker:
		return fmt.Errorf("%s: %s lacks the agent's marker (alias %q); delete it by hand if it is a leftover: %w",
			c, c.Dev, TunnelMarker, ErrNotOurs)
	}
	return nil
}

// Restore undoes every change in j, newest first, forgetting each one
// that was undone. It tries them all and returns every failure.
func Restore(ctx context.Context, k Host, j *Journal) error {
	var errs []error
	cs := j.Changes()
	for i := len(cs) - 1; i >= 0; i-- {
		if err := k.Undo(ctx, cs[i]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", cs[i], err))
			continue
		}
		if err := j.Forget(cs[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Subscribe sends a kick on every address change until ctx ends. The kicks
// are coalesced: kick has room for one.
func Subscribe(ctx context.Context, kick chan<- struct{}, onErr func(error)) error {
	ch := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	if err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{ErrorCallback: onErr}); err != nil {
		return fmt.Errorf("netlink subscribe: %w", err)
	}
	go func() {
		<-ctx.Done()
		close(done)
	}()
	for range ch {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	// The channel closes when the socket is closed (ctx done) or fails.
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("netlink subscription ended")
}
