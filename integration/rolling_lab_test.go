//go:build lab

package integration

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golvs/golvs/integration/labnet"
)

// Issue 17.3: keepalived replaced by golvs one director at a time. While
// the two run side by side each must stop cleanly in front of the other
// (priority-0 advert: the peer takes over after its Skew_Time) and come
// back and preempt, in either role, over IPv4 and IPv6. tcpdump on the
// client is the clock: every bound is counted from a frame it saw.

const (
	backup6 = "2001:db8::3"
	// rollInterval keeps Skew_Time (305ms at priority 100) and the master
	// down interval (1.8s) apart by three intervals, so a backup that
	// ignored a priority-0 advert cannot pass for one that heeded it.
	rollInterval = 500 * time.Millisecond
	// rollPollTimeout bounds one request of the poller: under TCP's 1 s
	// SYN retransmission, so a request sent into an outage fails instead
	// of riding it out. The poller sees an outage end up to one poll and
	// one timeout late.
	rollPollTimeout = 500 * time.Millisecond
	// rollPollEvery: half the rate of the other failover tests' poller,
	// which on a loaded host starves the emulated guest it measures.
	rollPollEvery = 100 * time.Millisecond
)

// slack is what the loaded emulated guest may add to a step that is due:
// two advert intervals (seen: a golvs timer firing 0.44 s late, its VIP
// taking 0.37 s to set, keepalived's timers a second late).
func (fl *failoverLab) slack() time.Duration { return 2 * fl.interval }

// TestRollingKeepalived: golvs and keepalived (VRRPv3, same VRID and
// interval), the higher priority one master, in both roles: the master is
// stopped with SIGTERM and its peer takes over after Skew_Time counted
// from the master's priority-0 advert; the master restarts and preempts
// back, its peer yielding at its first advert.
func TestRollingKeepalived(t *testing.T) { testRolling(t, false) }

// TestRollingKeepalivedIPv6 is TestRollingKeepalived with an IPv6 VIP
// (adverts from link-local addresses to ff02::12, unsolicited NAs), and
// then the master's box dies (kill, link down): the peer takes over after
// its master down interval and the client over IPv6 keeps being served.
func TestRollingKeepalivedIPv6(t *testing.T) { testRolling(t, true) }

func testRolling(t *testing.T, v6 bool) {
	for _, tc := range []struct {
		name       string
		golvsFirst bool // golvs has the higher priority (the first master)
	}{
		{"golvs master, keepalived backup", true},
		{"keepalived master, golvs backup", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fl *failoverLab
			if v6 {
				fl = newFailoverLab6(t, rollInterval)
			} else {
				fl = newFailoverLab(t, rollInterval, false)
			}
			var high, low *node
			if tc.golvsFirst {
				high, low = fl.ours(fl.director, 200), fl.keepalived(fl.backup, 100)
			} else {
				high, low = fl.keepalived(fl.director, 200), fl.ours(fl.backup, 100)
			}
			fl.establish(high, low)
			w := fl.watchWire()
			fl.stopCleanly(high, low, w)
			fl.preemptBack(high, low, w)
			if v6 {
				fl.crashWitnessed(high, low, w)
			}
		})
	}
}

// newFailoverLab6 is newFailoverLab with an IPv6 VIP: every host has an
// address in 2001:db8::/64 beside its IPv4 one (the directors need a
// route to the real servers for dr), the real servers hold vip6 on lo,
// and the directors' adverts go from their link-local addresses.
func newFailoverLab6(t *testing.T, interval time.Duration) *failoverLab {
	t.Helper()
	fl := newFailoverLab(t, interval, false)
	for h, a := range map[*labnet.Host]string{fl.client: client6, fl.director: director6, fl.backup: backup6} {
		h.IP("addr", "add", a+v6PrefixLn, "dev", "eth0", "nodad")
	}
	fl.vipBackends = nil
	for i, h := range fl.rs {
		a := fmt.Sprintf("%s%d", v6Prefix, 11+i)
		h.IP("addr", "add", a+v6PrefixLn, "dev", "eth0", "nodad")
		// On lo, a real server does not answer neighbour solicitations
		// for the VIP on eth0.
		h.IP("addr", "add", vip6+"/128", "dev", "lo", "nodad")
		fl.vipBackends = append(fl.vipBackends, a)
	}
	fl.vip = vip6
	// The link-local address (the adverts' source) is tentative until
	// DAD is done; neither VRRP speaker can send from it before.
	for _, h := range []*labnet.Host{fl.director, fl.backup} {
		eventually(t, 10*eventuallyScale, h.Name+"'s link-local address is usable", func() error {
			out := h.IP("-6", "addr", "show", "dev", "eth0", "scope", "link")
			if !strings.Contains(out, "inet6 fe80::") || strings.Contains(out, "tentative") {
				return fmt.Errorf("%s", out)
			}
			return nil
		})
	}
	return fl
}

