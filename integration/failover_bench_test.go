//go:build lab && bench

package integration

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Markers around the raw figures, for whoever collects them from the
// guest's console.
const (
	failoverBenchBegin = "GOLVS-FAILOVER-BENCH-RAW-BEGIN"
	failoverBenchEnd   = "GOLVS-FAILOVER-BENCH-RAW-END"
)

// failoverSample is one measured failover.
type failoverSample struct {
	Impl       string `json:"impl"` // golvs | keepalived (both directors)
	IntervalMS int64  `json:"advert_interval_ms"`
	Run        int    `json:"run"`
	OutageMS   int64  `json:"outage_ms"` // longest gap seen by the poller
	// WireMS is the gap on the wire, seen by tcpdump on the client: the
	// master's last advert to the backup's first gratuitous ARP for the VIP.
	WireMS int64 `json:"wire_ms"`
}

// TestFailoverBench measures the outage a client polling every 50ms sees
// when the master director's box dies (every process SIGKILLed, link down):
// golvs+golvs against keepalived+keepalived, advert intervals 100ms, 200ms
// and 1s, five runs each, in the same guest. It prints the medians and the
// raw figures; it fails only when a failover does not happen.
//
// Run it (from the module root):
//
//	go build -o bin/director ./cmd/director
//	go build -o bin/labhost ./integration/cmd/labhost
//	go test -c -tags 'lab bench' -o bin/failover-bench.test ./integration
//	go run ./integration/cmd/lab run --timeout 30m -- env GOLVS_BIN=$PWD/bin \
//	    $PWD/bin/failover-bench.test -test.run '^TestFailoverBench$' -test.v -test.timeout 30m
func TestFailoverBench(t *testing.T) {
	const runs = 5
	intervals := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, time.Second}
	impls := []string{"golvs", "keepalived"}
	var samples []failoverSample
	for _, iv := range intervals {
		for _, impl := range impls {
			t.Run(fmt.Sprintf("%s/%v", impl, iv), func(t *testing.T) {
				fl := newFailoverLab(t, iv, false)
				fl.bench = true
				mk := fl.ours
				if impl == "keepalived" {
					mk = fl.keepalived
				}
				master, backup := mk(fl.director, 200), mk(fl.backup, 100)
				dump := fl.client.Start("listening on", "tcpdump", "-nn", "-l", "-tt", "-e", "-i", "eth0", "ip proto 112 or arp")
				masterMAC, backupMAC := fl.director.MAC("eth0"), fl.backup.MAC("eth0")
				for run := 1; run <= runs; run++ {
					fl.establish(master, backup)
					var from int
					// The crash comes right after one of the master's adverts,
					// so the outage does not depend on where in its advert
					// cycle the master dies (which differs between the two
					// implementations' start-up timings).
					align := func() {
						from = len(dump.Output())
						deadline := time.Now().Add(5 * time.Second)
						for lastAdvert(dump.Output()[from:], masterMAC) == 0 {
							if time.Now().After(deadline) {
								t.Fatalf("tcpdump saw no advert from the master in 5s:\n%s", dump.Output()[from:])
							}
							time.Sleep(2 * time.Millisecond)
						}
					}
					// A 200ms request timeout: finer outage resolution than the
					// tests' 500ms, the same for both implementations.
					outage := fl.failoverPoll(master, backup, 200*time.Millisecond, align)
					wire, err := wireGap(dump.Output()[from:], masterMAC, backupMAC)
					if err != nil {
						t.Fatalf("%v\n%s", err, dump.Output()[from:])
					}
					t.Logf("run %d: poll outage %v, wire gap %v", run, outage, wire)
					samples = append(samples, failoverSample{Impl: impl, IntervalMS: iv.Milliseconds(), Run: run,
						OutageMS: outage.Milliseconds(), WireMS: wire.Milliseconds()})
					// Back to the start: the backup's box dies too, both come
					// back clean (no VIP left behind by a killed process).
					backup.crash()
					for _, n := range []*node{master, backup} {
						n.h.Exec("ip", "addr", "del", vip+"/32", "dev", "eth0")
						n.h.IP("link", "set", "eth0", "up")
					}
				}
			})
		}
	}

	var b strings.Builder
	fmt.Fprintln(&b, failoverBenchBegin)
	for _, s := range samples {
		j, _ := json.Marshal(s)
		fmt.Fprintln(&b, string(j))
	}
	fmt.Fprintln(&b, failoverBenchEnd)
	fmt.Fprintf(&b, "failover outage, median of %d, ms (one guest run: compare columns, not runs)\n", runs)
	fmt.Fprintf(&b, "  poll: longest gap seen by a client polling every 50ms (200ms timeout)\n")
	fmt.Fprintf(&b, "  wire: master's last advert -> backup's first gratuitous ARP (tcpdump)\n")
	fmt.Fprintf(&b, "%-8s %6s %10s %6s %10s %6s  %s\n", "advert", "poll", "", "wire", "", "down", "golvs <= keepalived")
	fmt.Fprintf(&b, "%-8s %6s %10s %6s %10s %6s  %s\n", "", "golvs", "keepalived", "golvs", "keepalived", "", "(poll, wire)")
	for _, iv := range intervals {
		med := func(impl string, f func(failoverSample) int64) int64 {
			var xs []int64
			for _, s := range samples {
				if s.Impl == impl && s.IntervalMS == iv.Milliseconds() {
					xs = append(xs, f(s))
				}
			}
			return failoverMedian(xs)
		}
		poll := func(s failoverSample) int64 { return s.OutageMS }
		wire := func(s failoverSample) int64 { return s.WireMS }
		pg, pk, wg, wk := med("golvs", poll), med("keepalived", poll), med("golvs", wire), med("keepalived", wire)
		fmt.Fprintf(&b, "%-8v %6d %10d %6d %10d %6d  %v, %v\n", iv, pg, pk, wg, wk,
			masterDown(iv, 100).Milliseconds(), pg <= pk, wg <= wk)
	}
	fmt.Print(b.String())
}

