package ipvs

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseConnOrigins(t *testing.T) {
	// As the kernel prints it: IPv4 in hex, IPv6 in full, a template.
	src := `Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Origin Expires
TCP C0000202 9C40 C0000264 1B58 C000020B 1B58 ESTABLISHED SYNC       899
TCP C0000202 9C41 C0000264 1B58 C000020C 1B58 ESTABLISHED LOCAL      899
TCP C0000202 9C42 C0000264 1B58 C000020D 1B58 FIN_WAIT    SYNC       119
TCP 2001:0db8:0000:0000:0000:0000:0000:0002 9C43 2001:0db8:0000:0000:0000:0000:0000:0064 0050 2001:0db8:0000:0000:0000:0000:0000:000b 0050 ESTABLISHED SYNC       900
TCP C0000202 0000 C0000264 0000 C000020B 0000 NONE        SYNC       299
`
	got, err := ParseConnOrigins(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	want := ConnOrigins{Local: 1, Synced: 4, SyncedByState: map[string]int{"ESTABLISHED": 2, "FIN_WAIT": 1, "NONE": 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("origins (-want +got):\n%s", diff)
	}
	if _, err := ParseConnOrigins(strings.NewReader("Pro x\nTCP a b c d e f ESTABLISHED ELSEWHERE 9\n")); err == nil {
		t.Error("an unknown origin must be an error")
	}
	if _, err := ParseConnOrigins(strings.NewReader("garbage\n")); err == nil {
		t.Error("a file that is not ip_vs_conn_sync must be an error")
	}
}
