package check

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golvs/golvs/config"
)

func httpCheck(cfg config.Check) *HTTP {
	if cfg.Type == "" {
		cfg.Type = config.CheckHTTP
	}
	return NewHTTP(&cfg)
}

func hostPort(s *httptest.Server) string {
	return strings.TrimPrefix(strings.TrimPrefix(s.URL, "http://"), "https://")
}

func TestHTTP(t *testing.T) {
	big := strings.Repeat("x", 1024)
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "all ok\n") })
	mux.HandleFunc("/query", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "full=1" {
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	mux.HandleFunc("/503", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/host", func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "www.example.com" {
			w.WriteHeader(http.StatusMisdirectedRequest)
		}
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	// Sends the headers, then a body that never ends and never grows.
	mux.HandleFunc("/trickle", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "wait")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	// 100 MiB without the expected text; "ok" comes after all of it.
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 100<<10; i++ {
			if _, err := io.WriteString(w, big); err != nil {
				return
			}
		}
		io.WriteString(w, "ok")
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := hostPort(srv)

	for _, tc := range []struct {
		name    string
		cfg     config.Check
		wantErr string // "" = pass
	}{
		{"healthy", config.Check{Path: "/ok", ExpectBody: "ok"}, ""},
		{"healthy no body check", config.Check{Path: "/ok"}, ""},
		{"query kept", config.Check{Path: "/query?full=1"}, ""},
		{"wrong status", config.Check{Path: "/503"}, "status 503, want [200]"},
		{"expected status", config.Check{Path: "/503", ExpectStatus: []int{200, 503}}, ""},
		{"not found", config.Check{Path: "/nope"}, "status 404, want [200]"},
		{"wrong body", config.Check{Path: "/ok", ExpectBody: "healthy"}, `body does not contain "healthy"`},
		{"redirect not followed", config.Check{Path: "/redirect"}, "status 302, want [200]"},
		{"host header", config.Check{Path: "/host", Host: "www.example.com"}, ""},
		{"host header missing", config.Check{Path: "/host"}, "status 421"},
		{"huge body", config.Check{Path: "/huge", ExpectBody: "ok"}, `body does not contain "ok"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err, _ := run(t, httpCheck(tc.cfg), addr)
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("err = %v, want pass", err)
				}
				return
			}
			wantErrContains(t, err, tc.wantErr)
		})
	}

	t.Run("slow", func(t *testing.T) {
		err, took := run(t, httpCheck(config.Check{Path: "/slow"}), addr)
		wantTimeout(t, err, took)
	})
	t.Run("body never ends", func(t *testing.T) {
		err, took := run(t, httpCheck(config.Check{Path: "/trickle", ExpectBody: "ok"}), addr)
		wantTimeout(t, err, took)
	})
	t.Run("hanging", func(t *testing.T) {
		err, took := run(t, httpCheck(config.Check{}), hangingTCP(t))
		wantTimeout(t, err, took)
	})
	t.Run("refused", func(t *testing.T) {
		err, took := run(t, httpCheck(config.Check{}), closedPort(t, "tcp"))
		wantRefused(t, err, took)
	})
}

// TestHTTPHugeBodyBounded checks that a 100 MiB body costs neither time nor
// memory: the checker reads 64 KiB and hangs up.
func TestHTTPHugeBodyBounded(t *testing.T) {
	var sent atomic.Int64
	chunk := make([]byte, 32<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for sent.Load() < 100<<20 {
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err, took := run(t, httpCheck(config.Check{ExpectBody: "needle"}), hostPort(srv))
	runtime.ReadMemStats(&after)
	wantErrContains(t, err, `body does not contain "needle"`)
	if took > testTimeout {
		t.Errorf("check took %v, want it to stop reading early", took)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("check allocated %d bytes, want < 8 MiB", alloc)
	}
	srv.Close() // waits for the handler: it must have stopped early.
	if n := sent.Load(); n >= 100<<20 {
		t.Errorf("server sent all %d bytes: the checker read the whole body", n)
	}
}

func TestHTTPS(t *testing.T) {
	var sni atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "host=%s", r.Host)
	}))
	srv.TLS = &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		sni.Store(h.ServerName)
		return nil, nil
	}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // expected handshake failures
	srv.StartTLS()
	defer srv.Close()
	addr := hostPort(srv)

	c := httpCheck(config.Check{Type: config.CheckHTTPS, Host: "www.example.com", ExpectBody: "host=www.example.com"})
	if err, _ := runFor(t, c, addr, 10*time.Second); err != nil {
		t.Fatalf("tls_verify=false: %v", err)
	}
	if got := sni.Load(); got != "www.example.com" {
		t.Errorf("SNI = %q, want www.example.com", got)
	}

	// httptest's certificate is not signed by a CA the system trusts.
	c = httpCheck(config.Check{Type: config.CheckHTTPS, Host: "example.com", TLSVerify: true})
	err, _ := runFor(t, c, addr, 10*time.Second)
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	if !errors.As(err, &cve) || !errors.As(err, &uae) {
		t.Errorf("tls_verify=true: err = %v, want an unknown authority error", err)
	}

	// Plain HTTP to a TLS port fails (and does not hang).
	err, _ = runFor(t, httpCheck(config.Check{}), addr, 10*time.Second)
	wantErrContains(t, err, "status 400")
}
