//go:build exp

package ipvs

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"
)

func TestExpDump(t *testing.T) {
	ctx := context.Background()
	k := NewKernel()
	var ws []Write
	n := 5000
	for i := range n {
		s := Service{ServiceKey: ServiceKey{Family: 2, Protocol: 6, Address: netip.MustParseAddr("192.0.2.1"), Port: uint16(10000 + i)}, Scheduler: "rr", Netmask: 0xffffffff}
		ws = append(ws, Write{Kind: WriteAddService, Service: s})
		for j := range 4 {
			ws = append(ws, Write{Kind: WriteAddDest, Service: s, Dest: Destination{Address: netip.AddrFrom4([4]byte{10, 2, 0, byte(j + 1)}), Port: uint16(10000 + i), Weight: 1, Forwarding: Masq}})
		}
	}
	for i, err := range k.WriteBatch(ctx, ws) {
		if err != nil {
			t.Fatal(i, err)
		}
	}
	for _, bl := range []int{32 << 10, 3776} {
		c, err := dialIPVSBuf(bl)
		if err != nil {
			t.Fatal(err)
		}
		for r := range 2 {
			t0 := time.Now()
			es, err := c.dumpTable(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			full := time.Since(t0)
			t0 = time.Now()
			for i := range es {
				if err := c.dump(ctx, cmdGetDest, &es[i].Service.ServiceKey, func([]byte) error { return nil }); err != nil {
					t.Fatal(err)
				}
			}
			dests := time.Since(t0)
			t0 = time.Now()
			if err := c.dump(ctx, cmdGetService, nil, func([]byte) error { return nil }); err != nil {
				t.Fatal(err)
			}
			svcs := time.Since(t0)
			fmt.Printf("buf %d round %d: full %v (%d), dest dumps only (no parse) %v, service dump only %v\n", bl, r, full, len(es), dests, svcs)
		}
		c.close()
	}
	for r := range 3 {
		t0 := time.Now()
		es, err := k.Dump(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("Kernel.Dump round %d: %v (%d services, small socket %v)\n", r, time.Since(t0), len(es), k.d != nil)
	}
	t0 := time.Now()
	b, _ := os.ReadFile("/proc/net/ip_vs")
	fmt.Printf("/proc/net/ip_vs %v (%d bytes)\n", time.Since(t0), len(b))
}
