package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestHTTPClientCounts(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%3 == 0 {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "rs1")
	}))
	defer srv.Close()
	r := httpClient(t.Context(), srv.URL, 9, time.Second)
	if r.Counts["rs1"] != 6 || r.Failures != 3 {
		t.Errorf("httpClient = %+v, want 6 answers from rs1 and 3 failures", r)
	}
}

func TestPollMeasuresOutage(t *testing.T) {
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "rs1")
	}))
	defer srv.Close()
	// Down for a stretch in the middle of the poll, flipped by wall clock:
	// poll measures real time, so this test does too, with wide bounds.
	time.AfterFunc(200*time.Millisecond, func() { down.Store(true) })
	time.AfterFunc(700*time.Millisecond, func() { down.Store(false) })
	first := 0
	r := poll(t.Context(), srv.URL, 10*time.Millisecond, 1200*time.Millisecond, time.Second, func() { first++ })
	if first != 1 {
		t.Errorf("firstAnswer called %d times, want 1", first)
	}
	if r.Failures == 0 || r.Counts["rs1"] == 0 {
		t.Fatalf("poll = %+v, want both failures and answers", r)
	}
	if r.LongestOutageMS < 300 || r.LongestOutageMS > 1000 {
		t.Errorf("longest outage %dms, want about 500ms", r.LongestOutageMS)
	}
	if len(r.Outages) != 1 || r.Outages[0].EndMS-r.Outages[0].StartMS != r.LongestOutageMS {
		t.Errorf("outages %+v, want one of %dms", r.Outages, r.LongestOutageMS)
	}
}
