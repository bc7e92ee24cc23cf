// Command vrrpd runs one vrrp.Runner whose hooks add and remove VIPs on the
// interface with netlink. It exists for the namespace tests: it prints one
// line per transition on stdout ("STATE master <unix-nanos>").
//
// With -capture or -replay it is instead the attacker of the replay tests:
// it records the VRRP payloads a source sends, or sends recorded ones again
// from this namespace (see capture.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/vrrp"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "vrrpd:", err)
		os.Exit(1)
	}
}

func run() error {
	iface := flag.String("iface", "", "interface")
	vrid := flag.Uint("vrid", 51, "virtual router id")
	prio := flag.Uint("prio", 100, "priority")
	interval := flag.Duration("interval", time.Second, "advert interval")
	preempt := flag.Bool("preempt", true, "preempt")
	vips := flag.String("vip", "", "comma-separated VIPs")
	peers := flag.String("peers", "", "comma-separated unicast peers")
	key := flag.String("key", "", "auth key file")
	notify := flag.String("notify", "", "notify program")
	backupDelay := flag.Duration("first-backup-delay", 0, "make the first OnBackup (startup) take this long, like a busy director")
	capture := flag.String("capture", "", "record VRRP payloads from -src to this file (-count of them) and exit")
	replay := flag.String("replay", "", "send the payloads recorded in this file from -src, one per -every, and exit")
	src := flag.String("src", "", "source address for -capture / -replay")
	count := flag.Int("count", 10, "payloads to record with -capture")
	every := flag.Duration("every", time.Second, "pace of -replay and -forge")
	forge := flag.Int("forge", 0, "send this many forged plain adverts at -prio with -forge-interval from -src, one per -every, and exit")
	forgeInterval := flag.Uint("forge-interval", 100, "advert interval of -forge, centiseconds")
	flag.Parse()
	switch {
	case *forge > 0:
		var vs []netip.Addr
		for _, s := range strings.Split(*vips, ",") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return err
			}
			vs = append(vs, a)
		}
		return forgeAdverts(*iface, *src, uint8(*vrid), uint8(*prio), uint16(*forgeInterval), vs, *forge, *every)
	case *capture != "":
		return captureAdverts(*iface, *src, *capture, *count)
	case *replay != "":
		return replayAdverts(*iface, *src, *replay, *every)
	}

	cfg := vrrp.Config{
		Interface: *iface,
		Failover: config.Failover{
			VirtualRouterID: uint8(*vrid), Priority: uint8(*prio), AdvertInterval: *interval,
			Preempt: *preempt, AuthKeyFile: *key, Notify: *notify,
		},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, s := range strings.Split(*vips, ",") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return err
		}
		cfg.VIPs = append(cfg.VIPs, a)
	}
	if *peers != "" {
		for _, s := range strings.Split(*peers, ",") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return err
			}
			cfg.Failover.Peers = append(cfg.Failover.Peers, a)
		}
	}
	link, err := netlink.LinkByName(*iface)
	if err != nil {
		return err
	}
	addr := func(a netip.Addr) *netlink.Addr {
		return &netlink.Addr{IPNet: netlink.NewIPNet(a.AsSlice())}
	}
	hooks := vrrp.Hooks{
		OnMaster: func(context.Context) error {
			var errs []error
			for _, a := range cfg.VIPs {
				na := addr(a)
				if a.Is6() {
					na.Flags = unix.IFA_F_NODAD
				}
				if err := netlink.AddrAdd(link, na); err != nil && !errors.Is(err, unix.EEXIST) {
					errs = append(errs, err)
				}
			}
			fmt.Printf("STATE master %d\n", time.Now().UnixNano())
			return errors.Join(errs...)
		},
		OnBackup: func(context.Context) error {
			if d := *backupDelay; d > 0 {
				*backupDelay = 0
				time.Sleep(d)
			}
			var errs []error
			for _, a := range cfg.VIPs {
				if err := netlink.AddrDel(link, addr(a)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
					errs = append(errs, err)
				}
			}
			fmt.Printf("STATE backup %d\n", time.Now().UnixNano())
			return errors.Join(errs...)
		},
	}
	r, err := vrrp.NewRunner(cfg, hooks)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		// Status snapshots on stderr let a test see drop counters.
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				st := r.Status()
				fmt.Fprintf(os.Stderr, "STATUS state=%v master=%v drops=%+v\n", st.State, st.Master, st.Drops)
			}
		}
	}()
	return r.Run(ctx)
}
