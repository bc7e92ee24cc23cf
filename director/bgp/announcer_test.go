package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/golvs/golvs/director/vip"
)

// journal records the calls of a fake device and fake routes in order.
type journal struct {
	calls   []string
	holdErr error
}

type fakeDevice struct{ j *journal }

func (d fakeDevice) Set(_ context.Context, a []netip.Addr) error {
	d.j.calls = append(d.j.calls, fmt.Sprint("device ", a))
	return d.j.holdErr
}

type fakeRoutes struct{ j *journal }

func (r fakeRoutes) Set(_ context.Context, a []netip.Addr) error {
	r.j.calls = append(r.j.calls, fmt.Sprint("announce ", a))
	return nil
}

func (r fakeRoutes) WithdrawAll(context.Context) error {
	r.j.calls = append(r.j.calls, "withdraw all")
	return nil
}

func TestAnnouncerOrder(t *testing.T) {
	j := &journal{}
	a := &Announcer{Device: fakeDevice{j}, Routes: fakeRoutes{j}}
	ctx := t.Context()
	steps := []struct {
		want    []netip.Addr
		holdErr error
		calls   []string
	}{
		{[]netip.Addr{vip2, vip1}, nil, []string{
			"device [192.0.2.1 192.0.2.2]", "announce [192.0.2.1 192.0.2.2]"}},
		// Withdrawn first, then off the device.
		{[]netip.Addr{vip2}, nil, []string{
			"device [192.0.2.1 192.0.2.2]", "announce [192.0.2.2]", "device [192.0.2.2]"}},
		// A failed hold announces nothing new but keeps what was.
		{[]netip.Addr{vip1, vip2}, errors.New("netlink down"), []string{
			"device [192.0.2.1 192.0.2.2]", "announce [192.0.2.2]"}},
		{[]netip.Addr{vip1, vip2}, nil, []string{
			"device [192.0.2.1 192.0.2.2]", "announce [192.0.2.1 192.0.2.2]"}},
		{nil, nil, []string{
			"device [192.0.2.1 192.0.2.2]", "announce []", "device []"}},
	}
	for i, st := range steps {
		j.calls, j.holdErr = nil, st.holdErr
		err := a.Set(ctx, st.want)
		if (err != nil) != (st.holdErr != nil) {
			t.Errorf("step %d: err = %v", i, err)
		}
		if !slices.Equal(j.calls, st.calls) {
			t.Errorf("step %d: calls\n got %q\nwant %q", i, j.calls, st.calls)
		}
	}
	j.calls = nil
	if err := a.Leave(ctx); err != nil || !slices.Equal(j.calls, []string{"withdraw all"}) {
		t.Errorf("Leave: err %v, calls %q; want the routes withdrawn and the VIPs left in place", err, j.calls)
	}
}

// SetRoutes: a drained director withdraws its routes and keeps the VIPs
// on the device, so it goes on forwarding; undrained, it announces again.
func TestAnnouncerDrainedKeepsDevice(t *testing.T) {
	j := &journal{}
	a := &Announcer{Device: fakeDevice{j}, Routes: fakeRoutes{j}}
	ctx := t.Context()
	both := []netip.Addr{vip1, vip2}
	steps := []struct {
		want, routes []netip.Addr
		calls        []string
	}{
		{both, both, []string{"device [192.0.2.1 192.0.2.2]", "announce [192.0.2.1 192.0.2.2]"}},
		// drain-self: every route goes, nothing leaves the device.
		{both, nil, []string{"device [192.0.2.1 192.0.2.2]", "announce []"}},
		// A VIP that became unservable while drained leaves the device.
		{[]netip.Addr{vip2}, nil, []string{"device [192.0.2.1 192.0.2.2]", "announce []", "device [192.0.2.2]"}},
		// A route is only announced for a VIP held.
		{[]netip.Addr{vip2}, both, []string{"device [192.0.2.2]", "announce [192.0.2.2]"}},
		{both, both, []string{"device [192.0.2.1 192.0.2.2]", "announce [192.0.2.1 192.0.2.2]"}},
	}
	for i, st := range steps {
		j.calls = nil
		if err := a.SetRoutes(ctx, st.want, st.routes); err != nil {
			t.Errorf("step %d: err = %v", i, err)
		}
		if !slices.Equal(j.calls, st.calls) {
			t.Errorf("step %d: calls\n got %q\nwant %q", i, j.calls, st.calls)
		}
	}
}

// The VIP holder is the device the director uses (on vip_interface "lo").
var _ Device = (*vip.Holder)(nil)
var _ Routes = (*Speaker)(nil)
