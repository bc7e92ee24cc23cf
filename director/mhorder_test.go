package director

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/golvs/golvs/director/ipvs"
)

// mhList models what ip_vs_ctl.c does to a service's destination list:
// adds go to the head and set last_weight; edits keep the place and set
// last_weight only when non-zero; deletes unlink.
type mhList struct {
	order []netip.AddrPort // head first
	dests map[netip.AddrPort]*mhEntry
}

type mhEntry struct {
	d    ipvs.Destination
	last int
}

func newMHList(ds ...ipvs.Destination) *mhList {
	l := &mhList{dests: map[netip.AddrPort]*mhEntry{}}
	for _, d := range ds { // given head first: add in reverse
		defer l.apply(ipvs.Write{Kind: ipvs.WriteAddDest, Dest: d})
	}
	return l
}

func (l *mhList) apply(w ipvs.Write) error {
	k := w.Dest.Key()
	e, ok := l.dests[k]
	switch w.Kind {
	case ipvs.WriteAddDest:
		if ok {
			return fmt.Errorf("add %v: exists", k)
		}
		l.dests[k] = &mhEntry{d: w.Dest, last: w.Dest.Weight}
		l.order = append([]netip.AddrPort{k}, l.order...)
	case ipvs.WriteUpdateDest:
		if !ok {
			return fmt.Errorf("update %v: no such destination", k)
		}
		e.d = w.Dest
		if w.Dest.Weight != 0 {
			e.last = w.Dest.Weight
		}
	case ipvs.WriteDeleteDest:
		if !ok {
			return fmt.Errorf("delete %v: no such destination", k)
		}
		delete(l.dests, k)
		l.order = slices.DeleteFunc(l.order, func(x netip.AddrPort) bool { return x == k })
	default:
		return fmt.Errorf("unexpected write kind %v", w.Kind)
	}
	return nil
}

func (l *mhList) dump() []ipvs.Destination {
	var out []ipvs.Destination
	for _, k := range l.order {
		out = append(out, l.dests[k].d)
	}
	return out
}

func rs(last byte, weight int) ipvs.Destination {
	return ipvs.Destination{Address: netip.AddrFrom4([4]byte{10, 0, 1, last}), Port: 80, Weight: weight, Forwarding: ipvs.Route}
}

func mhd(last byte, weight, nominal int) MHDest {
	return MHDest{Destination: rs(last, weight), Nominal: nominal}
}

func describe(ws []ipvs.Write) []string {
	var out []string
	for _, w := range ws {
		verb := map[ipvs.WriteKind]string{ipvs.WriteAddDest: "add", ipvs.WriteUpdateDest: "update", ipvs.WriteDeleteDest: "delete"}[w.Kind]
		out = append(out, fmt.Sprintf("%s .%d w%d", verb, w.Dest.Address.As4()[3], w.Dest.Weight))
	}
	return out
}

func TestPlanMHOrder(t *testing.T) {
	tests := []struct {
		name   string
		actual []ipvs.Destination // kernel list order, head first
		want   []MHDest
		writes []string
	}{
		{"canonical already", []ipvs.Destination{rs(3, 1), rs(2, 1), rs(1, 1)},
			[]MHDest{mhd(1, 1, 1), mhd(2, 1, 1), mhd(3, 1, 1)}, nil},
		{"empty to three: ascending adds", nil,
			[]MHDest{mhd(2, 1, 1), mhd(3, 1, 1), mhd(1, 1, 1)},
			[]string{"add .1 w1", "add .2 w1", "add .3 w1"}},
		{"a new highest address goes to the head: no move", []ipvs.Destination{rs(3, 1), rs(2, 1), rs(1, 1)},
			[]MHDest{mhd(1, 1, 1), mhd(2, 1, 1), mhd(3, 1, 1), mhd(4, 1, 1)},
			[]string{"add .4 w1"}},
		{"a new lowest address: every other is moved", []ipvs.Destination{rs(3, 1), rs(2, 1)},
			[]MHDest{mhd(1, 1, 1), mhd(2, 1, 1), mhd(3, 1, 1)},
			[]string{"delete .3 w1", "delete .2 w1", "add .1 w1", "add .2 w1", "add .3 w1"}},
		{"added in file order .1 .2 .3 (list .3 .2 .1 is canonical)", []ipvs.Destination{rs(3, 1), rs(2, 1), rs(1, 1)},
			[]MHDest{mhd(1, 1, 1), mhd(2, 1, 1), mhd(3, 1, 1)}, nil},
		{"added in descending order: all but the tail move", []ipvs.Destination{rs(1, 1), rs(2, 1), rs(3, 1)},
			[]MHDest{mhd(1, 1, 1), mhd(2, 1, 1), mhd(3, 1, 1)},
			[]string{"delete .2 w1", "delete .3 w1", "add .2 w1", "add .3 w1"}},
		{"one out of place among kept ones", []ipvs.Destination{rs(3, 1), rs(2, 1), rs(4, 1), rs(1, 1)},
			[]MHDest{mhd(1, 1, 1), mhd(2, 1, 1), mhd(3, 1, 1), mhd(4, 1, 1)},
			[]string{"delete .4 w1", "add .4 w1"}},
		{"removal and weight change need no move", []ipvs.Destination{rs(3, 1), rs(2, 1), rs(1, 1)},
			[]MHDest{mhd(1, 5, 5), mhd(3, 0, 1)},
			[]string{"update .3 w0", "update .1 w5", "delete .2 w1"}},
		{"a down backend is added at its nominal weight, then set to 0", nil,
			[]MHDest{mhd(1, 1, 1), mhd(2, 0, 3)},
			[]string{"add .1 w1", "add .2 w3", "update .2 w0"}},
		{"configured weight 0 stays out of the table", nil,
			[]MHDest{mhd(1, 0, 0)},
			[]string{"add .1 w0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := PlanMHOrder(ipvs.Service{}, tt.actual, tt.want)
			if got := describe(ws); !slices.Equal(got, tt.writes) {
				t.Errorf("writes\n got %q\nwant %q", got, tt.writes)
			}
		})
	}
}

