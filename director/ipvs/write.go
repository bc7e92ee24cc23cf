package ipvs

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/sys/unix"
)

// WriteKind is the kind of one table change. It is the one vocabulary of
// kernel changes: the planner emits them, `director plan` prints them, the
// kernel client sends them and the fake counts them.
type WriteKind int

const (
	WriteAddService WriteKind = iota
	WriteUpdateService
	WriteDeleteService
	WriteAddDest
	WriteUpdateDest
	WriteDeleteDest
)

var writeKindNames = [...]string{"add-service", "update-service", "delete-service",
	"add-destination", "update-destination", "delete-destination"}

// String is the kind's short name, e.g. "add-destination".
func (k WriteKind) String() string {
	if k >= 0 && int(k) < len(writeKindNames) {
		return writeKindNames[k]
	}
	return fmt.Sprintf("write-%d", int(k))
}

// Write is one table change: Service is complete for service adds and
// updates, only its key matters otherwise; Dest is set for destination
// changes. WasService, WasDest and Reorder are for messages only: the
// kernel never sees them.
type Write struct {
	Kind       WriteKind
	Service    Service
	Dest       Destination
	WasService Service // an update's previous settings
	WasDest    Destination
	// Reorder marks the delete and the re-add of a destination that is
	// moved in its service's kernel list (see ListOrdered).
	Reorder bool
}

// String is one human-readable line, as `director plan` prints it.
func (w Write) String() string {
	if w.Reorder {
		w.Reorder = false
		return w.String() + " (to reorder the list)"
	}
	k := w.Service.ServiceKey
	switch w.Kind {
	case WriteAddService:
		return fmt.Sprintf("add service %s %s", k, svcSettings(w.Service))
	case WriteUpdateService:
		return fmt.Sprintf("update service %s %s", k, svcChanges(w.WasService, w.Service))
	case WriteDeleteService:
		return fmt.Sprintf("delete service %s", k)
	case WriteAddDest:
		return fmt.Sprintf("add destination %s -> %s %s", k, w.Dest.Key(), destSettings(w.Dest))
	case WriteUpdateDest:
		return fmt.Sprintf("update destination %s -> %s %s", k, w.Dest.Key(), destChanges(w.WasDest, w.Dest))
	case WriteDeleteDest:
		return fmt.Sprintf("delete destination %s -> %s", k, w.Dest.Key())
	}
	return fmt.Sprintf("%s on %s", w.Kind, k)
}

// Kernel defaults for the persistence netmask, also sent for services
// without persistence: the kernel rejects an IPv6 prefix outside 1..128.
const (
	NetmaskAll4 = 0xffffffff
	NetmaskAll6 = 128
)

func svcSettings(s Service) string {
	parts := []string{s.Scheduler}
	if s.Flags != 0 {
		parts = append(parts, fmt.Sprintf("flags %#x", s.Flags))
	}
	if s.Flags&FlagPersistent != 0 {
		parts = append(parts, fmt.Sprintf("persistent %ds", s.Timeout))
	}
	if !isDefaultNetmask(s) {
		parts = append(parts, "netmask "+netmaskString(s))
	}
	return strings.Join(parts, " ")
}

func isDefaultNetmask(s Service) bool {
	if s.Family == unix.AF_INET6 {
		return s.Netmask == NetmaskAll6
	}
	return s.Netmask == NetmaskAll4
}

func netmaskString(s Service) string {
	if s.Family == unix.AF_INET6 {
		return fmt.Sprintf("/%d", s.Netmask)
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], s.Netmask)
	return netip.AddrFrom4(b).String()
}

func svcChanges(old, s Service) string {
	var parts []string
	if old.Scheduler != s.Scheduler {
		parts = append(parts, fmt.Sprintf("scheduler %s -> %s", old.Scheduler, s.Scheduler))
	}
	if old.Flags != s.Flags {
		parts = append(parts, fmt.Sprintf("flags %#x -> %#x", old.Flags, s.Flags))
	}
	if old.Timeout != s.Timeout {
		parts = append(parts, fmt.Sprintf("timeout %ds -> %ds", old.Timeout, s.Timeout))
	}
	if old.Netmask != s.Netmask {
		parts = append(parts, fmt.Sprintf("netmask %s -> %s", netmaskString(old), netmaskString(s)))
	}
	return strings.Join(parts, ", ")
}

func destSettings(d Destination) string {
	s := fmt.Sprintf("%s weight %d", d.Forwarding.Name(), d.Weight)
	if d.UpperThreshold != 0 || d.LowerThreshold != 0 {
		s += fmt.Sprintf(" thresholds %d/%d", d.LowerThreshold, d.UpperThreshold)
	}
	return s
}

func destChanges(old, d Destination) string {
	var parts []string
	if old.Weight != d.Weight {
		parts = append(parts, fmt.Sprintf("weight %d -> %d", old.Weight, d.Weight))
	}
	if old.Forwarding != d.Forwarding {
		parts = append(parts, fmt.Sprintf("forwarding %s -> %s", old.Forwarding.Name(), d.Forwarding.Name()))
	}
	if old.UpperThreshold != d.UpperThreshold || old.LowerThreshold != d.LowerThreshold {
		parts = append(parts, fmt.Sprintf("thresholds %d/%d -> %d/%d",
			old.LowerThreshold, old.UpperThreshold, d.LowerThreshold, d.UpperThreshold))
	}
	return strings.Join(parts, ", ")
}
