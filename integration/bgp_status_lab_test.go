//go:build lab

package integration

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	lvs "github.com/golvs/golvs/director"
	"github.com/golvs/golvs/director/status"
	"github.com/golvs/golvs/integration/labnet"
)

// TestBGPDirectorDrainSelf runs the real `director run` with [bgp] as the
// third of three directors behind BIRD (the other two hand-made, as in
// TestBGPDirector). `director status` and /metrics must show the session
// Established and the VIP announced while BIRD (`birdc show protocols`,
// `birdc show route`) and the router's FIB agree; `director drain-self`
// withdraws the route (the FIB drops the director) while the director
// keeps running with its VIP and IPVS table, requests through the VIP
// keep succeeding on the other two, and status says why the VIP is not
// announced; a restart keeps the drain; `director undrain-self` brings
// the route back.
func TestBGPDirectorDrainSelf(t *testing.T) {
	const hold = 9 * time.Second
	b := newBGPLabWith(t, 2, 3, hold, false, "mh")
	addr := "10.10.0.13"
	h := b.lab.Host("d3", nil)
	h.Attach(b.segment(), addr+"/24")
	h.DefaultRoute(routerEdge)
	dir := t.TempDir()
	sock := filepath.Join(dir, "d.sock")
	const metricsAddr = "127.0.0.1:9470"
	var backends strings.Builder
	for j := range b.rs {
		fmt.Fprintf(&backends, "[[service.backend]]\naddress = \"10.10.0.%d\"\nport = 80\nweight = 1\n\n", 21+j)
	}
	conf := labnet.TempFile(t, dir, "topology.toml", fmt.Sprintf(`[director]
interface = "eth0"
resync_interval = "5s"
control_socket = %q
state_file = %q
metrics_address = %q

[bgp]
asn = %d
leave_grace = "1s"

[[bgp.peer]]
address = %q
asn = %d
hold_time = "%s"

[[service]]
name = "web"
address = %q
port = 80
scheduler = "mh"
scheduler_flags = ["mh-port", "mh-fallback"]
forwarding = "dr"

%s`, sock, filepath.Join(dir, "d.state"), metricsAddr, directorASN, routerEdge, routerASN, hold, bgpVIP, backends.String()))
	var p *labnet.Proc
	start := func() {
		p = h.Start("", bin(t, "director"), "run", "-config", conf)
		proc := p
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("director output:\n%s", proc.Output())
			}
		})
	}
	start()
	all := append(append([]string(nil), b.dirAddrs...), addr)
	others := b.dirAddrs

	director := func(args ...string) string {
		t.Helper()
		return h.MustExec(bin(t, "director"), append(args, "--socket", sock)...)
	}
	// bgpStatus fails (not fatally) until the director answers.
	bgpStatus := func() (*status.BGP, error) {
		out, err := h.Exec(bin(t, "director"), "status", "--json", "--socket", sock)
		if err != nil {
			return nil, err
		}
		var st status.Status
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return nil, fmt.Errorf("director status --json: %v\n%s", err, out)
		}
		if st.BGP == nil {
			return nil, fmt.Errorf("director status --json has no bgp:\n%s", out)
		}
		return st.BGP, nil
	}
	vip := netip.MustParseAddr(bgpVIP)
	router := netip.MustParseAddr(routerEdge)
	// statusSays checks what status reports: the router's session
	// established, the VIP announced or not (with the reason).
	statusSays := func(announced, drained bool) error {
		st, err := bgpStatus()
		if err != nil {
			return err
		}
		peer, ok := st.Peer(router)
		switch {
		case !ok || peer.State != "established":
			return fmt.Errorf("status: peer %+v, want established", peer)
		case st.SelfDrained != drained:
			return fmt.Errorf("status: self_drained %v, want %v", st.SelfDrained, drained)
		case slices.Contains(st.Announced(), vip) != announced:
			return fmt.Errorf("status: announced %v, want %s announced %v (vips %+v)", st.Announced(), vip, announced, st.VIPs)
		case !announced && drained && (len(st.VIPs) != 1 || st.VIPs[0].Reason != "drain-self"):
			return fmt.Errorf("status: vips %+v, want the reason drain-self", st.VIPs)
		case announced && peer.Advertised != 1:
			return fmt.Errorf("status: %d routes sent to the router, want 1", peer.Advertised)
		}
		return nil
	}
	metricsSay := func(want ...string) error {
		out, err := h.Exec("curl", "-sf", "--max-time", "10", "http://"+metricsAddr+"/metrics")
		if err != nil {
			return fmt.Errorf("scrape: %v", err)
		}
		for _, w := range want {
			if !strings.Contains(out, w+"\n") {
				return fmt.Errorf("/metrics lacks %q", w)
			}
		}
		return nil
	}
	birdProto := func(name string) string {
		out := b.router.MustExec("birdc", "-s", b.birdSock, "show", "protocols", name)
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == name {
				return f[len(f)-1]
			}
		}
		return "?\n" + out
	}
	established := `golvs_bgp_peer_state{peer="` + routerEdge + `",state="established"} 1`

	// Announcing: status, metrics, BIRD and the FIB agree. The start is
	// not what is timed: on the loaded emulated machine the director took
	// 25s from its start to its first announcement in one run.
	eventually(t, 2*time.Minute, "status shows the session and the VIP announced", func() error {
		return statusSays(true, false)
	})
	b.waitNexthops(all, 10*time.Second)
	if got := birdProto("d3"); got != "Established" {
		t.Errorf("birdc show protocols d3: %s, want Established", got)
	}
	if err := metricsSay(established, `golvs_bgp_announced{vip="`+bgpVIP+`"} 1`, "golvs_bgp_self_drained 0"); err != nil {
		t.Error(err)
	}
	text := director("status")
	for _, want := range []string{routerEdge + "  65000  established", "announced: " + bgpVIP + "\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("director status lacks %q:\n%s", want, text)
		}
	}
	t.Logf("director status:\n%s", text)

	// drain-self: the route goes, the director stays and forwards.
	before := ipvsConns(t, h)
	// A request fails when it has no answer within reqTimeout: long
	// enough for one TCP retransmission (1s initial RTO) on this loaded,
	// emulated machine (starting a process took 10s in one run), so a
	// failure is a lost connection, not a slow one.
	const reqTimeout = "5s"
	poll := b.client.Start("ready", bin(t, "labhost"), "poll", "--url", "http://"+bgpVIP+"/",
		"--interval", "50ms", "--duration", "8s", "--timeout", reqTimeout)
	drained := time.Now()
	t.Logf("director drain-self: %s", strings.TrimSpace(director("drain-self")))
	b.waitNexthops(others, 10*time.Second)
	withdrawn, wok := logTime(p.Output(), `msg="VIP withdrawn"`)
	if at, gws, ok := b.routeSeen.firstWithout(drained, addr); ok && wok {
		t.Logf("drain-self: the router's FIB dropped %s %v after the director withdrew the route (now via %v)", addr, at.Sub(withdrawn).Round(time.Millisecond), gws)
	}
	if err := statusSays(false, true); err != nil {
		t.Error(err)
	}
	if got := birdProto("d3"); got != "Established" {
		t.Errorf("drained: birdc show protocols d3: %s; drain-self withdraws routes, the session stays", got)
	}
	if err := metricsSay(established, `golvs_bgp_announced{vip="`+bgpVIP+`"} 0`, "golvs_bgp_self_drained 1"); err != nil {
		t.Error(err)
	}
	if out := h.IP("-4", "addr", "show", "dev", "lo"); !strings.Contains(out, bgpVIP+"/32") {
		t.Errorf("drained: the VIP left lo, so the director would drop what the router still sends:\n%s", out)
	}
	res := waitPollResult(t, poll)
	t.Logf("poll through the VIP across drain-self: %d requests, %d failed, answers %v", res.Total, res.Failures, res.Counts)
	if res.Failures != 0 {
		t.Errorf("%d of %d requests failed across drain-self: %v", res.Failures, res.Total, res.Errors)
	}
	served := func(what string) {
		t.Helper()
		var r clientResult
		out := b.client.MustExec(bin(t, "labhost"), "client", "--url", "http://"+bgpVIP+"/", "--count", "30", "--timeout", reqTimeout)
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("labhost client output %q: %v", out, err)
		}
		if r.Failures != 0 {
			t.Errorf("%s: %d of 30 requests failed: %v", what, r.Failures, r.Errors)
		}
	}
	mid := ipvsFlows(t, h)
	served("drained")
	var fresh []string
	for f := range ipvsFlows(t, h) {
		if !mid[f] {
			fresh = append(fresh, f)
		}
	}
	if len(fresh) > 0 {
		t.Errorf("drained director took %d new connections (%v); the router should send it none", len(fresh), fresh)
	}
	t.Logf("connections scheduled by the drained director: %d before drain-self (ipvsadm --stats); %d entries at the end of the poll, none new over 30 more requests (ipvsadm -Lnc)", before, len(mid))

	// A restart keeps the drain: the session comes back, the route does not.
	restarted := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(t.Context()); err != nil {
		t.Fatalf("director exit: %v", err)
	}
	start()
	eventually(t, 2*time.Minute, "the restarted director's session is established on both sides", func() error {
		if got := birdProto("d3"); got != "Established" {
			return fmt.Errorf("birdc show protocols d3: %s", got)
		}
		return statusSays(false, true)
	})
	b.waitNexthops(others, time.Second)

	// undrain-self: announced again.
	undrained := time.Now()
	// Any route via this director since the restart would have been an
	// announcement of a drained director.
	if at, _, ok := b.routeSeen.firstWith(restarted, addr); ok {
		t.Errorf("the restarted drained director was announced at %s", at.Format("15:04:05.000"))
	}
	t.Logf("director undrain-self: %s", strings.TrimSpace(director("undrain-self")))
	b.waitNexthops(all, 10*time.Second)
	announced, aok := logTime(p.Output(), `msg="VIP announced"`)
	if at, gws, ok := b.routeSeen.firstWith(undrained, addr); ok && aok {
		t.Logf("undrain-self: the router's FIB took %s back %v after the director announced the route (via %v)", addr, at.Sub(announced).Round(time.Millisecond), gws)
	}
	eventually(t, 10*time.Second, "status shows the VIP announced again", func() error {
		if err := statusSays(true, false); err != nil {
			return err
		}
		return metricsSay(established, `golvs_bgp_announced{vip="`+bgpVIP+`"} 1`, "golvs_bgp_self_drained 0")
	})
	served("undrained")

	// Every backend drained by the operator (director drain): this
	// director could schedule no new flow, so its route goes; undrained,
	// it comes back.
	for j := range b.rs {
		director("drain", "web", fmt.Sprintf("10.10.0.%d:80", 21+j))
	}
	b.waitNexthops(others, 10*time.Second)
	if out := h.IP("-4", "addr", "show", "dev", "lo"); !strings.Contains(out, bgpVIP+"/32") {
		t.Errorf("backends drained: the VIP left lo, so the director would drop what the router still sends:\n%s", out)
	}
	if st, err := bgpStatus(); err != nil {
		t.Error(err)
	} else if len(st.VIPs) != 1 || st.VIPs[0].Announced || st.VIPs[0].Reason != lvs.ReasonBackendsDrained {
		t.Errorf("backends drained: status VIPs %+v, want not announced because %q", st.VIPs, lvs.ReasonBackendsDrained)
	}
	served("backends drained on one director")
	for j := range b.rs {
		director("undrain", "web", fmt.Sprintf("10.10.0.%d:80", 21+j))
	}
	b.waitNexthops(all, 10*time.Second)
	t.Log("director drain of every backend withdrew the route; undrain announced it again")
}

