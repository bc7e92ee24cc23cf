package ipvs

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

// FuzzNetlinkReply feeds the netlink reply decoding arbitrary datagrams:
// the message splitter, the attribute walker, the errno of NLMSG_ERROR,
// and the service, destination and sync daemon decoders (what Dump,
// DumpServices, Survey and Daemons build their view from). No panic; every
// message and attribute lies inside the datagram; and whatever decodes,
// encoded again by the request builder, decodes to the same value (so a
// kernel reply and our own write of it agree, and Equal never flaps).
func FuzzNetlinkReply(f *testing.F) {
	for _, seed := range netlinkSeeds() {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Add([]byte{}, false)
	f.Add(make([]byte, unix.NLMSG_HDRLEN), false)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		msgs, err := parseMsgs(b)
		if err != nil {
			return
		}
		total := 0
		for _, m := range msgs {
			total += unix.NLMSG_HDRLEN + len(m.payload)
			if m.typ == unix.NLMSG_ERROR {
				errnoOf(m)
			}
			if len(m.payload) < 4 {
				continue
			}
			checkAttrs(t, m.payload[4:])
		}
		if total > len(b) {
			t.Fatalf("messages cover %d bytes of a %d-byte datagram", total, len(b))
		}
		// The same messages, laid out again, split the same way.
		var out msg
		for _, m := range msgs {
			start := len(out.b)
			var h [unix.NLMSG_HDRLEN]byte
			binary.NativeEndian.PutUint16(h[4:], m.typ)
			binary.NativeEndian.PutUint16(h[6:], m.flags)
			binary.NativeEndian.PutUint32(h[8:], m.seq)
			out.b = append(append(out.b, h[:]...), m.payload...)
			out.end(start)
			for len(out.b)%unix.NLMSG_ALIGNTO != 0 {
				out.b = append(out.b, 0)
			}
		}
		again, err := parseMsgs(out.b)
		if err != nil {
			t.Fatalf("re-laid messages: %v", err)
		}
		if diff := cmp.Diff(msgs, again, cmp.AllowUnexported(nlMsg{}), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("messages (-first +again):\n%s", diff)
		}

		// Each message's attributes, and the datagram itself as
		// attributes (a walker must survive anything).
		fam := uint16(unix.AF_INET)
		if v6 {
			fam = unix.AF_INET6
		}
		decodeAll(t, b, fam)
		for _, m := range msgs {
			if len(m.payload) >= 4 {
				decodeAll(t, m.payload[4:], fam)
			}
		}
	})
}

// The seeds hold what they claim, so the fuzz target starts from
// replies that decode.
func TestNetlinkSeedsDecode(t *testing.T) {
	var n [3]int
	for _, seed := range netlinkSeeds() {
		msgs, err := parseMsgs(seed)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if len(m.payload) >= 4 {
				c := decodeAll(t, m.payload[4:], unix.AF_INET)
				for i := range n {
					n[i] += c[i]
				}
			}
		}
	}
	if n != [3]int{3, 3, 2} {
		t.Errorf("seeds decode to %v services, destinations, daemons; want 3, 3, 2", n)
	}
}

// checkAttrs walks b: every attribute lies inside b, in order.
func checkAttrs(t *testing.T, b []byte) {
	t.Helper()
	n := 0
	attrs(b, func(typ uint16, data []byte) {
		n += 4 + len(data)
		if n > len(b) || typ&^nlaTypeMsk != 0 {
			t.Fatalf("attribute type %#x, %d bytes, ends past its %d-byte message", typ, len(data), len(b))
		}
		n = (n + 3) &^ 3
	})
}

// decodeAll decodes each service, destination and daemon nest of b,
// checks the round trip through the request builder, and counts them.
func decodeAll(t *testing.T, b []byte, fam uint16) (n [3]int) {
	t.Helper()
	attrs(b, func(typ uint16, data []byte) {
		checkAttrs(t, data)
		switch typ {
		case attrService:
			s, err := parseService(data)
			if err != nil {
				return
			}
			n[0]++
			if s.Flags&FlagHashed != 0 {
				t.Fatalf("service %v keeps the HASHED flag", s)
			}
			var m msg
			m.service(s, true)
			again, err := parseService(m.b[4:])
			if err != nil {
				t.Fatalf("service %+v, encoded: %v", s, err)
			}
			if diff := cmp.Diff(s, again, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Fatalf("service decoded, encoded, decoded (-first +again):\n%s", diff)
			}
		case attrDest:
			d, err := parseDest(data, fam)
			if err != nil {
				return
			}
			n[1]++
			if !d.Address.IsValid() || d.Forwarding&^connFwdMask != 0 {
				t.Fatalf("destination %+v", d)
			}
			var m msg
			m.dest(d, true)
			again, err := parseDest(m.b[4:], 0)
			if err != nil {
				t.Fatalf("destination %+v, encoded: %v", d, err)
			}
			d.ActiveConns, d.InactiveConns = 0, 0 // the kernel's counters: never written
			if diff := cmp.Diff(d, again, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Fatalf("destination decoded, encoded, decoded (-first +again):\n%s", diff)
			}
		case attrDaemon:
			d := parseDaemon(data)
			n[2]++
			var m msg
			m.daemon(d, true)
			if diff := cmp.Diff(d, parseDaemon(m.b[4:]), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Fatalf("daemon decoded, encoded, decoded (-first +again):\n%s", diff)
			}
		}
	})
	return n
}