// tcpdump -tt -e lines: epoch time, then the source MAC.
var dumpLine = regexp.MustCompile(`^(\d+\.\d+) ([0-9a-f:]{17}) > `)

// lastAdvert is the time (epoch seconds) of the last non-zero-priority
// VRRP advert from mac in out, 0 if none.
func lastAdvert(out, mac string) float64 {
	var last float64
	for _, l := range strings.Split(out, "\n") {
		m := dumpLine.FindStringSubmatch(l)
		if m == nil || m[2] != mac || !strings.Contains(l, "VRRPv3, Advertisement") || strings.Contains(l, "prio 0,") {
			continue
		}
		last, _ = strconv.ParseFloat(m[1], 64)
	}
	return last
}

// wireGap is the time from the master's last advert to the backup's first
// ARP packet for the VIP after it.
func wireGap(out, masterMAC, backupMAC string) (time.Duration, error) {
	var lastMaster float64
	for _, l := range strings.Split(out, "\n") {
		m := dumpLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		ts, _ := strconv.ParseFloat(m[1], 64)
		switch {
		case m[2] == masterMAC && strings.Contains(l, "VRRPv3, Advertisement") && !strings.Contains(l, "prio 0,"):
			lastMaster = ts
		case m[2] == backupMAC && lastMaster > 0 && strings.Contains(l, "ethertype ARP") && strings.Contains(l, " "+vip+" "):
			return time.Duration((ts - lastMaster) * float64(time.Second)), nil
		}
	}
	return 0, fmt.Errorf("tcpdump: no advert from the master %s followed by an ARP for %s from the backup %s", masterMAC, vip, backupMAC)
}

// failoverMedian of xs; -1 when there are none.
func failoverMedian(xs []int64) int64 {
	if len(xs) == 0 {
		return -1
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
