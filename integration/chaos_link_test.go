//go:build lab

// Issue 17: on a loaded host this test failed 2 runs of 4, on an IPv4
// outage of 1.4-1.5 s 15-29 s after link-up, and on the IPv6 poller
// recovering 3.0 s after link-up. Neither was the director's. The late
// outages were the emulated guest stalling under its 1 s poll timeout
// while the test ran its post-flap checks, the pollers still going: a
// connection's handshake done and its request not written for 1.15 s, a
// SYN that never reached the switch, nothing in the director's log, no
// ARP on the wire; the pollers with that timeout now stop once the
// recovery bound has passed, and pollers with a 3 s timeout cover the
// rest, until every neighbour entry the flap renewed has gone stale and
// been probed. The IPv6 recovery waited for the kernel's DAD of the
// master's link-local address (see accept_dad below). Under heavier load
// (three guests and the hog) it failed once more, IPv6 "recovering" 3.4 s
// after the start of the `ip addr add` that put the host's address back,
// which the guest ran late; that recovery now counts from the kernel's
// stamp of the address.

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
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
	// The directors' link-local addresses skip DAD too, as every lab
	// address does (nodad). Each link-up restarts DAD on the master's,
	// and until it is done the kernel sends no neighbour solicitation
	// for the packets it forwards (ndisc_send_ns sources them from the
	// link-local address only), so IPv6 real servers are unreachable for
	// up to 1 s (DAD's random start delay) + 1 s (the probe) + 1 s (the
	// neighbour entry's next try) after link-up: the host's DAD, which
	// the director does not control, not its recovery (seen on the
	// wire: the first solicitation for a real server 1 s after the DAD
	// probe, the SYNs held until its answer). Both settings: the kernel
	// does DAD unless all and the interface say no.
	for _, h := range []*labnet.Host{fl.director, fl.backup} {
		h.Sysctl("net.ipv6.conf.all.accept_dad", "0")
		h.Sysctl("net.ipv6.conf.eth0.accept_dad", "0")
	}
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

	// The wire of every segment, for the diagnosis of a failed run: each
	// frame at the switch port it entered by (and left by). Connections'
	// SYN, FIN and RST segments only, and address resolution: the whole
	// traffic would load the guest whose stalls it is there to tell.
	wirePcap := filepath.Join(t.TempDir(), "flap.pcap")
	wire := fl.lab.Switch().Start("listening on", "tcpdump", "-i", "any", "-y", "LINUX_SLL2", "-nn", "-s", "96", "-w", wirePcap,
		"arp or (icmp6 and (ip6[40] == 135 or ip6[40] == 136)) or (tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0) or (ip6 and tcp and ip6[53] & 7 != 0)")
	softnet0 := softnetDrops(t)

	dump := fl.client.Start("listening on", "tcpdump", "-nn", "-l", "-tt", "-e", "-i", "eth0",
		"arp or (icmp6 and ip6[40] == 136)")
	// The flap's pollers: a new connection every 50 ms, each given up after
	// flapTimeout, so that one sent into the dead link soon makes way for
	// a fresh one, which measures the recovery.
	flapPolls := []flapPoller{
		{name: "IPv4", url: "http://" + vip + "/"},
		{name: "IPv6", url: "http://[" + vip6 + "]/"},
	}
	for i := range flapPolls {
		flapPolls[i].start(t, fl, flapTimeout)
	}

	down := time.Now()
	master.h.IP("link", "set", "eth0", "down")
	// One second down: the backup must not take over meanwhile.
	holds(t, time.Second, "the backup stays backup while the master's link is down", func() error {
		return held(backup.h, false)
	})
	// up is taken before the command, for the test's own steps; the
	// director is timed from the kernel's link-up, below.
	up := time.Now()
	master.h.IP("link", "set", "eth0", "up")
	// The host's own address went with the link too; putting it back is
	// the host's network configuration's job (ifupdown, networkd), not
	// the director's. The IPv6 real servers are reached through it (its
	// /64 is the route to them), so IPv6 traffic cannot resume before it
	// is back: its recovery counts from when the kernel created it, by
	// the kernel's own stamp. Not from the command's start: a starved
	// guest once ran the `ip` 3.4 s late, and the IPv6 poller recovered
	// 60 ms before the command returned.
	up6 := time.Now()
	master.h.IP("addr", "add", director6+v6PrefixLn, "dev", "eth0", "nodad")
	step := func(what string) { t.Logf("%s after link-up: %s", durMS(time.Since(up)), what) }
	step("the host's IPv6 address put back")
	born := addrBorn(t, master.h, "eth0", director6)
	if born.Before(up6.Add(-20*time.Millisecond)) || born.After(time.Now()) {
		t.Fatalf("the kernel stamps %s as created %s after the command to add it began, %s before now: the stamp is wrong",
			director6, durMS(born.Sub(up6)), durMS(time.Since(born)))
	}
	// The link came up when the kernel created eth0's link-local address
	// (addrconf does so on NETDEV_UP; the flap removed the old one): the
	// director's announcements and the IPv4 recovery count from there.
	// The `ip link set up` before it once took 0.94 s in a starved guest.
	var ll string
	for _, f := range strings.Fields(master.h.IP("-6", "-o", "addr", "show", "dev", "eth0", "scope", "link")) {
		if a, _, ok := strings.Cut(f, "/"); ok && strings.HasPrefix(a, "fe80:") {
			ll = a
		}
	}
	if ll == "" {
		t.Fatalf("%s: no link-local address on eth0 after link-up", master.h.Name)
	}
	linkUp := addrBorn(t, master.h, "eth0", ll)
	if linkUp.Before(up.Add(-20*time.Millisecond)) || linkUp.After(born) {
		t.Fatalf("the kernel stamps eth0's link-local %s as created %s after `ip link set up` began, the host's address %s after: the stamp is wrong",
			ll, durMS(linkUp.Sub(up)), durMS(born.Sub(up)))
	}
	t.Logf("the kernel's stamps, after `ip link set up` began: link-local %s (link-up) %s, the host's IPv6 address %s (its `ip addr add` began %s)",
		ll, durMS(linkUp.Sub(up)), durMS(born.Sub(up)), durMS(up6.Sub(up)))
	flapPolls[0].from, flapPolls[1].from = linkUp, born

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
		garp, na, naExtra = announcedAfter(dump.Output(), macM, linkUp)
		if garp < 0 || na < 0 || naExtra < 0 {
			return fmt.Errorf("after link-up: ARP %v, NA %v, NA of the failover address %v (negative: none seen)\n%s", garp, na, naExtra, dump.Output())
		}
		return nil
	})
	t.Logf("after the kernel's link-up (tcpdump's clock): gratuitous ARP %s, NA of %s %s, NA of %s %s", durMS(garp), vip6, durMS(na), flapExtra6, durMS(naExtra))
	if last := max(garp, na, naExtra); last > bound {
		t.Errorf("the master announced its addresses %s after the kernel's link-up, want within %s", durMS(last), bound)
	}

	// Both pollers recovered within the bound, failures only inside the
	// flap. They stop once the bound has passed: past it, their 1 s
	// timeout would count the emulated guest's own stalls as outages (a
	// loaded run had the client write no request for 1.15 s on a
	// connection whose handshake had completed, the director idle).
	limit := flapTimeout + pollEvery + bound
	end := born.Add(limit)
	time.Sleep(time.Until(end))
	var bad []flapBad
	for i := range flapPolls {
		p := &flapPolls[i]
		r := fl.stopPoll(p.proc)
		recovered := recoveryAfter(r, p.from)
		t.Logf("%s poller: %d requests, %d failed, recovered %s after link-up (of the host's address for IPv6) (outages %v, failed at %v, errors %q)",
			p.name, r.Total, r.Failures, durMS(recovered), r.Outages, r.FailedAtMS, r.Errors)
		// A request sent while the link was down waits out its timeout.
		if recovered > limit {
			t.Errorf("%s: traffic resumed %s after link-up (of the host's address for IPv6), want within %s", p.name, durMS(recovered), limit)
			bad = append(bad, flapBad{p.name, pollOutage{Start: p.from.UnixMilli(), End: p.from.Add(recovered).UnixMilli()}})
		}
		for _, o := range r.Outages {
			// The window ended at born+limit; a poller still running in
			// a starved guest after that (seen: 13 s after its SIGINT)
			// times out on the guest's stalls, which the steady pollers'
			// 3 s timeout covers instead.
			if o.Start > end.UnixMilli() {
				t.Logf("%s: outage %+v after the window (ended %d), the poller not yet stopped: not judged", p.name, o, end.UnixMilli())
				continue
			}
			if o.Start < down.Add(-flapTimeout).UnixMilli() || o.End == 0 || o.End > p.from.Add(limit).UnixMilli() {
				t.Errorf("%s: outage %+v outside the flap (down %d, up %d)", p.name, o, down.UnixMilli(), p.from.UnixMilli())
				bad = append(bad, flapBad{p.name, o})
			}
		}
	}
	step("the flap's pollers stopped")

	// After the flap, nothing more may fail: not while the neighbour
	// entries the flap flushed and the link-up re-learned (the client's
	// for the VIPs, the master's for the real servers) go stale after a
	// random reachable time (15-45 s), then are probed again, nor at any
	// later resync. These pollers give each request steadyTimeout: a
	// stalled guest is not a failure, a refused or reset connection is, at
	// once.
	steadyPolls := []flapPoller{
		{name: "IPv4 after the flap", url: "http://" + vip + "/"},
		{name: "IPv6 after the flap", url: "http://[" + vip6 + "]/"},
	}
	steadyFrom := time.Now()
	for i := range steadyPolls {
		steadyPolls[i].start(t, fl, steadyTimeout)
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
	step("fresh requests, the backup and the client's ARP entry checked")
	time.Sleep(time.Until(up.Add(steadyFor)))
	for i := range steadyPolls {
		p := &steadyPolls[i]
		r := fl.stopPoll(p.proc)
		t.Logf("%s poller: %d requests, %d failed (outages %v, errors %q)", p.name, r.Total, r.Failures, r.Outages, r.Errors)
		if r.Failures != 0 {
			t.Errorf("%s: %d of %d requests failed between %s and %s after link-up, want none",
				p.name, r.Failures, r.Total, durMS(steadyFrom.Sub(up)), durMS(steadyFor))
			for _, o := range r.Outages {
				bad = append(bad, flapBad{p.name, o})
			}
		}
	}
	t.Logf("the guest's input queues dropped %d packets during the test", softnetDrops(t)-softnet0)
	if len(bad) > 0 {
		flapDiagnosis(t, fl, master, wire, wirePcap, bad)
	}
}

