package check

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParseAgent(t *testing.T) {
	for _, tc := range []struct {
		body    string
		want    Result // Err compared as "nil or not"
		wantErr string
	}{
		{"up\n", Result{WeightPercent: -1}, ""},
		{"  READY ", Result{WeightPercent: -1}, ""},
		{"drain", Result{Drain: true, WeightPercent: -1}, ""},
		{"50%", Result{WeightPercent: 50}, ""},
		{"up 0%", Result{WeightPercent: 0}, ""},
		{"up,100%", Result{WeightPercent: 100}, ""},
		{"drain 30%", Result{Drain: true, WeightPercent: 30}, ""},
		{"down", Result{}, "agent reports down"},
		{"down disk full", Result{}, "agent reports down: disk full"},
		{"", Result{}, "empty answer"},
		{"101%", Result{}, "bad weight"},
		{"-1%", Result{}, "bad weight"},
		{"x%", Result{}, "bad weight"},
		{"<html>hello</html>", Result{}, "unknown word"},
	} {
		got := ParseAgent(tc.body)
		if tc.wantErr != "" {
			if got.Err == nil || !strings.Contains(got.Err.Error(), tc.wantErr) {
				t.Errorf("ParseAgent(%q).Err = %v, want %q", tc.body, got.Err, tc.wantErr)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("ParseAgent(%q) = %+v, want %+v", tc.body, got, tc.want)
		}
	}
	if r := ParseAgent("down"); !errors.Is(r.Err, ErrAgentDown) {
		t.Errorf("down: %v, want ErrAgentDown", r.Err)
	}
}

func TestAgent(t *testing.T) {
	answers := map[string]string{
		"/":        "up",
		"/drain":   "drain",
		"/half":    "50%",
		"/down":    "down maintenance",
		"/garbage": "hello world",
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/error":
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "up")
		case "/long":
			io.WriteString(w, strings.Repeat("up ", 10000))
		default:
			io.WriteString(w, answers[r.URL.Path])
		}
	}))
	defer srv.Close()
	tg := target(t, hostPort(srv))

	probe := func(path string) Result {
		ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
		defer cancel()
		return NewAgent(path).Probe(ctx, tg)
	}
	for _, tc := range []struct {
		path    string
		want    Result
		wantErr string
	}{
		{"", Result{WeightPercent: -1}, ""},
		{"/drain", Result{Drain: true, WeightPercent: -1}, ""},
		{"/half", Result{WeightPercent: 50}, ""},
		{"/down", Result{}, "agent reports down: maintenance"},
		{"/garbage", Result{}, `unknown word "hello"`},
		{"/error", Result{}, "status 500"},
		// Longer than any real answer: rejected, not read on.
		{"/long", Result{}, "longer than 512 bytes"},
	} {
		got := probe(tc.path)
		if tc.wantErr != "" {
			if got.Err == nil || !strings.Contains(got.Err.Error(), tc.wantErr) {
				t.Errorf("%q: err = %v, want %q", tc.path, got.Err, tc.wantErr)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.path, got, tc.want)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	start := time.Now()
	r := NewAgent("").Probe(ctx, target(t, hangingTCP(t)))
	wantTimeout(t, r.Err, time.Since(start))
}
