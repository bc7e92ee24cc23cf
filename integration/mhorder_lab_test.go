//go:build lab

package integration

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/golvs/golvs/director"
	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/integration/labnet"
)

// The kernel facts behind director.PlanMHOrder, shown on the real kernel:
// two mh directors with the same real servers added in different orders
// map some flows differently; the plan's deletes and re-adds make their
// lists, and so their choices, the same, and connections through the
// reordered director survive it.

const mhProbe = "10.10.0.5"

// mhDests is a director's destination list for the VIP in kernel order,
// read from /proc/net/ip_vs, which walks svc->destinations as it is
// (`ipvsadm -Ln` sorts the destinations, so it cannot show the order).
func mhDests(t *testing.T, h *labnet.Host) []ipvs.Destination {
	t.Helper()
	out := h.MustExec("cat", "/proc/net/ip_vs")
	var ds []ipvs.Destination
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != "->" || f[1] == "RemoteAddress:Port" {
			continue
		}
		// 0A0A0015:0050 is 10.10.0.21:80.
		hexAddr, hexPort, ok := strings.Cut(f[1], ":")
		a, err1 := strconv.ParseUint(hexAddr, 16, 32)
		p, err2 := strconv.ParseUint(hexPort, 16, 16)
		if !ok || err1 != nil || err2 != nil {
			t.Fatalf("/proc/net/ip_vs line %q", line)
		}
		w, _ := strconv.Atoi(f[3])
		addr := netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
		ds = append(ds, ipvs.Destination{Address: addr, Port: uint16(p), Weight: w, Forwarding: ipvs.Route})
	}
	return ds
}

// applyIpvsadm carries out writes with ipvsadm, one process each: slower
// than the director's batch, so the window in which a moved destination
// is absent is wider than in production.
func applyIpvsadm(t *testing.T, h *labnet.Host, ws []ipvs.Write) {
	t.Helper()
	for _, w := range ws {
		rs := w.Dest.Key().String()
		switch w.Kind {
		case ipvs.WriteDeleteDest:
			h.MustExec("ipvsadm", "-d", "-t", bgpVIP+":80", "-r", rs)
		case ipvs.WriteAddDest:
			h.MustExec("ipvsadm", "-a", "-t", bgpVIP+":80", "-r", rs, "-g", "-w", strconv.Itoa(w.Dest.Weight))
		case ipvs.WriteUpdateDest:
			h.MustExec("ipvsadm", "-e", "-t", bgpVIP+":80", "-r", rs, "-g", "-w", strconv.Itoa(w.Dest.Weight))
		default:
			t.Fatalf("unexpected write %+v", w)
		}
	}
}

// mapping sends one short HTTP/1.0 request per source port from the probe
// host to the VIP through director `via` and returns which real server
// answered each. The server closes first, so the probe keeps no
// TIME_WAIT that would stop the same flow being made again.
func mapping(t *testing.T, probe *labnet.Host, via string, ports []int) map[int]string {
	t.Helper()
	probe.IP("route", "replace", bgpVIP+"/32", "via", via)
	ns, err := netns.GetFromName(probe.NS)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	out := map[int]string{}
	func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			t.Fatal(err)
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			t.Fatal(err)
		}
		defer netns.Set(orig)
		for _, p := range ports {
			d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(mhProbe), Port: p},
				Control: func(_, _ string, c syscall.RawConn) error {
					var serr error
					c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1) })
					return serr
				}}
			c, err := d.Dial("tcp", bgpVIP+":80")
			if err != nil {
				t.Fatalf("probe from port %d via %s: %v", p, via, err)
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
			body, err := io.ReadAll(c)
			c.Close()
			if err != nil {
				t.Fatalf("probe from port %d via %s: %v", p, via, err)
			}
			m := rsName.Find(body)
			if m == nil {
				t.Fatalf("probe from port %d via %s: no server name in %q", p, via, body)
			}
			out[p] = string(m)
		}
	}()
	return out
}

