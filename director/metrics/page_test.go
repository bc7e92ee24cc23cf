package metrics

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/golvs/golvs/director/status"
)

func getAccept(t *testing.T, h http.Handler, path, accept string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", path, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func readBody(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const chromeAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"

// A browser gets the HTML page; curl, scripts and anything else the
// plain table as before.
func TestPageNegotiation(t *testing.T) {
	src := Source{Status: fixedStatus, VRRP: func() VRRPInfo { return VRRPInfo{State: "master", Priority: 150} },
		VRRPTransitions:   func() []string { return []string{"T backup -> master: peer silent"} },
		HealthTransitions: func() []string { return []string{"T web 10.0.1.2:80 up -> down: connection refused"} }}
	h := Handler(src, nil)

	for _, accept := range []string{"text/html;q=0.9, */*;q=0.1", "TEXT/HTML"} {
		if ct := getAccept(t, h, "/", accept).Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("Accept %q got %q", accept, ct)
		}
	}
	r := getAccept(t, h, "/", chromeAccept)
	body := readBody(t, r)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("browser got %q:\n%s", ct, body)
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	for _, want := range []string{
		`<tr data-backend="10.0.1.2:80" data-health="down">`,
		`<td class="active">7</td>`,
		`QUORUM LOST (1 of 2 serving)`,
		`id="vrrp-state" class="vrrp-master">master</strong>`,
		`<li>T backup -&gt; master: peer silent</li>`,
		`<li>T web 10.0.1.2:80 up -&gt; down: connection refused</li>`,
		`<polyline class="a" points="120,`,
		`<script src="/assets/page.js" defer></script>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "http://") || strings.Contains(body, "https://") || strings.Contains(body, `="//`) {
		t.Errorf("page refers to another origin:\n%s", body)
	}

	for _, accept := range []string{"", "*/*", "text/plain", "application/json", "text/html;q=0, */*", "text/html; q=0.0"} {
		r := getAccept(t, h, "/", accept)
		body := readBody(t, r)
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(body, "vrrp: master priority 150\n") ||
			!strings.Contains(body, "  T backup -> master: peer silent\n") || !strings.Contains(body, "10.0.1.2:80") {
			t.Errorf("Accept %q got %q:\n%s", accept, ct, body)
		}
	}

	for _, path := range []string{"/assets/page.js", "/assets/page.css", "/assets/icon.svg", "/favicon.ico"} {
		if r := getAccept(t, h, path, ""); r.StatusCode != 200 || r.ContentLength == 0 && len(readBody(t, r)) == 0 {
			t.Errorf("%s: %d", path, r.StatusCode)
		}
	}
}

// /status.json carries what `director status --json` does (same field
// names), plus rates, history and transitions.
func TestPageJSON(t *testing.T) {
	var conns uint64
	src := Source{Status: func(ctx context.Context) (status.Status, error) {
		st, _ := fixedStatus(ctx)
		st.Services[0].Backends[0].Conns = conns
		return st, nil
	}, HealthTransitions: func() []string { return []string{"x"} }}
	h := Handler(src, nil)
	var pg struct {
		Services []struct {
			Name       string `json:"name"`
			QuorumLost bool   `json:"quorum_lost"`
			Backends   []struct {
				Address  string   `json:"address"`
				Health   string   `json:"health"`
				Active   int      `json:"active_conns"`
				Rate     float64  `json:"conn_rate"`
				History  []Sample `json:"history"`
				Spark    Spark    `json:"spark"`
				Inactive int      `json:"inactive_conns"`
			} `json:"backends"`
		} `json:"services"`
		Health []string `json:"health_transitions"`
	}
	r := getAccept(t, h, "/status.json", "")
	body := readBody(t, r)
	if r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("content type %q", r.Header.Get("Content-Type"))
	}
	if err := json.Unmarshal([]byte(body), &pg); err != nil {
		t.Fatalf("%v:\n%s", err, body)
	}
	if len(pg.Services) != 1 || !pg.Services[0].QuorumLost || len(pg.Services[0].Backends) != 3 ||
		pg.Services[0].Backends[1].Health != "down" || pg.Services[0].Backends[0].Active != 7 || len(pg.Health) != 1 {
		t.Errorf("json:\n%s", body)
	}
	if b := pg.Services[0].Backends[0]; len(b.History) != 1 || b.Rate != -1 || !b.History[0].Up || b.History[0].Weight != 3 {
		t.Errorf("first sample: %+v", b)
	}
	if strings.Count(body, `"backends"`) != 1 {
		t.Errorf("backends sent twice:\n%s", body)
	}
}

