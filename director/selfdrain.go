package director

import "fmt"

// drain-self: the operator takes a routed director out of the routers'
// ECMP groups for maintenance. Its routes are withdrawn (the address
// decision, Announce, sees SelfDrained) while it keeps running and
// forwarding, until undrain-self. Like backend drains it is recorded in
// the state file, so a restart (or a crash) does not announce the
// director again behind the operator's back.

// SetSelfDrain records drain-self (on) or its end. It is done only once
// recorded: a drain that a restart would forget is refused.
func (r *Reconciler) SetSelfDrain(on bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loadStateLocked()
	if r.selfDrained == on {
		return nil
	}
	r.selfDrained = on
	if err := r.saveStateLocked(); err != nil {
		r.selfDrained = !on
		return fmt.Errorf("not recorded, so not done: %w", err)
	}
	r.log.Info("operator drain of this director", "drain", on)
	return nil
}

// SelfDrained reports whether drain-self is in force (as recorded).
func (r *Reconciler) SelfDrained() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loadStateLocked()
	return r.selfDrained
}
