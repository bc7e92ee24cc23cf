package check

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/golvs/golvs/config"
)

// HTTP checks GET http(s)://target/path: the status must be one of
// ExpectStatus and, when ExpectBody is set, the first 64 KiB of the body
// must contain it.
type HTTP struct {
	scheme       string
	path         string
	query        string
	host         string
	expectStatus []int
	expectBody   []byte
	client       *http.Client
}

// NewHTTP builds the checker for an http or https cfg.
//
// The transport keeps no idle connections (DisableKeepAlives): every probe
// dials afresh, which is what a health check should measure, and one
// checker shared by many backends then holds no sockets between probes.
// It ignores proxy environment variables and follows no redirects (a 3xx
// is judged like any other status).
func NewHTTP(cfg *config.Check) *HTTP {
	h := &HTTP{
		scheme:       "http",
		path:         cfg.Path,
		host:         cfg.Host,
		expectStatus: cfg.ExpectStatus,
		expectBody:   []byte(cfg.ExpectBody),
	}
	if p, err := url.Parse(h.path); err == nil {
		// Keep a query string the operator wrote into path.
		h.path, h.query = p.Path, p.RawQuery
	}
	if h.path == "" {
		h.path = "/"
	}
	if len(h.expectStatus) == 0 {
		h.expectStatus = []int{http.StatusOK}
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: maxBody,
		DisableCompression:     true,
		ForceAttemptHTTP2:      false,
	}
	if cfg.Type == config.CheckHTTPS {
		h.scheme = "https"
		// ServerName "" makes Go verify against the dialled IP.
		tr.TLSClientConfig = &tls.Config{
			ServerName:         cfg.Host,
			InsecureSkipVerify: !cfg.TLSVerify,
		}
	}
	h.client = &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return h
}

// Check performs one GET.
func (h *HTTP) Check(ctx context.Context, t Target) (err error) {
	defer func() { err = Classify(err) }()
	u := url.URL{Scheme: h.scheme, Host: t.Addr.String(), Path: h.path, RawQuery: h.query}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	if h.host != "" {
		req.Host = h.host
	}
	req.Header.Set("User-Agent", "golvs-health")
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("get: %w", unwrapURL(err))
	}
	defer resp.Body.Close()
	if !slices.Contains(h.expectStatus, resp.StatusCode) {
		return fmt.Errorf("status %d, want %v", resp.StatusCode, h.expectStatus)
	}
	if len(h.expectBody) == 0 {
		return nil
	}
	// The request context bounds the read in time, the limit in size.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if bytes.Contains(body, h.expectBody) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read body: %w", unwrapURL(err))
	}
	return fmt.Errorf("body does not contain %s", strconv.Quote(string(h.expectBody)))
}

// unwrapURL drops url.Error's `Get "http://...":` prefix and the net.OpError
// prefixes below it, keeping the chain for errors.Is.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return unwrapOp(oe)
	}
	return err
}
