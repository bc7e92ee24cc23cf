//go:build lab && linkflap

// Out of `make test` until fixed (issue 17): on a loaded host this test
// failed 2 runs of 4, both times on an IPv4 outage of 1.4-1.5 s well after
// the flap (15 s and 29 s after link-up, the IPv6 poller unaffected), and
// on the IPv6 poller recovering 3.0 s after link-up against 2.55 s. The
// director's link watching is covered by TestRuntimeLinkFlap (unit,
// namespaces); run this one with a lab built with -tags 'lab linkflap'.

package integration

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golvs/golvs/integration/labnet"
)

// Link flap: the VRRP master's eth0 goes down and comes back. The kernel
// keeps IPv4 addresses over that but removes IPv6 ones, so the director
// must put its own back (the IPv6 VIP, an IPv6 [[failover.address]]) and
// announce them again. `ip addr`, tcpdump on the client and two polling
// clients (IPv4 and IPv6 VIP) are the witnesses.

const (
	flapExtra6  = "2001:db8:f::1" // a [[failover.address]] on eth0, with its /64
	flapBackup6 = "2001:db8::3"
	flapTimeout = time.Second // each polled request's: under load a request outlasted 500 ms outside the flap
)

// TestChaosLinkFlap flaps the master's link for one second: less than the
// backup's master down interval (3.6 s at a 1 s advert interval), so the
// VIPs must stay with the master. Once the link is back the master has its
// IPv4 and IPv6 VIPs and its IPv6 failover address on eth0 again, sends
// gratuitous ARP and unsolicited NA for them, and both pollers recover;
// failures fall only inside the flap.
func TestChaosLinkFlap(t *testing.T) {
	const interval = time.Second
	fl := newFailoverLab(t, interval, false)
	// IPv6 beside IPv4, nodad so usable at once. The real servers hold
	// the IPv6 VIP on lo, as the realserver agent does.
	fl.client.IP("addr", "add", client6+v6PrefixLn, "dev", "eth0", "nodad")
	fl.director.IP("addr", "add", director6+v6PrefixLn, "dev", "eth0", "nodad")
	fl.backup.IP("addr", "add", flapBackup6+v6PrefixLn, "dev", "eth0", "nodad")
	var rs6 []string
	for i, h := range fl.rs {
		a := fmt.Sprintf("%s%d", v6Prefix, 11+i)
		h.IP("addr", "add", a+v6PrefixLn, "dev", "eth0", "nodad")
		h.IP("addr", "add", vip6+"/128", "dev", "lo", "nodad")
		rs6 = append(rs6, a)
	}
	var web6 strings.Builder
	fmt.Fprintf(&web6, "[[service]]\nname = \"web6\"\naddress = %q\nport = 80\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"dr\"\n\n", vip6)
	for _, a := range rs6 {
		fmt.Fprintf(&web6, "[[service.backend]]\naddress = %q\nport = 80\nweight = 1\n\n", a)
	}
	services := fl.service("web", "tcp", 80, "dr", "rr") + web6.String()
	extra := fmt.Sprintf("\n[[failover.address]]\naddress = %q\n", flapExtra6+v6PrefixLn)
	master := fl.oursWith(fl.director, 200, extra, services)
	backup := fl.oursWith(fl.backup, 100, extra, services)
	fl.establish(master, backup)
	held := func(h *labnet.Host, want bool) error {
		out := h.IP("-o", "addr", "show", "dev", "eth0")
		for _, a := range []string{" " + vip + "/32 ", " " + vip6 + "/128 ", " " + flapExtra6 + v6PrefixLn + " "} {
			if strings.Contains(out, a) != want {
				return fmt.Errorf("%s: %s on eth0 = %v, want %v:\n%s", h.Name, strings.TrimSpace(a), !want, want, out)
			}
		}
		return nil
	}
	eventually(t, 10*eventuallyScale, "the master holds every address", func() error {
		return firstErr(held(master.h, true), held(backup.h, false))
	})

	dump := fl.client.Start("listening on", "tcpdump", "-nn", "-l", "-tt", "-e", "-i", "eth0",
		"arp or (icmp6 and ip6[40] == 136)")
	poll4 := fl.client.Start("ready", bin(t, "labhost"), "poll", "--url", "http://"+vip+"/",
		"--interval", pollEvery.String(), "--duration", "5m", "--timeout", flapTimeout.String())
	poll6 := fl.client.Start("ready", bin(t, "labhost"), "poll", "--url", "http://["+vip6+"]/",
		"--interval", pollEvery.String(), "--duration", "5m", "--timeout", flapTimeout.String())

	down := time.Now()
	master.h.IP("link", "set", "eth0", "down")
	// One second down: the backup must not take over meanwhile.
	holds(t, time.Second, "the backup stays backup while the master's link is down", func() error {
		return held(backup.h, false)
	})
	// Times are taken before each command: its run (seconds, in a busy
	// emulated guest) counts against the director, never for it.
	up := time.Now()
	master.h.IP("link", "set", "eth0", "up")
	// The host's own address went with the link too; putting it back is
	// the host's network configuration's job (ifupdown, networkd), not
	// the director's. The IPv6 real servers are reached through it.
	master.h.IP("addr", "add", director6+v6PrefixLn, "dev", "eth0", "nodad")

	// The kernel's view: every address back. Its timing comes from the
	// wire below (the director adds them before announcing them); an `ip`
	// run here can take longer than the whole recovery.
	eventually(t, 10*eventuallyScale, "the master's addresses back on eth0", func() error { return held(master.h, true) })
	// Bound: the director hears the link at once, re-adds in one netlink
	// round trip and announces; 2 s for the emulated guest on a busy host.
	const bound = 2 * time.Second
	macM := master.h.MAC("eth0")
	var garp, na, naExtra time.Duration
	eventually(t, 10*eventuallyScale, "gratuitous ARP and unsolicited NA from the master after the link returned", func() error {
		garp, na, naExtra = announcedAfter(dump.Output(), macM, up)
		if garp < 0 || na < 0 || naExtra < 0 {
			return fmt.Errorf("after link-up: ARP %v, NA %v, NA of the failover address %v (negative: none seen)\n%s", garp, na, naExtra, dump.Output())
		}
		return nil
	})
	t.Logf("after link-up (tcpdump's clock): gratuitous ARP %s, NA of %s %s, NA of %s %s", durMS(garp), vip6, durMS(na), flapExtra6, durMS(naExtra))
	if last := max(garp, na, naExtra); last > bound {
		t.Errorf("the master announced its addresses %s after link-up, want within %s", durMS(last), bound)
	}

	// Traffic resumed: a client's fresh requests all succeed, over both.
	fl.assertServed(15)
	if r := fl.requests("http://["+vip6+"]/", 15); r.Failures != 0 {
		t.Errorf("IPv6: %d of 15 requests failed after the flap: %v", r.Failures, r.Errors)
	}
	if err := backup.isBackup(directorIP); err != nil {
		t.Errorf("after the flap: %v", err)
	}
	fl.assertARP(master)
	for _, p := range []struct {
		name string
		proc *labnet.Proc
	}{{"IPv4", poll4}, {"IPv6", poll6}} {
		r := fl.stopPoll(p.proc)
		recovered := recoveryAfter(r, up)
		t.Logf("%s poller: %d requests, %d failed, recovered %s after link-up (outages %v)", p.name, r.Total, r.Failures, durMS(recovered), r.Outages)
		// A request sent while the link was down waits out its timeout.
		if limit := flapTimeout + pollEvery + bound; recovered > limit {
			t.Errorf("%s: traffic resumed %s after link-up, want within %s", p.name, durMS(recovered), limit)
		}
		for _, o := range r.Outages {
			if o.Start < down.Add(-flapTimeout).UnixMilli() || o.End == 0 || o.End > up.Add(flapTimeout+pollEvery+bound).UnixMilli() {
				t.Errorf("%s: outage %+v outside the flap (down %d, up %d)", p.name, o, down.UnixMilli(), up.UnixMilli())
			}
		}
	}
}