// TestPlanMHOrderConverges: from any list order, with any destinations to
// add, drop, drain or reweigh, the plan applied the kernel's way gives the
// canonical order with the wanted settings and last weights, a second
// plan is empty, and a destination is moved only when it must be.
func TestPlanMHOrderConverges(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 2000 {
		n := r.IntN(8)
		var start []ipvs.Destination
		for _, i := range r.Perm(10)[:n] {
			w := r.IntN(3) + 1
			start = append(start, rs(byte(i+1), w))
		}
		l := newMHList(start...)
		var want []MHDest
		for _, i := range r.Perm(10)[:r.IntN(8)] {
			nominal := r.IntN(3)
			w := nominal
			if r.IntN(3) == 0 {
				w = 0 // drained or down
			}
			want = append(want, mhd(byte(i+1), w, nominal))
		}
		ws := PlanMHOrder(ipvs.Service{}, l.dump(), want)
		for _, w := range ws {
			if err := l.apply(w); err != nil {
				t.Fatalf("round %d: %v (plan %q)", round, err, describe(ws))
			}
		}
		canon := slices.Clone(want)
		slices.SortFunc(canon, func(a, b MHDest) int { return MHCanonical(a.Key(), b.Key()) })
		var keys []netip.AddrPort
		for _, d := range canon {
			keys = append(keys, d.Key())
			e := l.dests[d.Key()]
			if e == nil || !e.d.Equal(d.Destination) {
				t.Fatalf("round %d: %v is %+v, want %+v", round, d.Key(), e, d.Destination)
			}
			// A destination the plan added (or moved) carries the nominal
			// weight in last_weight; one that stayed has its history,
			// which the model started at its weight.
			if d.Weight > 0 && e.last != d.Weight || d.Weight == 0 && e.last != d.Nominal && !slices.ContainsFunc(start, func(s ipvs.Destination) bool { return s.Key() == d.Key() }) {
				t.Fatalf("round %d: %v last_weight %d, want %d (nominal %d)", round, d.Key(), e.last, max(d.Weight, d.Nominal), d.Nominal)
			}
		}
		if !slices.Equal(l.order, keys) {
			t.Fatalf("round %d: order %v, want %v (plan %q)", round, l.order, keys, describe(ws))
		}
		if again := PlanMHOrder(ipvs.Service{}, l.dump(), want); again != nil {
			t.Fatalf("round %d: second plan %q, want none", round, describe(again))
		}
		// Moves are exactly the kept destinations outside the longest
		// canonical tail already in order.
		moved := 0
		for _, w := range ws {
			if w.Kind == ipvs.WriteDeleteDest && slices.ContainsFunc(want, func(d MHDest) bool { return d.Key() == w.Dest.Key() }) {
				moved++
			}
		}
		if lo := minMoves(start, keys); moved != lo {
			t.Fatalf("round %d: %d moves, the fewest possible is %d (plan %q)", round, moved, lo, describe(ws))
		}
	}
}

// minMoves is the brute-force fewest deletions of kept destinations: try
// every tail of the canonical order, longest first.
func minMoves(start []ipvs.Destination, canon []netip.AddrPort) int {
	for k := 0; k <= len(canon); k++ {
		tail := canon[k:]
		var sub []netip.AddrPort
		for _, d := range start {
			if slices.Contains(tail, d.Key()) {
				sub = append(sub, d.Key())
			}
		}
		if slices.Equal(sub, tail) {
			moves := 0
			for _, d := range start {
				if slices.Contains(canon[:k], d.Key()) {
					moves++
				}
			}
			return moves
		}
	}
	return -1
}