// logTime is the time of the last slog line of out holding every one
// of parts.
func logTime(out string, parts ...string) (time.Time, bool) {
	var at time.Time
	ok := false
	for _, line := range strings.Split(out, "\n") {
		ts, rest, found := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		if !found || !containsAll(rest, parts) {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			at, ok = t, true
		}
	}
	return at, ok
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// waitPollResult waits for labhost poll and reads its JSON.
func waitPollResult(t *testing.T, p *labnet.Proc) pollResult {
	t.Helper()
	if err := p.Wait(t.Context()); err != nil {
		t.Fatalf("poll: %v\n%s", err, p.Output())
	}
	var res pollResult
	lines := strings.Split(strings.TrimSpace(p.Output()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("poll output %q: %v", p.Output(), err)
	}
	return res
}

// pollResult is labhost poll's JSON (the fields this test reads).
type pollResult struct {
	Total    int            `json:"total"`
	Failures int            `json:"failures"`
	Errors   []string       `json:"errors"`
	Counts   map[string]int `json:"counts"`
}

// firstWith returns when, after since, the route first changed to one
// that goes via gw.
func (w *routeWatch) firstWith(since time.Time, gw string) (time.Time, []string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.changes {
		if c.at.After(since) && slices.Contains(c.gws, gw) {
			return c.at, c.gws, true
		}
	}
	return time.Time{}, nil, false
}
