package main

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// addrBorn is when the kernel created the IPv6 address addr on dev, by the
// kernel's own stamp of it (IFA_CACHEINFO's cstamp, in hundredths of a
// second of jiffies since boot), as wall-clock time. A test that puts an
// address back with `ip addr add` in a starved guest cannot take the time
// before the command (its netlink request may run seconds later) or after
// it (the process may exit seconds later); the kernel's stamp is exact to
// its 10 ms.
func addrBorn(dev, addr string) (time.Time, error) {
	ip := net.ParseIP(addr)
	if ip == nil || ip.To4() != nil {
		return time.Time{}, fmt.Errorf("%q is not an IPv6 address", addr)
	}
	link, err := netlink.LinkByName(dev)
	if err != nil {
		return time.Time{}, err
	}
	cstamp, err := addrCstamp(link.Attrs().Index, ip)
	if err != nil {
		return time.Time{}, err
	}
	// Jiffies since boot run at a fixed offset from CLOCK_MONOTONIC (seen:
	// 0.26 s on a host up a day); /proc/timer_list gives both at once.
	b, err := os.ReadFile("/proc/timer_list")
	if err != nil {
		return time.Time{}, err
	}
	offset, err := jiffiesOffset(string(b))
	if err != nil {
		return time.Time{}, err
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return time.Time{}, err
	}
	now := time.Now()
	born := time.Duration(cstamp)*10*time.Millisecond + offset
	return now.Add(-(time.Duration(ts.Nano()) - born)), nil
}

// addrCstamp dumps the IPv6 addresses and returns addr's creation stamp on
// the link with index idx.
func addrCstamp(idx int, addr net.IP) (uint32, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETADDR, unix.NLM_F_DUMP)
	req.AddData(nl.NewIfAddrmsg(unix.AF_INET6))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWADDR)
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		msg := nl.DeserializeIfAddrmsg(m)
		if int(msg.Index) != idx {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[msg.Len():])
		if err != nil {
			return 0, err
		}
		var match bool
		var ci *nl.IfaCacheInfo
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.IFA_ADDRESS:
				match = net.IP(a.Value).Equal(addr)
			case unix.IFA_CACHEINFO:
				ci = nl.DeserializeIfaCacheInfo(a.Value)
			}
		}
		if match && ci != nil {
			return ci.Cstamp, nil
		}
	}
	return 0, fmt.Errorf("%s not on link %d", addr, idx)
}

// jiffiesOffset reads /proc/timer_list's "now at" (CLOCK_MONOTONIC) and
// jiffies, and returns monotonic time minus jiffies since boot. The
// kernel's HZ is whichever of the configurable ones makes jiffies since
// boot agree with the monotonic clock; jiffies start at INITIAL_JIFFIES,
// 300 s before wrapping 32 bits.
func jiffiesOffset(timerList string) (time.Duration, error) {
	var now, jiffies uint64
	var haveNow, haveJiffies bool
	sc := bufio.NewScanner(strings.NewReader(timerList))
	for sc.Scan() && !(haveNow && haveJiffies) {
		l := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(l, "now at "); ok && !haveNow {
			v, _, _ = strings.Cut(v, " ")
			n, err := strconv.ParseUint(v, 10, 64)
			now, haveNow = n, err == nil
		}
		if v, ok := strings.CutPrefix(l, "jiffies: "); ok && !haveJiffies {
			n, err := strconv.ParseUint(v, 10, 64)
			jiffies, haveJiffies = n, err == nil
		}
	}
	if !haveNow || !haveJiffies {
		return 0, errors.New("/proc/timer_list: no \"now at\" or \"jiffies:\" line")
	}
	best, bestErr := time.Duration(0), time.Duration(math.MaxInt64)
	for _, hz := range []uint64{100, 250, 300, 1000} {
		initial := uint64(uint32(-int64(300 * hz)))
		if jiffies < initial {
			continue
		}
		since := time.Duration(float64(jiffies-initial) / float64(hz) * float64(time.Second))
		off := time.Duration(now) - since
		if a := off.Abs(); a < bestErr {
			best, bestErr = off, a
		}
	}
	if bestErr > 5*time.Second {
		return 0, fmt.Errorf("/proc/timer_list: jiffies %d agree with no HZ at %d ns", jiffies, now)
	}
	return best, nil
}
