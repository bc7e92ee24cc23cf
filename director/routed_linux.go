package director

import (
	"context"
	"fmt"

	"github.com/golvs/golvs/director/bgp"
	"github.com/golvs/golvs/director/status"
)

// speakerStatus is what status reads of the BGP speaker; *bgp.Speaker
// is one.
type speakerStatus interface {
	Status(ctx context.Context) (bgp.Status, error)
}

// BGPStatus is the routed director's sessions and announcements, for the
// control socket and /metrics; nil without [bgp].
func (rt *Runtime) BGPStatus(ctx context.Context) *status.BGP {
	if rt.bgp == nil {
		return nil
	}
	sit := rt.situation()
	sp, err := rt.speaker.Status(ctx)
	return routedStatus(VIPs(sit.Topo), Announce(sit), sit.SelfDrained, sp, err)
}

// DrainSelf is drain-self (on) or undrain-self: recorded first (refused
// if it cannot be), then applied at once; it returns when the routes are
// withdrawn or announced again. The director keeps its VIPs and IPVS
// table, so it forwards whatever the routers still send.
func (rt *Runtime) DrainSelf(ctx context.Context, on bool) error {
	if rt.bgp == nil {
		return ErrNotRouted
	}
	if err := rt.rec.SetSelfDrain(on); err != nil {
		return err
	}
	if _, err := rt.apply(ctx); err != nil {
		return fmt.Errorf("recorded, but not applied yet (retried on the next change): %w", err)
	}
	return nil
}
