package vrrp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var (
	local = netip.MustParseAddr("192.168.0.11")
	lower = netip.MustParseAddr("192.168.0.10")
	upper = netip.MustParseAddr("192.168.0.12")
)

type step struct {
	ev    Event
	want  []Action
	state State
}

// Timer arithmetic used below, for priority 100 and a 1 s interval:
// skew = (256-100)*1s/256 = 609.375ms; master down = 3s + skew = 3.609375s.
// With a learned 2 s interval: skew 1.21875s, master down 7.21875s.
// Priority 50 (after a decrement of 50): skew (206*1s)/256 = 804.6875ms.
const (
	skew100 = 609375 * time.Microsecond
	down100 = 3*time.Second + skew100
)

func runSteps(t *testing.T, cfg MachineConfig, steps []step) *Machine {
	t.Helper()
	m := NewMachine(cfg)
	now := time.Unix(1000, 0)
	for i, s := range steps {
		got := m.Step(s.ev, now)
		if diff := cmp.Diff(s.want, got, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(NotifyState{}, "Reason")); diff != "" {
			t.Fatalf("step %d %T%+v: actions (-want +got):\n%s", i, s.ev, s.ev, diff)
		}
		if m.State() != s.state {
			t.Fatalf("step %d %T: state %v, want %v", i, s.ev, m.State(), s.state)
		}
		now = now.Add(time.Second)
	}
	return m
}

func baseCfg() MachineConfig {
	return MachineConfig{Priority: 100, AdvertInterval: time.Second, Preempt: true, Local: local}
}

var (
	startup  = step{Startup{}, []Action{StartMasterDownTimer{down100}, BecomeBackup{}, NotifyState{State: Backup}}, Backup}
	takeover = step{MasterDownTimerFired{}, []Action{SendAdvert{100}, BecomeMaster{}, SendAdvert{100}, StartAdvertTimer{time.Second}, NotifyState{State: Master}}, Master}
)