// netlinkSeeds are replies as the kernel builds them (ip_vs_genl_fill_*),
// with the attributes we do not read (statistics, PE name) included.
func netlinkSeeds() [][]byte {
	const fam = 0x20 // a genl family id
	v4 := ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Address: netip.MustParseAddr("192.0.2.1"), Port: 80}
	v6 := ServiceKey{Family: unix.AF_INET6, Protocol: unix.IPPROTO_UDP, Address: netip.MustParseAddr("2001:db8::1"), Port: 53}
	svc := func(m *msg, s Service) {
		n := m.nestStart(attrService)
		m.serviceKey(s.ServiceKey)
		m.attr(svcAttrSchedName, append([]byte(s.Scheduler), 0))
		m.attr(11, []byte("sip\x00")) // IPVS_SVC_ATTR_PE_NAME
		var fl [8]byte
		binary.NativeEndian.PutUint32(fl[0:], s.Flags|FlagHashed)
		binary.NativeEndian.PutUint32(fl[4:], ^uint32(0))
		m.attr(svcAttrFlags, fl[:])
		m.u32(svcAttrTimeout, s.Timeout)
		m.attr(svcAttrNetmask, []byte{255, 255, 255, 0})
		st := m.nestStart(10) // IPVS_SVC_ATTR_STATS
		m.u32(1, 42)
		m.nestEnd(st)
		m.nestEnd(n)
	}
	var svcs msg
	for i, k := range []ServiceKey{v4, v6, {Family: unix.AF_INET, FWMark: 7}} {
		start := svcs.begin(fam, unix.NLM_F_MULTI, 9, cmdNewService)
		svc(&svcs, Service{ServiceKey: k, Scheduler: "wrr", Flags: FlagPersistent, Timeout: uint32(300 * i)})
		svcs.end(start)
	}
	done := len(svcs.b)
	svcs.b = append(svcs.b, make([]byte, unix.NLMSG_HDRLEN+4)...)
	binary.NativeEndian.PutUint16(svcs.b[done+4:], unix.NLMSG_DONE)
	svcs.end(done)

	var dests msg
	for i, a := range []string{"10.0.0.1", "10.0.0.2", "2001:db8::2"} {
		start := dests.begin(fam, unix.NLM_F_MULTI, 10, cmdNewDest)
		d := Destination{Address: netip.MustParseAddr(a), Port: 80, Weight: i - 1, Forwarding: Route, UpperThreshold: 100}
		n := dests.nestStart(attrDest)
		var u [16]byte // the kernel's address union
		copy(u[:], d.Address.AsSlice())
		dests.attr(destAttrAddr, u[:])
		dests.be16(destAttrPort, d.Port)
		dests.u32(destAttrFwdMethod, uint32(d.Forwarding))
		dests.u32(destAttrWeight, uint32(d.Weight))
		dests.u32(destAttrUThresh, d.UpperThreshold)
		dests.u32(destAttrLThresh, d.LowerThreshold)
		dests.u32(destAttrActiveConns, uint32(i*3))
		dests.u32(destAttrInactConns, 5)
		fam := uint16(unix.AF_INET)
		if d.Address.Is6() {
			fam = unix.AF_INET6
		}
		dests.u16(destAttrAddrFamily, fam)
		st := dests.nestStart(10) // IPVS_DEST_ATTR_STATS
		dests.u32(1, 42)
		dests.nestEnd(st)
		dests.nestEnd(n)
		dests.end(start)
	}

	var daemons msg
	for _, d := range []SyncDaemon{
		{State: SyncMaster, Interface: "eth0", SyncID: 7, MaxLen: 1472, Group: netip.MustParseAddr("224.0.0.81"), Port: 8848, TTL: 1},
		{State: SyncBackup, Interface: "eth1", Group: netip.MustParseAddr("ff02::12")},
	} {
		start := daemons.begin(fam, unix.NLM_F_MULTI, 12, cmdGetDaemon)
		daemons.daemon(d, true)
		daemons.end(start)
	}

	errMsg := make([]byte, unix.NLMSG_HDRLEN+4)
	binary.NativeEndian.PutUint32(errMsg[0:], uint32(len(errMsg)))
	binary.NativeEndian.PutUint16(errMsg[4:], unix.NLMSG_ERROR)
	esrch := -int32(unix.ESRCH)
	binary.NativeEndian.PutUint32(errMsg[unix.NLMSG_HDRLEN:], uint32(esrch))

	return [][]byte{svcs.b, dests.b, daemons.b, errMsg}
}
