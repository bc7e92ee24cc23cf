package realserver

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
)

// fakeHost is a Host that keeps devices, addresses and sysctls in memory,
// answers like the kernel does (an address added twice is EEXIST, a
// sysctl of a missing device is ENOENT), records in the journal exactly
// what Kernel.Apply records, and logs every change it makes to the host.
type fakeHost struct {
	st      HostState
	changes []string // "add 192.0.2.10/32 lo", "del ...", "set PATH V", ...
}

var _ Host = (*fakeHost)(nil)

func newFakeHost(st HostState) *fakeHost { return &fakeHost{st: cloneState(st)} }

func cloneState(st HostState) HostState {
	return HostState{Links: maps.Clone(st.Links), Addrs: slices.Clone(st.Addrs), Sysctls: maps.Clone(st.Sysctls)}
}

func (f *fakeHost) Snapshot(ctx context.Context, paths []string) (HostState, error) {
	st := cloneState(f.st)
	st.Sysctls = map[string]string{}
	for _, p := range paths {
		if v, ok := f.st.Sysctls[p]; ok {
			st.Sysctls[p] = v
		}
	}
	return st, ctx.Err()
}

func (f *fakeHost) hasAddr(dev string, p netip.Prefix) bool {
	return slices.Contains(f.st.Addrs, HostAddr{Dev: dev, Prefix: p})
}

func (f *fakeHost) Apply(ctx context.Context, op Op, j *Journal) error {
	switch op.Kind {
	case OpCreateTunnel:
		if _, ok := f.st.Links[op.Dev]; ok {
			return nil
		}
		f.st.Links[op.Dev] = LinkState{Kind: "ipip"}
		for _, k := range sysctlKeys { // a new device has its conf directory
			f.st.Sysctls[conf(op.Dev, k)] = "0"
		}
		f.changes = append(f.changes, "create "+op.Dev)
		return j.Record(Change{Kind: ChangeTunnelCreated, Dev: op.Dev})
	case OpLinkUp:
		l, ok := f.st.Links[op.Dev]
		if !ok {
			return fmt.Errorf("link %s: %w", op.Dev, os.ErrNotExist)
		}
		if l.Up {
			return nil
		}
		if err := j.Record(Change{Kind: ChangeLinkUp, Dev: op.Dev}); err != nil {
			return err
		}
		l.Up = true
		f.st.Links[op.Dev] = l
		f.changes = append(f.changes, "up "+op.Dev)
		return nil
	case OpAddAddr:
		c := Change{Kind: ChangeAddr, Dev: op.Dev, Prefix: op.Prefix}
		recorded := j.Has(c)
		if err := j.Record(c); err != nil {
			return err
		}
		if f.hasAddr(op.Dev, op.Prefix) { // EEXIST
			if !recorded {
				return j.Forget(c)
			}
			return nil
		}
		f.st.Addrs = append(f.st.Addrs, HostAddr{Dev: op.Dev, Prefix: op.Prefix})
		f.changes = append(f.changes, fmt.Sprintf("add %s %s", op.Prefix, op.Dev))
		return nil
	case OpSetSysctl:
		s := op.Sysctl
		cur, ok := f.st.Sysctls[s.Path]
		if !ok {
			return fmt.Errorf("sysctl %s: %w", s.Path, os.ErrNotExist)
		}
		if cur == s.Value {
			return nil
		}
		if err := j.Record(Change{Kind: ChangeSysctl, Path: s.Path, Old: cur, New: s.Value}); err != nil {
			return err
		}
		f.setSysctl(s.Path, s.Value)
		return nil
	case OpUndo:
		if err := f.Undo(ctx, op.Undo); err != nil {
			return err
		}
		return j.Forget(op.Undo)
	}
	return fmt.Errorf("unknown op %d", op.Kind)
}

func (f *fakeHost) setSysctl(path, v string) {
	f.st.Sysctls[path] = v
	f.changes = append(f.changes, fmt.Sprintf("set %s %s", path, v))
}

func (f *fakeHost) Undo(_ context.Context, c Change) error {
	switch c.Kind {
	case ChangeSysctl:
		if _, ok := f.st.Sysctls[c.Path]; ok {
			f.setSysctl(c.Path, c.Old)
		}
	case ChangeAddr:
		if f.hasAddr(c.Dev, c.Prefix) {
			f.st.Addrs = slices.DeleteFunc(f.st.Addrs, func(h HostAddr) bool { return h == HostAddr{Dev: c.Dev, Prefix: c.Prefix} })
			f.changes = append(f.changes, fmt.Sprintf("del %s %s", c.Prefix, c.Dev))
		}
	case ChangeLinkUp:
		if l, ok := f.st.Links[c.Dev]; ok && l.Up {
			l.Up = false
			f.st.Links[c.Dev] = l
			f.changes = append(f.changes, "down "+c.Dev)
		}
	case ChangeTunnelCreated:
		if _, ok := f.st.Links[c.Dev]; ok {
			delete(f.st.Links, c.Dev)
			f.changes = append(f.changes, "delete "+c.Dev)
			for _, k := range sysctlKeys {
				delete(f.st.Sysctls, conf(c.Dev, k))
			}
		}
	default:
		return fmt.Errorf("unknown change kind %q", c.Kind)
	}
	return nil
}
