package ipvs

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParseConnOrigins feeds the ip_vs_conn_sync reader arbitrary text: no
// panic; the synced count is the sum of its states; no more connections
// than lines; and the counts, printed back as the kernel prints
// connections, read back the same.
func FuzzParseConnOrigins(f *testing.F) {
	f.Add([]byte(`Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Origin Expires
TCP C0000202 9C40 C0000264 1B58 C000020B 1B58 ESTABLISHED SYNC       899
TCP C0000202 9C41 C0000264 1B58 C000020C 1B58 ESTABLISHED LOCAL      899
TCP 2001:0db8:0000:0000:0000:0000:0000:0002 9C43 2001:0db8:0000:0000:0000:0000:0000:0064 0050 2001:0db8:0000:0000:0000:0000:0000:000b 0050 ESTABLISHED SYNC       900
TCP C0000202 0000 C0000264 0000 C000020B 0000 NONE        SYNC       299
`))
	f.Add([]byte("Pro x\nTCP a b c d e f ESTABLISHED ELSEWHERE 9\n"))
	f.Add([]byte("garbage\n"))
	f.Add([]byte("Pro \n\n a SYNC 1\nTCP x y z SYNC\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseConnOrigins(bytes.NewReader(b))
		if err != nil {
			if o.Local != 0 || o.Synced != 0 || len(o.SyncedByState) != 0 {
				t.Fatalf("error %v with counts %+v", err, o)
			}
			return
		}
		sum := 0
		for st, n := range o.SyncedByState {
			if n <= 0 || st == "" || strings.ContainsAny(st, " \t\n") {
				t.Fatalf("state %q counted %d", st, n)
			}
			sum += n
		}
		if sum != o.Synced {
			t.Fatalf("synced %d, states sum to %d", o.Synced, sum)
		}
		if lines := bytes.Count(b, []byte("\n")) + 1; o.Local+o.Synced >= lines {
			t.Fatalf("%d connections from %d lines", o.Local+o.Synced, lines)
		}
		var p strings.Builder
		p.WriteString("Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Origin Expires\n")
		for range o.Local {
			p.WriteString("TCP C0000202 9C41 C0000264 1B58 C000020C 1B58 ESTABLISHED LOCAL      899\n")
		}
		for _, st := range slices.Sorted(maps.Keys(o.SyncedByState)) {
			for range o.SyncedByState[st] {
				fmt.Fprintf(&p, "TCP C0000202 9C40 C0000264 1B58 C000020B 1B58 %-11s SYNC       899\n", st)
			}
		}
		again, err := ParseConnOrigins(strings.NewReader(p.String()))
		if err != nil {
			t.Fatalf("printed back: %v", err)
		}
		if diff := cmp.Diff(o, again); diff != "" {
			t.Fatalf("read, printed and read again (-first +again):\n%s", diff)
		}
	})
}
