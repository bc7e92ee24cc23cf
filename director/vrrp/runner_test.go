package vrrp

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/golvs/golvs/config"
)

type fakePkt struct {
	b    []byte
	info packetInfo
}

type sentPkt struct {
	at       time.Duration // since the bubble started
	adv      Advert
	src, dst netip.Addr
	b        []byte
}

// fakeConn stands in for the raw socket: tests push received packets and
// read back what was sent, all in synctest's fake time.
type fakeConn struct {
	start  time.Time
	in     chan fakePkt
	closed chan struct{}
	once   sync.Once
	mu     sync.Mutex
	sent   []sentPkt
}

func newFakeConn() *fakeConn {
	return &fakeConn{start: time.Now(), in: make(chan fakePkt), closed: make(chan struct{})}
}

func (c *fakeConn) read(b []byte) (int, packetInfo, error) {
	select {
	case p := <-c.in:
		return copy(b, p.b), p.info, nil
	case <-c.closed:
		return 0, packetInfo{}, net.ErrClosed
	}
}

func (c *fakeConn) write(b []byte, src, dst netip.Addr) error {
	a, err := Parse(b, src, dst)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, sentPkt{at: time.Since(c.start), adv: a, src: src, dst: dst, b: bytes.Clone(b)})
	return nil
}

func (c *fakeConn) close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *fakeConn) takeSent() []sentPkt {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sent
	c.sent = nil
	return s
}

type fakeAnn struct {
	start  time.Time
	mu     sync.Mutex
	at     []time.Duration
	sent   [][]netip.Addr // the addresses of each round
	closed bool
}

func (a *fakeAnn) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
}

func (a *fakeAnn) announce(addrs []netip.Addr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.at = append(a.at, time.Since(a.start))
	a.sent = append(a.sent, slices.Clone(addrs))
	return nil
}

func (a *fakeAnn) take() []time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.at
	a.at = nil
	return s
}

type hookLog struct {
	start time.Time
	mu    sync.Mutex
	calls []string
}

func (h *hookLog) hooks() Hooks {
	rec := func(what string) func(context.Context) error {
		return func(context.Context) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.calls = append(h.calls, what+"@"+time.Since(h.start).String())
			return nil
		}
	}
	return Hooks{OnMaster: rec("master"), OnBackup: rec("backup")}
}

func (h *hookLog) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.calls
	h.calls = nil
	return s
}

var (
	peer   = netip.MustParseAddr("192.0.2.1")
	me     = netip.MustParseAddr("192.0.2.2")
	testVI = netip.MustParseAddr("192.0.2.100")
)

