//go:build lab

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director"
	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/integration/labnet"
	"golang.org/x/sys/unix"
)

// Issue 13's lab: connection sync between directors. The harness is
// labhost conns (long-lived connections through the VIP) against labhost
// serve --line on the real servers.

const (
	linePort = 7000
	// syncFlushWait bounds how long the kernel's master daemon holds a
	// connection before it is on the wire (IPVS_SYNC_FLUSH_TIME is 2s),
	// with slack for the emulated guest.
	syncFlushWait = 10 * time.Second
)

// kernelIn returns our IPVS client with its netlink socket opened in the
// namespace ns (a socket stays in the namespace it was made in).
func kernelIn(t *testing.T, ns string) *ipvs.Kernel {
	t.Helper()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open(filepath.Join("/var/run/netns", ns))
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	k := ipvs.NewKernel()
	openErr := k.Open()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with this goroutine instead of
		// serving others from the wrong namespace.
		t.Fatalf("back to the test's namespace: %v", err)
	}
	runtime.UnlockOSThread()
	if openErr != nil {
		t.Fatal(openErr)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// ipvsadmDaemons is `ipvsadm --list --daemon` in h, as one line per daemon.
func ipvsadmDaemons(h *labnet.Host) []string {
	out := strings.TrimSpace(mustOut(h.Exec("ipvsadm", "--list", "--daemon")))
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

var ipvsadmDaemonRE = regexp.MustCompile(`^(master|backup) sync daemon \((.*)\)$`)

// agreesWithIpvsadm checks one line of ipvsadm --list --daemon against d:
// state, interface and sync id always, and whichever of maxlen, group,
// port and ttl this ipvsadm prints.
func agreesWithIpvsadm(line string, d ipvs.SyncDaemon) error {
	m := ipvsadmDaemonRE.FindStringSubmatch(line)
	if m == nil {
		return fmt.Errorf("ipvsadm line %q is not a daemon", line)
	}
	fields := map[string]string{"state": m[1]}
	for _, kv := range strings.Split(m[2], ", ") {
		k, v, _ := strings.Cut(kv, "=")
		fields[k] = v
	}
	want := map[string]string{"state": d.State.String(), "mcast": d.Interface, "syncid": fmt.Sprint(d.SyncID),
		"maxlen": fmt.Sprint(d.MaxLen), "group": d.Group.String(), "port": fmt.Sprint(d.Port), "ttl": fmt.Sprint(d.TTL)}
	for _, k := range []string{"state", "mcast", "syncid", "maxlen", "group", "port", "ttl"} {
		got, printed := fields[k]
		if !printed && (k == "state" || k == "mcast" || k == "syncid") {
			return fmt.Errorf("ipvsadm line %q has no %s", line, k)
		}
		if printed && got != want[k] {
			return fmt.Errorf("ipvsadm says %s=%s, our client %s (line %q)", k, got, want[k], line)
		}
	}
	return nil
}

// TestSyncDaemonKernel drives the kernel's sync daemons with our netlink
// client and checks each step against ipvsadm: both daemons at once, the
// kernel's defaults reported, its errnos, and EnsureDaemons restarting a
// daemon that ipvsadm stopped behind its back.
func TestSyncDaemonKernel(t *testing.T) {
	l := labnet.NewLab(t)
	seg := l.Segment("sync")
	h := l.Host("dir", seg, "192.0.2.1/24")
	k := kernelIn(t, h.NS)
	ctx := context.Background()

	if ds, err := k.Daemons(ctx); err != nil || len(ds) != 0 {
		t.Fatalf("fresh namespace: daemons %+v, %v", ds, err)
	}
	master := ipvs.SyncDaemon{State: ipvs.SyncMaster, Interface: "eth0", SyncID: 51}
	backup := ipvs.SyncDaemon{State: ipvs.SyncBackup, Interface: "eth0", SyncID: 51,
		Group: netip.MustParseAddr("239.1.2.3"), Port: 9000, TTL: 3, MaxLen: 4000}
	for _, d := range []ipvs.SyncDaemon{master, backup} {
		if err := k.StartDaemon(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	got, err := k.Daemons(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel fills in its defaults for the master: 224.0.0.81:8848,
	// TTL 1, and 1500 - 28 bytes.
	wantMaster := ipvs.SyncDaemon{State: ipvs.SyncMaster, Interface: "eth0", SyncID: 51, MaxLen: 1472,
		Group: netip.MustParseAddr("224.0.0.81"), Port: 8848, TTL: 1}
	if len(got) != 2 || got[0] != wantMaster || got[1] != backup {
		t.Errorf("Daemons = %+v\nwant %+v and %+v", got, wantMaster, backup)
	}
	witness := ipvsadmDaemons(h)
	t.Logf("ipvsadm --list --daemon:\n%s", strings.Join(witness, "\n"))
	if len(witness) != 2 {
		t.Fatalf("ipvsadm lists %d daemons, want 2", len(witness))
	}
	for i, d := range got {
		if err := agreesWithIpvsadm(witness[i], d); err != nil {
			t.Error(err)
		}
	}

	if err := k.StartDaemon(ctx, master); !errors.Is(err, unix.EEXIST) {
		t.Errorf("second master: %v, want EEXIST", err)
	}
	if err := k.StartDaemon(ctx, ipvs.SyncDaemon{State: ipvs.SyncMaster, Interface: "nosuch0", SyncID: 1}); !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENODEV) {
		t.Errorf("unknown interface: %v", err)
	}
	for _, s := range []ipvs.SyncState{ipvs.SyncMaster, ipvs.SyncBackup} {
		if err := k.StopDaemon(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.StopDaemon(ctx, ipvs.SyncBackup); !errors.Is(err, unix.ESRCH) {
		t.Errorf("stopping a stopped daemon: %v, want ESRCH", err)
	}
	if err := k.StartDaemon(ctx, ipvs.SyncDaemon{State: ipvs.SyncMaster, Interface: "nosuch0", SyncID: 1}); !errors.Is(err, unix.ENODEV) {
		t.Errorf("unknown interface: %v, want ENODEV", err)
	}
	if w := ipvsadmDaemons(h); len(w) != 0 {
		t.Errorf("after the stops ipvsadm still lists %q", w)
	}

	// The reconcile: both from nothing, nothing on the next pass, and a
	// daemon stopped with ipvsadm comes back.
	f := syncFailoverConfig("eth0", 51)
	wantD := director.WantDaemons(f)
	changes, err := director.EnsureDaemons(ctx, k, wantD)
	if err != nil || len(changes) != 2 {
		t.Fatalf("first pass: %q, %v", changes, err)
	}
	if changes, err := director.EnsureDaemons(ctx, k, wantD); err != nil || len(changes) != 0 {
		t.Errorf("second pass: %q, %v; want no change", changes, err)
	}
	h.MustExec("ipvsadm", "--stop-daemon", "backup")
	if w := ipvsadmDaemons(h); len(w) != 1 {
		t.Fatalf("ipvsadm --stop-daemon backup left %q", w)
	}
	changes, err = director.EnsureDaemons(ctx, k, wantD)
	if err != nil || len(changes) != 1 || !strings.HasPrefix(changes[0], "start backup") {
		t.Errorf("after ipvsadm stopped the backup: %q, %v", changes, err)
	}
	w := ipvsadmDaemons(h)
	if len(w) != 2 {
		t.Fatalf("ipvsadm after the repair: %q", w)
	}
	for i, d := range director.WantDaemons(f) {
		d.MaxLen = 1472 // the kernel's choice for an MTU of 1500
		if err := agreesWithIpvsadm(w[i], d); err != nil {
			t.Errorf("after the repair: %v", err)
		}
	}
}

// connsResult is labhost conns' JSON (the fields these tests read).
type connsResult struct {
	Count   int            `json:"count"`
	Kept    int            `json:"kept"`
	Reset   int            `json:"reset"`
	Stalled int            `json:"stalled"`
	Hung    int            `json:"hung"`
	Never   int            `json:"never"`
	GapsMS  []int64        `json:"gaps_ms"`
	Moved   int            `json:"moved"`
	FirstBy map[string]int `json:"first_by"`
	Redials int            `json:"redials"` // connects tried again after a timeout
	Conns   []struct {
		Local        string `json:"local"`
		State        string `json:"state"`
		Error        string `json:"error"`
		LongestGapMS int64  `json:"longest_gap_ms"`
		Pauses       []struct {
			EndAtMS  int64   `json:"end_at_ms"`
			MS       int64   `json:"ms"`
			RTOMS    float64 `json:"rto_ms"`
			SRTTMS   float64 `json:"srtt_ms"`
			RTTVarMS float64 `json:"rttvar_ms"`
		} `json:"pauses"`
	} `json:"conns"`
	// Stalls are when the harness itself woke late (labhost's stall
	// sampler): the guest running nothing of ours.
	Stalls []struct {
		AtMS int64 `json:"at_ms"`
		MS   int64 `json:"ms"`
	} `json:"stalls"`
}

var addrPort = regexp.MustCompile(`[0-9a-f.:\[\]]+:\d+`)

// errors counts the connections' errors by text (addresses left out) and
// state.
func (r connsResult) errors() map[string]int {
	m := map[string]int{}
	for _, c := range r.Conns {
		if c.Error != "" {
			m[c.State+": "+addrPort.ReplaceAllString(c.Error, "A:P")]++
		}
	}
	return m
}

func (r connsResult) String() string {
	gaps := ""
	if g := r.GapsMS; len(g) > 0 {
		gaps = fmt.Sprintf("; longest gap per connection: median %dms, 90th %dms, max %dms", g[len(g)/2], g[len(g)*9/10], g[len(g)-1])
	}
	if r.Redials > 0 {
		gaps += fmt.Sprintf("; %d connects tried again after a timeout", r.Redials)
	}
	return fmt.Sprintf("%d connections: %d kept, %d reset, %d stalled (then answered), %d hung, %d never up, %d moved; first answers %v%s",
		r.Count, r.Kept, r.Reset, r.Stalled, r.Hung, r.Never, r.Moved, r.FirstBy, gaps)
}

// syncLab is a failover lab whose real servers also serve the line
// protocol on linePort.
type syncLab struct {
	*failoverLab
	// every is the harness's exchange interval per connection.
	every time.Duration
	// short lets the harness go on when not every connection came up
	// (the benchmark counts them as never up); up is how many did.
	short bool
	up    int
	// stall is the harness's stall limit; thin makes its connections
	// thin streams (labhost conns --thin).
	stall time.Duration
	thin  bool
	// answerWait is how long after a switch settle waits for every
	// connection's first answer through the new path (0: only past the
	// stall limit, as the benchmark's committed results were taken).
	answerWait time.Duration
}

// syncAdvert is the advert interval of the sync labs that pair with
// keepalived: the interval such pairs run in the field. A takeover then
// takes its master down interval (3.6 s), so their harness's stall limit
// is 3 s on top of it, which is not the connections' doing.
const syncAdvert = time.Second

// fastAdvert is the advert interval of the golvs pair that must show no
// stall (issue 13's test 1): a takeover within its master down interval
// (1.8 s), after which each connection's pause is bounded by 3 s or its
// own retransmission schedule (pauseLimit). An earlier session saw adverts
// this fast missed on an overloaded host; at 200 connections they held
// with the host loaded by a busy loop and two other guests.
const fastAdvert = 500 * time.Millisecond

// noStallLimit is the stall limit, a gap over 3 s between a
// connection's answers: the golvs pair's harness classifies by it, and a
// pause across a switch may take it, or longer only as far as the
// connection's pauseLimit explains. Under load the clients' RTOs grow
// and one retransmission step more carries a kept connection past 3 s
// (seen: 78 of 200, 3.0-4.2 s, after a takeover on time).
const noStallLimit = 3 * time.Second

// syncLabStall is the stall limit of a sync lab at advert: 3 s on top of
// the backup's master down interval.
func syncLabStall(advert time.Duration) time.Duration { return masterDown(advert, 100) + 3*time.Second }

func newSyncLab(t *testing.T) *syncLab { return newSyncLabAt(t, syncAdvert, syncLabStall(syncAdvert)) }

// newSyncLabAt is a sync lab whose directors advertise every advert and
// whose harness counts a gap over stall as a stall. Its connections are
// thin streams at both ends (labhost conns and serve --thin), as an
// interactive application's are; the server's end matters only behind a
// NAT director, where its answers pass the director too.
func newSyncLabAt(t *testing.T, advert, stall time.Duration) *syncLab {
	t.Helper()
	fl := newFailoverLab(t, advert, false)
	for i, h := range fl.rs {
		h.Start("ready", bin(t, "labhost"), "serve", "--name", fl.names[i], "--line", fmt.Sprintf(":%d", linePort), "--thin")
	}
	return &syncLab{failoverLab: fl, every: 100 * time.Millisecond, stall: stall, thin: true, answerWait: answerWait}
}

// keepalivedSync prepares a keepalived director like failoverLab.keepalived,
// with the line service too and, when sync is set, lvs_sync_daemon on eth0
// (sync id = VRID): keepalived runs the master daemon while master and the
// backup daemon otherwise.
func (sl *syncLab) keepalivedSync(h *labnet.Host, prio int, sync bool) *node {
	sl.t.Helper()
	n := sl.keepalived(h, prio)
	if sync {
		conf, err := os.ReadFile(n.conf)
		if err != nil {
			sl.t.Fatal(err)
		}
		withSync := strings.Replace(string(conf), "global_defs {\n",
			fmt.Sprintf("global_defs {\n  lvs_sync_daemon eth0 VI_1 id %d\n", failoverVRID), 1)
		if err := os.WriteFile(n.conf, []byte(withSync), 0o644); err != nil {
			sl.t.Fatal(err)
		}
	}
	v := fmt.Sprintf("%s:%d", vip, linePort)
	h.MustExec("ipvsadm", "-A", "-t", v, "-s", "rr")
	for _, a := range sl.rsAddrs {
		h.MustExec("ipvsadm", "-a", "-t", v, "-r", fmt.Sprintf("%s:%d", a, linePort), "-g", "-w", "1")
	}
	return n
}

// The input queue the guest's one CPU gets for packets handed from one
// device to another (net.core.netdev_max_backlog, 1,000): every veth hop
// of every namespace (client, directors, real servers: four or more per
// exchange) goes through it, and the emulated CPU loses the host for
// seconds at a time on a loaded machine; then the harness's timers fire
// together and the queue overflows, dropping whatever comes, VRRP adverts
// included (seen at 1,000 connections: the backup took over while the
// master lived, and its own gratuitous ARPs failed with ENOBUFS). Real
// directors have a queue per CPU and NIC queue. GOLVS_LAB_BACKLOG sets
// it for the connection benchmark; whether a long queue helps there is
// not settled (bench/README.md), so the tests leave it alone.
func raiseBacklog(t *testing.T) {
	v := os.Getenv("GOLVS_LAB_BACKLOG")
	if v == "" {
		return
	}
	const key = "/proc/sys/net/core/netdev_max_backlog"
	old, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte(v), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(key, old, 0o644) })
}

// softnetDrops is how many packets the guest's input queues have dropped
// so far (/proc/net/softnet_stat, second column, per CPU, in hex).
func softnetDrops(t *testing.T) uint64 {
	b, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			v, _ := strconv.ParseUint(f[1], 16, 64)
			n += v
		}
	}
	return n
}

// startConns opens n harness connections from the client; it returns once
// every one has had its first three answers (each is past its third packet).
func (sl *syncLab) startConns(n int) *labnet.Proc {
	sl.t.Helper()
	start := time.Now()
	args := []string{"conns", "--addr", fmt.Sprintf("%s:%d", vip, linePort),
		"--count", fmt.Sprint(n), "--interval", sl.every.String(), "--stall", sl.stall.String()}
	if sl.thin {
		args = append(args, "--thin")
	}
	p := sl.client.Start("", bin(sl.t, "labhost"), args...)
	// Connects go 16 at a time: a thousand take a while in the guest.
	eventually(sl.t, max(2*time.Minute, time.Duration(n)*200*time.Millisecond), "the harness's connections come up", func() error {
		if done, err := p.Exited(); done {
			sl.t.Fatalf("conns exited: %v\n%s", err, p.Output())
		}
		if !strings.Contains(p.Output(), "ready") {
			return fmt.Errorf("not ready yet: %s", lastLine(p.Output()))
		}
		return nil
	})
	sl.up = n
	if !strings.Contains(p.Output(), fmt.Sprintf("ready %d\n", n)) {
		m := regexp.MustCompile(`(?m)^ready (\d+)$`).FindStringSubmatch(p.Output())
		if sl.short && m != nil {
			sl.up, _ = strconv.Atoi(m[1])
			sl.t.Logf("%d of %d connections came up, going on with them", sl.up, n)
			return p
		}
		r := sl.stopConns(p)
		sl.t.Fatalf("not every connection came up: %v; %s; why: %v", m, r, r.errors())
	}
	sl.t.Logf("%d connections up in %v", n, time.Since(start).Round(time.Millisecond))
	return p
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}

// stopConns ends the harness and returns its report.
func (sl *syncLab) stopConns(p *labnet.Proc) connsResult {
	sl.t.Helper()
	// It ends by itself once every connection has failed.
	if done, _ := p.Exited(); !done {
		if err := p.Signal(syscall.SIGINT); err != nil {
			sl.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		sl.t.Fatalf("conns: %v\n%s", err, p.Output())
	}
	lines := strings.Split(strings.TrimSpace(p.Output()), "\n")
	var r connsResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		sl.t.Fatalf("conns output: %v\n%s", err, p.Output())
	}
	return r
}

var establishedLine = regexp.MustCompile(`(?m)^TCP\s+\S+\s+ESTABLISHED\s+\S+\s+` + regexp.QuoteMeta(vip) + fmt.Sprintf(":%d", linePort) + `\s`)

// syncedConns counts h's ESTABLISHED entries for the line service, with
// ipvsadm -Lnc as the witness.
func syncedConns(h *labnet.Host) int {
	return len(establishedLine.FindAllString(mustOut(h.Exec("ipvsadm", "-Lnc")), -1))
}

// survive runs the harness over one takeover: n connections through from,
// (with sync) the witness that to holds them, from's box dies, to takes
// over, and the connections run on past the stall limit.
func (sl *syncLab) survive(from, to *node, n int, sync bool) connsResult {
	sl.t.Helper()
	return sl.takeover(from, to, sl.startSynced(to, n, sync))
}

// startSynced starts n harness connections and, with sync, returns once
// to holds them all (witness: ipvsadm -Lnc); without, once the sync would
// have had the same time, checking to holds none.
func (sl *syncLab) startSynced(to *node, n int, sync bool) *labnet.Proc {
	sl.t.Helper()
	conns := sl.startConns(n)
	if sync {
		n = sl.up
		eventually(sl.t, syncFlushWait, fmt.Sprintf("%s holds the %d connections (ipvsadm -Lnc)", to, n), func() error {
			if got := syncedConns(to.h); got < n {
				return fmt.Errorf("%d of %d", got, n)
			}
			return nil
		})
		// What status and metrics read: the kernel says they came by sync.
		o, err := ipvs.ParseConnOrigins(strings.NewReader(mustOut(to.h.Exec("cat", "/proc/net/ip_vs_conn_sync"))))
		if err != nil {
			sl.t.Fatal(err)
		}
		if o.SyncedByState["ESTABLISHED"] < n || o.Local != 0 {
			sl.t.Errorf("%s: connection origins %+v, want %d established by sync and none local", to, o, n)
		}
	} else {
		// The control run gets the same chance the sync had.
		time.Sleep(2 * time.Second)
		if got := syncedConns(to.h); got != 0 {
			sl.t.Errorf("sync off, yet %s holds %d connections", to, got)
		}
	}
	return conns
}

// takeover kills from's box under the running harness conns, waits for
// to to take the VIP and the client's ARP entry, and runs the
// connections on past the stall limit.
func (sl *syncLab) takeover(from, to *node, conns *labnet.Proc) connsResult {
	sl.t.Helper()
	from.crash()
	eventually(sl.t, 20*eventuallyScale, to.String()+" takes the VIP", func() error { return hasVIP(to.h, true) })
	sl.eventuallyARP(to)
	sl.settle(conns, time.Now())
	return sl.stopConns(conns)
}

// answerWait is how long after the new path is in place the harness may
// run on for its connections' first answers through it. A starved guest
// grows the clients' RTOs to seconds (3.6 s seen, with SRTT 560 ms), so a
// connection's retransmission and its answer can come 7 s after the
// path; one still silent at this is hung.
const answerWait = 30 * time.Second

// settle lets the harness run on after the new path is in place (at
// since): past the stall limit, so a hung connection shows as one, and
// until every live connection has answered since, at most
// sl.answerWait. Whether the pause each took is in bounds is
// judgePauses' question.
func (sl *syncLab) settle(conns *labnet.Proc, since time.Time) {
	sl.t.Helper()
	time.Sleep(sl.stall + 2*time.Second)
	if sl.answerWait == 0 {
		return
	}
	deadline := since.Add(sl.answerWait)
	for {
		if done, _ := conns.Exited(); done {
			return // every connection failed: its last line is stale
		}
		oldest := answeredSince(conns.Output())
		if oldest >= since.UnixMilli() {
			return
		}
		if time.Now().After(deadline) {
			sl.t.Logf("the harness's oldest last answer is %v before the new path was in place, %v after it: stopping it", since.Sub(time.UnixMilli(oldest)).Round(time.Millisecond), sl.answerWait)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// answeredSince is the last "answered MS" labhost conns printed: the
// oldest of its live connections' last answers (0 before any).
func answeredSince(out string) int64 {
	i := strings.LastIndex(out, "answered ")
	if i < 0 {
		return 0
	}
	f := strings.Fields(out[i+len("answered "):])
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseInt(f[0], 10, 64)
	return v
}

// failback runs after a takeover from master to backup: n new
// connections through backup, then master's box returns (link up, its VIP
// gone as after a reboot) and its director restarts and preempts; the
// connections run on past the stall limit.
func (sl *syncLab) failback(master, backup *node, n int) connsResult {
	sl.t.Helper()
	return sl.returnAndPreempt(master, backup, sl.startConns(n))
}

// returnAndPreempt is failback's second half, under the running harness
// conns.
func (sl *syncLab) returnAndPreempt(master, backup *node, conns *labnet.Proc) connsResult {
	sl.t.Helper()
	master.h.Exec("ip", "addr", "del", vip+"/32", "dev", "eth0")
	master.h.IP("link", "set", "eth0", "up")
	if master.keepalived {
		os.Remove(master.log) // so the wait below reads the new run's log
	}
	master.start()
	if master.keepalived {
		// Starting keepalived from the host's file system takes long in
		// a loaded guest: the takeover is timed from its first state.
		eventually(sl.t, time.Minute, master.String()+" is up again", func() error {
			b, _ := os.ReadFile(master.log)
			if !strings.Contains(string(b), "Entering BACKUP STATE") && !strings.Contains(string(b), "Entering MASTER STATE") {
				return fmt.Errorf("no VRRP state in its log yet")
			}
			return nil
		})
	}
	// A golvs master waits out its preempt delay as backup first.
	eventually(sl.t, director.PreemptDelay(syncFailoverConfig("eth0", 1))+20*eventuallyScale, "the old master takes the VIP back", func() error {
		return firstErr(hasVIP(master.h, true), hasVIP(backup.h, false))
	})
	sl.eventuallyARP(master)
	sl.settle(conns, time.Now())
	return sl.stopConns(conns)
}

// TestConnSyncKeepalived proves the harness on keepalived pairs: with
// lvs_sync_daemon every established connection survives the master's
// death; without it they break. The failback figures with sync (the old master
// restarts and preempts) are reported: keepalived switches the daemons
// with the VRRP state, so connections made while the master was away can
// be lost when it returns.
func TestConnSyncKeepalived(t *testing.T) {
	n := connsCount(t)
	for _, sync := range []bool{true, false} {
		t.Run(fmt.Sprintf("sync=%v", sync), func(t *testing.T) {
			sl := newSyncLab(t)
			master, backup := sl.keepalivedSync(sl.director, 200, sync), sl.keepalivedSync(sl.backup, 100, sync)
			sl.establish(master, backup)
			res := sl.survive(master, backup, n, sync)
			t.Logf("keepalived, sync=%v, failover: %s", sync, res)
			if sync {
				// Survival: no reset, none hung, each on its real server.
				// How long a connection paused (stalled counts those over
				// the limit) is the takeover plus TCP's retransmission
				// backoff, which the loaded emulated guest stretches: it
				// is reported, not asserted.
				if res.Reset+res.Hung+res.Never != 0 || res.Moved != 0 || res.Kept+res.Stalled != n {
					t.Errorf("with sync: %s; want all %d kept on their real server", res, n)
				}
			} else if res.Kept+res.Stalled > n/10 {
				t.Errorf("without sync: %s; want most broken (the harness must see a failover)", res)
			}

			if !sync {
				return // the control run has shown what it must
			}
			// Failback: the box returns, keepalived restarts and preempts.
			back := sl.failback(master, backup, n)
			t.Logf("keepalived, sync=%v, failback: %s", sync, back)
		})
	}
}

// connsCount is how many harness connections a test opens: the issue's
// 200 (a one-CPU emulated guest carries them: up in 2-3 s).
// GOLVS_LAB_CONNS overrides it.
func connsCount(t *testing.T) int {
	if v := os.Getenv("GOLVS_LAB_CONNS"); v != "" {
		var n int
		if _, err := fmt.Sscan(v, &n); err != nil || n < 1 {
			t.Fatalf("GOLVS_LAB_CONNS=%q", v)
		}
		return n
	}
	return 200
}

// syncFailoverConfig is a [failover] with [failover.sync] as the loader
// fills it in.
func syncFailoverConfig(iface string, vrid uint8) *config.Failover {
	return &config.Failover{VirtualRouterID: vrid, Sync: &config.Sync{Interface: iface, SyncID: vrid,
		Group: config.DefaultSyncGroup, Port: config.DefaultSyncPort, TTL: config.DefaultSyncTTL}}
}

// TestConnSyncGolvs is the same with two golvs directors and
// [failover.sync]: each director runs the kernel's master and backup sync
// daemons all the time (director.WantDaemons), so the backup holds every
// established connection before the master's box dies and keeps them
// all. The takeover must come within the master down interval (witness:
// tcpdump on the client's link), and each connection may pause 3 s, or
// longer only as far as the outage and its own retransmission schedule
// explain (pauseLimit). When the old master returns and preempts, again all are
// kept, each within its limit across the switch back (from the master's
// first advert, which the backup yields at, to its gratuitous ARP).
func TestConnSyncGolvs(t *testing.T) {
	n := connsCount(t)
	sl := newSyncLabAt(t, fastAdvert, noStallLimit)
	services := sl.service("web", "tcp", 80, "dr", "rr") + sl.service("line", "tcp", linePort, "dr", "rr")
	syncTable := "[failover.sync]\ninterface = \"eth0\"\n"
	master := sl.oursWith(sl.director, 200, syncTable, services)
	backup := sl.oursWith(sl.backup, 100, syncTable, services)
	sl.establish(master, backup)
	// Both directors run both daemons (witness: ipvsadm --list --daemon).
	for _, nd := range []*node{master, backup} {
		eventually(t, 10*eventuallyScale, nd.String()+" runs both sync daemons", func() error {
			if d := ipvsadmDaemons(nd.h); len(d) != 2 {
				return fmt.Errorf("ipvsadm --list --daemon: %q", d)
			}
			return nil
		})
	}
	masterMAC, backupMAC := master.h.MAC("eth0"), backup.h.MAC("eth0")
	// The witness is tcpdump on the client's link, started before the
	// crash: adverts and gratuitous ARPs with the kernel's timestamps. (ip
	// -ts monitor stamps a change when the ip process reads it, which a
	// starved guest delays by hundreds of milliseconds.)
	w := sl.watchWire()

	conns := sl.startSynced(backup, n, true)
	crashed := time.Now() // the crash acts next: link down, then the kill
	res := sl.takeover(master, backup, conns)
	ads := w.adverts(masterMAC, time.Time{}, false)
	if len(ads) == 0 {
		t.Fatalf("tcpdump saw no advert from %s before its death:\n%s", master, tail(w.p.Output(), 30))
	}
	lastAdvert := ads[len(ads)-1]
	// The path went at the crash: after both the master's last advert
	// and the moment the test crashed it, the later of which bounds the
	// outage from above. It came back with the backup's gratuitous ARP,
	// which moves the client's entry for the VIP as it arrives.
	fo := switchover{down: later(lastAdvert, crashed), up: w.first(backup.String()+"'s announcement of the VIP", func() []time.Time { return w.announcements(backupMAC, crashed) })}
	t.Logf("golvs, sync on, failover: %s", res)
	// The backup's timer runs from the master's last advert: its master
	// down interval, and what the loaded guest adds to a step that is due.
	down := masterDown(sl.interval, backup.prio)
	takeover := fo.up.Sub(lastAdvert)
	t.Logf("takeover: the backup announced the VIP %v after the master's last advert, %v after the crash began (master down interval %v + slack %v)",
		takeover.Round(time.Millisecond), fo.up.Sub(crashed).Round(time.Millisecond), down, sl.slack())
	if takeover > down+sl.slack() {
		t.Errorf("the backup announced the VIP %v after the master's last advert, want within the master down interval %v + slack %v", takeover, down, sl.slack())
	}
	judgePauses(t, "golvs failover", fo, res, n)

	// Failback: the box returns, the director restarts and, once its
	// preempt delay is over, preempts: the connections made through the
	// backup meanwhile reached it by sync first, and all are kept. The
	// backup forwards until it hears the master's first advert, the
	// client turns to the master at its gratuitous ARP.
	conns = sl.startConns(n)
	returned := time.Now()
	back := sl.returnAndPreempt(master, backup, conns)
	claim := w.first(master.String()+"'s first advert after its return", func() []time.Time { return w.adverts(masterMAC, returned, false) })
	fb := switchover{down: claim, up: w.first(master.String()+"'s announcement of the VIP", func() []time.Time { return w.announcements(masterMAC, claim) })}
	t.Logf("golvs, sync on, failback: %s; the master announced the VIP %v after its first advert", back, fb.up.Sub(fb.down).Round(time.Millisecond))
	// Its claim and its announcement are one step: late by at most what
	// the loaded guest adds.
	if fb.outage() > sl.slack() {
		t.Errorf("the returning master announced the VIP %v after its first advert, want within slack %v", fb.outage(), sl.slack())
	}
	judgePauses(t, "golvs failback", fb, back, n)
	out := master.proc.Output()
	started, sok := logTime(out, `msg="vrrp starting"`)
	took, mok := logTime(out, `msg="vrrp state change"`, "from=backup to=master")
	delay := director.PreemptDelay(syncFailoverConfig("eth0", 1))
	if !sok || !mok {
		t.Errorf("the returning director's log lacks its start or its takeover:\n%s", out)
	} else if waited := took.Sub(started); waited < delay {
		t.Errorf("the returning director preempted %v after it started, within its preempt delay %v", waited.Round(time.Millisecond), delay)
	} else {
		t.Logf("the returning director preempted %v after it started (preempt delay %v)", waited.Round(time.Millisecond), delay)
	}
}
