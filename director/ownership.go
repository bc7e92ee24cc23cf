package director

import (
	"errors"
	"maps"

	"github.com/golvs/golvs/director/ipvs"
)

// Ownership: a service is ours when the file names it or the state file
// says we created it; nothing else is ever touched. A pass records the
// services it is about to create before creating them, so a crash
// mid-pass cannot leave an unowned service of ours behind, and forgets
// deleted ones after deleting them.

// loadStateLocked reads the state file once. r.mu must be held.
func (r *Reconciler) loadStateLocked() {
	if r.stateLoaded {
		return
	}
	r.stateLoaded = true
	st, err := readState(r.stateFile)
	if err != nil {
		// Losing ownership memory only means a service removed while we
		// were down is left in place: run on, loudly. An untrusted file
		// is never written over either.
		r.log.Error("state file unreadable; starting without it", "err", err)
		if errors.Is(err, errUntrusted) {
			r.stateFile = "" // never written over either
		}
		return
	}
	for _, k := range st.Services {
		r.owned[k] = true
	}
	for _, d := range st.Drains {
		r.opDrains[d] = true
	}
	r.selfDrained = st.SelfDrained
	r.drainsGen++
}

// saveStateLocked persists owned and operator drains; a failure (a full
// or read-only disk) leaves the state dirty, and every pass tries again
// until it is written. r.mu must be held.
func (r *Reconciler) saveStateLocked() error {
	err := r.writeStateLocked()
	if err != nil {
		r.stateFailures++
		if !r.stateDirty {
			// Once per outage; the passes' own lines repeat the error.
			r.log.Error("state file not written; the kernel is still served, and every pass tries again", "path", r.stateFile, "err", err)
		}
	}
	r.stateDirty = err != nil
	r.stateErr = err
	return err
}

// StateError is the last error writing the state file, nil once written.
func (r *Reconciler) StateError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stateErr
}

// StateWrites reports the state file's health for metrics: how many
// writes failed in all, and the last write's error (nil once written).
func (r *Reconciler) StateWrites() (failures uint64, last error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stateFailures, r.stateErr
}

// retryStateLocked writes the state again if the last write failed.
func (r *Reconciler) retryState() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.stateDirty {
		return nil
	}
	if err := r.saveStateLocked(); err != nil {
		return err
	}
	r.log.Info("state file written again", "path", r.stateFile)
	return nil
}

func (r *Reconciler) writeStateLocked() error {
	st := state{Services: make([]ipvs.ServiceKey, 0, len(r.owned)), SelfDrained: r.selfDrained}
	for k := range r.owned {
		st.Services = append(st.Services, k)
	}
	for d := range r.opDrains {
		st.Drains = append(st.Drains, d)
	}
	return writeState(r.stateFile, st)
}

// setOwned replaces the owned set and persists it when it changed.
func (r *Reconciler) setOwned(owned map[ipvs.ServiceKey]bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if maps.Equal(owned, r.owned) {
		return nil
	}
	r.owned = owned
	return r.saveStateLocked()
}

// subset reports whether every key of a is in b.
func subset(a, b map[ipvs.ServiceKey]bool) bool {
	if len(a) > len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func (r *Reconciler) ownedNow() map[ipvs.ServiceKey]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.owned
}