func advertFrom(t *testing.T, from netip.Addr, vrid, prio uint8) []byte {
	t.Helper()
	b, err := Advert{VRID: vrid, Priority: prio, MaxAdvertInterval: 100, Addrs: []netip.Addr{testVI}}.Marshal(from, GroupV4)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func goodInfo() packetInfo {
	return packetInfo{src: peer, dst: GroupV4, ttl: 255, ifIndex: 2}
}

// TestRunnerTimeline drives the whole runner (reader, loop, timers,
// gratuitous rounds, hooks) against a fake socket in fake time.
func TestRunnerTimeline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn := newFakeConn()
		ann := &fakeAnn{start: conn.start}
		hl := &hookLog{start: conn.start}
		r, err := NewRunner(Config{
			Interface: "fake0",
			Failover: config.Failover{
				VirtualRouterID: 51, Priority: 100, AdvertInterval: time.Second, Preempt: true,
			},
			VIPs: []netip.Addr{testVI},
		}, hl.hooks())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- r.serve(ctx, env{
				conn: conn, ann: ann, ifIndex: 2, local: me,
				dsts: []netip.Addr{GroupV4}, multicast: true, addrs: []netip.Addr{testVI},
			})
		}()
		deliver := func(b []byte, info packetInfo) {
			conn.in <- fakePkt{b: b, info: info}
			synctest.Wait()
		}
		synctest.Wait()
		if diff := cmp.Diff([]string{"backup@0s"}, hl.take()); diff != "" {
			t.Fatalf("startup hooks (-want +got):\n%s", diff)
		}

		// A master at priority 200 advertises every second for 5 s; we
		// stay backup. Packets that fail the link checks are counted.
		for range 5 {
			time.Sleep(time.Second)
			deliver(advertFrom(t, peer, 51, 200), goodInfo())
		}
		bad := goodInfo()
		bad.ttl = 254
		deliver(advertFrom(t, peer, 51, 200), bad)
		bad = goodInfo()
		bad.ifIndex = 3
		deliver(advertFrom(t, peer, 51, 200), bad)
		deliver(advertFrom(t, peer, 52, 200), goodInfo())
		corrupt := advertFrom(t, peer, 51, 200)
		corrupt[7] ^= 0xff
		deliver(corrupt, goodInfo())
		if got, want := r.Status().Drops, (Drops{TTL: 1, Interface: 1, VRID: 1, Malformed: 1}); got != want {
			t.Errorf("drops = %+v, want %+v", got, want)
		}
		if st := r.Status(); st.State != Backup || st.Master != peer {
			t.Fatalf("status %v master %v, want backup following %v", st.State, st.Master, peer)
		}
		if s := conn.takeSent(); len(s) != 0 {
			t.Fatalf("backup sent adverts: %+v", s)
		}

		// The master falls silent at 5 s: we take over at 5 s + 3.609375 s.
		time.Sleep(10 * time.Second)
		takeover := 5*time.Second + down100
		if diff := cmp.Diff([]string{"master@" + takeover.String()}, hl.take()); diff != "" {
			t.Errorf("takeover (-want +got):\n%s", diff)
		}
		sent := conn.takeSent()
		// Sent from 8.609375 s to 15 s: 7 adverts, one per second, and
		// one more after the takeover's gratuitous ARP (toMaster).
		if len(sent) != 8 {
			t.Fatalf("%d adverts sent, want 8", len(sent))
		}
		for i, s := range sent {
			want := takeover + time.Duration(max(i-1, 0))*time.Second
			if s.at != want {
				t.Errorf("advert %d at %v, want %v", i, s.at, want)
			}
			if s.adv.Priority != 100 || s.adv.VRID != 51 || s.src != me || s.dst != GroupV4 || s.adv.MaxAdvertInterval != 100 {
				t.Fatalf("bad advert %+v", s)
			}
		}
		wantAnn := []time.Duration{}
		for range 5 {
			wantAnn = append(wantAnn, takeover)
		}
		for range 5 {
			wantAnn = append(wantAnn, takeover+2*time.Second)
		}
		if diff := cmp.Diff(wantAnn, ann.take()); diff != "" {
			t.Errorf("gratuitous rounds (-want +got):\n%s", diff)
		}

		// A lower-priority master appears (split brain) more than half an
		// interval after our last advert: we answer at once and re-announce
		// with one gratuitous round.
		time.Sleep(200 * time.Millisecond)
		now := time.Since(conn.start)
		deliver(advertFrom(t, peer, 51, 50), goodInfo())
		if s := conn.takeSent(); len(s) != 1 || s[0].at != now {
			t.Errorf("split brain: sent %+v, want one advert at %v", s, now)
		}
		if a := ann.take(); len(a) != 1 {
			t.Errorf("split brain: %d gratuitous rounds, want 1", len(a))
		}

		// A higher-priority master: we step down.
		deliver(advertFrom(t, peer, 51, 150), goodInfo())
		if h := hl.take(); len(h) != 1 || !strings.HasPrefix(h[0], "backup@") {
			t.Errorf("yield: hooks %v, want one OnBackup", h)
		}
		// It leaves with priority 0: we take over after skew only.
		now = time.Since(conn.start)
		deliver(advertFrom(t, peer, 51, 0), goodInfo())
		time.Sleep(time.Second)
		if diff := cmp.Diff([]string{"master@" + (now + skew100).String()}, hl.take()); diff != "" {
			t.Errorf("priority-0 takeover (-want +got):\n%s", diff)
		}
		conn.takeSent()

		// Shutdown while master: priority-0 advert, VIPs released.
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("serve: %v", err)
		}
		if !ann.closed {
			t.Error("serve returned without closing the announcer's sockets")
		}
		sent = conn.takeSent()
		if len(sent) != 1 || sent[0].adv.Priority != 0 {
			t.Errorf("shutdown sent %+v, want one priority-0 advert", sent)
		}
		if h := hl.take(); len(h) != 1 || !strings.HasPrefix(h[0], "backup@") {
			t.Errorf("shutdown hooks %v, want OnBackup", h)
		}
		var path []State
		for _, tr := range r.Status().Transitions {
			path = append(path, tr.To)
		}
		if diff := cmp.Diff([]State{Backup, Master, Backup, Master, Init}, path); diff != "" {
			t.Errorf("transitions (-want +got):\n%s", diff)
		}
	})
}

