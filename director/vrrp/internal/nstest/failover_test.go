package nstest

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGolvsPair: A (priority 200) and B (100), both golvs.
func TestGolvsPair(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	cap := l.tcpdump(l.nsB, devB)
	a := l.golvs(l.nsA, devA, "golvs-a", 200, "-vip", vip4)
	b := l.golvs(l.nsB, devB, "golvs-b", 100, "-vip", vip4)

	waitFor(t, startup, "A holds the VIP", func() bool { return hasAddr(l.nsA, devA, vip4) })
	// B hears A's adverts and stays backup across several master-down intervals.
	holdsFalse(t, 2*down100, "B took the VIP while A is alive", func() bool { return hasAddr(l.nsB, devB, vip4) })
	if strings.Contains(b.stdout(), "STATE master") {
		t.Fatalf("B was master while A is alive:\n%s", b.stdout())
	}

	// A dies without a word: B takes over after the master-down interval.
	a.signal(t, syscall.SIGKILL)
	a.wait(t, 5*time.Second)
	took := waitFor(t, down100+slack+time.Second, "B takes the VIP after A is killed", func() bool { return hasAddr(l.nsB, devB, vip4) })
	t.Logf("failover after SIGKILL of master: %v (master down interval %v)", took, down100)
	if took > down100+slack {
		t.Errorf("failover took %v, want <= %v", took, down100+slack)
	}

	// A comes back with the higher priority and preempts B.
	a2 := l.golvs(l.nsA, devA, "golvs-a2", 200, "-vip", vip4)
	took = waitFor(t, startup, "restarted A preempts", func() bool {
		return hasAddr(l.nsA, devA, vip4) && !hasAddr(l.nsB, devB, vip4)
	})
	t.Logf("preemption by restarted higher-priority A: %v", took)

	// A shuts down gracefully: priority 0 advert, B fires after skew only.
	a2.signal(t, syscall.SIGTERM)
	took = waitFor(t, skew100+slack+time.Second, "B takes the VIP after A's priority-0 advert", func() bool { return hasAddr(l.nsB, devB, vip4) })
	t.Logf("failover after graceful shutdown (priority 0): %v (skew %v)", took, skew100)
	if took > skew100+slack {
		t.Errorf("graceful failover took %v, want <= %v", took, skew100+slack)
	}
	a2.wait(t, 5*time.Second)
	if hasAddr(l.nsA, devA, vip4) {
		t.Error("A kept the VIP after a graceful shutdown")
	}

	cap.signal(t, syscall.SIGINT)
	cap.wait(t, 5*time.Second)
	checkWire(t, cap.stdout())
}

var (
	vrrpLine = regexp.MustCompile(`ttl (\d+),.*proto VRRP \(112\)`)
	advLine  = regexp.MustCompile(`192\.0\.2\.1 > 224\.0\.0\.18: VRRPv3, Advertisement, vrid 51, prio (\d+), intvl 100cs, length 12, addrs: 192\.0\.2\.100`)
	arpReq   = regexp.MustCompile(`Ethernet \(len 6\), IPv4 \(len 4\), Request who-has 192\.0\.2\.100 tell 192\.0\.2\.100`)
	arpReply = regexp.MustCompile(`Ethernet \(len 6\), IPv4 \(len 4\), Reply 192\.0\.2\.100 is-at `)
)

// checkWire asserts on tcpdump's view of the capture: every VRRP packet has
// TTL 255, A's adverts (priority 200, and 0 on shutdown) decode as VRRPv3,
// and gratuitous ARP in both forms was broadcast.
func checkWire(t *testing.T, dump string) {
	t.Helper()
	var ttls, prios = map[int]int{}, map[int]int{}
	for _, m := range vrrpLine.FindAllStringSubmatch(dump, -1) {
		n, _ := strconv.Atoi(m[1])
		ttls[n]++
	}
	for _, m := range advLine.FindAllStringSubmatch(dump, -1) {
		n, _ := strconv.Atoi(m[1])
		prios[n]++
	}
	if len(ttls) != 1 || ttls[255] == 0 {
		t.Errorf("VRRP TTLs on the wire: %v, want only 255", ttls)
	}
	if prios[200] < 3 || prios[0] == 0 {
		t.Errorf("A's adverts by priority: %v, want several at 200 and a priority-0 one", prios)
	}
	// Two takeovers by A, each 5 rounds at once and 5 more after 2 s: at
	// least 10 of each form.
	if n := len(arpReq.FindAllString(dump, -1)); n < 10 {
		t.Errorf("gratuitous ARP requests seen: %d, want >= 10", n)
	}
	if n := len(arpReply.FindAllString(dump, -1)); n < 10 {
		t.Errorf("gratuitous ARP replies seen: %d, want >= 10", n)
	}
	if !strings.Contains(dump, "ff:ff:ff:ff:ff:ff, ethertype ARP") {
		t.Error("gratuitous ARP not sent to the broadcast address")
	}
}

