package ipvs

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// daemonRequest encodes a daemon request and returns its nest's payload.
func daemonRequest(t *testing.T, d SyncDaemon, full bool) []byte {
	t.Helper()
	var m msg
	start := m.begin(42, unix.NLM_F_REQUEST, 7, cmdNewDaemon)
	m.daemon(d, full)
	m.end(start)
	msgs, err := parseMsgs(m.b)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("parse: %v, %d messages", err, len(msgs))
	}
	if msgs[0].payload[0] != cmdNewDaemon {
		t.Fatalf("command %d", msgs[0].payload[0])
	}
	return nested(t, msgs[0].payload[4:], attrDaemon)
}

// What we send must read back equal through the parser of the kernel's
// reports (the kernel reports the same attributes it takes).
func TestDaemonRoundTrip(t *testing.T) {
	for _, d := range []SyncDaemon{
		{State: SyncMaster, Interface: "eth0", SyncID: 51, MaxLen: 1472, Group: netip.MustParseAddr("224.0.0.81"), Port: 8848, TTL: 1},
		{State: SyncBackup, Interface: "bond0.100", SyncID: 0, Group: netip.MustParseAddr("ff02::8"), Port: 9000, TTL: 255},
		{State: SyncBackup, Interface: "eth1", SyncID: 255},
	} {
		if got := parseDaemon(daemonRequest(t, d, true)); got != d {
			t.Errorf("round trip of %+v gave %+v", d, got)
		}
	}
}

// The wire format the kernel expects: u32 state and sync id, the group in
// network order, the port in host order (the kernel applies htons), the
// TTL one byte; optional settings left out when zero.
func TestDaemonWire(t *testing.T) {
	b := daemonRequest(t, SyncDaemon{State: SyncBackup, Interface: "eth0", SyncID: 7,
		Group: netip.MustParseAddr("239.1.2.3"), Port: 8848, TTL: 2}, true)
	if v := binary.NativeEndian.Uint32(nested(t, b, daemonAttrState)); v != 2 {
		t.Errorf("state %d, want 2", v)
	}
	if v := nested(t, b, daemonAttrMcastIfn); string(v) != "eth0\x00" {
		t.Errorf("interface %q, want NUL-terminated eth0", v)
	}
	if v := nested(t, b, daemonAttrSyncID); len(v) != 4 || binary.NativeEndian.Uint32(v) != 7 {
		t.Errorf("sync id %v, want u32 7", v)
	}
	if v := nested(t, b, daemonAttrMcastGroup); [4]byte(v) != [4]byte{239, 1, 2, 3} {
		t.Errorf("group bytes %v", v)
	}
	if v := nested(t, b, daemonAttrMcastPort); binary.NativeEndian.Uint16(v) != 8848 {
		t.Errorf("port bytes %v, want host-order 8848", v)
	}
	if v := nested(t, b, daemonAttrMcastTTL); len(v) != 1 || v[0] != 2 {
		t.Errorf("ttl %v", v)
	}
	var present []uint16
	attrs(daemonRequest(t, SyncDaemon{State: SyncMaster, Interface: "eth0", SyncID: 1}, true), func(typ uint16, _ []byte) {
		present = append(present, typ)
	})
	if len(present) != 3 {
		t.Errorf("defaults sent attributes %v, want only state, interface and sync id", present)
	}
	present = nil
	attrs(daemonRequest(t, SyncDaemon{State: SyncMaster, Interface: "eth0", SyncID: 1, Port: 1}, false), func(typ uint16, _ []byte) {
		present = append(present, typ)
	})
	if len(present) != 1 || present[0] != daemonAttrState {
		t.Errorf("a stop sent attributes %v, want only the state", present)
	}
}

func TestDaemonSatisfies(t *testing.T) {
	want := SyncDaemon{State: SyncMaster, Interface: "eth0", SyncID: 51, Group: netip.MustParseAddr("224.0.0.81"), Port: 8848, TTL: 1}
	running := want
	running.MaxLen = 1472 // the kernel's choice; want left it open
	if !running.Satisfies(want) {
		t.Error("the kernel's filled-in defaults must satisfy")
	}
	old := SyncDaemon{State: SyncMaster, Interface: "eth0", SyncID: 51} // a pre-4.3 kernel's report
	if !old.Satisfies(want) {
		t.Error("unreported settings must not count as different")
	}
	for _, change := range []func(d *SyncDaemon){
		func(d *SyncDaemon) { d.State = SyncBackup },
		func(d *SyncDaemon) { d.Interface = "eth1" },
		func(d *SyncDaemon) { d.SyncID = 0 },
		func(d *SyncDaemon) { d.Group = netip.MustParseAddr("224.0.0.82") },
		func(d *SyncDaemon) { d.Port = 1 },
		func(d *SyncDaemon) { d.TTL = 2 },
	} {
		d := running
		change(&d)
		if d.Satisfies(want) {
			t.Errorf("%+v satisfies %+v", d, want)
		}
	}
	w := want
	w.MaxLen = 9000
	if running.Satisfies(w) {
		t.Error("a known max len that differs must not satisfy")
	}
}
