package metrics

import (
	"context"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golvs/golvs/director/status"
)

// The page's template, script, style and icon are compiled in: the page
// fetches nothing but its own origin (its CSP says so to the browser).
//
//go:embed assets
var assets embed.FS

var pageTmpl = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"rate": formatRate,
}).ParseFS(assets, "assets/page.html"))

// contentPolicy forbids anything not from the director itself.
const contentPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Page is what the status page shows and /status.json returns: the
// status `director status --json` prints, plus rates, history and the
// health transitions.
type Page struct {
	Time            time.Time     `json:"time"`
	VRRP            string        `json:"vrrp,omitempty"`
	VRRPState       string        `json:"vrrp_state,omitempty"`
	VRRPPriority    int           `json:"vrrp_priority,omitempty"`
	VRRPTransitions []string      `json:"vrrp_transitions,omitempty"`
	BGP             *status.BGP   `json:"bgp,omitempty"`
	Health          []string      `json:"health_transitions"`
	Services        []PageService `json:"services"`
}

// PageService is a service; its Backends shadow the embedded ones.
type PageService struct {
	status.ServiceStatus
	Backends []PageBackend `json:"backends"`
	// ConnRate sums its backends' known rates.
	ConnRate float64 `json:"conn_rate"`
}

// PageBackend is a backend with its connections per second (-1:
// not known yet) and its recent samples.
type PageBackend struct {
	status.BackendStatus
	ConnRate float64  `json:"conn_rate"`
	History  []Sample `json:"history"`
	Spark    Spark    `json:"spark"`
}

// page assembles the Page from the sources and the history.
func (p *pager) page(ctx context.Context) (Page, error) {
	st, err := p.status(ctx)
	if err != nil {
		return Page{}, err
	}
	pg := Page{Time: time.Now().UTC(), Services: []PageService{}, Health: []string{}}
	if p.src.VRRP != nil {
		info := p.src.VRRP()
		pg.VRRPState, pg.VRRPPriority = info.State, info.Priority
		pg.VRRP = info.State + " priority " + strconv.Itoa(info.Priority)
	}
	if p.src.VRRPTransitions != nil {
		pg.VRRPTransitions = p.src.VRRPTransitions()
	}
	if p.src.HealthTransitions != nil {
		pg.Health = p.src.HealthTransitions()
	}
	if p.src.BGP != nil {
		pg.BGP = p.src.BGP(ctx)
	}
	for _, sv := range st.Services {
		ps := PageService{ServiceStatus: sv, Backends: make([]PageBackend, 0, len(sv.Backends))}
		ps.ServiceStatus.Backends = nil // shadowed; not sent twice
		for _, b := range sv.Backends {
			hist, rate := p.hist.get(sv.Name, b.Address)
			ps.Backends = append(ps.Backends, PageBackend{BackendStatus: b, ConnRate: rate, History: hist, Spark: spark(hist)})
			ps.ConnRate += max(rate, 0)
		}
		pg.Services = append(pg.Services, ps)
	}
	return pg, nil
}

// pager serves the page, its data and the text table.
type pager struct {
	src  Source
	hist *history
	now  func() time.Time
}

// status reads the status and feeds the history: every reader (page,
// JSON, text, a Prometheus scrape) adds to it, at most once per
// historyGap.
func (p *pager) status(ctx context.Context) (status.Status, error) {
	st, err := p.src.Status(ctx)
	if err == nil {
		p.hist.record(st, p.now())
	}
	return st, err
}

// wantsHTML: browsers ask for text/html; curl (*/*), scripts and
// Prometheus do not, and get the plain table as before.
func wantsHTML(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(mt), "text/html") {
			continue
		}
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); strings.TrimSpace(k) == "q" && err == nil && q <= 0 {
				return false
			}
		}
		return true
	}
	return false
}

func (p *pager) serveRoot(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	w.Header().Add("Vary", "Accept")
	if !wantsHTML(r) {
		p.serveText(ctx, w)
		return
	}
	pg, err := p.page(ctx)
	if err != nil {
		http.Error(w, "status: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	var b strings.Builder
	if err := pageTmpl.Execute(&b, pg); err != nil {
		http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", contentPolicy)
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte(b.String()))
}

func (p *pager) serveText(ctx context.Context, w http.ResponseWriter) {
	st, err := p.status(ctx)
	if err != nil {
		http.Error(w, "status: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if p.src.VRRP != nil {
		info := p.src.VRRP()
		st.VRRP = info.State + " priority " + strconv.Itoa(info.Priority)
	}
	if p.src.VRRPTransitions != nil {
		st.VRRPTransitions = p.src.VRRPTransitions()
	}
	if p.src.BGP != nil {
		st.BGP = p.src.BGP(ctx)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	st.WriteText(w)
}

func (p *pager) serveJSON(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	pg, err := p.page(ctx)
	if err != nil {
		http.Error(w, "status: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(pg)
}

// serveAssets serves the script, style and icon.
func serveAssets(mux *http.ServeMux) {
	sub, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(sub)
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", files))
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, sub, "icon.svg")
	})
}

// formatRate prints a connection rate for the page ("-" when unknown).
func formatRate(r float64) string {
	if r < 0 {
		return "-"
	}
	return strconv.FormatFloat(r, 'f', 1, 64)
}