// skewTime is RFC 9568's Skew_Time of a backup of prio.
func skewTime(interval time.Duration, prio int) time.Duration {
	return time.Duration(256-prio) * interval / 256
}

// wire is tcpdump on the client's link: VRRP, ARP and ICMPv6 frames with
// their kernel timestamps and source MACs.
type wire struct {
	fl *failoverLab
	p  *labnet.Proc
}

func (fl *failoverLab) watchWire() *wire {
	fl.t.Helper()
	return &wire{fl, fl.client.Start("listening on", "tcpdump", "-tt", "-nn", "-l", "-e", "-i", "eth0", "proto 112 or arp or icmp6")}
}

// frameLine is a `tcpdump -tt -e` line: epoch seconds.microseconds, then
// the source MAC.
var (
	frameLine  = regexp.MustCompile(`^(\d+)\.(\d{6}) ([0-9a-f:]{17}) > `)
	advertPrio = regexp.MustCompile(`VRRPv3, Advertisement, vrid ` + strconv.Itoa(failoverVRID) + `, prio (\d+),`)
)

// frames returns the times of the frames from mac at or after since whose
// line match accepts.
func (w *wire) frames(mac string, since time.Time, match func(line string) bool) []time.Time {
	var ts []time.Time
	for _, l := range strings.Split(w.p.Output(), "\n") {
		m := frameLine.FindStringSubmatch(l)
		if m == nil || m[3] != mac || !match(l) {
			continue
		}
		sec, _ := strconv.ParseInt(m[1], 10, 64)
		usec, _ := strconv.ParseInt(m[2], 10, 64)
		if at := time.Unix(sec, usec*1000); !at.Before(since) {
			ts = append(ts, at)
		}
	}
	return ts
}

// adverts are mac's adverts since: the goodbyes (priority 0) or the others.
func (w *wire) adverts(mac string, since time.Time, goodbye bool) []time.Time {
	return w.frames(mac, since, func(l string) bool {
		m := advertPrio.FindStringSubmatch(l)
		return m != nil && (m[1] == "0") == goodbye
	})
}

// announcements are mac's gratuitous ARPs (broadcast request or reply) or
// unsolicited neighbour advertisements (to all nodes) for the VIP.
func (w *wire) announcements(mac string, since time.Time) []time.Time {
	v := w.fl.vip
	return w.frames(mac, since, func(l string) bool {
		if w.fl.v6() {
			return strings.Contains(l, " > ff02::1: ICMP6, neighbor advertisement, tgt is "+v+",")
		}
		return strings.Contains(l, "> ff:ff:ff:ff:ff:ff, ethertype ARP") && garpLineFor(v).MatchString(l)
	})
}

// garpLineFor matches a gratuitous ARP request (keepalived fills the target
// MAC with the broadcast address, which tcpdump shows) or reply for v.
func garpLineFor(v string) *regexp.Regexp {
	q := regexp.QuoteMeta(v)
	return regexp.MustCompile(`Request who-has ` + q + `( \([0-9a-f:]+\))? tell ` + q + `,|Reply ` + q + ` is-at `)
}

// failedAt places the poller's failed requests relative to t0.
func failedAt(t0 time.Time, res foPollResult) []time.Duration {
	var ds []time.Duration
	for _, ms := range res.FailedAtMS {
		ds = append(ds, time.UnixMilli(ms).Sub(t0).Round(time.Millisecond))
	}
	return ds
}

