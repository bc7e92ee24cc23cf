package director

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/golvs/golvs/director/status"
	"github.com/golvs/golvs/internal/netlimit"
)

// Controller is what the control socket serves; *Reconciler is one.
type Controller interface {
	Status(ctx context.Context) (Status, error)
	Drain(service string, backend netip.AddrPort) error
	Undrain(service string, backend netip.AddrPort) error
}

// SelfControl is a routed director's own state and drain; *Runtime with
// [bgp] is one.
type SelfControl interface {
	// BGPStatus is the sessions and the VIPs announced now.
	BGPStatus(ctx context.Context) *status.BGP
	// DrainSelf records drain-self (on) or its end and applies it: it
	// returns once the routes are withdrawn (or announced again).
	DrainSelf(ctx context.Context, on bool) error
}

// ErrNotRouted: drain-self asked of a director without [bgp].
var ErrNotRouted = errors.New("this director has no [bgp]: drain-self withdraws BGP routes, and there are none")

// ControlServer serves the control socket: HTTP with JSON over a unix
// socket that only root can reach (directory 0700, socket 0600).
//
//	GET  /status
//	POST /drain?service=S&backend=ADDR:PORT
//	POST /undrain?service=S&backend=ADDR:PORT
//	POST /drain-self
//	POST /undrain-self
type ControlServer struct {
	Path       string
	Controller Controller
	Logger     *slog.Logger
	// VRRPState, when set, fills Status.VRRP and Status.VRRPTransitions.
	VRRPState func() (state string, transitions []string)
	// Self, when set ([bgp]), fills Status.BGP and serves drain-self.
	Self SelfControl
	// Limits bounds clients' time, headers and connections; nil means
	// netlimit.Control() (tests shorten it).
	Limits *netlimit.Limits
}

// ErrAlreadyRunning means another process answers on the control socket.
var ErrAlreadyRunning = errors.New("control socket in use by a running director")

// Run listens until ctx ends, then closes and removes the socket.
func (s *ControlServer) Run(ctx context.Context) error {
	ln, err := s.Listen()
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Listen creates the socket: its directory 0700, the socket 0600. A socket
// left by a dead director is replaced; a live director's is not.
func (s *ControlServer) Listen() (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if c, err := net.DialTimeout("unix", s.Path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: %w", s.Path, ErrAlreadyRunning)
	}
	// Only a socket is ever removed: a path naming anything else is a
	// mistake in the file, not a stale socket.
	if fi, err := os.Lstat(s.Path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket (%s); refusing to remove it", s.Path, fi.Mode().Type())
		}
		if err := os.Remove(s.Path); err != nil {
			return nil, fmt.Errorf("control socket: remove stale: %w", err)
		}
	}
	ln, err := net.Listen("unix", s.Path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(s.Path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// Serve answers on ln until ctx ends, then removes the socket.
func (s *ControlServer) Serve(ctx context.Context, ln net.Listener) error {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lim := netlimit.Control()
	if s.Limits != nil {
		lim = *s.Limits
	}
	srv := lim.Server(s.handler(log))
	srv.BaseContext = func(net.Listener) context.Context { return ctx }
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lim.Listener(ln)) }()
	select {
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shut)
		<-errc
		os.Remove(s.Path)
		return nil
	case err := <-errc:
		os.Remove(s.Path)
		return fmt.Errorf("control socket: %w", err)
	}
}

func (s *ControlServer) handler(log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Controller.Status(r.Context())
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		if s.VRRPState != nil {
			st.VRRP, st.VRRPTransitions = s.VRRPState()
		}
		if s.Self != nil {
			st.BGP = s.Self.BGPStatus(r.Context())
		}
		writeJSON(w, http.StatusOK, st)
	})
	self := func(on bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if s.Self == nil {
				writeError(w, http.StatusConflict, ErrNotRouted)
				return
			}
			if err := s.Self.DrainSelf(r.Context(), on); err != nil {
				writeError(w, http.StatusInternalServerError, err)
				return
			}
			log.Info("control request", "path", r.URL.Path)
			writeJSON(w, http.StatusOK, map[string]string{"result": "ok"})
		}
	}
	mux.HandleFunc("POST /drain-self", self(true))
	mux.HandleFunc("POST /undrain-self", self(false))
	drain := func(on bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			svc := r.URL.Query().Get("service")
			b, err := netip.ParseAddrPort(r.URL.Query().Get("backend"))
			if err != nil || svc == "" {
				writeError(w, http.StatusBadRequest, fmt.Errorf("want service=NAME&backend=ADDR:PORT"))
				return
			}
			if on {
				err = s.Controller.Drain(svc, b)
			} else {
				err = s.Controller.Undrain(svc, b)
			}
			switch {
			case errors.Is(err, ErrUnknownService), errors.Is(err, ErrUnknownBackend):
				writeError(w, http.StatusNotFound, err)
			case err != nil:
				writeError(w, http.StatusInternalServerError, err)
			default:
				log.Info("control request", "path", r.URL.Path, "service", svc, "backend", b)
				writeJSON(w, http.StatusOK, map[string]string{"result": "ok"})
			}
		}
	}
	mux.HandleFunc("POST /drain", drain(true))
	mux.HandleFunc("POST /undrain", drain(false))
	// Exact paths only: the mux would redirect "/./drain" to "/drain",
	// and a client that follows redirects would drain on a request that
	// was never one.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path.Clean(r.URL.Path) {
			writeError(w, http.StatusNotFound, fmt.Errorf("no such request %q", r.URL.Path))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// ControlClient talks to a director's control socket.
type ControlClient struct {
	Path string
}

func (c ControlClient) client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.Path)
		},
	}}
}

func (c ControlClient) do(ctx context.Context, method, path string, q url.Values, out any) error {
	u := "http://director" + path
	if q != nil {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	cl := c.client()
	defer cl.CloseIdleConnections()
	resp, err := cl.Do(req)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", c.Path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("director: %s", e.Error)
		}
		return fmt.Errorf("director: %s", resp.Status)
	}
	if out == nil {
		return nil
	}
	// Decoded as it streams: the status of tens of thousands of services
	// is tens of megabytes, and the socket is root's own director.
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("control socket %s: reply: %w", c.Path, err)
	}
	return nil
}

// Status fetches the director's status.
func (c ControlClient) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/status", nil, &st)
	return st, err
}

// Drain asks the director to drain a backend.
func (c ControlClient) Drain(ctx context.Context, service string, backend netip.AddrPort) error {
	return c.do(ctx, http.MethodPost, "/drain", url.Values{"service": {service}, "backend": {backend.String()}}, nil)
}

// DrainSelf withdraws the director's routes until UndrainSelf; it keeps
// running and forwarding.
func (c ControlClient) DrainSelf(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/drain-self", nil, nil)
}

// UndrainSelf announces the director's routes again.
func (c ControlClient) UndrainSelf(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/undrain-self", nil, nil)
}

// Undrain ends an operator drain.
func (c ControlClient) Undrain(ctx context.Context, service string, backend netip.AddrPort) error {
	return c.do(ctx, http.MethodPost, "/undrain", url.Values{"service": {service}, "backend": {backend.String()}}, nil)
}
