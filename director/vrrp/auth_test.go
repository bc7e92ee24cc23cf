package vrrp

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

var sealedAdvert = Advert{VRID: 51, Priority: 200, MaxAdvertInterval: 100, Addrs: []netip.Addr{testVI}}

// TestAuthProofByEcho walks the freshness protocol on two Auths: an unknown
// epoch is unproven until a message echoes the receiver's own epoch; then
// its numbers only go up; a superseded epoch is refused; unproven adverts
// are trusted for the window only.
func TestAuthProofByEcho(t *testing.T) {
	k := testKey(t)
	now := time.Unix(0, 0)
	s, r := NewAuth(k), NewAuth(k) // s: the master at peer; r: us at me
	r.SetTrustWindow(3*time.Second, time.Second)
	open := func(b []byte, at time.Duration) (Verdict, error) {
		_, v, err := r.Open(b, peer, GroupV4, now.Add(at))
		return v, err
	}
	seal := func(a *Auth) []byte {
		b, err := a.Seal(sealedAdvert, peer, GroupV4)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if v, err := open(seal(s), 0); err != nil || v.Fresh || !v.Ask {
		t.Fatalf("unknown epoch: %+v %v, want unproven, ask", v, err)
	}
	if v, err := open(seal(s), 500*time.Millisecond); err != nil || v.Fresh || v.Ask {
		t.Fatalf("unknown epoch again within a second: %+v %v, want unproven, no second ask", v, err)
	}
	// Our challenge reaches s, which answers echoing our epoch.
	ch, _ := r.SealChallenge(sealedAdvert, me, GroupV4)
	_, cv, err := s.Open(ch, me, GroupV4, now)
	if err != nil || !cv.Challenge || cv.Epoch != r.Epoch() || cv.Ask {
		t.Fatalf("challenge at s: %+v %v", cv, err)
	}
	ans, _ := s.SealAnswer(sealedAdvert, peer, GroupV4, cv.Epoch)
	if v, err := open(ans, time.Second); err != nil || !v.Fresh {
		t.Fatalf("answer: %+v %v, want proven", v, err)
	}
	// Proven: later adverts are fresh long after the window, and s's
	// periodic adverts echo us anyway.
	if v, err := open(seal(s), time.Hour); err != nil || !v.Fresh {
		t.Fatalf("proven epoch an hour later: %+v %v", v, err)
	}
	// s restarts (a new run, as after fixing its clock): its new epoch is
	// unproven until it echoes us, then the old one is retired.
	old := seal(s)
	s2 := NewAuth(k)
	if v, err := open(seal(s2), time.Hour+time.Second); err != nil || v.Fresh || !v.Ask {
		t.Fatalf("restarted peer: %+v %v, want unproven, ask", v, err)
	}
	ans, _ = s2.SealAnswer(sealedAdvert, peer, GroupV4, r.Epoch())
	if v, err := open(ans, time.Hour+2*time.Second); err != nil || !v.Fresh {
		t.Fatalf("restarted peer's answer: %+v %v, want proven", v, err)
	}
	if _, err := open(old, time.Hour+3*time.Second); !errors.Is(err, ErrReplay) {
		t.Fatalf("advert of the superseded run: %v, want ErrReplay", err)
	}
	// A capture of an unknown run: trusted for 3 s from its first
	// unproven advert, then stale (and still worth asking about).
	capt := NewAuth(k)
	base := 2 * time.Hour
	for i, at := range []time.Duration{0, time.Second, 2 * time.Second, 2999 * time.Millisecond} {
		if _, err := open(seal(capt), base+at); err != nil {
			t.Fatalf("unproven advert %d at +%v: %v", i, at, err)
		}
	}
	v, err := open(seal(capt), base+3*time.Second)
	if !errors.Is(err, ErrStale) || !v.Ask {
		t.Fatalf("unproven advert after the window: %+v %v, want ErrStale with ask", v, err)
	}
	// A proven advert closes the window: the next unproven one opens a
	// new one.
	if v, err := open(seal(s2), base+4*time.Second); err != nil || !v.Fresh {
		t.Fatalf("proven advert: %+v %v", v, err)
	}
	if _, err := open(seal(capt), base+5*time.Second); err != nil {
		t.Fatalf("unproven advert after a proven one: %v", err)
	}
}

// TestShouldAnswerRateLimit: one answer per challenger and epoch per gap.
func TestShouldAnswerRateLimit(t *testing.T) {
	a := NewAuth(testKey(t))
	now := time.Unix(0, 0)
	if !a.ShouldAnswer(peer, 1, now, time.Second) || a.ShouldAnswer(peer, 1, now.Add(999*time.Millisecond), time.Second) {
		t.Error("second answer to the same challenger within the gap")
	}
	if !a.ShouldAnswer(peer, 2, now, time.Second) || !a.ShouldAnswer(peer, 1, now.Add(time.Second), time.Second) {
		t.Error("answer refused to a new epoch or after the gap")
	}
}

// capture returns n adverts of a master at priority 200 from a past run,
// as an attacker on the segment would have recorded them.
func capture(t *testing.T, k *Key, n int) [][]byte {
	t.Helper()
	past := NewAuth(k)
	var out [][]byte
	for range n {
		b, err := past.Seal(sealedAdvert, peer, GroupV4)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestReplayAfterRestartIsBounded (issue 18.4): the master is dead and our
// director has just restarted; an attacker replays a capture of the
// master's adverts, one per second, for a minute. Before, a restarted
// receiver took them all as fresh and left the VIP unowned for as long as
// the capture lasted. Now they hold us for the trust window (our master
// down interval) from the first one, and we take over one master down
// interval after the last trusted one.
func TestReplayAfterRestartIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := testKey(t)
		replays := capture(t, k, 60)
		tr := startTestRunner(t, nil, nil, NewAuth(k))
		time.Sleep(500 * time.Millisecond)
		for _, b := range replays {
			tr.deliver(b)
			time.Sleep(time.Second)
		}
		// Replays at 0.5 s, 1.5 s, ... are trusted while under 0.5 s +
		// 3.609375 s, so the last at 3.5 s; takeover at 3.5 s + 3.609375 s.
		want := 3500*time.Millisecond + down100
		hooks := tr.hl.take()
		if len(hooks) != 2 || hooks[1] != "master@"+want.String() {
			t.Fatalf("hooks %v, want backup then master@%v", hooks, want)
		}
		st := tr.r.Status()
		if st.State != Master || st.Drops.Stale < 50 {
			t.Errorf("state %v drops %+v, want master with the replays dropped as stale", st.State, st.Drops)
		}
		challenges := 0
		for _, s := range tr.conn.takeSent() {
			if s.adv.Auth.Challenge() {
				challenges++
			}
		}
		if challenges < 3 {
			t.Errorf("%d challenges sent, want one per advert interval while unproven", challenges)
		}
		t.Logf("replayed capture of 60 adverts held the VIP unowned for %v (bound: trust window + master down = %v)", want-500*time.Millisecond, 2*down100)
	})
}

