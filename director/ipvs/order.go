package ipvs

import (
	"cmp"
	"encoding/binary"
	"slices"

	"golang.org/x/sys/unix"
)

// The order of dumps and plans: tables are compared by merge walks, so
// every producer sorts the same way.

// SortEntries orders entries by service key, the order Dump returns.
func SortEntries(es []Entry) {
	if sortEntries4(es) {
		return
	}
	slices.SortFunc(es, func(a, b Entry) int { return KeyCompare(a.Service.ServiceKey, b.Service.ServiceKey) })
}

// sortEntries4 sorts a table of IPv4 address services (the common case)
// by a packed 64-bit key, several times faster than comparing keys: every
// dump of thousands of services comes in hash order. false: not such a
// table, nothing done.
func sortEntries4(es []Entry) bool {
	if len(es) < 64 {
		return false
	}
	type ranked struct {
		k uint64
		i int
	}
	rs := make([]ranked, len(es))
	for i := range es {
		k := es[i].Service.ServiceKey
		if k.FWMark != 0 || k.Family != unix.AF_INET || !k.Address.Is4() {
			return false
		}
		a := k.Address.As4()
		rs[i] = ranked{uint64(binary.BigEndian.Uint32(a[:]))<<32 | uint64(k.Protocol)<<16 | uint64(k.Port), i}
	}
	slices.SortFunc(rs, func(a, b ranked) int { return cmp.Compare(a.k, b.k) })
	sorted := make([]Entry, len(es))
	for i, r := range rs {
		sorted[i] = es[r.i]
	}
	copy(es, sorted)
	return true
}

// SortDestinations orders destinations by address and port.
func SortDestinations(ds []Destination) { slices.SortFunc(ds, CompareDests) }

// CompareDests orders destinations as SortDestinations does.
func CompareDests(a, b Destination) int { return a.Key().Compare(b.Key()) }

// KeyLess orders service keys: address services before fwmark ones, then
// by family, address, protocol, port and mark.
func KeyLess(a, b ServiceKey) bool { return KeyCompare(a, b) < 0 }

// KeyCompare is KeyLess as a three-way comparison. It stops at the first
// difference: it orders thousands of services on every pass.
func KeyCompare(a, b ServiceKey) int {
	if (a.FWMark != 0) != (b.FWMark != 0) {
		if a.FWMark == 0 {
			return -1
		}
		return 1
	}
	if a.Family != b.Family {
		return cmp.Compare(a.Family, b.Family)
	}
	if a.Address != b.Address {
		return a.Address.Compare(b.Address)
	}
	if a.Protocol != b.Protocol {
		return cmp.Compare(a.Protocol, b.Protocol)
	}
	if a.Port != b.Port {
		return cmp.Compare(a.Port, b.Port)
	}
	return cmp.Compare(a.FWMark, b.FWMark)
}