// recoveryAfter is how long after t the poller's outage spanning t ended
// (0 when none spanned it).
func recoveryAfter(r hcPollResult, t time.Time) time.Duration {
	ms := t.UnixMilli()
	for _, o := range r.Outages {
		if o.Start <= ms && (o.End == 0 || o.End >= ms) {
			if o.End == 0 {
				return time.Hour
			}
			return time.Duration(o.End-ms) * time.Millisecond
		}
	}
	return 0
}

var (
	garpLine = regexp.MustCompile(`^(\d+\.\d+) (\S+) > ff:ff:ff:ff:ff:ff, ethertype ARP .*(Request who-has ` + regexp.QuoteMeta(vip) + ` tell ` + regexp.QuoteMeta(vip) + `|Reply ` + regexp.QuoteMeta(vip) + ` is-at)`)
	naLine   = regexp.MustCompile(`^(\d+\.\d+) (\S+) > 33:33:00:00:00:01, .*neighbor advertisement, tgt is (\S+),`)
)

// announcedAfter reads tcpdump -tt -e output and returns how long after t
// mac first announced the IPv4 VIP (gratuitous ARP), the IPv6 VIP and the
// failover address (unsolicited NA); -1 for none.
func announcedAfter(out, mac string, t time.Time) (garp, na, naExtra time.Duration) {
	garp, na, naExtra = -1, -1, -1
	since := func(ts string) (time.Duration, bool) {
		f, err := strconv.ParseFloat(ts, 64)
		if err != nil {
			return 0, false
		}
		d := time.Unix(0, int64(f*1e9)).Sub(t)
		return d, d >= 0
	}
	first := func(cur *time.Duration, d time.Duration) {
		if *cur < 0 {
			*cur = d
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if m := garpLine.FindStringSubmatch(l); m != nil && m[2] == mac {
			if d, ok := since(m[1]); ok {
				first(&garp, d)
			}
		}
		if m := naLine.FindStringSubmatch(l); m != nil && m[2] == mac {
			if d, ok := since(m[1]); ok {
				switch m[3] {
				case vip6:
					first(&na, d)
				case flapExtra6:
					first(&naExtra, d)
				}
			}
		}
	}
	return garp, na, naExtra
}
