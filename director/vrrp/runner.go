package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/golvs/golvs/config"
)

// ErrNoAddress means the interface has no usable source address for adverts.
var ErrNoAddress = errors.New("vrrp: interface has no usable source address")

// Hooks are the director's side of a transition. Both must be idempotent:
// OnBackup is also called at startup.
type Hooks struct {
	OnMaster func(ctx context.Context) error // add the VIPs
	OnBackup func(ctx context.Context) error // remove the VIPs
}

// Config configures a Runner.
type Config struct {
	Interface string
	Failover  config.Failover
	// VIPs are all the addresses the director holds while master. Adverts
	// carry those of the advert family: IPv4 when there is any IPv4 VIP,
	// else IPv6. Gratuitous ARP / NA announce all of them.
	VIPs []netip.Addr
	// Extra are addresses besides the VIPs that follow the master
	// ([[failover.address]], e.g. the real servers' gateway on a NAT
	// pair's inner segment), each on its own interface: announced with
	// the VIPs on theirs, never carried in adverts.
	Extra []ExtraAddress
	// FaultDecrement: see MachineConfig.
	FaultDecrement uint8
	// PreemptDelay: see MachineConfig.
	PreemptDelay time.Duration
	// MaxMasterInterval bounds the advert interval learned from a master;
	// 0 = four times our own. See MachineConfig.
	MaxMasterInterval time.Duration
	// GratuitousCount rounds are sent on becoming master and again after
	// GratuitousDelay. Defaults 5 and 2s.
	GratuitousCount int
	GratuitousDelay time.Duration
	NotifyTimeout   time.Duration // default 10s
	HistoryLen      int           // transitions kept for Status; default DefaultHistoryLen
	// Beat, when set, is called by the state machine's loop at least
	// every BeatEvery: a watchdog's sign that the loop is not stuck.
	Beat      func()
	BeatEvery time.Duration
	Logger    *slog.Logger
}

// ExtraAddress is an address to announce on an interface while master.
type ExtraAddress struct {
	Interface string
	Addr      netip.Addr
}

// Transition is one entry of the state history.
type Transition struct {
	Time     time.Time
	From, To State
	Reason   string
}

// Drops counts adverts that were received and discarded, by cause.
type Drops struct {
	TTL, Interface, Destination, Malformed, VRID, Unsigned, BadMAC, Replay uint64
	// Stale: signed adverts of an epoch never proven live, heard after the
	// trust window (see Auth): replays of a capture, or a peer whose
	// answers do not reach us.
	Stale uint64
}

// Status is a snapshot of a Runner.
type Status struct {
	State       State
	Master      netip.Addr
	Priority    uint8
	Local       netip.Addr
	Transitions []Transition // oldest first
	Drops       Drops
}

// Runner speaks VRRPv3 on one interface and drives Hooks.
type Runner struct {
	cfg   Config
	hooks Hooks
	log   *slog.Logger
	ctl   chan Event

	mu     sync.Mutex
	status Status
}

