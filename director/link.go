package director

import (
	"slices"

	"github.com/golvs/golvs/config"
	"golang.org/x/sys/unix"
)

// Link state: the interfaces this director holds addresses on, and when
// one of them changes between down and up. Taking a link down keeps its
// IPv4 addresses but removes every IPv6 one (unless keep_addr_on_down),
// so a director must put its own back when the link returns.

// linkUp is the kernel's notion of a usable link: administratively up
// with a carrier.
const linkUp = unix.IFF_UP | unix.IFF_RUNNING

// watchedLinks lists the interfaces topo has this director hold addresses
// on: the VIPs' and those of [[failover.address]], sorted and unique.
func watchedLinks(topo *config.Topology) []string {
	names := []string{topo.Director.Interface}
	if topo.BGP != nil && topo.BGP.VIPInterface != "" {
		names = append(names, topo.BGP.VIPInterface)
	}
	for _, a := range FailoverAddresses(topo) {
		names = append(names, a.Interface)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// linkTracker turns the kernel's link messages into changes of state.
type linkTracker struct {
	up map[string]bool // last seen, of the watched interfaces
}

func newLinkTracker(names []string) *linkTracker {
	lt := &linkTracker{up: map[string]bool{}}
	for _, n := range names {
		lt.up[n] = true // until told otherwise: a link seen down at once is news
	}
	return lt
}

// update takes one message (flags are IFF_*; a deleted link is 0) and
// reports whether it changed a watched interface's state, and to what.
func (lt *linkTracker) update(name string, flags uint32) (up, changed bool) {
	was, watched := lt.up[name]
	if !watched {
		return false, false
	}
	up = flags&linkUp == linkUp
	lt.up[name] = up
	return up, up != was
}
