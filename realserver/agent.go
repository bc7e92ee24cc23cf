package realserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golvs/golvs/internal/netlimit"
)

// Default paths of the operator's files.
const (
	DefaultDrainFile  = "/run/golvs/realserver.drain"
	DefaultWeightFile = "/run/golvs/realserver.weight"
)

// Agent answers the director's "agent" check: a GET (of / or any path the
// check is configured with) returns one line,
// "up", "drain", or a weight such as "50%". It reports drain while the
// drain file exists (`realserver drain`) and while the process is shutting
// down, so the director stops sending new connections before the VIP goes.
type Agent struct {
	DrainFile  string
	WeightFile string // holds a percentage 0..100, "50" or "50%"
	Log        *slog.Logger
	// Limits bounds clients' time, headers and connections; nil means
	// netlimit.Agent() (tests shorten it).
	Limits *netlimit.Limits

	draining atomic.Bool
}

// SetDraining forces "drain" regardless of the files (shutdown grace).
func (a *Agent) SetDraining(on bool) { a.draining.Store(on) }

// Status is the line the endpoint serves.
func (a *Agent) Status() string {
	if a.draining.Load() {
		return "drain"
	}
	if a.DrainFile != "" {
		if _, err := os.Stat(a.DrainFile); err == nil {
			return "drain"
		}
	}
	if a.WeightFile != "" {
		if b, err := os.ReadFile(a.WeightFile); err == nil {
			s := strings.TrimSuffix(strings.TrimSpace(string(b)), "%")
			if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 100 {
				return fmt.Sprintf("%d%%", n)
			}
			if a.Log != nil {
				a.Log.Warn("ignoring weight file: want a percentage 0..100", "file", a.WeightFile, "content", string(b))
			}
		}
	}
	return "up"
}

func (a *Agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, a.Status())
}

// Serve answers on ln until ctx ends, then closes it.
func (a *Agent) Serve(ctx context.Context, ln net.Listener) error {
	lim := netlimit.Agent()
	if a.Limits != nil {
		lim = *a.Limits
	}
	srv := lim.Server(a)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lim.Listener(ln)) }()
	select {
	case err := <-errc:
		return fmt.Errorf("agent: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// Drain creates the drain file: the agent reports "drain" until Undrain.
func Drain(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	return f.Close()
}

// Undrain removes the drain file; no file is not an error.
func Undrain(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("undrain: %w", err)
	}
	return nil
}