// NewRunner validates cfg; it opens nothing.
func NewRunner(cfg Config, hooks Hooks) (*Runner, error) {
	f := cfg.Failover
	if f.Priority < 1 || f.Priority > 254 {
		return nil, fmt.Errorf("vrrp: priority %d out of range 1..254", f.Priority)
	}
	if f.VirtualRouterID == 0 {
		return nil, errors.New("vrrp: virtual router id 0 is invalid")
	}
	if len(cfg.VIPs) == 0 {
		return nil, ErrNoAddrs
	}
	if cfg.Interface == "" {
		return nil, errors.New("vrrp: no interface")
	}
	if f.AdvertInterval == 0 {
		cfg.Failover.AdvertInterval = time.Second
	}
	if f.AdvertInterval > MaxInterval {
		return nil, fmt.Errorf("%w: %v", ErrInterval, f.AdvertInterval)
	}
	if cfg.GratuitousCount == 0 {
		cfg.GratuitousCount = 5
	}
	if cfg.GratuitousDelay == 0 {
		cfg.GratuitousDelay = 2 * time.Second
	}
	if cfg.NotifyTimeout == 0 {
		cfg.NotifyTimeout = 10 * time.Second
	}
	if cfg.HistoryLen <= 0 {
		cfg.HistoryLen = DefaultHistoryLen
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if hooks.OnMaster == nil || hooks.OnBackup == nil {
		return nil, errors.New("vrrp: OnMaster and OnBackup hooks are required")
	}
	return &Runner{
		cfg:   cfg,
		hooks: hooks,
		log:   cfg.Logger.With("vrid", f.VirtualRouterID, "interface", cfg.Interface),
		ctl:   make(chan Event, 8),
	}, nil
}

// SetFault reports the tracked condition (bad = unfit to be master).
func (r *Runner) SetFault(ctx context.Context, bad bool, reason string) error {
	return r.send(ctx, FaultChanged{Bad: bad, Reason: reason})
}

// SetPriority changes the priority at run time.
func (r *Runner) SetPriority(ctx context.Context, p uint8) error {
	if p < 1 || p > 254 {
		return fmt.Errorf("vrrp: priority %d out of range 1..254", p)
	}
	return r.send(ctx, PriorityChanged{Priority: p})
}

// SetLink reports that iface (ours, or one with Extra addresses) went
// down or came back up.
func (r *Runner) SetLink(ctx context.Context, iface string, up bool) error {
	return r.send(ctx, LinkChanged{Up: up, Adverts: iface == r.cfg.Interface})
}

func (r *Runner) send(ctx context.Context, ev Event) error {
	select {
	case r.ctl <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Status returns a snapshot.
func (r *Runner) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	s.Transitions = slices.Clone(s.Transitions)
	return s
}

// advertFamily picks the VIPs carried in adverts.
func (r *Runner) advertAddrs() (addrs []netip.Addr, v6 bool) {
	for _, a := range r.cfg.VIPs {
		if a.Is4() {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) > 0 {
		return addrs, false
	}
	return r.cfg.VIPs, true
}

// sourceAddrs returns the interface's primary IPv4 address (the first one
// that is not a VIP) and its IPv6 link-local address, which RFC 9568
// requires as the source of IPv6 adverts.
func sourceAddrs(ifi *net.Interface, vips []netip.Addr) (v4, ll netip.Addr, err error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return v4, ll, fmt.Errorf("vrrp: addresses of %s: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		pn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, _ := netip.AddrFromSlice(pn.IP)
		ip = ip.Unmap()
		switch {
		case slices.Contains(vips, ip):
		case ip.Is4() && !v4.IsValid():
			v4 = ip
		case ip.Is6() && ip.IsLinkLocalUnicast() && !ll.IsValid():
			ll = ip
		}
	}
	return v4, ll, nil
}

// received is what the reader hands the protocol loop: an advert for the
// machine, a challenge to answer, or only a request to challenge (ask with
// a stale advert, which the machine must not see).
type received struct {
	adv     Advert
	from    netip.Addr
	verdict Verdict // zero without auth
	stale   bool
}

// Run speaks VRRP until ctx ends, then sends a priority-0 advert if master,
// calls OnBackup and returns.
func (r *Runner) Run(ctx context.Context) error {
	f := r.cfg.Failover
	ifi, err := net.InterfaceByName(r.cfg.Interface)
	if err != nil {
		return fmt.Errorf("vrrp: %w", err)
	}
	addrs, v6 := r.advertAddrs()
	notSource := slices.Clone(r.cfg.VIPs)
	for _, x := range r.cfg.Extra {
		notSource = append(notSource, x.Addr)
	}
	v4src, ll, err := sourceAddrs(ifi, notSource)
	if err != nil {
		return err
	}
	local := v4src
	if v6 {
		local = ll
	}
	if !local.IsValid() {
		return fmt.Errorf("%w: %s (IPv6=%v)", ErrNoAddress, ifi.Name, v6)
	}
	// One topology file serves both directors, so peers may list this
	// host's own address: never advertise to ourselves.
	own := map[netip.Addr]bool{}
	if ias, err := ifi.Addrs(); err == nil {
		for _, ia := range ias {
			if pfx, err := netip.ParsePrefix(ia.String()); err == nil {
				own[pfx.Addr().Unmap()] = true
			}
		}
	}
	var dsts []netip.Addr
	for _, p := range f.Peers {
		if p.Is6() == v6 && !own[p] {
			dsts = append(dsts, p)
		}
	}
	multicast := len(dsts) == 0
	if multicast {
		dsts = []netip.Addr{GroupV4}
		if v6 {
			dsts = []netip.Addr{GroupV6}
		}
	}
	var auth *Auth
	if f.AuthKeyFile != "" {
		key, err := LoadKey(f.AuthKeyFile)
		if err != nil {
			return err
		}
		auth = NewAuth(key)
	}
	extra, err := r.extraAnnouncers(ifi.Name)
	if err != nil {
		return err
	}
	conn, err := openAdvertConn(ifi, v6, multicast)
	if err != nil {
		return err
	}
	return r.serve(ctx, env{
		conn: conn, ann: &announcer{ifi: ifi, ll: ll}, ifIndex: ifi.Index,
		local: local, dsts: dsts, multicast: multicast, addrs: addrs, auth: auth,
		extra: extra,
	})
}

// extraAnnouncers opens (lazily: the sockets come with the first round)
// an announcer for each interface other than ours that has Extra
// addresses; those on our own interface go with the VIPs.
func (r *Runner) extraAnnouncers(own string) (map[string]gratuitous, error) {
	out := map[string]gratuitous{}
	for _, x := range r.cfg.Extra {
		if x.Interface == own || out[x.Interface] != nil {
			continue
		}
		ifi, err := net.InterfaceByName(x.Interface)
		if err != nil {
			return nil, fmt.Errorf("vrrp: failover address %s: %w", x.Addr, err)
		}
		_, ll, err := sourceAddrs(ifi, nil)
		if err != nil {
			return nil, err
		}
		out[x.Interface] = &announcer{ifi: ifi, ll: ll}
	}
	return out, nil
}

// env is everything serve needs from the host; tests pass fakes.
type env struct {
	conn      advertConn
	ann       gratuitous
	ifIndex   int
	local     netip.Addr
	dsts      []netip.Addr // multicast group, or the unicast peers
	multicast bool
	addrs     []netip.Addr // carried in adverts
	auth      *Auth
	// extra announces the Extra addresses on other interfaces, by name.
	extra map[string]gratuitous
}

// gratuitous announces VIPs on the link.
type gratuitous interface {
	announce(vips []netip.Addr) error
	close()
}

// serve runs the protocol on an open socket and closes it on return.
func (r *Runner) serve(ctx context.Context, e env) error {
	f := r.cfg.Failover
	log := r.log.With("local", e.local)
	if e.auth != nil {
		// Unproven adverts may hold us backup for one master down
		// interval of our own; we challenge once per advert interval.
		e.auth.SetTrustWindow(3*f.AdvertInterval+time.Duration(256-int64(f.Priority))*f.AdvertInterval/256, f.AdvertInterval)
	}
	r.mu.Lock()
	r.status.Local = e.local
	r.status.Priority = f.Priority
	r.mu.Unlock()

	// The reader filters and parses; only valid adverts for our VRID reach
	// the protocol loop. It ends when the socket is closed.
	rx := make(chan received, 16)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { r.readLoop(e, rx, done) })
	nctx, stopNotify := context.WithCancel(context.WithoutCancel(ctx))
	n := newNotifier(f.Notify, r.cfg.NotifyTimeout, log)
	wg.Go(func() { n.run(nctx) })
	defer func() {
		close(done)
		e.conn.close()
		e.ann.close()
		for _, a := range e.extra {
			a.close()
		}
		stopNotify()
		wg.Wait()
	}()

	l := &loop{
		r: r, log: log, e: e, notify: n, rx: rx,
		m: NewMachine(MachineConfig{
			Priority: f.Priority, AdvertInterval: f.AdvertInterval, Preempt: f.Preempt,
			Local: e.local, FaultDecrement: r.cfg.FaultDecrement,
			MaxMasterInterval: r.cfg.MaxMasterInterval, PreemptDelay: r.cfg.PreemptDelay,
		}),
		timer: time.NewTimer(time.Hour),
		garp:  time.NewTimer(time.Hour),
		reann: time.NewTimer(time.Hour),
	}
	l.timer.Stop()
	l.garp.Stop()
	l.reann.Stop()
	log.Info("vrrp starting", "priority", f.Priority, "advert_interval", f.AdvertInterval, "multicast", e.multicast, "auth", e.auth != nil,
		"preempt_delay", r.cfg.PreemptDelay)
	l.step(ctx, Startup{})
	var beat <-chan time.Time
	if r.cfg.Beat != nil {
		t := time.NewTicker(max(r.cfg.BeatEvery, time.Millisecond))
		defer t.Stop()
		beat = t.C
	}
	for {
		select {
		case <-beat:
			r.cfg.Beat()
		case <-ctx.Done():
			// Give the shutdown advert and OnBackup a moment of their own.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			l.step(sctx, Shutdown{})
			cancel()
			return nil
		case p := <-rx:
			l.received(ctx, p)
		case <-l.timer.C:
			if l.timerIsAdvert {
				l.step(ctx, AdvertTimerFired{})
			} else if l.drainAdverts(ctx) {
				late := time.Since(l.downDeadline)
				if late > 20*time.Millisecond {
					log.Info("vrrp: master down timer fired late: we did not run", "late", late)
				}
				l.step(ctx, MasterDownTimerFired{Late: late})
			}
		case <-l.garp.C:
			if l.m.State() == Master {
				l.announce(0)
			}
		case <-l.reann.C:
			if l.m.State() == Master {
				l.announce(l.reannRounds)
			}
		case ev := <-r.ctl:
			l.step(ctx, ev)
		}
	}
}

func (r *Runner) readLoop(e env, out chan<- received, done <-chan struct{}) {
	vrid := r.cfg.Failover.VirtualRouterID
	buf := make([]byte, 1500)
	drop := func(c *uint64) {
		r.mu.Lock()
		*c++
		r.mu.Unlock()
	}
	for {
		n, info, err := e.conn.read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.log.Warn("vrrp read", "err", err)
			// Do not spin on an error that persists.
			select {
			case <-time.After(100 * time.Millisecond):
			case <-done:
				return
			}
			continue
		}
		b := buf[:n]
		switch {
		case info.src == e.local:
			continue // our own advert looped back
		case info.ifIndex != e.ifIndex:
			drop(&r.status.Drops.Interface)
			continue
		case info.ttl != TTL:
			// RFC 9568 5.1.1.3: a router off-link may have forwarded it.
			drop(&r.status.Drops.TTL)
			continue
		case e.multicast && info.dst != e.dsts[0], !e.multicast && info.dst != e.local:
			drop(&r.status.Drops.Destination)
			continue
		case !e.multicast && !slices.Contains(e.dsts, info.src):
			drop(&r.status.Drops.Destination)
			continue
		}
		var adv Advert
		var v Verdict
		if e.auth != nil {
			if len(b) > 1 && b[1] != vrid {
				// Other virtual routers may share the key and the
				// segment: their epochs are none of our business.
				drop(&r.status.Drops.VRID)
				continue
			}
			adv, v, err = e.auth.Open(b, info.src, info.dst, time.Now())
		} else {
			adv, err = Parse(b, info.src, info.dst)
			v.Fresh = true
		}
		stale := errors.Is(err, ErrStale)
		if stale && v.Ask {
			// Keep asking: the answer that proves a live master may
			// have been lost. The loop sees only the request.
			adv, err = Advert{VRID: vrid}, nil
		}
		switch {
		case errors.Is(err, ErrUnsigned):
			drop(&r.status.Drops.Unsigned)
		case errors.Is(err, ErrBadMAC):
			drop(&r.status.Drops.BadMAC)
		case errors.Is(err, ErrReplay):
			drop(&r.status.Drops.Replay)
		case stale && err != nil:
			drop(&r.status.Drops.Stale)
		case err != nil:
			drop(&r.status.Drops.Malformed)
			r.log.Debug("vrrp: dropped advert", "from", info.src, "err", err)
		case adv.VRID != vrid:
			drop(&r.status.Drops.VRID)
		default:
			if stale {
				drop(&r.status.Drops.Stale)
			}
			select {
			case out <- received{adv: adv, from: info.src, verdict: v, stale: stale}:
			case <-done:
				return
			}
		}
	}
}

// loop is the state of the protocol goroutine.
type loop struct {
	r      *Runner
	log    *slog.Logger
	e      env
	notify *notifier
	m      *Machine

	rx            <-chan received
	timer         *time.Timer
	timerIsAdvert bool
	armed         uint64      // counts timer (re)arms and stops
	downDeadline  time.Time   // when the master down timer is due
	garp          *time.Timer // the second announcement after becoming master
	reann         *time.Timer // a deferred SendGratuitous
	reannRounds   int
}

// drainAdverts steps every advert already received before the master down
// timer's expiry is acted on, and reports whether the expiry still stands.
// select picks at random among ready cases, and a hook (OnBackup at
// startup, under a busy director) can hold the loop past the expiry while
// the reader queues a live master's adverts: without this, a joining backup
// became master for a moment next to an advertising master. RFC 9568 resets
// the timer on each advert heard before it runs out; so do we.
func (l *loop) drainAdverts(ctx context.Context) bool {
	armed := l.armed
	for {
		select {
		case p := <-l.rx:
			l.received(ctx, p)
		default:
			return l.armed == armed
		}
	}
}

func (l *loop) received(ctx context.Context, p received) {
	if p.verdict.Ask {
		l.sendChallenge()
	}
	switch {
	case p.stale:
		return
	case p.verdict.Challenge:
		// Only a master's adverts count as an answer; answering is
		// rate-limited per challenger so replayed challenges cannot
		// make us flood.
		if l.m.State() == Master && l.e.auth.ShouldAnswer(p.from, p.verdict.Epoch, time.Now(), l.r.cfg.Failover.AdvertInterval/2) {
			l.send(l.m.Priority(), func(adv Advert, dst netip.Addr) ([]byte, error) {
				return l.e.auth.SealAnswer(adv, l.e.local, dst, p.verdict.Epoch)
			})
		}
		return
	}
	l.step(ctx, AdvertReceived{From: p.from, Priority: p.adv.Priority, MaxAdvertInterval: p.adv.MaxAdvertInterval,
		Unverified: !p.verdict.Fresh})
}

// sendChallenge asks the peers to prove their epoch (see Auth).
func (l *loop) sendChallenge() {
	l.send(l.m.Priority(), func(adv Advert, dst netip.Addr) ([]byte, error) {
		return l.e.auth.SealChallenge(adv, l.e.local, dst)
	})
}

func (l *loop) step(ctx context.Context, ev Event) {
	from := l.m.State()
	for _, a := range l.m.Step(ev, time.Now()) {
		l.do(ctx, from, a)
	}
	l.r.mu.Lock()
	l.r.status.State = l.m.State()
	l.r.status.Master = l.m.MasterAddr()
	l.r.status.Priority = l.m.Priority()
	l.r.mu.Unlock()
}

func (l *loop) do(ctx context.Context, from State, a Action) {
	switch a := a.(type) {
	case SendAdvert:
		l.sendAdvert(a.Priority)
	case StartAdvertTimer:
		l.timer.Reset(a.D)
		l.timerIsAdvert = true
		l.armed++
	case StartMasterDownTimer:
		l.timer.Reset(a.D)
		l.downDeadline = time.Now().Add(a.D)
		l.timerIsAdvert = false
		l.armed++
	case StopTimers:
		l.timer.Stop()
		l.armed++
		l.garp.Stop()
	case BecomeMaster, Reassert:
		if _, again := a.(Reassert); again {
			l.log.Info("vrrp: link back up; reasserting the addresses", "state", l.m.State())
		}
		if err := l.r.hooks.OnMaster(ctx); err != nil {
			l.log.Error("vrrp: OnMaster hook failed", "err", err)
		}
		l.announce(0)
		l.garp.Reset(l.r.cfg.GratuitousDelay)
	case BecomeBackup:
		l.garp.Stop()
		if err := l.r.hooks.OnBackup(ctx); err != nil {
			l.log.Error("vrrp: OnBackup hook failed", "err", err)
		}
	case SendGratuitous:
		if a.After > 0 {
			// Not stopped on leaving Master: the machine counts on it.
			l.reann.Reset(a.After)
			l.reannRounds = a.Rounds
			return
		}
		l.announce(a.Rounds)
	case NotifyState:
		l.log.Info("vrrp state change", "from", from, "to", a.State, "reason", a.Reason)
		l.r.mu.Lock()
		l.r.status.Transitions = appendHistory(l.r.status.Transitions,
			Transition{Time: time.Now(), From: from, To: a.State, Reason: a.Reason}, l.r.cfg.HistoryLen)
		l.r.mu.Unlock()
		if a.State != Init {
			l.notify.enqueue(a.State)
		}
	}
}

func (l *loop) sendAdvert(prio uint8) {
	l.send(prio, func(adv Advert, dst netip.Addr) ([]byte, error) {
		if l.e.auth != nil {
			return l.e.auth.Seal(adv, l.e.local, dst)
		}
		return adv.Marshal(l.e.local, dst)
	})
}

// send marshals our advert at prio with enc for every destination and sends it.
func (l *loop) send(prio uint8, enc func(Advert, netip.Addr) ([]byte, error)) {
	adv := Advert{
		VRID: l.r.cfg.Failover.VirtualRouterID, Priority: prio,
		MaxAdvertInterval: Centiseconds(l.r.cfg.Failover.AdvertInterval), Addrs: l.e.addrs,
	}
	for _, dst := range l.e.dsts {
		b, err := enc(adv, dst)
		if err == nil {
			err = l.e.conn.write(b, l.e.local, dst)
		}
		if err != nil {
			l.log.Warn("vrrp: send advert", "dst", dst, "err", err)
		}
	}
}

// announce sends rounds gratuitous rounds, or the configured count if 0.
func (l *loop) announce(rounds int) {
	if rounds <= 0 {
		rounds = l.r.cfg.GratuitousCount
	}
	own := slices.Clone(l.r.cfg.VIPs)
	other := map[string][]netip.Addr{}
	for _, x := range l.r.cfg.Extra {
		if a := l.e.extra[x.Interface]; a != nil {
			other[x.Interface] = append(other[x.Interface], x.Addr)
		} else {
			own = append(own, x.Addr)
		}
	}
	for range rounds {
		if err := l.e.ann.announce(own); err != nil {
			l.log.Warn("vrrp: gratuitous announcement", "err", err)
			return
		}
		// One interface failing does not silence the others.
		for name, addrs := range other {
			if err := l.e.extra[name].announce(addrs); err != nil {
				l.log.Warn("vrrp: gratuitous announcement", "interface", name, "err", err)
			}
		}
	}
}