const (
	// steadyTimeout is the after-the-flap pollers' per-request timeout:
	// past a SYN retransmission (1 s) in a guest that stalls for a second.
	steadyTimeout = 3 * time.Second
	// steadyFor is how long after link-up the steady pollers run: past
	// the longest reachable time (1.5 x 30 s) of a neighbour entry
	// learned at link-up, its delay (5 s) and its probes.
	steadyFor = 55 * time.Second
)

// flapPoller is one labhost poll of the link flap test.
type flapPoller struct {
	name, url string
	proc      *labnet.Proc
	from      time.Time // when its traffic can flow again: its recovery counts from there
}

func (p *flapPoller) start(t *testing.T, fl *failoverLab, timeout time.Duration) {
	t.Helper()
	p.proc = fl.client.Start("ready", bin(t, "labhost"), "poll", "--url", p.url,
		"--interval", pollEvery.String(), "--duration", "5m", "--timeout", timeout.String())
}

// flapBad is an outage the link flap test failed on, by poller.
type flapBad struct {
	poller string
	o      pollOutage
}

// flapDiagnosis prints what tells why a poller failed: the wire in each
// bad stretch (address resolution, and the SYN, FIN and RST segments of
// the connections the failing poller opened in it, each frame once, at
// the switch port it entered by), and each host's neighbour table, link
// and protocol counters.
func flapDiagnosis(t *testing.T, fl *failoverLab, master *node, wire *labnet.Proc, pcap string, bad []flapBad) {
	t.Helper()
	if err := wire.Signal(syscall.SIGINT); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		wire.Wait(ctx)
		cancel()
	}
	t.Logf("tcpdump on the switch: %s", strings.TrimSpace(wire.Output()))
	out, err := exec.Command("tcpdump", "-r", pcap, "-nn", "-tt", "-e").CombinedOutput()
	if err != nil {
		t.Logf("tcpdump -r: %v\n%s", err, out)
	}
	var macs []string
	for _, h := range append([]*labnet.Host{fl.client, fl.director, fl.backup}, fl.rs...) {
		macs = append(macs, h.Name+" "+h.MAC("eth0"))
	}
	t.Logf("MACs: %s", strings.Join(macs, ", "))
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		// Each frame once: where it entered the switch.
		if f := strings.Fields(l); len(f) > 2 && f[2] != "Out" {
			lines = append(lines, l)
		}
	}
	at := func(l string) float64 {
		f, _, _ := strings.Cut(l, " ")
		v, _ := strconv.ParseFloat(f, 64)
		return v
	}
	all := map[string]bool{}
	for _, b := range bad {
		src := clientIP
		if strings.HasPrefix(b.poller, "IPv6") {
			src = client6
		}
		syn := regexp.MustCompile(regexp.QuoteMeta(src) + `\.(\d+) > \S+\.80: Flags \[S\]`)
		from, to := float64(b.o.Start)/1e3, float64(b.o.End)/1e3
		if b.o.End == 0 {
			to = from + 5
		}
		ports := map[string]bool{}
		for _, l := range lines {
			if ts := at(l); ts >= from-0.05 && ts <= to {
				if m := syn.FindStringSubmatch(l); m != nil {
					ports[m[1]] = true
					all[m[1]] = true
				}
			}
		}
		var w strings.Builder
		n := 0
		for _, l := range lines {
			ts := at(l)
			if ts < from-5 || ts > to+0.2 {
				continue
			}
			keep := strings.Contains(l, "ARP") || strings.Contains(l, "ICMP6")
			for p := range ports {
				keep = keep || strings.Contains(l, "."+p+" ") || strings.Contains(l, "."+p+":")
			}
			if keep && n < 300 {
				w.WriteString(l + "\n")
				n++
			}
		}
		t.Logf("%s poller, outage %d-%d: the wire from 5 s before it (address resolution, the SYN/FIN/RST of the poller's connections opened in it: ports %v), %d lines:\n%s",
			b.poller, b.o.Start, b.o.End, slices.Sorted(maps.Keys(ports)), n, w.String())
	}
	conns, _ := master.h.Exec("ipvsadm", "-Lnc")
	var w strings.Builder
	for _, l := range strings.Split(conns, "\n") {
		for p := range all {
			if strings.Contains(l, ":"+p+" ") {
				w.WriteString(l + "\n")
			}
		}
	}
	t.Logf("the master's IPVS connections of those ports:\n%s", w.String())
	for _, h := range append([]*labnet.Host{fl.client, fl.director, fl.backup}, fl.rs...) {
		neigh, _ := h.Exec("ip", "-s", "neigh", "show")
		link, _ := h.Exec("ip", "-s", "link", "show", "eth0")
		stats, _ := h.Exec("nstat", "-as")
		t.Logf("%s: ip -s neigh:\n%s\nip -s link show eth0:\n%s\nnstat -as:\n%s", h.Name, neigh, link, stats)
	}
}

// addrBorn is when the kernel created the IPv6 address addr on h's dev
// (labhost addrborn).
func addrBorn(t *testing.T, h *labnet.Host, dev, addr string) time.Time {
	t.Helper()
	out := h.MustExec(bin(t, "labhost"), "addrborn", "--dev", dev, "--addr", addr)
	var r struct {
		BornMS int64 `json:"born_ms"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.BornMS == 0 {
		t.Fatalf("labhost addrborn: %v: %q", err, out)
	}
	return time.UnixMilli(r.BornMS)
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
