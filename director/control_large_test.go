package director

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/golvs/golvs/config"
)

// `director status` at 20,000 services x 4 backends: a reply of tens of
// megabytes, which the client once cut at 16 MiB ("unexpected end of JSON
// input"). It must arrive whole.
func TestStatusLargeTable(t *testing.T) {
	const n = 20000
	svcs := make([]config.Service, n)
	for i := range svcs {
		s := webService()
		s.Name = fmt.Sprintf("s%d", i)
		s.Port = uint16(1000 + i%50000)
		s.Address = netip.AddrFrom4([4]byte{10, 9, byte(i / 256), byte(i % 256)})
		for j := range 4 {
			s.Backends = append(s.Backends, config.Backend{Address: netip.AddrFrom4([4]byte{10, 1, 1, byte(j + 1)}), Port: 80, Weight: 1, Forwarding: config.DR})
		}
		svcs[i] = s
	}
	f := newFixture(t)
	r := f.reconciler(topo(svcs...), nil)
	f.sync(r)
	path := filepath.Join(t.TempDir(), "d.sock")
	srv := &ControlServer{Path: path, Controller: r}
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
	defer ccancel()
	st, err := ControlClient{Path: path}.Status(cctx)
	if err != nil {
		t.Fatalf("status of %d services: %v", n, err)
	}
	got := 0
	for _, s := range st.Services {
		got += len(s.Backends)
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	if len(b) <= 16<<20 {
		t.Errorf("the reply is %d bytes: not past the old 16 MiB cut, so this proves nothing", len(b))
	}
	if len(st.Services) != n || got != 4*n {
		t.Errorf("status has %d services and %d backends, want %d and %d", len(st.Services), got, n, 4*n)
	}
}
