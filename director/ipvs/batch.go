package ipvs

import (
	"context"
	"fmt"
)

// WriteKind is the kind of one table change.
type WriteKind int

const (
	WriteAddService WriteKind = iota
	WriteUpdateService
	WriteDeleteService
	WriteAddDest
	WriteUpdateDest
	WriteDeleteDest
)

// Write is one table change: Service is complete for service adds and
// updates, only its key matters otherwise; Dest is set for destination
// changes.
type Write struct {
	Kind    WriteKind
	Service Service
	Dest    Destination
}

// BatchWriter is implemented by IPVS implementations that can apply many
// changes in few kernel round trips. The changes are applied in order,
// with the same per-change effect and errors as the single calls; errs[i]
// is the outcome of ws[i] (nil on success). Callers find it by type
// assertion and fall back to one call per change.
type BatchWriter interface {
	WriteBatch(ctx context.Context, ws []Write) (errs []error)
}

// ApplyWrites applies ws through k, in one batch when k is a BatchWriter,
// else one call at a time; errs[i] is the outcome of ws[i].
func ApplyWrites(ctx context.Context, k IPVS, ws []Write) []error {
	if b, ok := k.(BatchWriter); ok {
		return b.WriteBatch(ctx, ws)
	}
	errs := make([]error, len(ws))
	for i, w := range ws {
		errs[i] = applyOne(ctx, k, w)
	}
	return errs
}

func applyOne(ctx context.Context, k IPVS, w Write) error {
	key := w.Service.ServiceKey
	switch w.Kind {
	case WriteAddService:
		return k.AddService(ctx, w.Service)
	case WriteUpdateService:
		return k.UpdateService(ctx, w.Service)
	case WriteDeleteService:
		return k.DeleteService(ctx, key)
	case WriteAddDest:
		return k.AddDestination(ctx, key, w.Dest)
	case WriteUpdateDest:
		return k.UpdateDestination(ctx, key, w.Dest)
	case WriteDeleteDest:
		return k.DeleteDestination(ctx, key, w.Dest)
	}
	return fmt.Errorf("ipvs: unknown write kind %d", w.Kind)
}

// String names the change for error messages.
func (w Write) String() string {
	k := w.Service.ServiceKey.String()
	switch w.Kind {
	case WriteAddService:
		return "add service " + k
	case WriteUpdateService:
		return "update service " + k
	case WriteDeleteService:
		return "delete service " + k
	case WriteAddDest:
		return "add destination " + k + " -> " + w.Dest.Key().String()
	case WriteUpdateDest:
		return "update destination " + k + " -> " + w.Dest.Key().String()
	case WriteDeleteDest:
		return "delete destination " + k + " -> " + w.Dest.Key().String()
	}
	return fmt.Sprintf("write %d on %s", w.Kind, k)
}
