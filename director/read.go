package director

import (
	"context"

	"github.com/golvs/golvs/director/ipvs"
)

// The kernel read strategy: how a pass learns the table it diffs against.

// FullDumpEvery is how often a full pass reads the table with a full
// dump: the other full passes survey, which does not see destination
// thresholds where the file sets none.
const FullDumpEvery = 10

// readScope returns the kernel's table of the services in sc, and how it
// was read ("survey", "dump", "services" or "none").
func (r *Reconciler) readScope(ctx context.Context, sc *scope) ([]ipvs.Entry, string, error) {
	if sc.full() {
		return r.read(ctx)
	}
	keys := sc.keys()
	if len(keys) == 0 {
		return nil, "none", nil
	}
	entries, err := r.kernel.DumpServices(ctx, keys)
	return entries, "services", err
}

// read returns the whole table. Passes survey (one netlink dump of the
// services, their destinations from /proc), and read exactly the services
// a survey cannot check (those with thresholds, fwmark services); every
// FullDumpEvery-th pass, and any pass whose survey fails, dumps.
func (r *Reconciler) read(ctx context.Context) ([]ipvs.Entry, string, error) {
	r.mu.Lock()
	r.passes++
	full := r.passes%FullDumpEvery == 1
	idx := r.indexLocked()
	r.mu.Unlock()
	if !full {
		entries, err := survey(ctx, r.kernel, idx.exact)
		if err == nil {
			return entries, "survey", nil
		}
		r.log.Debug("survey failed; dumping", "err", err)
	}
	entries, err := r.kernel.Dump(ctx)
	return entries, "dump", err
}

// survey surveys the table, then reads the inexact services and those in
// exact again with DumpServices (dropping any gone since).
func survey(ctx context.Context, k ipvs.IPVS, exact []ipvs.ServiceKey) ([]ipvs.Entry, error) {
	entries, inexact, err := k.Survey(ctx)
	if err != nil {
		return nil, err
	}
	redo := make(map[ipvs.ServiceKey]bool, len(inexact)+len(exact))
	var keys []ipvs.ServiceKey
	for _, key := range append(inexact, exact...) {
		if !redo[key] {
			redo[key] = true
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return entries, nil
	}
	got, err := k.DumpServices(ctx, keys)
	if err != nil {
		return nil, err
	}
	byKey := make(map[ipvs.ServiceKey]ipvs.Entry, len(got))
	for _, e := range got {
		byKey[e.Service.ServiceKey] = e
	}
	out := entries[:0]
	for _, e := range entries {
		key := e.Service.ServiceKey
		if redo[key] {
			x, ok := byKey[key]
			if !ok {
				continue // gone since the survey
			}
			e = x
		}
		out = append(out, e)
	}
	return out, nil
}