// TestRunnerFaultAndPriority: SetFault and SetPriority reach the machine.
func TestRunnerFaultAndPriority(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn := newFakeConn()
		hl := &hookLog{start: conn.start}
		r, err := NewRunner(Config{
			Interface: "fake0",
			Failover:  config.Failover{VirtualRouterID: 51, Priority: 100, AdvertInterval: time.Second, Preempt: true},
			VIPs:      []netip.Addr{testVI},
		}, hl.hooks())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.serve(ctx, env{conn: conn, ann: &fakeAnn{start: conn.start}, ifIndex: 2, local: me,
			dsts: []netip.Addr{GroupV4}, multicast: true, addrs: []netip.Addr{testVI}})
		time.Sleep(5 * time.Second)
		if r.Status().State != Master {
			t.Fatalf("state %v, want master", r.Status().State)
		}
		conn.takeSent()
		if err := r.SetPriority(ctx, 42); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if s := conn.takeSent(); len(s) != 1 || s[0].adv.Priority != 42 {
			t.Errorf("after SetPriority sent %+v, want one advert at 42", s)
		}
		if err := r.SetFault(ctx, true, "no healthy backend"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		st := r.Status()
		if st.State != Fault || st.Transitions[len(st.Transitions)-1].Reason != "no healthy backend" {
			t.Errorf("after fault: %+v", st)
		}
		if s := conn.takeSent(); len(s) != 1 || s[0].adv.Priority != 0 {
			t.Errorf("fault sent %+v, want a priority-0 advert", s)
		}
		if err := r.SetPriority(ctx, 0); err == nil {
			t.Error("SetPriority(0) accepted")
		}
	})
}

// TestRunnerLinkFlap: a master whose link goes down and comes back keeps
// its state, and on the way back advertises at once, calls OnMaster again
// (the addresses IPv6 lost with the link) and sends the gratuitous rounds
// of a takeover, the second burst GratuitousDelay later.
func TestRunnerLinkFlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn := newFakeConn()
		ann := &fakeAnn{start: conn.start}
		hl := &hookLog{start: conn.start}
		r, err := NewRunner(Config{
			Interface: "fake0",
			Failover:  config.Failover{VirtualRouterID: 51, Priority: 100, AdvertInterval: time.Second, Preempt: true},
			VIPs:      []netip.Addr{testVI},
		}, hl.hooks())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.serve(ctx, env{conn: conn, ann: ann, ifIndex: 2, local: me,
			dsts: []netip.Addr{GroupV4}, multicast: true, addrs: []netip.Addr{testVI}})
		time.Sleep(10 * time.Second)
		if r.Status().State != Master {
			t.Fatalf("state %v, want master", r.Status().State)
		}
		hl.take()
		ann.take()
		if err := r.SetLink(ctx, "fake0", false); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if h, a := hl.take(), ann.take(); len(h) != 0 || len(a) != 0 {
			t.Errorf("link down: hooks %v, gratuitous rounds %v, want none", h, a)
		}
		conn.takeSent()
		up := time.Since(conn.start)
		if err := r.SetLink(ctx, "fake0", true); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if s := conn.takeSent(); len(s) != 1 || s[0].at != up || s[0].adv.Priority != 100 {
			t.Errorf("link up: sent %+v, want one advert at %v", s, up)
		}
		if diff := cmp.Diff([]string{"master@" + up.String()}, hl.take()); diff != "" {
			t.Errorf("link up: hooks (-want +got):\n%s", diff)
		}
		time.Sleep(3 * time.Second)
		var want []time.Duration
		for range 5 {
			want = append(want, up)
		}
		for range 5 {
			want = append(want, up+2*time.Second)
		}
		if diff := cmp.Diff(want, ann.take()); diff != "" {
			t.Errorf("link up: gratuitous rounds (-want +got):\n%s", diff)
		}
		if st := r.Status(); st.State != Master || len(st.Transitions) != 2 {
			t.Errorf("after the flap: %+v, want master with no new transition", st)
		}
	})
}

