//go:build lab

package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golvs/golvs/integration/labnet"
)

// TestMHOrderDirectors runs three real `director run`s with one mh
// service (mh-port, mh-fallback) whose backends reach each of them in a
// different order: d1 starts with all three, d2 and d3 grow theirs by
// SIGHUP reloads in two other orders; then all three are killed with
// SIGKILL, d1's list is disturbed by hand while it is down, and they are
// restarted in another order, d2 with one backend left out and brought
// back by a reload. After the reloads and again after the restarts, a
// probe host sends the same flows to each director directly (a route to
// the VIP via that director) and every director must send each flow to
// the same real server (which answers its own name). The flows are the
// order-sensitive ones the model of the kernel's table names (121 of
// 64512 source ports for three equal weights) plus a spread of others.
// Witnesses: the real servers' answers and /proc/net/ip_vs's list order
// (`ipvsadm -Ln` sorts the destinations, so it shows weights only).
// Connections kept through d2 while its reloads reorder its list must
// all survive.
func TestMHOrderDirectors(t *testing.T) {
	l := labnet.NewLab(t)
	edge := l.Segment("edge")
	probe := l.Host("probe", edge, mhProbe+"/24")
	keeper := l.Host("keeper", edge, "10.10.0.6/24")
	keeper.IP("route", "replace", bgpVIP+"/32", "via", "10.10.0.12")
	var rss []netip.AddrPort
	for i := 1; i <= 3; i++ {
		addr := fmt.Sprintf("10.10.0.%d", 20+i)
		h := l.Host(fmt.Sprintf("rs%d", i), edge, addr+"/24")
		prepareDR(t, h, bgpVIP)
		h.Start("ready", bin(t, "labhost"), "serve", "--name", fmt.Sprintf("rs%d", i), "--http", ":80")
		rss = append(rss, netip.MustParseAddrPort(addr+":80"))
	}
	rs1, rs2, rs3 := rss[0], rss[1], rss[2]
	canonical := []string{rs3.String(), rs2.String(), rs1.String()} // descending, head first

	type dir struct {
		name, addr, file, dir string
		h                     *labnet.Host
		p                     *labnet.Proc
		logs                  []string // output of processes that ended
	}
	write := func(d *dir, backends ...netip.AddrPort) {
		var b strings.Builder
		fmt.Fprintf(&b, `[director]
interface = "eth0"
resync_interval = "5s"
control_socket = %q
state_file = %q

[[service]]
name = "web"
address = %q
port = 80
scheduler = "mh"
scheduler_flags = ["mh-port", "mh-fallback"]
forwarding = "dr"
drain_timeout = "1s"
`, filepath.Join(d.dir, "d.sock"), filepath.Join(d.dir, "d.state"), bgpVIP)
		for _, be := range backends {
			fmt.Fprintf(&b, "\n[[service.backend]]\naddress = %q\nport = 80\nweight = 1\n", be.Addr())
		}
		if err := os.WriteFile(d.file, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// has waits until the director's kernel list holds exactly backends
	// (in any order): a start or reload has been applied.
	has := func(d *dir, backends ...netip.AddrPort) {
		t.Helper()
		var want []string
		for _, be := range backends {
			want = append(want, be.String())
		}
		slices.Sort(want)
		eventually(t, 30*time.Second, d.name+" has "+strings.Join(want, ","), func() error {
			got := keys(mhDests(t, d.h))
			slices.Sort(got)
			if !slices.Equal(got, want) {
				return fmt.Errorf("kernel list %v", got)
			}
			return nil
		})
	}
	start := func(d *dir, backends ...netip.AddrPort) {
		t.Helper()
		write(d, backends...)
		d.p = d.h.Start("", bin(t, "director"), "run", "-config", d.file)
		has(d, backends...)
	}
	reload := func(d *dir, backends ...netip.AddrPort) {
		t.Helper()
		write(d, backends...)
		if err := d.p.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		has(d, backends...)
	}
	kill := func(d *dir) {
		t.Helper()
		if err := d.p.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.p.Wait(ctx); err == nil || ctx.Err() != nil {
			t.Fatalf("%s: SIGKILL: %v", d.name, err)
		}
		d.logs = append(d.logs, d.p.Output())
	}
	var dirs []*dir
	for i := 1; i <= 3; i++ {
		d := &dir{name: fmt.Sprintf("d%d", i), addr: fmt.Sprintf("10.10.0.%d", 10+i), dir: t.TempDir()}
		d.file = filepath.Join(d.dir, "topology.toml")
		d.h = l.Host(d.name, edge, d.addr+"/24")
		dirs = append(dirs, d)
	}
	d1, d2, d3 := dirs[0], dirs[1], dirs[2]
	t.Cleanup(func() {
		if t.Failed() {
			for _, d := range dirs {
				t.Logf("%s output:\n%s%s", d.name, strings.Join(d.logs, ""), d.p.Output())
			}
		}
	})
	lists := func(when string) {
		t.Helper()
		for _, d := range dirs {
			got := keys(mhDests(t, d.h))
			t.Logf("%s: %s's kernel list (head first, /proc/net/ip_vs) %v", when, d.name, got)
			if !slices.Equal(got, canonical) {
				t.Errorf("%s: %s's kernel list is %v, want the canonical %v", when, d.name, got, canonical)
			}
		}
		t.Logf("%s: d1's ipvsadm -Ln:\n%s", when, d1.h.MustExec("ipvsadm", "-Ln"))
	}

	// The flows: the model's order-sensitive source ports (every pair of
	// list orders) and a spread, split between the two rounds.
	perms := [][]netip.AddrPort{{rs1, rs2, rs3}, {rs1, rs3, rs2}, {rs2, rs1, rs3}, {rs2, rs3, rs1}, {rs3, rs1, rs2}, {rs3, rs2, rs1}}
	var tables [][]int
	for _, p := range perms {
		tables = append(tables, mhTable(p))
	}
	client := netip.MustParseAddr(mhProbe)
	var sensitive []int
	for p := 1024; p < 65536; p++ {
		first := mhPick(perms[0], tables[0], client, uint16(p))
		for i := 1; i < len(perms); i++ {
			if mhPick(perms[i], tables[i], client, uint16(p)) != first {
				sensitive = append(sensitive, p)
				break
			}
		}
	}
	if len(sensitive) < 60 {
		t.Fatalf("the model found only %d order-sensitive source ports", len(sensitive))
	}
	var rounds [2][]int
	for i, p := range sensitive {
		rounds[i%2] = append(rounds[i%2], p)
	}
	for i := range 120 {
		if p := 20000 + i*331; !slices.Contains(sensitive, p) {
			rounds[i%2] = append(rounds[i%2], p)
		}
	}
	canonTable := mhTable(perms[5])
	agree := func(when string, ports []int) {
		t.Helper()
		got := map[string]map[int]string{}
		for _, d := range dirs {
			got[d.name] = mapping(t, probe, d.addr, ports)
		}
		var differ []string
		model := 0
		for _, p := range ports {
			a, b, c := got["d1"][p], got["d2"][p], got["d3"][p]
			if a != b || b != c {
				differ = append(differ, fmt.Sprintf("%d: d1 %s, d2 %s, d3 %s", p, a, b, c))
			}
			want := mhPick(perms[5], canonTable, client, uint16(p))
			if a == fmt.Sprintf("rs%d", want.Addr().As4()[3]-20) {
				model++
			}
		}
		t.Logf("%s: %d flows (%d order-sensitive) probed on each of the 3 directors: %d sent to different real servers; d1 agreed with the model of the canonical table on %d",
			when, len(ports), countIn(ports, sensitive), len(differ), model)
		if len(differ) > 0 {
			t.Errorf("%s: %d of %d flows go to different real servers depending on the director:\n%s", when, len(differ), len(ports), strings.Join(differ, "\n"))
		}
	}

	// Histories: d1 starts with all three; d2 grows rs3, rs2, rs1 and d3
	// rs2, rs1, rs3 by reloads, with connections kept through d2.
	start(d1, rs1, rs2, rs3)
	start(d2, rs3)
	start(d3, rs2)
	kc := openKeptConns(t, keeper, []string{"10.10.0.6"}, 30)
	reload(d2, rs3, rs2)
	reload(d3, rs2, rs1)
	reload(d2, rs3, rs2, rs1)
	reload(d3, rs2, rs1, rs3)
	broken, why := kc.check()
	t.Logf("30 connections kept through d2 (opened on %v) while its reloads reordered its list: %d broken %v", kc.servers(), broken, why)
	if broken != 0 || kc.failedAtOpen != 0 {
		t.Errorf("%d kept connections broken (%d failed at open): %v", broken, kc.failedAtOpen, why)
	}
	kc.close()
	lists("after the reloads")
	agree("after the reloads", rounds[0])

	// Every director dies; d1's list is disturbed while it is down (rs1
	// deleted and re-added by hand: now at the head); they come back in
	// another order, d2 without rs2, which a reload then adds back.
	for _, d := range dirs {
		kill(d)
	}
	d1.h.MustExec("ipvsadm", "-d", "-t", bgpVIP+":80", "-r", rs1.String())
	d1.h.MustExec("ipvsadm", "-a", "-t", bgpVIP+":80", "-r", rs1.String(), "-g", "-w", "1")
	t.Logf("d1's list while it is down: %v", keys(mhDests(t, d1.h)))
	start(d3, rs1, rs2, rs3)
	start(d1, rs1, rs2, rs3)
	start(d2, rs1, rs3)
	reload(d2, rs1, rs2, rs3)
	lists("after the restarts")
	agree("after the restarts", rounds[1])

	reorders := 0
	for _, d := range dirs {
		reorders += strings.Count(strings.Join(d.logs, "")+d.p.Output(), "mh destinations reordered")
	}
	t.Logf("the directors logged %d reorders", reorders)
	// d1 found its list disturbed when it came back, d2's reloads added
	// lower addresses: both must have said so.
	if !strings.Contains(d1.p.Output(), "mh destinations reordered") || !strings.Contains(d2.logs[0], "mh destinations reordered") {
		t.Errorf("no reorder logged by d1's restart or d2's reloads")
	}
}

func countIn(ports, set []int) int {
	n := 0
	for _, p := range ports {
		if slices.Contains(set, p) {
			n++
		}
	}
	return n
}
