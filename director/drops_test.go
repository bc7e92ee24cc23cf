package director

import (
	"testing"

	"github.com/golvs/golvs/director/vrrp"
)

// formatDrops is what `director status` shows of rejected adverts: a
// rogue's unsigned adverts must be visible, idle counters must not clutter.
func TestFormatDrops(t *testing.T) {
	for _, tc := range []struct {
		d    vrrp.Drops
		want string
	}{
		{vrrp.Drops{}, ""},
		{vrrp.Drops{Unsigned: 12}, "unsigned 12"},
		{vrrp.Drops{TTL: 1, BadMAC: 2, Replay: 3}, "ttl 1, bad-mac 2, replay 3"},
	} {
		if got := formatDrops(tc.d); got != tc.want {
			t.Errorf("formatDrops(%+v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