func TestMachine(t *testing.T) {
	noPreempt := baseCfg()
	noPreempt.Preempt = false
	decrement := baseCfg()
	decrement.FaultDecrement = 50
	delayed := baseCfg()
	delayed.PreemptDelay = 2500 * time.Millisecond

	for _, tc := range []struct {
		name  string
		cfg   MachineConfig
		steps []step
	}{
		{"startup then master when nobody speaks", baseCfg(), []step{
			startup, takeover,
			{AdvertTimerFired{}, []Action{SendAdvert{100}, StartAdvertTimer{time.Second}}, Master},
			{MasterDownTimerFired{}, nil, Master}, // stale timer event is ignored
		}},
		{"backup follows a higher master and learns its interval", baseCfg(), []step{
			startup,
			{AdvertReceived{From: upper, Priority: 200, MaxAdvertInterval: 200},
				[]Action{StartMasterDownTimer{6*time.Second + 1218750*time.Microsecond}}, Backup},
			{AdvertReceived{From: upper, Priority: 200, MaxAdvertInterval: 200},
				[]Action{StartMasterDownTimer{6*time.Second + 1218750*time.Microsecond}}, Backup},
		}},
		{"preempt: backup ignores lower master and takes over", baseCfg(), []step{
			startup,
			{AdvertReceived{From: upper, Priority: 50, MaxAdvertInterval: 100}, nil, Backup},
			takeover,
		}},
		// Steps are a second apart: adverts at 1s and 2s fall in the
		// delay, the one at 3s does not.
		{"preempt delay: backup follows a lower master until the delay ends", delayed, []step{
			startup,
			{AdvertReceived{From: upper, Priority: 50, MaxAdvertInterval: 100}, []Action{StartMasterDownTimer{down100}}, Backup},
			{AdvertReceived{From: upper, Priority: 50, MaxAdvertInterval: 100}, []Action{StartMasterDownTimer{down100}}, Backup},
			{AdvertReceived{From: upper, Priority: 50, MaxAdvertInterval: 100}, nil, Backup},
			takeover,
		}},
		{"preempt delay: starts again when the advert link returns", delayed, []step{
			startup,
			{AdvertReceived{From: upper, Priority: 50, MaxAdvertInterval: 100}, []Action{StartMasterDownTimer{down100}}, Backup},
			{LinkChanged{Up: false, Adverts: true}, []Action{StopTimers{}}, Backup},
			{AdvertReceived{From: upper, Priority: 50, MaxAdvertInterval: 100}, nil, Backup}, // the startup delay is over
			{LinkChanged{Up: true, Adverts: true}, []Action{StartMasterDownTimer{down100}}, Backup},
			{AdvertReceived{From: upper, Priority: 50, MaxAdvertInterval: 100}, []Action{StartMasterDownTimer{down100}}, Backup},
			{AdvertReceived{From: upper, Priority: 50, MaxAdvertInterval: 100}, []Action{StartMasterDownTimer{down100}}, Backup},
			{AdvertReceived{From: upper, Priority: 50, MaxAdvertInterval: 100}, nil, Backup},
		}},
		{"no preempt: backup follows lower master", noPreempt, []step{
			startup,
			{AdvertReceived{From: upper, Priority: 50, MaxAdvertInterval: 100}, []Action{StartMasterDownTimer{down100}}, Backup},
		}},
		{"equal priority backup follows", baseCfg(), []step{
			startup,
			{AdvertReceived{From: lower, Priority: 100, MaxAdvertInterval: 100}, []Action{StartMasterDownTimer{down100}}, Backup},
		}},
		{"priority 0 makes backup fire after skew only", baseCfg(), []step{
			startup,
			{AdvertReceived{From: upper, Priority: 0, MaxAdvertInterval: 100}, []Action{StartMasterDownTimer{skew100}}, Backup},
			takeover,
		}},
		// A late expiry after a master's goodbye gets no grace: the
		// master said it left (issue 17.3, keepalived stopped in the lab).
		{"priority 0: a late skew timer takes over at once", baseCfg(), []step{
			startup,
			{AdvertReceived{From: upper, Priority: 200, MaxAdvertInterval: 100}, []Action{StartMasterDownTimer{down100}}, Backup},
			{AdvertReceived{From: upper, Priority: 0, MaxAdvertInterval: 100}, []Action{StartMasterDownTimer{skew100}}, Backup},
			{MasterDownTimerFired{Late: 2 * time.Second}, takeover.want, Master},
		}},
		{"a late master down timer without a goodbye waits once more", baseCfg(), []step{
			startup,
			{AdvertReceived{From: upper, Priority: 200, MaxAdvertInterval: 100}, []Action{StartMasterDownTimer{down100}}, Backup},
			{AdvertReceived{From: upper, Priority: 0, MaxAdvertInterval: 100}, []Action{StartMasterDownTimer{skew100}}, Backup},
			// The master (or another) is back before the timer: the
			// goodbye no longer counts.
			{AdvertReceived{From: upper, Priority: 200, MaxAdvertInterval: 100}, []Action{StartMasterDownTimer{down100}}, Backup},
			{MasterDownTimerFired{Late: 2 * time.Second}, []Action{StartMasterDownTimer{time.Second + skew100}}, Backup},
			takeover,
		}},
		{"master yields to higher priority", baseCfg(), []step{
			startup, takeover,
			{AdvertReceived{From: lower, Priority: 101, MaxAdvertInterval: 50},
				// learned 0.5 s: 1.5s + (156*0.5s)/256 = 1.5s + 304.6875ms
				[]Action{StartMasterDownTimer{1500*time.Millisecond + 3046875*time.Microsecond/10}, BecomeBackup{}, NotifyState{State: Backup}}, Backup},
		}},
		{"master yields to equal priority with higher address", baseCfg(), []step{
			startup, takeover,
			{AdvertReceived{From: upper, Priority: 100, MaxAdvertInterval: 100},
				[]Action{StartMasterDownTimer{down100}, BecomeBackup{}, NotifyState{State: Backup}}, Backup},
		}},
		{"split brain: master answers lower and equal-lower-address masters", baseCfg(), []step{
			startup, takeover,
			{AdvertReceived{From: upper, Priority: 99, MaxAdvertInterval: 100},
				[]Action{SendAdvert{100}, StartAdvertTimer{time.Second}, SendGratuitous{Rounds: 1}}, Master},
			// One second later (one ReannounceHoldoff): both again.
			{AdvertReceived{From: lower, Priority: 100, MaxAdvertInterval: 100},
				[]Action{SendAdvert{100}, StartAdvertTimer{time.Second}, SendGratuitous{Rounds: 1}}, Master},
			{AdvertReceived{From: lower, Priority: 100, MaxAdvertInterval: 100},
				[]Action{SendAdvert{100}, StartAdvertTimer{time.Second}, SendGratuitous{Rounds: 1}}, Master},
		}},
		{"master hears priority 0 and re-advertises", baseCfg(), []step{
			startup, takeover,
			{AdvertReceived{From: upper, Priority: 0, MaxAdvertInterval: 100},
				[]Action{SendAdvert{100}, StartAdvertTimer{time.Second}}, Master},
		}},
		{"master shutdown sends priority 0 and releases", baseCfg(), []step{
			startup, takeover,
			{Shutdown{}, []Action{StopTimers{}, SendAdvert{0}, BecomeBackup{}, NotifyState{State: Init}}, Init},
			{AdvertTimerFired{}, nil, Init},
		}},
		{"backup shutdown", baseCfg(), []step{
			startup,
			{Shutdown{}, []Action{StopTimers{}, NotifyState{State: Init}}, Init},
		}},
		{"fault state: master steps down, ignores adverts, recovers as backup", baseCfg(), []step{
			startup, takeover,
			{FaultChanged{Bad: true}, []Action{StopTimers{}, SendAdvert{0}, BecomeBackup{}, NotifyState{State: Fault}}, Fault},
			{FaultChanged{Bad: true}, nil, Fault},
			{AdvertReceived{From: upper, Priority: 50, MaxAdvertInterval: 100}, nil, Fault},
			{MasterDownTimerFired{}, nil, Fault},
			{FaultChanged{Bad: false}, []Action{StartMasterDownTimer{down100}, BecomeBackup{}, NotifyState{State: Backup}}, Backup},
			takeover,
		}},
		{"fault before startup", baseCfg(), []step{
			{FaultChanged{Bad: true}, nil, Init},
			{Startup{}, []Action{StopTimers{}, BecomeBackup{}, NotifyState{State: Fault}}, Fault},
		}},
		{"fault as priority decrement", decrement, []step{
			startup, takeover,
			{FaultChanged{Bad: true}, []Action{SendAdvert{50}, StartAdvertTimer{time.Second}}, Master},
			{AdvertTimerFired{}, []Action{SendAdvert{50}, StartAdvertTimer{time.Second}}, Master},
			{AdvertReceived{From: lower, Priority: 60, MaxAdvertInterval: 100},
				[]Action{StartMasterDownTimer{3*time.Second + 8046875*time.Microsecond/10}, BecomeBackup{}, NotifyState{State: Backup}}, Backup},
			// Recovered: priority 100 again, preempts the 60 master.
			{FaultChanged{Bad: false}, nil, Backup},
			{AdvertReceived{From: lower, Priority: 60, MaxAdvertInterval: 100}, nil, Backup},
			takeover,
		}},
		{"late master down expiry: one grace of interval + skew, then takeover", baseCfg(), []step{
			startup,
			{MasterDownTimerFired{Late: 2 * time.Second}, []Action{StartMasterDownTimer{time.Second + skew100}}, Backup},
			// An advert ends the grace; the next late expiry gets one again.
			{AdvertReceived{From: upper, Priority: 200, MaxAdvertInterval: 100}, []Action{StartMasterDownTimer{down100}}, Backup},
			{MasterDownTimerFired{Late: 300 * time.Millisecond}, []Action{StartMasterDownTimer{time.Second + skew100}}, Backup},
			{MasterDownTimerFired{Late: time.Second}, takeover.want, Master},
		}},
		{"on-time or slightly late expiry takes over", baseCfg(), []step{
			startup,
			{MasterDownTimerFired{Late: 200 * time.Millisecond}, takeover.want, Master},
		}},
		{"priority change while master is advertised at once", baseCfg(), []step{
			startup, takeover,
			{PriorityChanged{Priority: 20}, []Action{SendAdvert{20}, StartAdvertTimer{time.Second}}, Master},
			{AdvertReceived{From: lower, Priority: 30, MaxAdvertInterval: 100},
				// (256-20)*1s/256 = 921.875ms
				[]Action{StartMasterDownTimer{3*time.Second + 921875*time.Microsecond}, BecomeBackup{}, NotifyState{State: Backup}}, Backup},
		}},
		{"link flap of a master: it stays master, then advertises and reasserts its addresses", baseCfg(), []step{
			startup, takeover,
			{LinkChanged{Up: false, Adverts: true}, nil, Master},
			{AdvertTimerFired{}, []Action{SendAdvert{100}, StartAdvertTimer{time.Second}}, Master},
			{LinkChanged{Up: true, Adverts: true}, []Action{SendAdvert{100}, StartAdvertTimer{time.Second}, Reassert{}}, Master},
			{LinkChanged{Up: true, Adverts: true}, nil, Master}, // no change
		}},
		{"link down: a backup does not take silence for a dead master", baseCfg(), []step{
			startup,
			{LinkChanged{Up: false, Adverts: true}, []Action{StopTimers{}}, Backup},
			{MasterDownTimerFired{}, nil, Backup},
			{LinkChanged{Up: true, Adverts: true}, []Action{StartMasterDownTimer{down100}}, Backup},
			takeover,
		}},
		{"link down: a backup cleared of a fault waits for the link", baseCfg(), []step{
			startup,
			{FaultChanged{Bad: true}, []Action{StopTimers{}, NotifyState{State: Fault}}, Fault},
			{LinkChanged{Up: false, Adverts: true}, nil, Fault},
			{FaultChanged{Bad: false}, []Action{StartMasterDownTimer{down100}, BecomeBackup{}, NotifyState{State: Backup}}, Backup},
			{MasterDownTimerFired{}, nil, Backup},
			{LinkChanged{Up: true, Adverts: true}, []Action{StartMasterDownTimer{down100}}, Backup},
			takeover,
		}},
		{"an Extra interface back up: a master reasserts, a backup does nothing", baseCfg(), []step{
			startup,
			{LinkChanged{Up: true}, nil, Backup},
			takeover,
			{LinkChanged{Up: false}, nil, Master},
			{LinkChanged{Up: true}, []Action{Reassert{}}, Master},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { runSteps(t, tc.cfg, tc.steps) })
	}
}

// TestMachineReannounceDeferred: a master's gratuitous answers to weaker
// adverts are at most one per ReannounceHoldoff, and one caught by the
// hold-off is deferred, not dropped: the last advert of a contest always
// has a round after it.
func TestMachineReannounceDeferred(t *testing.T) {
	m := runSteps(t, baseCfg(), []step{startup, takeover})
	t0 := time.Unix(2000, 0)
	m.Step(AdvertTimerFired{}, t0.Add(-time.Second))
	weaker := AdvertReceived{From: lower, Priority: 50, MaxAdvertInterval: 100}
	advert := []Action{SendAdvert{100}, StartAdvertTimer{time.Second}}
	for _, s := range []struct {
		at   time.Duration
		want []Action
	}{
		{0, append(advert, SendGratuitous{Rounds: 1})},
		{100 * time.Millisecond, []Action{SendGratuitous{Rounds: 1, After: 900 * time.Millisecond}}},
		{300 * time.Millisecond, nil}, // answered by the round due at 1 s
		{1200 * time.Millisecond, append(advert, SendGratuitous{Rounds: 1, After: 800 * time.Millisecond})},
		{1500 * time.Millisecond, nil},
		{3 * time.Second, append(advert, SendGratuitous{Rounds: 1})},
	} {
		got := m.Step(weaker, t0.Add(s.at))
		if diff := cmp.Diff(s.want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("advert at %v: actions (-want +got):\n%s", s.at, diff)
		}
	}
	if m.State() != Master {
		t.Errorf("state %v, want master", m.State())
	}
}

func TestMachineMasterAddr(t *testing.T) {
	m := runSteps(t, baseCfg(), []step{startup,
		{AdvertReceived{From: upper, Priority: 200, MaxAdvertInterval: 100}, []Action{StartMasterDownTimer{down100}}, Backup}})
	if m.MasterAddr() != upper {
		t.Errorf("backup: MasterAddr = %v, want %v", m.MasterAddr(), upper)
	}
	m.Step(MasterDownTimerFired{}, time.Unix(2000, 0))
	if m.MasterAddr() != local || !m.Since().Equal(time.Unix(2000, 0)) {
		t.Errorf("master: MasterAddr = %v since %v", m.MasterAddr(), m.Since())
	}
}
