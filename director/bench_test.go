package director

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/ipvs/ipvsfake"
)

func genTopo(n int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "[director]\ninterface = %q\nresync_interval = \"1h\"\n", "eth0")
	for i := range n {
		fmt.Fprintf(&b, "\n[[service]]\nname = \"s%d\"\naddress = %q\nport = %d\nprotocol = \"tcp\"\nscheduler = \"rr\"\nforwarding = \"nat\"\n", i, "192.0.2.1", 10000+i)
		for j := range 4 {
			fmt.Fprintf(&b, "[[service.backend]]\naddress = \"10.2.0.%d\"\nport = %d\nweight = %d\n", j+1, 10000+i, 1)
		}
	}
	return b.Bytes()
}

// BenchmarkNoopPass5000 is the periodic no-op pass over 5,000 services on
// the fake kernel: what a pass costs besides the kernel dump.
func BenchmarkNoopPass5000(b *testing.B) {
	topo, err := config.Parse("x", genTopo(5000))
	if err != nil {
		b.Fatal(err)
	}
	fake := ipvsfake.New()
	r := NewReconciler(Options{Kernel: fake, StateFile: filepath.Join(b.TempDir(), "st")}, topo)
	ctx := context.Background()
	if err := r.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := r.Sync(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