// TestKeepalivedMasterGolvsBackup: keepalived (200) is master, golvs (100)
// follows its adverts; when every keepalived process dies, golvs takes over.
// For IPv4 and IPv6: golvs staying backup proves it parses keepalived's
// adverts, checksum included.
func TestKeepalivedMasterGolvsBackup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, vip, prefix, master string }{
		{"ipv4", vip4, "/32", "master=192.0.2.1"},
		{"ipv6", vip6, "/128", "master=fe80::"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			l.keepalived(l.nsA, devA, "keepalived-a", 200, tc.vip+tc.prefix)
			b := l.golvs(l.nsB, devB, "golvs-b", 100, "-vip", tc.vip)

			waitFor(t, startup, "keepalived holds the VIP", func() bool { return hasAddr(l.nsA, devA, tc.vip) })
			holdsFalse(t, 2*down100, "golvs took the VIP while keepalived is master", func() bool { return hasAddr(l.nsB, devB, tc.vip) })
			if !strings.Contains(b.stderr(), tc.master) {
				t.Errorf("golvs status does not name keepalived (%s) as master:\n%s", tc.master, tail([]byte(b.stderr()), 5))
			}

			if n := l.killNS(l.nsA); n == 0 {
				t.Fatal("no keepalived process to kill")
			}
			took := waitFor(t, down100+slack+time.Second, "golvs takes over from dead keepalived", func() bool { return hasAddr(l.nsB, devB, tc.vip) })
			t.Logf("golvs takeover after keepalived killed: %v (master down interval %v)", took, down100)
			if took > down100+slack {
				t.Errorf("takeover took %v, want <= %v", took, down100+slack)
			}
		})
	}
}

// TestGolvsMasterKeepalivedBackup: golvs (200) is master and keepalived
// (100) accepts its adverts; when golvs dies keepalived takes over. Run for
// IPv4 and IPv6: keepalived staying backup proves it accepts our checksum
// (pseudo-header), TTL / hop limit, length and VRID.
func TestGolvsMasterKeepalivedBackup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, vip, prefix string }{
		{"ipv4", vip4, "/32"},
		{"ipv6", vip6, "/128"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			a := l.golvs(l.nsA, devA, "golvs-a", 200, "-vip", tc.vip)
			k := l.keepalived(l.nsB, devB, "keepalived-b", 100, tc.vip+tc.prefix)

			waitFor(t, startup, "golvs holds the VIP", func() bool { return hasAddr(l.nsA, devA, tc.vip) })
			holdsFalse(t, 2*down100, "keepalived took the VIP while golvs is master", func() bool { return hasAddr(l.nsB, devB, tc.vip) })

			a.signal(t, syscall.SIGKILL)
			a.wait(t, 5*time.Second)
			took := waitFor(t, down100+slack+time.Second, "keepalived takes over from dead golvs", func() bool { return hasAddr(l.nsB, devB, tc.vip) })
			t.Logf("keepalived takeover after golvs killed: %v (master down interval %v)", took, down100)
			if took > down100+slack {
				t.Errorf("takeover took %v, want <= %v", took, down100+slack)
			}
			if !strings.Contains(k.stderr(), "Entering MASTER STATE") {
				t.Errorf("keepalived log lacks its MASTER transition:\n%s", tail([]byte(k.stderr()), 10))
			}
		})
	}
}

