// Package ipvs is golvs's view of the kernel's IPVS table: our own types, a
// small interface, and (in kernel.go, netlink.go) the adapter over the
// kernel's generic netlink API, which batches writes (batch.go). An
// in-memory fake that behaves like the kernel lives in ipvs/ipvsfake.
//
// The adapter normalises what the kernel returns (HASHED flag masked,
// family and netmask filled in) so that comparing desired and actual state
// never flaps.
package ipvs

import (
	"context"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Forwarding methods, as the kernel's IP_VS_CONN_F_FWD_MASK values.
type Forwarding uint32

const (
	Masq   Forwarding = 0x0 // NAT
	Tunnel Forwarding = 0x2 // IP-in-IP
	Route  Forwarding = 0x3 // direct routing
)

// Name is the topology file's word for f: nat, dr or tun.
func (f Forwarding) Name() string {
	switch f {
	case Masq:
		return "nat"
	case Route:
		return "dr"
	case Tunnel:
		return "tun"
	}
	return f.String()
}

func (f Forwarding) String() string {
	switch f {
	case Masq:
		return "Masq"
	case Tunnel:
		return "Tunnel"
	case Route:
		return "Route"
	}
	return fmt.Sprintf("Forwarding(%d)", uint32(f))
}

// Service flags (IP_VS_SVC_F_*). FlagHashed is set by the kernel on every
// service and is masked out by the adapter.
const (
	FlagPersistent uint32 = 0x0001
	FlagHashed     uint32 = 0x0002
	FlagOnePacket  uint32 = 0x0004
	FlagSched1     uint32 = 0x0008 // sh-fallback / mh-fallback
	FlagSched2     uint32 = 0x0010 // sh-port / mh-port
	FlagSched3     uint32 = 0x0020
)

// ServiceKey identifies a virtual service the way the kernel does: by
// family+protocol+address+port, or by family+fwmark.
type ServiceKey struct {
	Family   uint16 // unix.AF_INET or unix.AF_INET6
	Protocol uint16 // unix.IPPROTO_TCP/UDP/SCTP; 0 for fwmark services
	Address  netip.Addr
	Port     uint16
	FWMark   uint32
}

func (k ServiceKey) String() string {
	if k.FWMark != 0 {
		fam := "v4"
		if k.Family == unix.AF_INET6 {
			fam = "v6"
		}
		return fmt.Sprintf("fwmark:%d/%s", k.FWMark, fam)
	}
	return fmt.Sprintf("%s:%s", ProtocolName(k.Protocol), netip.AddrPortFrom(k.Address, k.Port))
}

// ProtocolName returns "tcp", "udp", "sctp" or the number.
func ProtocolName(p uint16) string {
	switch p {
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	case unix.IPPROTO_SCTP:
		return "sctp"
	}
	return fmt.Sprintf("proto%d", p)
}

// Service is one virtual service's settings (without its destinations).
type Service struct {
	ServiceKey
	Scheduler string
	Flags     uint32 // FlagPersistent|FlagSched*; never FlagHashed
	Timeout   uint32 // persistence timeout in seconds
	Netmask   uint32 // persistence netmask: IPv4 mask bits as a big-endian uint32, IPv6 prefix length
}

// Destination is one real server of a service.
type Destination struct {
	Address        netip.Addr
	Port           uint16
	Weight         int
	Forwarding     Forwarding
	UpperThreshold uint32
	LowerThreshold uint32

	// Read-only counters reported by the kernel; ignored on writes and
	// by Equal.
	ActiveConns   int
	InactiveConns int
	// Conns counts the connections ever scheduled to it (its rate is
	// the status page's connections per second); 0 where not reported.
	Conns uint64
}

// Key is the destination's identity within its service.
func (d Destination) Key() netip.AddrPort { return netip.AddrPortFrom(d.Address, d.Port) }

// Equal reports whether two destinations have the same writable settings.
func (d Destination) Equal(o Destination) bool {
	return d.Address == o.Address && d.Port == o.Port && d.Weight == o.Weight &&
		d.Forwarding == o.Forwarding && d.UpperThreshold == o.UpperThreshold &&
		d.LowerThreshold == o.LowerThreshold
}

// Equal reports whether two services have the same key and settings.
func (s Service) Equal(o Service) bool { return s == o }

// Entry is a service with its destinations, as one dump returns it.
type Entry struct {
	Service      Service
	Destinations []Destination // sorted (SortDestinations)
	// Order is, for a service whose scheduler builds its table from the
	// kernel's destination list (ListOrdered), the destinations' keys in
	// that list's order, head first; nil for other services, and in
	// desired tables.
	Order []netip.AddrPort
}

// ListOrdered reports whether a scheduler's choices depend on the order
// of the kernel's destination list: mh builds its lookup table by
// walking it (ip_vs_mh_populate). Reads record that order (Entry.Order)
// for these services only, so the common case allocates nothing more.
func ListOrdered(scheduler string) bool { return scheduler == "mh" }

// OrderOf returns the keys of ds in their order if the service's
// scheduler is ListOrdered, else nil: what a read puts in Entry.Order,
// called before it sorts ds.
func OrderOf(scheduler string, ds []Destination) []netip.AddrPort {
	if !ListOrdered(scheduler) {
		return nil
	}
	out := make([]netip.AddrPort, len(ds))
	for i, d := range ds {
		out[i] = d.Key()
	}
	return out
}

// IPVS is what the director calls on the kernel's IPVS table: reads of
// the whole table or of named services, and batches of writes. The kernel
// client (Kernel) and the in-memory fake (ipvsfake) both implement it.
// Implementations must be safe for concurrent use and honour ctx
// deadlines. Errors wrap the kernel's errno (unix.EEXIST, unix.ENOENT,
// unix.ESRCH...) so callers can use errors.Is.
type IPVS interface {
	// Dump returns every service in the kernel with its destinations,
	// sorted (SortEntries, SortDestinations), and the kernel's list order
	// of ListOrdered services' destinations in Entry.Order.
	Dump(ctx context.Context) ([]Entry, error)
	// DumpServices reads only keys' services (a reload that changed one
	// service of thousands); services not in the kernel are left out.
	// Sorted like Dump.
	DumpServices(ctx context.Context, keys []ServiceKey) ([]Entry, error)
	// Survey reads the whole table more cheaply than Dump, but not
	// exactly: destinations come without their thresholds, and inexact
	// lists the services whose entries are incomplete (fwmark services),
	// which a caller reads again with DumpServices.
	Survey(ctx context.Context) (entries []Entry, inexact []ServiceKey, err error)
	// WriteBatch applies ws in order, with the same per-change effect and
	// errors as one request each; errs[i] is the outcome of ws[i].
	WriteBatch(ctx context.Context, ws []Write) (errs []error)
	// Writes counts the changes sent to the kernel so far.
	Writes() uint64
	// The kernel's connection sync daemons.
	SyncDaemons
}

// OnlyServices keeps, in place, the entries of a full dump whose service
// is one of keys.
func OnlyServices(all []Entry, keys []ServiceKey) []Entry {
	want := make(map[ServiceKey]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	out := all[:0]
	for _, e := range all {
		if want[e.Service.ServiceKey] {
			out = append(out, e)
		}
	}
	return out
}
