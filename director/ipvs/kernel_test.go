package ipvs

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// The client can only be exercised against a real kernel in the lab; these
// check the encoding and the normalisation that make a dump compare equal
// to what we wrote.

// nested returns the payload of the first attribute of type typ in b.
func nested(t *testing.T, b []byte, typ uint16) []byte {
	t.Helper()
	var out []byte
	attrs(b, func(ty uint16, data []byte) {
		if ty == typ && out == nil {
			out = data
		}
	})
	if out == nil {
		t.Fatalf("no attribute %d", typ)
	}
	return out
}

// request encodes w and returns the attributes after the genl header.
func request(t *testing.T, w Write) []byte {
	t.Helper()
	var m msg
	m.write(42, unix.NLM_F_REQUEST, 7, w)
	msgs, err := parseMsgs(m.b)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("parse: %v, %d messages", err, len(msgs))
	}
	if msgs[0].typ != 42 || msgs[0].seq != 7 {
		t.Fatalf("header %+v", msgs[0])
	}
	return msgs[0].payload[4:]
}

func TestServiceRoundTrip(t *testing.T) {
	for _, s := range []Service{
		{ServiceKey: ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Address: netip.MustParseAddr("10.0.0.1"), Port: 80},
			Scheduler: "wrr", Flags: FlagPersistent | FlagSched2, Timeout: 300, Netmask: 0xffffff00},
		{ServiceKey: ServiceKey{Family: unix.AF_INET6, Protocol: unix.IPPROTO_UDP, Address: netip.MustParseAddr("2001:db8::1"), Port: 53},
			Scheduler: "sh", Netmask: 64},
		{ServiceKey: ServiceKey{Family: unix.AF_INET, FWMark: 9}, Scheduler: "rr", Netmask: 0xffffffff},
	} {
		b := request(t, Write{Kind: WriteAddService, Service: s})
		got, err := parseService(nested(t, b, attrService))
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(s) {
			t.Errorf("round trip of %+v gave %+v", s, got)
		}
	}
}

// The kernel reads the netmask attribute as a __be32: for IPv4 the bytes
// on the wire must be the mask as written in dotted form.
func TestNetmaskWireBytes(t *testing.T) {
	b := request(t, Write{Kind: WriteAddService, Service: Service{ServiceKey: ServiceKey{Family: unix.AF_INET,
		Protocol: unix.IPPROTO_TCP, Address: netip.MustParseAddr("10.0.0.1"), Port: 80}, Scheduler: "rr", Netmask: 0xffffff00}})
	wire := nested(t, nested(t, b, attrService), svcAttrNetmask)
	if [4]byte(wire) != [4]byte{255, 255, 255, 0} {
		t.Errorf("wire bytes %v, want 255.255.255.0", wire)
	}
	port := nested(t, nested(t, b, attrService), svcAttrPort)
	if binary.BigEndian.Uint16(port) != 80 {
		t.Errorf("port bytes %v, want network order 80", port)
	}
}

