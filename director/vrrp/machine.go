package vrrp

import (
	"fmt"
	"net/netip"
	"time"
)

// State is a VRRP router state. Fault is a golvs addition: the director is
// unfit to serve (tracking said so) and neither holds VIPs nor competes.
type State int

const (
	Init State = iota
	Backup
	Master
	Fault
)

func (s State) String() string {
	switch s {
	case Init:
		return "init"
	case Backup:
		return "backup"
	case Master:
		return "master"
	case Fault:
		return "fault"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Event is an input to Machine.Step.
type Event interface{ isEvent() }

// Startup starts the router (RFC 9568 6.4.1).
type Startup struct{}

// AdvertReceived is a valid advert for our VRID from another router.
type AdvertReceived struct {
	From              netip.Addr
	Priority          uint8
	MaxAdvertInterval uint16 // centiseconds
	// Unverified marks a signed advert whose freshness is not proven yet
	// (see Auth): it may be a replay. It can keep a backup waiting (the
	// authenticator bounds for how long) but never teaches an interval,
	// never shortens the wait with priority 0 and never makes a master
	// yield; a master answers it instead, which is the challenge a live
	// peer replies to.
	Unverified bool
}

// MasterDownTimerFired and AdvertTimerFired are the two RFC timers
// expiring. Late is how long after its deadline the master down timer was
// seen to fire: time this router did not run, see Machine.Step.
type (
	MasterDownTimerFired struct{ Late time.Duration }
	AdvertTimerFired     struct{}
)

// Shutdown stops the router (RFC 9568 6.4.2/6.4.3 Shutdown event).
type Shutdown struct{}

// FaultChanged reports the tracked condition (for the director: whether any
// service is able to serve). Bad = true means unfit.
type FaultChanged struct {
	Bad    bool
	Reason string
}

// PriorityChanged sets the configured priority (1..254).
type PriorityChanged struct{ Priority uint8 }

// LinkChanged reports an interface going down or coming back. Adverts is
// set for the interface adverts go on; otherwise it is one that carries
// only Extra addresses.
type LinkChanged struct{ Up, Adverts bool }

func (Startup) isEvent()              {}
func (AdvertReceived) isEvent()       {}
func (MasterDownTimerFired) isEvent() {}
func (AdvertTimerFired) isEvent()     {}
func (Shutdown) isEvent()             {}
func (FaultChanged) isEvent()         {}
func (PriorityChanged) isEvent()      {}
func (LinkChanged) isEvent()          {}

// Action is an output of Machine.Step, carried out by the caller in order.
type Action interface{ isAction() }

// SendAdvert sends one advert with this priority.
type SendAdvert struct{ Priority uint8 }

// StartAdvertTimer and StartMasterDownTimer (re)arm the one running timer,
// replacing whichever was armed: a router runs at most one of the two.
type (
	StartAdvertTimer     struct{ D time.Duration }
	StartMasterDownTimer struct{ D time.Duration }
)

// StopTimers disarms the timer.
type StopTimers struct{}

// BecomeMaster: the caller adds the VIPs and announces them (gratuitous ARP,
// unsolicited NA).
type BecomeMaster struct{}

// BecomeBackup: the caller removes the VIPs. Also emitted at startup so a
// restarted director does not keep VIPs it may no longer own.
type BecomeBackup struct{}

// SendGratuitous re-announces the VIPs without other changes: a master that
// hears a lower-priority master re-asserts itself on the segment. Rounds is
// how many rounds to send; 0 means the caller's configured count. After > 0
// defers it (rate limit); the caller sends it then if still master.
type SendGratuitous struct {
	Rounds int
	After  time.Duration
}

// Reassert: the caller puts the addresses back and announces them as on
// becoming master, with no change of state. A link that went down took
// the IPv6 ones with it, and while it was down the segment may have
// learnt another MAC for the VIPs, or a switch forgotten ours.
type Reassert struct{}

// NotifyState reports a state transition.
type NotifyState struct {
	State  State
	Reason string
}

func (SendAdvert) isAction()           {}
func (StartAdvertTimer) isAction()     {}
func (StartMasterDownTimer) isAction() {}
func (StopTimers) isAction()           {}
func (BecomeMaster) isAction()         {}
func (BecomeBackup) isAction()         {}
func (SendGratuitous) isAction()       {}
func (Reassert) isAction()             {}
func (NotifyState) isAction()          {}

// MachineConfig configures a Machine.
type MachineConfig struct {
	Priority       uint8         // 1..254
	AdvertInterval time.Duration // our own advert interval
	Preempt        bool
	// Local is our primary address of the advert family; it breaks ties
	// between equal priorities.
	Local netip.Addr
	// FaultDecrement chooses what a bad FaultChanged does: 0 enters the
	// Fault state; otherwise the priority drops by this much (floor 1) and
	// the router keeps competing, like keepalived's weighted tracking.
	FaultDecrement uint8
	// MinMasterInterval and MaxMasterInterval bound the Master_Adver_Interval
	// learned from adverts. RFC 9568 has a backup adopt whatever the master
	// advertises, so one forged advert with 40.95 s would make every backup
	// wait 3*40.95 s before taking over a dead master. Defaults: a quarter
	// of and four times AdvertInterval. A real master slower than the cap
	// still works up to 3*MaxMasterInterval (the backup's wait); one faster
	// than the floor only makes the backup wait longer.
	MinMasterInterval, MaxMasterInterval time.Duration
	// PreemptDelay is how long after startup, and after the advert link
	// returns, a backup lets a lower-priority master stay instead of
	// preempting it: with connection sync, the time the peer needs to
	// tell this director about the connections it took while this one
	// was away. Preempting earlier resets them. 0 = preempt at once.
	PreemptDelay time.Duration
	// ReannounceHoldoff is the least time between two gratuitous
	// re-announcements a master makes on hearing lower-priority adverts;
	// default max(AdvertInterval, 100ms). See Machine.answer.
	ReannounceHoldoff time.Duration
}

// withDefaults fills the zero fields of c.
func (c MachineConfig) withDefaults() MachineConfig {
	if c.MinMasterInterval <= 0 {
		c.MinMasterInterval = max(c.AdvertInterval/4, 10*time.Millisecond)
	}
	if c.MaxMasterInterval <= 0 {
		c.MaxMasterInterval = min(4*c.AdvertInterval, MaxInterval)
	}
	c.MaxMasterInterval = max(c.MaxMasterInterval, c.MinMasterInterval)
	if c.ReannounceHoldoff <= 0 {
		c.ReannounceHoldoff = max(c.AdvertInterval, 100*time.Millisecond)
	}
	return c
}

// Machine is the RFC 9568 state machine for one virtual router, free of
// I/O and clocks: Step takes an event and the current time and returns what
// to do. Not safe for concurrent use.
type Machine struct {
	cfg      MachineConfig
	state    State
	base     uint8 // configured priority
	faulty   bool
	interval time.Duration // Master_Adver_Interval
	master   netip.Addr    // the current master as far as we know
	since    time.Time

	downAt     time.Time // when the armed master down timer fires
	graced     bool      // the armed timer is a grace after a late expiry
	goodbye    bool      // the master left (priority 0) since the timer was armed
	lastAdvert time.Time // our last advert with a non-zero priority
	garpAt     time.Time // our last re-announcement, or the deferred one due
	deaf       bool      // the advert interface is down
	preemptAt  time.Time // no preempting before this (PreemptDelay)
}

// NewMachine returns a machine in Init.
func NewMachine(cfg MachineConfig) *Machine {
	cfg = cfg.withDefaults()
	return &Machine{cfg: cfg, base: cfg.Priority, interval: cfg.AdvertInterval}
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// MasterAddr returns the address of the current master, if known.
func (m *Machine) MasterAddr() netip.Addr { return m.master }

// Since returns when the current state was entered.
func (m *Machine) Since() time.Time { return m.since }

// Priority returns the priority this router advertises now.
func (m *Machine) Priority() uint8 {
	p := m.base
	if m.faulty && m.cfg.FaultDecrement > 0 {
		if p <= m.cfg.FaultDecrement {
			return 1
		}
		p -= m.cfg.FaultDecrement
	}
	return p
}

// MasterAdverInterval is the interval learned from the master (ours until
// we hear one).
func (m *Machine) MasterAdverInterval() time.Duration { return m.interval }

// skew is ((256 - Priority) * Master_Adver_Interval) / 256.
func (m *Machine) skew() time.Duration {
	return time.Duration(256-int64(m.Priority())) * m.interval / 256
}

// masterDown is 3 * Master_Adver_Interval + Skew_Time.
func (m *Machine) masterDown() time.Duration {
	return 3*m.interval + m.skew()
}

// Step applies one event.
func (m *Machine) Step(ev Event, now time.Time) []Action {
	switch ev := ev.(type) {
	case Startup:
		if m.state != Init {
			return nil
		}
		if m.faultState() {
			return m.enter(Fault, now, "tracking reports a fault at startup", StopTimers{}, BecomeBackup{})
		}
		m.preemptAt = now.Add(m.cfg.PreemptDelay)
		return m.toBackup(now, "startup", m.cfg.AdvertInterval, netip.Addr{})
	case Shutdown:
		m.downAt = time.Time{}
		switch m.state {
		case Master:
			return m.enter(Init, now, "shutdown", StopTimers{}, SendAdvert{Priority: 0}, BecomeBackup{})
		case Backup, Fault:
			return m.enter(Init, now, "shutdown", StopTimers{})
		}
		return nil
	case MasterDownTimerFired:
		if m.state != Backup || m.deaf {
			return nil
		}
		// Silence is evidence of a dead master only while we listened.
		// A timer that fires late means this process (or its whole VM)
		// did not run for that long; the master, or at least our
		// reading of its adverts, may have stalled with us. Give it one
		// more interval once, instead of grabbing the VIP for the moment
		// it takes to hear the advert that is on its way. Not after a
		// priority-0 advert: the master said it left, no advert of its
		// is on its way, and waiting would make a clean handover as slow
		// as a crash (seen in the lab: keepalived stopped, golvs late).
		if !m.graced && !m.goodbye && ev.Late > max(m.interval/4, 20*time.Millisecond) {
			act := m.startDown(now, m.interval+m.skew())
			m.graced = true
			return []Action{act}
		}
		m.downAt = time.Time{}
		return m.toMaster(now, "master down timer expired")
	case AdvertTimerFired:
		if m.state != Master {
			return nil
		}
		return []Action{m.advertise(now), StartAdvertTimer{D: m.cfg.AdvertInterval}}
	case AdvertReceived:
		return m.advert(ev, now)
	case FaultChanged:
		return m.fault(ev, now)
	case PriorityChanged:
		m.base = ev.Priority
		return m.reprioritised(now)
	case LinkChanged:
		return m.link(ev, now)
	}
	return nil
}

// link handles an interface going down or up. A master keeps its state
// and its addresses across a flap, so a short one costs nothing but the
// flap, and on the way back advertises at once (a backup that took over
// meanwhile yields to it) and reasserts its addresses. A backup does not
// count silence on a dead link as a dead master: its master down timer
// stops while the link is down and starts afresh when it returns.
func (m *Machine) link(ev LinkChanged, now time.Time) []Action {
	if !ev.Adverts {
		if ev.Up && m.state == Master {
			return []Action{Reassert{}}
		}
		return nil
	}
	if m.deaf == !ev.Up {
		return nil // no change
	}
	m.deaf = !ev.Up
	switch {
	case m.state == Backup && !ev.Up:
		m.downAt = time.Time{}
		return []Action{StopTimers{}}
	case m.state == Backup:
		// What the peer synced while the link was down never came.
		m.preemptAt = now.Add(m.cfg.PreemptDelay)
		return []Action{m.startDown(now, m.masterDown())}
	case m.state == Master && ev.Up:
		return []Action{m.advertise(now), StartAdvertTimer{D: m.cfg.AdvertInterval}, Reassert{}}
	}
	return nil
}

// advertise is SendAdvert at the current priority, remembered for answer.
func (m *Machine) advertise(now time.Time) Action {
	m.lastAdvert = now
	return SendAdvert{Priority: m.Priority()}
}

// startDown arms the master down timer for d from now.
func (m *Machine) startDown(now time.Time, d time.Duration) Action {
	m.downAt = now.Add(d)
	m.graced = false
	m.goodbye = false
	return StartMasterDownTimer{D: d}
}

// learn bounds an advertised interval (see MachineConfig.MaxMasterInterval).
func (m *Machine) learn(cs uint16) time.Duration {
	return min(max(advertInterval(cs), m.cfg.MinMasterInterval), m.cfg.MaxMasterInterval)
}

// answer is a master's reply to an advert it does not yield to. RFC 9568
// 6.4.3 sends an advert at once, to assert mastership to the sender and to
// fix learning bridges; keepalived adds a gratuitous ARP burst each time.
// Done on every such advert this is an amplifier: 100 forged adverts made
// 1,100 packets. So the advert goes out only if our last one is at least
// half an interval old (at most two adverts per interval, whatever arrives),
// and one gratuitous round at most once per ReannounceHoldoff. The sender
// still hears us within half an interval, which is all a real split brain
// needs.
//
// A round the hold-off catches is deferred, never dropped: the weaker
// master announces after its first advert (see toMaster), so only a round
// after its later advert is sure to land after its own, and dropping that
// one left a client on the weaker router's MAC once it had yielded (seen
// in the lab on a loaded host). Adverts that come while a round is due are
// answered by that round.
func (m *Machine) answer(now time.Time, garp bool) []Action {
	var acts []Action
	if m.lastAdvert.IsZero() || now.Sub(m.lastAdvert) >= m.cfg.AdvertInterval/2 {
		acts = append(acts, m.advertise(now), StartAdvertTimer{D: m.cfg.AdvertInterval})
	}
	if !garp {
		return acts
	}
	switch next := m.garpAt.Add(m.cfg.ReannounceHoldoff); {
	case m.garpAt.After(now):
		// A deferred round is due; it follows this advert.
	case m.garpAt.IsZero() || !next.After(now):
		m.garpAt = now
		acts = append(acts, SendGratuitous{Rounds: 1})
	default:
		m.garpAt = next
		acts = append(acts, SendGratuitous{Rounds: 1, After: next.Sub(now)})
	}
	return acts
}

func (m *Machine) faultState() bool { return m.faulty && m.cfg.FaultDecrement == 0 }

func (m *Machine) advert(ev AdvertReceived, now time.Time) []Action {
	switch m.state {
	case Backup:
		if ev.Priority == 0 {
			if ev.Unverified {
				return nil // a replayed goodbye must not hurry us
			}
			// The master is leaving: take over after Skew_Time only, and
			// never later than already due, so repeated priority-0
			// adverts cannot postpone the takeover.
			var acts []Action
			if skew := m.skew(); m.downAt.IsZero() || m.downAt.Sub(now) > skew {
				acts = append(acts, m.startDown(now, skew))
			}
			m.goodbye = true
			return acts
		}
		if !m.cfg.Preempt || ev.Priority >= m.Priority() || now.Before(m.preemptAt) {
			if !ev.Unverified {
				m.interval = m.learn(ev.MaxAdvertInterval)
			}
			m.master = ev.From
			return []Action{m.startDown(now, m.masterDown())}
		}
		// Preempting: ignore the weaker master and let the timer run out.
		return nil
	case Master:
		if ev.Priority == 0 {
			// Another router is leaving; make sure the backups hear us.
			return m.answer(now, false)
		}
		mine := m.Priority()
		if ev.Priority > mine || ev.Priority == mine && ev.From.Compare(m.cfg.Local) > 0 {
			if ev.Unverified {
				// Maybe a replay of a master that is gone: stay, and
				// advertise; a live peer answers with an advert that
				// proves itself, and then we yield.
				return m.answer(now, false)
			}
			reason := fmt.Sprintf("higher priority master %v (%d > %d)", ev.From, ev.Priority, mine)
			if ev.Priority == mine {
				reason = fmt.Sprintf("master %v with equal priority %d and higher address", ev.From, mine)
			}
			return m.toBackup(now, reason, m.learn(ev.MaxAdvertInterval), ev.From)
		}
		// Split brain: a weaker router thinks it is master. Answer so it
		// steps down, and re-announce the VIPs it may have stolen.
		return m.answer(now, true)
	}
	return nil
}

func (m *Machine) fault(ev FaultChanged, now time.Time) []Action {
	if m.faulty == ev.Bad {
		return nil
	}
	m.faulty = ev.Bad
	if m.cfg.FaultDecrement > 0 {
		return m.reprioritised(now)
	}
	switch {
	case ev.Bad && m.state == Master:
		return m.enter(Fault, now, ev.Reason, StopTimers{}, SendAdvert{Priority: 0}, BecomeBackup{})
	case ev.Bad && m.state == Backup:
		return m.enter(Fault, now, ev.Reason, StopTimers{})
	case !ev.Bad && m.state == Fault:
		return m.toBackup(now, "fault cleared", m.cfg.AdvertInterval, netip.Addr{})
	}
	return nil
}

func (m *Machine) reprioritised(now time.Time) []Action {
	if m.state == Master {
		// Tell the backups now so a stronger one can preempt without waiting.
		return []Action{m.advertise(now), StartAdvertTimer{D: m.cfg.AdvertInterval}}
	}
	return nil
}

func (m *Machine) toBackup(now time.Time, reason string, interval time.Duration, master netip.Addr) []Action {
	m.interval = interval
	m.master = master
	return m.enter(Backup, now, reason, m.startDown(now, m.masterDown()), BecomeBackup{})
}

// toMaster advertises before taking the addresses (RFC 9568 6.4.2), so
// the others hear of us at once, and again after announcing them: adding
// the addresses can take a loaded host most of a second, and if a stronger
// master is alive its answer to the second advert is sure to come after
// our gratuitous ARP and win the clients back. Its answer to the first
// alone may come before our ARP, leaving them on our MAC after we yield.
func (m *Machine) toMaster(now time.Time, reason string) []Action {
	m.master = m.cfg.Local
	return m.enter(Master, now, reason,
		m.advertise(now), BecomeMaster{}, m.advertise(now), StartAdvertTimer{D: m.cfg.AdvertInterval})
}

func (m *Machine) enter(s State, now time.Time, reason string, acts ...Action) []Action {
	m.state = s
	m.since = now
	if s != Backup {
		m.downAt = time.Time{}
	}
	if s != Master && s != Backup {
		m.master = netip.Addr{}
	}
	return append(acts, NotifyState{State: s, Reason: reason})
}

func advertInterval(cs uint16) time.Duration {
	if cs == 0 {
		cs = 1 // a zero interval would make the timers spin
	}
	return time.Duration(cs) * 10 * time.Millisecond
}
