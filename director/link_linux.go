package director

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// runLinks watches the interfaces the director holds addresses on (see
// link.go) and tells linkChanged when one goes down or comes back. A
// watch that breaks (a netlink overrun) is started again; its listing of
// the links then catches up with what was missed.
func (rt *Runtime) runLinks(ctx context.Context) error {
	lt := newLinkTracker(watchedLinks(rt.current()))
	for {
		err := watchLinks(ctx, rt.NetnsPath, func(name string, flags uint32) {
			if up, changed := lt.update(name, flags); changed {
				rt.linkChanged(ctx, name, up)
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		rt.Log.Warn("link watch ended; watching again", "err", err)
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// linkChanged acts on a watched interface going down or up. With VRRP the
// state machine decides (a master reasserts its addresses, a backup stops
// counting silence as a dead master while deaf); without, the addresses
// are set again: the kernel took the IPv6 ones with the link.
func (rt *Runtime) linkChanged(ctx context.Context, name string, up bool) {
	rt.Log.Info("link state changed", "interface", name, "up", up)
	if rt.vrrp != nil {
		_ = rt.vrrp.SetLink(ctx, name, up) // fails only when ctx ends
		return
	}
	if up {
		rt.hold(ctx)
	}
}

// watchLinks lists the links of the namespace at nsPath ("" = ours), then
// reports each change, as fn(name, IFF_* flags; 0 once deleted), until ctx
// ends (nil) or the subscription breaks.
func watchLinks(ctx context.Context, nsPath string, fn func(name string, flags uint32)) error {
	opts := netlink.LinkSubscribeOptions{ListExisting: true}
	if nsPath != "" {
		ns, err := netns.GetFromPath(nsPath)
		if err != nil {
			return fmt.Errorf("netns %s: %w", nsPath, err)
		}
		defer ns.Close()
		opts.Namespace = &ns
	}
	errc := make(chan error, 1)
	opts.ErrorCallback = func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	ch := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	if err := netlink.LinkSubscribeWithOptions(ch, done, opts); err != nil {
		return fmt.Errorf("link subscription: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case u, ok := <-ch:
			if !ok {
				select {
				case err := <-errc:
					return err
				default:
					return errors.New("link subscription closed")
				}
			}
			flags := u.IfInfomsg.Flags
			if u.Header.Type == unix.RTM_DELLINK {
				flags = 0
			}
			fn(u.Link.Attrs().Name, flags)
		}
	}
}