// first waits until frames returns one and gives the first.
func (w *wire) first(what string, frames func() []time.Time) time.Time {
	w.fl.t.Helper()
	var at time.Time
	eventually(w.fl.t, 5*eventuallyScale, "tcpdump on the client sees "+what, func() error {
		ts := frames()
		if len(ts) == 0 {
			return fmt.Errorf("not yet; capture so far:\n%s", tail(w.p.Output(), 30))
		}
		at = ts[0]
		return nil
	})
	return at
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// startRollPoll polls the VIP until stopPoll; it returns after the first
// answer.
func (fl *failoverLab) startRollPoll() *labnet.Proc {
	fl.t.Helper()
	return fl.client.Start("ready", bin(fl.t, "labhost"), "poll", "--url", fl.url(),
		"--interval", rollPollEvery.String(), "--duration", "1h", "--timeout", rollPollTimeout.String())
}

// stopFoPoll ends a poller started with a long duration (SIGINT: it reports
// what it saw so far) and returns its longest outage.
func (fl *failoverLab) stopFoPoll(p *labnet.Proc) (time.Duration, foPollResult) {
	fl.t.Helper()
	if err := p.Signal(syscall.SIGINT); err != nil {
		fl.t.Fatal(err)
	}
	res := waitFoPoll(fl.t, p)
	return time.Duration(res.LongestOutageMS) * time.Millisecond, res
}

// isMaster checks n's own account of its state: `director status`, or
// the last state keepalived logged.
func (n *node) isMaster() error {
	if n.keepalived {
		if s := n.keepalivedState(); s != "MASTER" {
			return fmt.Errorf("%s: last state in its log is %q, want MASTER", n, s)
		}
		return nil
	}
	if st := n.status(); !strings.Contains(st, "vrrp: master") {
		return fmt.Errorf("%s status is not master: %s", n, firstLine(st))
	}
	return nil
}

// stopCleanly stops the master from with SIGTERM while the client polls.
// from must leave with a priority-0 advert and release the VIP; to must
// take over (first advert, gratuitous ARP / unsolicited NA) within its
// Skew_Time and the slack of that advert. That is its master down
// interval less one advert interval: a backup that ignored the goodbye
// waits its master down interval from the master's last advert, at most
// one interval before the goodbye, and cannot be as quick.
func (fl *failoverLab) stopCleanly(from, to *node, w *wire) {
	t := fl.t
	t.Helper()
	poll := fl.startRollPoll()
	since := time.Now()
	if err := from.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if err := from.proc.Wait(ctx); err != nil {
		t.Fatalf("%s did not exit cleanly on SIGTERM: %v\n%s", from, err, from.proc.Output())
	}
	if err := fl.vipOn(from.h, false); err != nil {
		t.Errorf("%s after SIGTERM: %v", from, err)
	}
	eventually(t, 20*eventuallyScale, to.String()+" takes the VIP", func() error { return fl.vipOn(to.h, true) })
	fl.eventuallyARP(to)
	eventually(t, 10*eventuallyScale, to.String()+" says it is master", to.isMaster)

	fromMAC, toMAC := from.h.MAC("eth0"), to.h.MAC("eth0")
	bye := w.first(from.String()+"'s priority-0 advert", func() []time.Time { return w.adverts(fromMAC, since, true) })
	took := w.first(to.String()+"'s first advert after it", func() []time.Time { return w.adverts(toMAC, bye, false) })
	announced := w.first(to.String()+"'s announcement of the VIP", func() []time.Time { return w.announcements(toMAC, bye) })
	// 30 as in establish: fewer can miss a real server (IPVS reuses
	// the entries of the poller's recent connections).
	fl.assertServed(30)
	outage, res := fl.stopFoPoll(poll)

	skew, down := skewTime(fl.interval, to.prio), masterDown(fl.interval, to.prio)
	t.Logf("%s stopped -> %s: first advert %v and announcement %v after the priority-0 advert (skew %v, master down interval %v); longest outage %v, %d of %d requests failed, started at %v after the goodbye: %v",
		from, to, took.Sub(bye).Round(time.Millisecond), announced.Sub(bye).Round(time.Millisecond), skew, down, outage, res.Failures, res.Total, failedAt(bye, res), res.Errors)
	if limit := skew + fl.slack(); took.Sub(bye) > limit || announced.Sub(bye) > limit {
		t.Errorf("%s took over %v (announced %v) after the priority-0 advert, want within skew + slack = %v (did it wait for its master down interval %v?)",
			to, took.Sub(bye), announced.Sub(bye), limit, down)
	}
	// The VIP is nowhere from the goodbye to the announcement.
	if limit := skew + fl.slack() + rollPollEvery + rollPollTimeout; outage > limit {
		t.Errorf("longest outage %v, want under %v", outage, limit)
	}
}

// preemptBack restarts high while low holds the VIP. high must wait one
// master down interval of its own as a backup (RFC 9568 6.4.1; low's
// adverts are weaker and ignored), then claim the VIP with its first
// advert; low must yield to that advert (at most one advert of its own
// already on its way), and high's announcement moves the client's entry,
// each within the slack.
func (fl *failoverLab) preemptBack(high, low *node, w *wire) {
	t := fl.t
	t.Helper()
	poll := fl.startRollPoll()
	since := time.Now()
	high.start()
	// A restart under emulation on a loaded host was seen to take 23 s.
	eventually(t, 60*eventuallyScale, high.String()+" takes the VIP back", func() error {
		return firstErr(fl.vipOn(high.h, true), fl.vipOn(low.h, false))
	})
	fl.eventuallyARP(high)
	eventually(t, 10*eventuallyScale, low.String()+" is backup again", func() error { return low.isBackup(masterAddr(high)) })
	eventually(t, 10*eventuallyScale, high.String()+" says it is master", high.isMaster)

	highMAC, lowMAC := high.h.MAC("eth0"), low.h.MAC("eth0")
	claim := w.first(high.String()+"'s first advert after its restart", func() []time.Time { return w.adverts(highMAC, since, false) })
	announced := w.first(high.String()+"'s announcement of the VIP", func() []time.Time { return w.announcements(highMAC, claim) })
	// 30 as in establish: fewer can miss a real server (IPVS reuses
	// the entries of the poller's recent connections).
	fl.assertServed(30)
	outage, res := fl.stopFoPoll(poll)
	lowAfter := w.adverts(lowMAC, claim, false)

	down := masterDown(fl.interval, high.prio)
	t.Logf("%s restarted: claimed %v after its start (master down interval %v), announced %v after its first advert; %s adverts after it: %d; longest outage %v, %d of %d requests failed, started at %v after the claim: %v",
		high, claim.Sub(since).Round(time.Millisecond), down, announced.Sub(claim).Round(time.Millisecond), low, len(lowAfter), outage, res.Failures, res.Total, failedAt(claim, res), res.Errors)
	if claim.Sub(since) < down {
		t.Errorf("%s claimed the VIP %v after its start, before its master down interval %v", high, claim.Sub(since), down)
	}
	if announced.Sub(claim) > fl.slack() {
		t.Errorf("%s announced the VIP %v after its first advert, want within %v", high, announced.Sub(claim), fl.slack())
	}
	if len(lowAfter) > 1 || len(lowAfter) == 1 && lowAfter[0].Sub(claim) > fl.slack() {
		t.Errorf("%s went on advertising after %s's first advert: %v after it", low, high, durationsSince(claim, lowAfter))
	}
	// Both hold the VIP for a moment; the client moves on the announcement.
	if limit := fl.slack() + rollPollEvery + rollPollTimeout; outage > limit {
		t.Errorf("longest outage %v, want under %v", outage, limit)
	}
}

func durationsSince(t0 time.Time, ts []time.Time) []time.Duration {
	var ds []time.Duration
	for _, t := range ts {
		ds = append(ds, t.Sub(t0).Round(time.Millisecond))
	}
	return ds
}

// crashWitnessed is failover (the master's box dies) timed on the wire:
// the backup's first advert and announcement come one master down
// interval after the last advert it heard from the master (the link goes
// down before the kill, so the last one on the wire), no earlier (but for
// keepalived's skew in whole centiseconds) and at most the slack later,
// and one interval and a skew more for golvs when its timer fired late (it
// then listens that much longer before it believes the master dead).
func (fl *failoverLab) crashWitnessed(master, backup *node, w *wire) {
	t := fl.t
	t.Helper()
	masterMAC, backupMAC := master.h.MAC("eth0"), backup.h.MAC("eth0")
	fl.failover(master, backup)
	// The master's last advert may come before this step: the crash can
	// follow the step's start by less than an advert interval (seen: a
	// keepalived master's last advert was before it).
	last := w.adverts(masterMAC, time.Time{}, false)
	if len(last) == 0 {
		t.Fatalf("tcpdump saw no advert from %s before its death:\n%s", master, tail(w.p.Output(), 30))
	}
	died := last[len(last)-1]
	took := w.first(backup.String()+"'s first advert after the crash", func() []time.Time { return w.adverts(backupMAC, died, false) })
	announced := w.first(backup.String()+"'s announcement of the VIP", func() []time.Time { return w.announcements(backupMAC, died) })
	down := masterDown(fl.interval, backup.prio)
	t.Logf("%s died -> %s: first advert %v, announcement %v after the last advert heard (master down interval %v)",
		master, backup, took.Sub(died).Round(time.Millisecond), announced.Sub(died).Round(time.Millisecond), down)
	for what, d := range map[string]time.Duration{"first advert": took.Sub(died), "announcement": announced.Sub(died)} {
		if limit := down + fl.slack() + fl.interval + skewTime(fl.interval, backup.prio); d < down-10*time.Millisecond || d > limit {
			t.Errorf("%s's %s %v after the master's last advert, want from the master down interval %v to %v\n%s", backup, what, d, down, limit, tail(w.p.Output(), 40))
		}
	}
}