// The rate is the kernel's connection counter's slope over successive
// samples.
func TestHistoryRate(t *testing.T) {
	h := newHistory()
	t0 := time.Unix(1000, 0)
	st, _ := fixedStatus(context.Background())
	web1 := st.Services[0].Backends[0].Address
	for i := range 10 {
		st.Services[0].Backends[0].Conns = uint64(100 + 30*i)
		h.record(st, t0.Add(time.Duration(i)*time.Second))
		// A second reader within historyGap adds nothing.
		h.record(st, t0.Add(time.Duration(i)*time.Second+100*time.Millisecond))
	}
	ss, rate := h.get("web", web1)
	if len(ss) != 10 || rate != 30 {
		t.Errorf("%d samples, rate %v; want 10, 30", len(ss), rate)
	}
	// A counter that went back (the destination was re-added) is no rate.
	st.Services[0].Backends[0].Conns = 5
	h.record(st, t0.Add(20*time.Second))
	if _, rate := h.get("web", web1); rate != -1 {
		t.Errorf("rate after a counter reset %v, want -1", rate)
	}
}

// Memory is bounded: historyLen samples per backend of the latest
// status, and nothing for backends that went away.
func TestHistoryBounded(t *testing.T) {
	h := newHistory()
	t0 := time.Unix(1000, 0)
	for i := range 500 {
		var bs []status.BackendStatus
		// Backend i%50 churns in and out; 10.0.0.1 stays.
		bs = append(bs, status.BackendStatus{Address: netip.MustParseAddrPort("10.0.0.1:80"), Health: "up"},
			status.BackendStatus{Address: netip.AddrPortFrom(netip.MustParseAddr("10.0.1.1"), uint16(1000+i%50)), Health: "down"})
		h.record(status.Status{Services: []status.ServiceStatus{{Name: "s", Backends: bs}}}, t0.Add(time.Duration(i)*time.Second))
	}
	if len(h.series) != 2 {
		t.Errorf("%d series kept, want the 2 of the last status", len(h.series))
	}
	ss, _ := h.get("s", netip.MustParseAddrPort("10.0.0.1:80"))
	if len(ss) != historyLen || ss[len(ss)-1].At != t0.Add(499*time.Second).UnixMilli() || ss[0].At != t0.Add(time.Duration(500-historyLen)*time.Second).UnixMilli() {
		t.Errorf("%d samples from %d to %d", len(ss), ss[0].At, ss[len(ss)-1].At)
	}
	sp := spark(ss)
	if n := len(strings.Fields(sp.Active)); n != historyLen {
		t.Errorf("spark has %d points, want %d", n, historyLen)
	}
}

// Service names, addresses-as-text and transition reasons come from the
// operator's file and from backends: the page escapes them.
func TestPageEscapesHostileNames(t *testing.T) {
	evil := `<script>alert(1)</script>"><img src=x onerror=alert(2)>`
	src := Source{Status: func(ctx context.Context) (status.Status, error) {
		st, _ := fixedStatus(ctx)
		st.Services[0].Name = evil
		st.Services[0].Key = evil
		return st, nil
	}, HealthTransitions: func() []string { return []string{evil} },
		VRRP:            func() VRRPInfo { return VRRPInfo{State: evil} },
		VRRPTransitions: func() []string { return []string{evil} }}
	body := readBody(t, getAccept(t, Handler(src, nil), "/", chromeAccept))
	if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img") || strings.Contains(body, `"><`+"img") {
		t.Errorf("hostile name reached the page unescaped:\n%s", body)
	}
	if n := strings.Count(body, "&lt;script&gt;alert(1)&lt;/script&gt;"); n < 4 {
		t.Errorf("escaped name appears %d times, want at least 4:\n%s", n, body)
	}
	// The script only ever sets text, never markup.
	js := readBody(t, getAccept(t, Handler(src, nil), "/assets/page.js", ""))
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(js, bad) {
			t.Errorf("page.js uses %s", bad)
		}
	}
}