func differing(a, b map[int]string) []int {
	var out []int
	for p, s := range a {
		if b[p] != s {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func TestMHOrderCanonical(t *testing.T) {
	l := labnet.NewLab(t)
	edge := l.Segment("edge")
	probe := l.Host("probe", edge, mhProbe+"/24")
	var want []director.MHDest
	for i := 1; i <= 3; i++ {
		addr := fmt.Sprintf("10.10.0.%d", 20+i)
		h := l.Host(fmt.Sprintf("rs%d", i), edge, addr+"/24")
		prepareDR(t, h, bgpVIP)
		h.Start("ready", bin(t, "labhost"), "serve", "--name", fmt.Sprintf("rs%d", i), "--http", ":80")
		want = append(want, director.MHDest{Destination: ipvs.Destination{
			Address: netip.MustParseAddr(addr), Port: 80, Weight: 1, Forwarding: ipvs.Route}, Nominal: 1})
	}
	// Director A added the real servers in ascending order, B in
	// descending order: the same set, different kernel lists.
	dirs := map[string][]int{"10.10.0.11": {0, 1, 2}, "10.10.0.12": {2, 1, 0}}
	hosts := map[string]*labnet.Host{}
	for _, addr := range []string{"10.10.0.11", "10.10.0.12"} {
		h := l.Host("d"+addr[len(addr)-2:], edge, addr+"/24")
		h.IP("addr", "add", bgpVIP+"/32", "dev", "lo")
		h.Sysctl("net.ipv4.vs.sloppy_tcp", "1")
		h.MustExec("ipvsadm", "-A", "-t", bgpVIP+":80", "-s", "mh", "-b", "mh-port")
		for _, i := range dirs[addr] {
			h.MustExec("ipvsadm", "-a", "-t", bgpVIP+":80", "-r", want[i].Key().String(), "-g", "-w", "1")
		}
		hosts[addr] = h
	}
	a, b := hosts["10.10.0.11"], hosts["10.10.0.12"]
	la, lb := keys(mhDests(t, a)), keys(mhDests(t, b))
	t.Logf("kernel lists (head first): A %v, B %v", la, lb)
	// Adds go to the head: A's list is the reverse of its add order.
	if !slices.Equal(la, []string{"10.10.0.23:80", "10.10.0.22:80", "10.10.0.21:80"}) || !slices.Equal(lb, []string{"10.10.0.21:80", "10.10.0.22:80", "10.10.0.23:80"}) {
		t.Fatalf("the kernel did not insert added destinations at the head of its list")
	}

	// The model of the kernel's table names the flows whose real server
	// depends on the order (few: see mhmodel_lab_test.go); probe those.
	toAP := func(ss []string) []netip.AddrPort {
		var out []netip.AddrPort
		for _, x := range ss {
			out = append(out, netip.MustParseAddrPort(x))
		}
		return out
	}
	listA, listB := toAP(la), toAP(lb)
	tableA, tableB := mhTable(listA), mhTable(listB)
	probeAddr := netip.MustParseAddr(mhProbe)
	var sensitive []int
	for p := 1024; p < 65536 && len(sensitive) < 40; p++ {
		if mhPick(listA, tableA, probeAddr, uint16(p)) != mhPick(listB, tableB, probeAddr, uint16(p)) {
			sensitive = append(sensitive, p)
		}
	}
	if len(sensitive) < 20 {
		t.Fatalf("the model found only %d order-sensitive flows", len(sensitive))
	}
	name := func(ap netip.AddrPort) string { return fmt.Sprintf("rs%d", ap.Addr().As4()[3]-20) }
	before, later := sensitive[:len(sensitive)/2], sensitive[len(sensitive)/2:]
	gotA, gotB := mapping(t, probe, "10.10.0.11", before), mapping(t, probe, "10.10.0.12", before)
	for _, p := range before {
		wa, wb := name(mhPick(listA, tableA, probeAddr, uint16(p))), name(mhPick(listB, tableB, probeAddr, uint16(p)))
		if gotA[p] != wa || gotB[p] != wb {
			t.Errorf("flow from port %d: A chose %s, B %s; the model of the kernel's table says %s and %s", p, gotA[p], gotB[p], wa, wb)
		}
	}
	t.Logf("before: on the %d order-sensitive flows the model names, A and B chose differently on %d", len(before), len(differing(gotA, gotB)))

	// Long-lived connections through B while it is reordered.
	probe.IP("route", "replace", bgpVIP+"/32", "via", "10.10.0.12")
	kc := openKeptConns(t, probe, []string{mhProbe}, 60)
	for name, h := range hosts {
		ws := director.PlanMHOrder(ipvs.Service{}, mhDests(t, h), want)
		t.Logf("plan for %s: %d writes", name, len(ws))
		applyIpvsadm(t, h, ws)
	}
	broken, why := kc.check()
	t.Logf("reordering B with 60 connections through it: %d broken %v", broken, why)
	if broken != 0 {
		t.Errorf("%d connections broken by the reorder: %v", broken, why)
	}
	la, lb = keys(mhDests(t, a)), keys(mhDests(t, b))
	if !slices.Equal(la, lb) || la[0] != "10.10.0.23:80" {
		t.Fatalf("after the plan the lists are A %v, B %v; want both canonical (descending)", la, lb)
	}
	after := differing(mapping(t, probe, "10.10.0.11", later), mapping(t, probe, "10.10.0.12", later))
	t.Logf("after: lists %v on both; %d of %d order-sensitive flows differ", la, len(after), len(later))
	if len(after) != 0 {
		t.Errorf("flows from ports %v still map differently on A and B", after)
	}
}

func keys(ds []ipvs.Destination) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Key().String())
	}
	return out
}
