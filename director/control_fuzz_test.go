package director

import (
	"bufio"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golvs/golvs/director/ipvs/ipvsfake"
)

// FuzzControlRequest sends the control socket's handler arbitrary
// requests (method, target with query, body) against a reconciler over
// the in-memory kernel, with backend be2 drained by the operator. It must
// not panic; it answers 200 only to GET /status and to a drain or undrain
// of a backend the file has, 400 to a drain without a readable service
// and backend, 404 to one the file lacks, and 4xx to anything else; the
// handler itself writes nothing to the kernel; and after the next pass
// the kernel holds exactly the drains the answers reported.
func FuzzControlRequest(f *testing.F) {
	for _, s := range [][3]string{
		{"GET", "/status", ""},
		{"HEAD", "/status", ""},
		{"POST", "/drain?service=web&backend=10.0.1.1:80", ""},
		{"POST", "/undrain?service=web&backend=10.0.1.2:80", ""},
		{"POST", "/undrain?backend=10.0.1.2%3A80&service=web", "ignored body"},
		{"POST", "/drain?service=nope&backend=10.0.1.1:80", ""},
		{"POST", "/drain?service=web&backend=10.0.1.9:80", ""},
		{"POST", "/drain?service=web&backend=[::ffff:10.0.1.1]:80", ""},
		{"POST", "/drain?service=web&backend=10.0.1.1", ""},
		{"POST", "/drain?service=&backend=10.0.1.1:80", ""},
		{"POST", "/drain?service=web&service=x&backend=10.0.1.1:80&%zz", ""},
		{"GET", "/drain?service=web&backend=10.0.1.1:80", ""},
		{"PUT", "/status", "{}"},
		{"POST", "/drain/", ""},
		{"POST", "/./drain?service=web&backend=10.0.1.1:80", ""},
		{"POST", "//undrain?service=web&backend=10.0.1.2:80", ""},
		{"POST", "http://director/drain?service=web&backend=10.0.1.1:80", ""},
		{"OPTIONS", "*", ""},
		{"CONNECT", "director:80", ""},
	} {
		f.Add(s[0], s[1], []byte(s[2]))
	}
	stateDir := f.TempDir()
	var ctl struct {
		fx      *fixture
		r       *Reconciler
		drained map[netip.AddrPort]bool
	}
	f.Fuzz(func(t *testing.T, method, target string, body []byte) {
		raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: director\r\nContent-Length: %d\r\n\r\n%s", method, target, len(body), body)
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return // net/http's server answers 400 before any handler
		}
		// One reconciler per fuzzing process (a fresh one per input
		// costs a state file and a directory each), brought back to the
		// same start: be2 drained, be1 not.
		if ctl.r == nil {
			ctl.fx = &fixture{t: t, fake: ipvsfake.New(), clock: &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
				state: filepath.Join(stateDir, "director.state")}
			ctl.r = ctl.fx.reconciler(topo(webService(backend(be1, 1), backend(be2, 1))), nil)
			ctl.drained = map[netip.AddrPort]bool{}
		}
		fx, r := ctl.fx, ctl.r
		fx.t = t
		if ctl.drained[ap(be1)] {
			if err := r.Undrain("web", ap(be1)); err != nil {
				t.Fatal(err)
			}
		}
		if !ctl.drained[ap(be2)] {
			if err := r.Drain("web", ap(be2)); err != nil {
				t.Fatal(err)
			}
		}
		drained := map[netip.AddrPort]bool{ap(be2): true}
		ctl.drained = drained
		fx.sync(r)
		fx.expect("at the start", webEntry(dst(be1, 1), dst(be2, 0)))
		fx.writes()

		rec := httptest.NewRecorder()
		srv := &ControlServer{Controller: r}
		srv.handler(slog.New(slog.DiscardHandler)).ServeHTTP(rec, req)

		if _, n := fx.writes(); n != 0 {
			t.Fatalf("%s %s: the handler wrote %d changes to the kernel", method, target, n)
		}
		want, why := controlModel(req, drained)
		ok := rec.Code == want || (want == 0 && rec.Code >= 400 && rec.Code < 500)
		if !ok {
			t.Fatalf("%s %q (path %q): answered %d (%s), want %s",
				req.Method, target, req.URL.Path, rec.Code, strings.TrimSpace(rec.Body.String()), why)
		}
		fx.sync(r)
		w := func(b netip.Addr) int {
			if drained[ap(b)] {
				return 0
			}
			return 1
		}
		fx.expect("after the request", webEntry(dst(be1, w(be1)), dst(be2, w(be2))))
	})
}

// controlModel is the answer req deserves (0: any 4xx) and applies a
// successful drain or undrain to drained.
func controlModel(req *http.Request, drained map[netip.AddrPort]bool) (int, string) {
	route := req.Method + " " + req.URL.Path
	switch route {
	case "GET /status", "HEAD /status":
		return http.StatusOK, "200: a status request"
	case "POST /drain", "POST /undrain":
	default:
		return 0, "4xx: no such request"
	}
	q := req.URL.Query()
	svc := q.Get("service")
	b, err := netip.ParseAddrPort(q.Get("backend"))
	if err != nil || svc == "" {
		return http.StatusBadRequest, "400: no service or unreadable backend"
	}
	if svc != "web" || (b != ap(be1) && b != ap(be2)) {
		return http.StatusNotFound, "404: not a backend of the file"
	}
	drained[b] = req.URL.Path == "/drain"
	return http.StatusOK, "200: a drain or undrain of a known backend"
}