func TestNotifierOrder(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	prog := filepath.Join(dir, "notify")
	// The argument arrives as argv[1]; no shell parses our side.
	script := "#!/bin/sh\necho \"$1\" >> " + out + "\n"
	if err := os.WriteFile(prog, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	n := newNotifier(prog, 5*time.Second, slogDiscard())
	for _, s := range []State{Backup, Master, Backup, Fault} {
		n.enqueue(s)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // run drains what is queued, then returns
	n.run(ctx)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "backup\nmaster\nbackup\nfault\n"; got != want {
		t.Errorf("notify calls %q, want %q", got, want)
	}
}

// TestNotifierLeftChild (issue 18.5): a notify program that leaves
// `sleep 12 &` holding its output delays neither the next notification nor
// the notifier's end (shutdown), and its environment is PATH alone
// (issue 18.10).
func TestNotifierLeftChild(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	pids := filepath.Join(dir, "pids")
	env := filepath.Join(dir, "env")
	prog := filepath.Join(dir, "notify")
	script := "#!/bin/sh\necho \"$1\" >> " + out + "\nenv > " + env + "\nsleep 12 &\necho $! >> " + pids + "\n"
	if err := os.WriteFile(prog, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOLVS_TEST_SECRET", "hunter2")
	const timeout = 5 * time.Second
	n := newNotifier(prog, timeout, slogDiscard())
	n.enqueue(Backup)
	n.enqueue(Master)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	start := time.Now()
	n.run(ctx)
	took := time.Since(start)
	t.Cleanup(func() {
		b, _ := os.ReadFile(pids)
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	// Waiting on the child's pipe took 12 s a notification; even one
	// timeout is too long for two notifications.
	if took >= timeout {
		t.Errorf("two notifications took %v, want well under one %v timeout", took, timeout)
	}
	if b, _ := os.ReadFile(out); string(b) != "backup\nmaster\n" {
		t.Errorf("notify calls %q", b)
	}
	b, err := os.ReadFile(env)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		switch {
		case kv == "PATH=/usr/sbin:/usr/bin:/sbin:/bin":
		case strings.HasPrefix(kv, "PWD="), strings.HasPrefix(kv, "SHLVL="), strings.HasPrefix(kv, "_="):
			// set by the shell itself
		default:
			t.Errorf("notify program sees %q", kv)
		}
	}
}

// TestRunnerShutdownLingeringNotify (issue 18.5): a runner whose notify
// program leaves `sleep 12 &` behind stops at once on shutdown, in real
// time with real processes, instead of waiting on the child's pipe.
func TestRunnerShutdownLingeringNotify(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	pids := filepath.Join(dir, "pids")
	prog := filepath.Join(dir, "notify")
	script := "#!/bin/sh\nsleep 12 &\necho $! >> " + pids + "\necho \"$1\" >> " + out + "\n"
	if err := os.WriteFile(prog, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b, _ := os.ReadFile(pids)
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	const notifyTimeout = 10 * time.Second
	conn := newFakeConn()
	hl := &hookLog{start: conn.start}
	r, err := NewRunner(Config{
		Interface: "fake0",
		Failover: config.Failover{
			VirtualRouterID: 51, Priority: 100, AdvertInterval: time.Second, Notify: prog,
		},
		VIPs:          []netip.Addr{testVI},
		NotifyTimeout: notifyTimeout,
	}, hl.hooks())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- r.serve(ctx, env{
			conn: conn, ann: &fakeAnn{start: conn.start}, ifIndex: 2, local: me,
			dsts: []netip.Addr{GroupV4}, multicast: true, addrs: []netip.Addr{testVI},
		})
	}()
	// The startup notification (backup) has run once its line is written.
	deadline := time.Now().Add(notifyTimeout)
	for b, _ := os.ReadFile(out); !strings.Contains(string(b), "backup"); b, _ = os.ReadFile(out) {
		if time.Now().After(deadline) {
			t.Fatal("no startup notification")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(stop); took >= notifyTimeout {
		t.Errorf("shutdown took %v, want well under the %v notify timeout", took, notifyTimeout)
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }
