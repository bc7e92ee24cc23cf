package check

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
)

// Agent asks the realserver agent how its host is. The agent answers a GET
// on http://BACKEND:PORT/path (port 9471 unless the check sets one) with
// status 200 and a short text body of whitespace- or comma-separated words:
//
//	up | ready    healthy, full weight
//	down | fail   not healthy (the reason is the rest of the body)
//	drain         healthy but wants no new connections (weight 0, keep
//	              existing ones)
//	N%            healthy, weight N percent (0..100) of the configured one
//
// "up 50%" and "drain" combine as expected; anything else fails the check,
// so a web server answering on the agent port by mistake is not taken as
// an agent saying up.
type Agent struct {
	path   string
	client *http.Client
}

// maxAgentBody bounds the agent's answer; real answers are a few bytes.
const maxAgentBody = 512

// ErrAgentDown is the error of an agent that reported down.
var ErrAgentDown = errors.New("agent reports down")

// NewAgent builds the checker; path "" means "/".
func NewAgent(path string) *Agent {
	if path == "" {
		path = "/"
	}
	return &Agent{
		path: path,
		client: &http.Client{
			Transport: &http.Transport{
				Proxy:                  nil,
				DisableKeepAlives:      true,
				MaxResponseHeaderBytes: maxBody,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
}

// Check reports the agent's answer as pass/fail (drain and weight count as
// a pass).
func (a *Agent) Check(ctx context.Context, t Target) error { return a.Probe(ctx, t).Err }

// Probe asks the agent once.
func (a *Agent) Probe(ctx context.Context, t Target) Result {
	u := url.URL{Scheme: "http", Host: t.Addr.String(), Path: a.path}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Up(fmt.Errorf("agent request: %w", err))
	}
	req.Header.Set("User-Agent", "golvs-health")
	resp, err := a.client.Do(req)
	if err != nil {
		return Up(fmt.Errorf("agent: %w", unwrapURL(err)))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Up(fmt.Errorf("agent: status %d, want 200", resp.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAgentBody+1))
	if err != nil {
		return Up(fmt.Errorf("agent: read: %w", unwrapURL(err)))
	}
	if len(body) > maxAgentBody {
		return Up(fmt.Errorf("agent: answer longer than %d bytes", maxAgentBody))
	}
	return ParseAgent(string(body))
}

// ParseAgent interprets an agent's answer (see Agent).
func ParseAgent(body string) Result {
	words := strings.FieldsFunc(body, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	if len(words) == 0 {
		return Up(errors.New("agent: empty answer"))
	}
	r := Result{WeightPercent: WeightNotReported}
	for i, w := range words {
		switch lw := strings.ToLower(w); {
		case lw == "up" || lw == "ready":
		case lw == "down" || lw == "fail":
			if rest := strings.Join(words[i+1:], " "); rest != "" {
				return Up(fmt.Errorf("%w: %s", ErrAgentDown, truncate(rest, 64)))
			}
			return Up(ErrAgentDown)
		case lw == "drain":
			r.Drain = true
		case strings.HasSuffix(lw, "%"):
			n, err := strconv.Atoi(strings.TrimSuffix(lw, "%"))
			if err != nil || n < 0 || n > 100 {
				return Up(fmt.Errorf("agent: bad weight %q", truncate(w, 16)))
			}
			r.WeightPercent = n
		default:
			return Up(fmt.Errorf("agent: unknown word %q", truncate(w, 16)))
		}
	}
	return r
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