// TestUnicastPeers: the pair configured with unicast peers instead of
// multicast.
func TestUnicastPeers(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	notified := filepath.Join(l.dir, "notified")
	script := filepath.Join(l.dir, "notify.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$1\" >> "+notified+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	a := l.golvs(l.nsA, devA, "golvs-a", 200, "-vip", vip4, "-peers", "192.0.2.2", "-notify", script)
	b := l.golvs(l.nsB, devB, "golvs-b", 100, "-vip", vip4, "-peers", "192.0.2.1")
	waitFor(t, startup, "A holds the VIP", func() bool { return hasAddr(l.nsA, devA, vip4) })
	holdsFalse(t, 2*down100, "B took the VIP while A is alive", func() bool { return hasAddr(l.nsB, devB, vip4) })
	if !strings.Contains(b.stderr(), "master=192.0.2.1") {
		t.Errorf("B does not follow A:\n%s", tail([]byte(b.stderr()), 5))
	}
	a.signal(t, syscall.SIGTERM)
	took := waitFor(t, skew100+slack+time.Second, "B takes over after A's priority-0 advert", func() bool { return hasAddr(l.nsB, devB, vip4) })
	t.Logf("unicast graceful failover: %v", took)
	if took > skew100+slack {
		t.Errorf("graceful failover took %v, want <= %v", took, skew100+slack)
	}
	a.wait(t, 5*time.Second)
	// The notify program ran for each transition, in order.
	if b, err := os.ReadFile(notified); err != nil || string(b) != "backup\nmaster\n" {
		t.Errorf("notify calls %q (%v), want backup then master", b, err)
	}
}

// TestAuth: with the same key the pair behaves normally; a backup with a
// different key drops every advert as a bad MAC and (as it must, hearing
// nobody valid) becomes master too.
func TestAuth(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	key := filepath.Join(l.dir, "vrrp.key")
	other := filepath.Join(l.dir, "other.key")
	for f, s := range map[string]string{key: "shared-secret-of-golvs\n", other: "a-different-secret-key\n"} {
		if err := os.WriteFile(f, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l.golvs(l.nsA, devA, "golvs-a", 200, "-vip", vip4, "-key", key)
	b := l.golvs(l.nsB, devB, "golvs-b", 100, "-vip", vip4, "-key", key)
	waitFor(t, startup, "A holds the VIP", func() bool { return hasAddr(l.nsA, devA, vip4) })
	holdsFalse(t, 2*down100, "B with the right key took the VIP", func() bool { return hasAddr(l.nsB, devB, vip4) })
	if strings.Contains(b.stderr(), "BadMAC:1") {
		t.Fatal("B with the right key reported bad MACs")
	}
	b.signal(t, syscall.SIGTERM)
	b.wait(t, 5*time.Second)

	c := l.golvs(l.nsB, devB, "golvs-c", 100, "-vip", vip4, "-key", other)
	waitFor(t, startup, "C with the wrong key hears nobody and takes the VIP", func() bool { return hasAddr(l.nsB, devB, vip4) })
	waitFor(t, 3*time.Second, "C counts bad MACs", func() bool {
		return regexp.MustCompile(`BadMAC:[1-9]`).MatchString(c.stderr())
	})
}

// TestIPv6Pair: the same failover with an IPv6 VIP: adverts from link-local
// addresses to ff02::12 with hop limit 255, unsolicited NAs on takeover.
func TestIPv6Pair(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	cap := l.tcpdump(l.nsB, devB)
	a := l.golvs(l.nsA, devA, "golvs-a", 200, "-vip", vip6)
	l.golvs(l.nsB, devB, "golvs-b", 100, "-vip", vip6)
	waitFor(t, startup, "A holds the IPv6 VIP", func() bool { return hasAddr(l.nsA, devA, vip6) })
	holdsFalse(t, 2*down100, "B took the IPv6 VIP while A is alive", func() bool { return hasAddr(l.nsB, devB, vip6) })
	a.signal(t, syscall.SIGKILL)
	a.wait(t, 5*time.Second)
	took := waitFor(t, down100+slack+time.Second, "B takes the IPv6 VIP", func() bool { return hasAddr(l.nsB, devB, vip6) })
	t.Logf("IPv6 failover after SIGKILL: %v", took)
	if took > down100+slack {
		t.Errorf("IPv6 failover took %v, want <= %v", took, down100+slack)
	}
	cap.signal(t, syscall.SIGINT)
	cap.wait(t, 5*time.Second)
	dump := cap.stdout()
	adv := regexp.MustCompile(`hlim (\d+), next-header VRRP \(112\)[^\n]*fe80::\S+ > ff02::12: VRRPv3, Advertisement, vrid 51, prio 200`)
	ms := adv.FindAllStringSubmatch(dump, -1)
	if len(ms) < 3 {
		t.Fatalf("IPv6 adverts from A seen: %d, want >= 3\n%s", len(ms), tail([]byte(dump), 20))
	}
	for _, m := range ms {
		if m[1] != "255" {
			t.Errorf("advert with hop limit %s", m[1])
		}
	}
	if n := strings.Count(dump, "[icmp6 sum ok] ICMP6, neighbor advertisement, length 32, tgt is 2001:db8::100, Flags [override]"); n < 5 {
		t.Errorf("unsolicited NAs for the VIP seen: %d, want >= 5", n)
	}
}

// TestSplitBrainHeals: A (200) and B (100) start on a cut link, so both
// become master. When the link comes up, B yields to A's adverts. (Whether
// A also hears one of B's adverts first, and so re-announces at once,
// depends on who speaks first; TestRunnerTimeline covers that reply.)
func TestSplitBrainHeals(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	run(t, "ip", "-n", l.nsB, "link", "set", devB, "down")
	l.golvs(l.nsA, devA, "golvs-a", 200, "-vip", vip4)
	b := l.golvs(l.nsB, devB, "golvs-b", 100, "-vip", vip4)
	waitFor(t, startup, "both hold the VIP while cut off", func() bool {
		return hasAddr(l.nsA, devA, vip4) && hasAddr(l.nsB, devB, vip4)
	})
	run(t, "ip", "-n", l.nsB, "link", "set", devB, "up")
	took := waitFor(t, time.Second+slack, "B yields after the link heals", func() bool { return !hasAddr(l.nsB, devB, vip4) })
	t.Logf("split brain resolved %v after link up", took)
	holdsFalse(t, 2*time.Second, "A lost the VIP while resolving split brain", func() bool { return !hasAddr(l.nsA, devA, vip4) })
	if !strings.Contains(b.stderr(), "higher priority master 192.0.2.1 (200 > 100)") {
		t.Errorf("B's log lacks the reason for yielding:\n%s", tail([]byte(b.stderr()), 10))
	}
}