// TestReplayCannotDethroneMaster: replayed adverts of a higher-priority
// master do not make a master yield; it answers them and stays.
func TestReplayCannotDethroneMaster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := testKey(t)
		tr := startTestRunner(t, nil, nil, NewAuth(k))
		time.Sleep(5 * time.Second)
		tr.hl.take()
		for _, b := range capture(t, k, 20) {
			tr.deliver(b)
			time.Sleep(time.Second)
		}
		if h := tr.hl.take(); len(h) != 0 || tr.r.Status().State != Master {
			t.Fatalf("replays moved the master: hooks %v, state %v", h, tr.r.Status().State)
		}
	})
}

// livePeer plays a golvs master at priority 200 on the other end of a
// testRunner: an advert every second, and an answer to each challenge.
type livePeer struct {
	t    *testing.T
	tr   *testRunner
	auth *Auth
	next time.Time
}

// run plays the peer for d in 10 ms steps; it returns the challenges seen.
func (p *livePeer) run(d time.Duration) (challenges int) {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		for _, s := range p.tr.conn.takeSent() {
			if s.adv.Auth == nil || !s.adv.Auth.Challenge() {
				p.t.Fatalf("backup sent a non-challenge: %+v", s.adv)
			}
			challenges++
			_, v, err := p.auth.Open(s.b, s.src, s.dst, time.Now())
			if err != nil {
				p.t.Fatalf("peer cannot open the challenge: %v", err)
			}
			b, _ := p.auth.SealAnswer(sealedAdvert, peer, GroupV4, v.Epoch)
			p.tr.deliver(b)
		}
		if !time.Now().Before(p.next) {
			b, _ := p.auth.Seal(sealedAdvert, peer, GroupV4)
			p.tr.deliver(b)
			p.next = time.Now().Add(time.Second)
		}
	}
	return challenges
}

// TestLiveMasterIsProven (issues 18.4 and 17.3): a backup joining a live
// authenticated master challenges it, is answered, and never claims the
// VIP; when the master restarts (a new run, as after its clock was
// corrected) the backup proves the new run the same way and still never
// claims it: no both-masters.
func TestLiveMasterIsProven(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := testKey(t)
		tr := startTestRunner(t, nil, nil, NewAuth(k))
		time.Sleep(300 * time.Millisecond)
		p := &livePeer{t: t, tr: tr, auth: NewAuth(k)}
		n1 := p.run(20 * time.Second)
		p.auth, p.next = NewAuth(k), time.Time{} // the master restarts
		n2 := p.run(20 * time.Second)
		for _, h := range tr.hl.take() {
			if strings.HasPrefix(h, "master@") {
				t.Fatalf("backup claimed the VIP next to a live master: %s", h)
			}
		}
		st := tr.r.Status()
		if st.State != Backup || st.Master != peer || st.Drops != (Drops{}) {
			t.Errorf("status %v master %v drops %+v, want backup of %v, nothing dropped", st.State, st.Master, st.Drops, peer)
		}
		if n1 != 1 || n2 != 1 {
			t.Errorf("challenges: %d for the first run, %d for the restarted one; want one each", n1, n2)
		}
	})
}

// TestOtherVRIDsDoNotOpenTheTrustWindow: adverts of another virtual router
// sharing the key and the segment are dropped before authentication state
// sees them, so they cannot use up our trust window for a restarted peer.
func TestOtherVRIDsDoNotOpenTheTrustWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := testKey(t)
		tr := startTestRunner(t, nil, nil, NewAuth(k))
		other := NewAuth(k)
		vr52 := sealedAdvert
		vr52.VRID = 52
		for range 10 {
			b, _ := other.Seal(vr52, peer, GroupV4)
			tr.deliver(b)
			time.Sleep(time.Second)
		}
		b, _ := NewAuth(k).Seal(sealedAdvert, peer, GroupV4)
		tr.deliver(b)
		if d := tr.r.Status().Drops; d != (Drops{VRID: 10}) {
			t.Errorf("drops %+v, want only the 10 adverts of VRID 52", d)
		}
	})
}
