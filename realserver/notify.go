package realserver

import "time"

// Notifier hears Run's milestones, for systemd's notify protocol
// (internal/sdnotify.Notifier implements it).
type Notifier interface {
	Ready(status string) error
	Reloading() error
	ReloadApplied(status string) error
	ReloadRejected(err error) error
	Stopping() error
}

type nopNotifier struct{}

func (nopNotifier) Ready(string) error         { return nil }
func (nopNotifier) Reloading() error           { return nil }
func (nopNotifier) ReloadApplied(string) error { return nil }
func (nopNotifier) ReloadRejected(error) error { return nil }
func (nopNotifier) Stopping() error            { return nil }

func (o Options) notifier() Notifier {
	if o.Notify == nil {
		return nopNotifier{}
	}
	return o.Notify
}

// heartbeat is the loop's sign of progress for a watchdog: beat after each
// pass, and wake at least every `every` to beat while idle.
type heartbeat struct {
	beat  func()
	every time.Duration
}

func (o Options) heartbeat() heartbeat {
	if o.Beat == nil {
		return heartbeat{beat: func() {}, every: time.Hour}
	}
	every := o.BeatEvery
	if every <= 0 {
		every = time.Second
	}
	return heartbeat{beat: o.Beat, every: every}
}
