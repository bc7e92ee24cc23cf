package ipvs

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"

	moby "github.com/moby/ipvs"
	"golang.org/x/sys/unix"
)

// The adapter can only be exercised against a real kernel in the lab; these
// check the conversions that make a dump compare equal to what we wrote.

func TestServiceRoundTrip(t *testing.T) {
	for _, s := range []Service{
		{ServiceKey: ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Address: netip.MustParseAddr("10.0.0.1"), Port: 80},
			Scheduler: "wrr", Flags: FlagPersistent | FlagSched2, Timeout: 300, Netmask: 0xffffff00},
		{ServiceKey: ServiceKey{Family: unix.AF_INET6, Protocol: unix.IPPROTO_UDP, Address: netip.MustParseAddr("2001:db8::1"), Port: 53},
			Scheduler: "sh", Netmask: 64},
		{ServiceKey: ServiceKey{Family: unix.AF_INET, FWMark: 9}, Scheduler: "rr", Netmask: 0xffffffff},
	} {
		ms := toMobyService(s)
		ms.Flags |= FlagHashed // as the kernel reports it
		if ms.Address != nil {
			ms.Address = ms.Address.To16() // as an IPv4 may come back
		}
		got, err := fromMobyService(ms)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(s) {
			t.Errorf("round trip of %+v gave %+v", s, got)
		}
	}
}

// The kernel reads the IPv4 netmask attribute as big-endian bytes, and
// moby/ipvs writes Netmask in host order: the bytes on the wire must be
// the mask as written in dotted form.
func TestNetmaskWireBytes(t *testing.T) {
	ms := toMobyService(Service{ServiceKey: ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP,
		Address: netip.MustParseAddr("10.0.0.1"), Port: 80}, Scheduler: "rr", Netmask: 0xffffff00})
	var wire [4]byte
	binary.NativeEndian.PutUint32(wire[:], ms.Netmask)
	if wire != [4]byte{255, 255, 255, 0} {
		t.Errorf("wire bytes %v, want 255.255.255.0", wire)
	}
}

func TestFwmarkNormalised(t *testing.T) {
	got, err := fromMobyService(&moby.Service{AddressFamily: unix.AF_INET6, FWMark: 3, SchedName: "rr", Netmask: 128, Flags: FlagHashed})
	if err != nil {
		t.Fatal(err)
	}
	want := Service{ServiceKey: ServiceKey{Family: unix.AF_INET6, FWMark: 3}, Scheduler: "rr", Netmask: 128}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestDestinationNormalised(t *testing.T) {
	md := &moby.Destination{
		Address: net.ParseIP("10.0.1.1"), // 16-byte form
		Port:    80, Weight: 3, AddressFamily: unix.AF_INET,
		ConnectionFlags:   uint32(Route) | 0x100, // IP_VS_CONN_F_INACTIVE-like bits above the mask
		ActiveConnections: 4, InactiveConnections: 5,
	}
	got, err := fromMobyDestination(md)
	if err != nil {
		t.Fatal(err)
	}
	want := Destination{Address: netip.MustParseAddr("10.0.1.1"), Port: 80, Weight: 3, Forwarding: Route, ActiveConns: 4, InactiveConns: 5}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	back := toMobyDestination(want)
	if back.ConnectionFlags != uint32(Route) || back.AddressFamily != unix.AF_INET || !back.Address.Equal(md.Address) {
		t.Errorf("toMobyDestination = %+v", back)
	}
}

// A Kernel is built without opening anything.
func TestNewKernelOpensNothing(t *testing.T) {
	k := NewKernel()
	if k.h != nil {
		t.Fatal("NewKernel opened a handle")
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
}

// A kernel without IPVS must be an error, never an empty table (moby/ipvs
// alone would report no services). Where IPVS exists (the lab), a dump
// must work.
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
}