// What the kernel reports: HASHED set, a 16-byte address, a fwmark
// service's unused fields.
func TestKernelReplyNormalised(t *testing.T) {
	var m msg
	n := m.nestStart(attrService)
	m.u16(svcAttrAF, unix.AF_INET)
	m.u16(svcAttrProtocol, unix.IPPROTO_TCP)
	m.attr(svcAttrAddr, append([]byte{192, 0, 2, 1}, make([]byte, 12)...))
	m.be16(svcAttrPort, 443)
	m.attr(svcAttrSchedName, []byte("wlc\x00"))
	m.attr(svcAttrFlags, []byte{byte(FlagHashed | FlagPersistent), 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	m.u32(svcAttrTimeout, 60)
	m.attr(svcAttrNetmask, []byte{255, 255, 255, 255})
	m.nestEnd(n)
	got, err := parseService(nested(t, m.b, attrService))
	if err != nil {
		t.Fatal(err)
	}
	want := Service{ServiceKey: ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Address: netip.MustParseAddr("192.0.2.1"), Port: 443},
		Scheduler: "wlc", Flags: FlagPersistent, Timeout: 60, Netmask: 0xffffffff}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}

	m = msg{}
	n = m.nestStart(attrService)
	m.u16(svcAttrAF, unix.AF_INET6)
	m.u32(svcAttrFWMark, 3)
	m.attr(svcAttrAddr, make([]byte, 16))
	m.attr(svcAttrSchedName, []byte("rr\x00"))
	m.attr(svcAttrFlags, []byte{byte(FlagHashed), 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	m.u32(svcAttrNetmask, 128)
	m.nestEnd(n)
	got, err = parseService(nested(t, m.b, attrService))
	if err != nil {
		t.Fatal(err)
	}
	want = Service{ServiceKey: ServiceKey{Family: unix.AF_INET6, FWMark: 3}, Scheduler: "rr", Netmask: 128}
	if got != want {
		t.Errorf("fwmark: got %+v, want %+v", got, want)
	}
}

func TestDestinationRoundTrip(t *testing.T) {
	key := ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Address: netip.MustParseAddr("10.0.0.1"), Port: 80}
	for _, d := range []Destination{
		{Address: netip.MustParseAddr("10.0.0.2"), Port: 8080, Weight: 100, Forwarding: Masq, UpperThreshold: 2000, LowerThreshold: 1500},
		{Address: netip.MustParseAddr("2001:db8::2"), Port: 80, Weight: 0, Forwarding: Tunnel},
	} {
		b := request(t, Write{Kind: WriteUpdateDest, Service: Service{ServiceKey: key}, Dest: d})
		if got, err := parseService(nested(t, b, attrService)); err != nil || got.ServiceKey != key {
			t.Errorf("service key: %+v, %v", got, err)
		}
		got, err := parseDest(nested(t, b, attrDest), unix.AF_INET)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(d) {
			t.Errorf("round trip of %+v gave %+v", d, got)
		}
	}
	// A delete names the destination only.
	b := request(t, Write{Kind: WriteDeleteDest, Service: Service{ServiceKey: key},
		Dest: Destination{Address: netip.MustParseAddr("10.0.0.2"), Port: 8080, Weight: 5}})
	attrs(nested(t, b, attrDest), func(typ uint16, _ []byte) {
		if typ == destAttrWeight || typ == destAttrFwdMethod {
			t.Errorf("delete carries attribute %d", typ)
		}
	})
}

// Several messages in one datagram are split, and an NLMSG_ERROR carries
// the errno.
func TestParseMsgsAndErrors(t *testing.T) {
	var m msg
	for seq := uint32(1); seq <= 3; seq++ {
		m.write(42, unix.NLM_F_REQUEST, seq, Write{Kind: WriteDeleteService,
			Service: Service{ServiceKey: ServiceKey{Family: unix.AF_INET, FWMark: seq}}})
	}
	msgs, err := parseMsgs(m.b)
	if err != nil || len(msgs) != 3 || msgs[2].seq != 3 {
		t.Fatalf("parse: %v, %+v", err, msgs)
	}
	payload := make([]byte, 4)
	e := int32(-int32(unix.EEXIST))
	binary.NativeEndian.PutUint32(payload, uint32(e))
	if err := errnoOf(nlMsg{typ: unix.NLMSG_ERROR, payload: payload}); !errors.Is(err, unix.EEXIST) {
		t.Errorf("errno: %v", err)
	}
	if err := errnoOf(nlMsg{typ: unix.NLMSG_ERROR, payload: make([]byte, 4)}); err != nil {
		t.Errorf("ack read as %v", err)
	}
}

// A Kernel is built without opening anything.
func TestNewKernelOpensNothing(t *testing.T) {
	k := NewKernel()
	if k.c != nil {
		t.Fatal("NewKernel opened a socket")
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
}

// A kernel without IPVS must be an error, never an empty table. Where
// IPVS exists (the lab), a dump must work.
func TestKernelWithoutIPVSIsAnError(t *testing.T) {
	k := NewKernel()
	defer k.Close()
	_, err := k.Dump(context.Background())
	if _, statErr := os.Stat("/proc/net/ip_vs"); statErr == nil {
		if err != nil {
			t.Fatalf("IPVS present but Dump failed: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatal("no IPVS in this kernel, yet Dump succeeded")
	}
	if !errors.Is(err, unix.ENOENT) {
		t.Errorf("error %v does not wrap the errno", err)
	}
	if errs := k.WriteBatch(context.Background(), []Write{{Kind: WriteDeleteService,
		Service: Service{ServiceKey: ServiceKey{Family: unix.AF_INET, FWMark: 1}}}}); !errors.Is(errs[0], unix.ENOENT) {
		t.Errorf("write without IPVS: %v", errs[0])
	}
}

// The kernel's connection counter is read from STATS64, or from the
// 32-bit STATS on kernels without it.
func TestDestinationConns(t *testing.T) {
	for _, c := range []struct {
		name string
		typ  uint16
		val  []byte
	}{
		{"stats64", destAttrStats64, binary.NativeEndian.AppendUint64(nil, 1<<33+7)},
		{"stats", destAttrStats, binary.NativeEndian.AppendUint32(nil, 7)},
	} {
		var m msg
		n := m.nestStart(attrDest)
		m.attr(destAttrAddr, netip.MustParseAddr("10.0.0.2").AsSlice())
		m.u16(destAttrPort, 0x5000)
		s := m.nestStart(c.typ)
		m.u32(5, 99) // CPS: not the counter
		m.attr(statsAttrConns, c.val)
		m.nestEnd(s)
		m.nestEnd(n)
		got, err := parseDest(nested(t, m.b, attrDest), unix.AF_INET)
		if err != nil {
			t.Fatal(err)
		}
		want := uint64(7)
		if c.typ == destAttrStats64 {
			want = 1<<33 + 7
		}
		if got.Conns != want {
			t.Errorf("%s: Conns = %d, want %d", c.name, got.Conns, want)
		}
	}
}
