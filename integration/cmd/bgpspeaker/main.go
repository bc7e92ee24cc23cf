// Command bgpspeaker is a hand-made director's BGP side for the lab: it
// runs director/bgp's Speaker behind the Announcer (VIPs on lo, then
// announced) until SIGTERM, inside a director's namespace:
//
//	bgpspeaker -asn 65010 -router-id 10.0.0.11 -peer 10.0.0.1 -peer-asn 65000
//	           [-hold 3s] [-bfd] -vip 192.0.2.80 [-vip ...]
//
// SIGUSR1 withdraws every VIP (Set with nothing), SIGUSR2 announces them
// again (Set with all). It prints "established" once every session is up
// and "set N" after each Set.
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

	"github.com/golvs/golvs/director/bgp"
	"github.com/golvs/golvs/director/vip"
)

type addrs []netip.Addr

func (a *addrs) String() string { return fmt.Sprint(*a) }
func (a *addrs) Set(s string) error {
	p, err := netip.ParseAddr(s)
	if err != nil {
		return err
	}
	*a = append(*a, p)
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bgpspeaker: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var vips, peers addrs
	asn := flag.Uint("asn", 65010, "local AS")
	routerID := flag.String("router-id", "", "BGP identifier (IPv4)")
	flag.Var(&peers, "peer", "peer address (repeatable)")
	peerASN := flag.Uint("peer-asn", 65000, "the peers' AS")
	hold := flag.Duration("hold", 0, "hold time (0 = GoBGP's default)")
	bfd := flag.Bool("bfd", false, "BFD with the peers")
	flag.Var(&vips, "vip", "VIP to announce (repeatable)")
	flag.Parse()

	rid, err := netip.ParseAddr(*routerID)
	if err != nil {
		return fmt.Errorf("-router-id: %w", err)
	}
	cfg := bgp.Config{ASN: uint32(*asn), RouterID: rid}
	for _, p := range peers {
		cfg.Peers = append(cfg.Peers, bgp.Peer{Address: p, ASN: uint32(*peerASN), HoldTime: *hold, BFD: *bfd})
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sp, err := bgp.New(cfg, log)
	if err != nil {
		return err
	}
	holder := vip.New("lo", log)
	holder.Claim(vips)
	ann := &bgp.Announcer{Device: holder, Routes: sp}
	if err := ann.Set(ctx, vips); err != nil {
		return err
	}

	done := make(chan error, 1)
	go func() { done <- sp.Run(ctx) }()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	established := false
	for {
		select {
		case err := <-done:
			return err
		case sig := <-sigs:
			want := vips
			if sig == syscall.SIGUSR1 {
				want = nil
			}
			if err := ann.Set(ctx, want); err != nil {
				return err
			}
			fmt.Printf("set %d\n", len(want))
		case <-tick.C:
			if established {
				continue
			}
			st, err := sp.Status(ctx)
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			up := len(st.Peers) > 0
			var states []string
			for _, p := range st.Peers {
				up = up && p.State == "established" && (!*bfd || p.BFD == "up")
				states = append(states, p.State+"/"+p.BFD)
			}
			if up {
				established = true
				fmt.Printf("established %s\n", strings.Join(states, " "))
			}
		}
	}
}
