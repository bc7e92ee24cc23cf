package main

import (
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPartition(t *testing.T) {
	w := map[string]time.Duration{"A": 100 * time.Second, "B": 60 * time.Second, "C": 50 * time.Second, "D": 10 * time.Second, "E": 10 * time.Second}
	weigh := func(s string) time.Duration { return w[s] }
	jobs := []string{"E", "A", "D", "B", "C"}
	got := partition(jobs, 2, weigh)
	if len(got) != 2 {
		t.Fatalf("%d shards, want 2", len(got))
	}
	// Heaviest first to the lightest shard: A | B, C | D (tie: first) | E.
	want := [][]string{{"E", "A", "D"}, {"B", "C"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("partition = %v, want %v", got, want)
	}
	var all []string
	for _, s := range got {
		all = append(all, s...)
	}
	slices.Sort(all)
	if !slices.Equal(all, []string{"A", "B", "C", "D", "E"}) {
		t.Errorf("jobs lost or repeated: %v", all)
	}
	if one := partition(jobs, 1, weigh); len(one) != 1 || !slices.Equal(one[0], jobs) {
		t.Errorf("one shard = %v, want the suite's order %v", one, jobs)
	}
}

func TestRunRegexp(t *testing.T) {
	re := regexp.MustCompile(runRegexp([]string{"TestFailover", "TestBGPECMP"}))
	for name, want := range map[string]bool{"TestFailover": true, "TestBGPECMP": true, "TestFailoverAuth": false, "XTestBGPECMP": false} {
		if re.MatchString(name) != want {
			t.Errorf("%s: match %v, want %v", name, !want, want)
		}
	}
}

func TestListedTests(t *testing.T) {
	out := []byte("TestA\nTestB\nok  \tgithub.com/golvs/golvs/integration\t0.01s\n")
	if got := listedTests(out); !slices.Equal(got, []string{"TestA", "TestB"}) {
		t.Errorf("listedTests = %v", got)
	}
}

func TestPrefixWriter(t *testing.T) {
	var mu sync.Mutex
	var b strings.Builder
	p := &prefixWriter{mu: &mu, w: &b, prefix: "[2] "}
	p.Write([]byte("one\ntw"))
	p.Write([]byte("o\nthree"))
	p.Flush()
	if want := "[2] one\n[2] two\n[2] three\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestPrefixWriterFailures(t *testing.T) {
	var mu sync.Mutex
	var b strings.Builder
	p := &prefixWriter{mu: &mu, w: &b, prefix: "[1] "}
	p.Write([]byte("=== RUN   TestA\n    a_test.go:1: fine\n--- PASS: TestA (1.00s)\n" +
		"=== RUN   TestB\n    b_test.go:1: one\n    b_test.go:2: two\n    b_test.go:3: three\n" +
		"    b_test.go:4: four\n    b_test.go:5: five\n    b_test.go:6: six\n    b_test.go:7: boom\n" +
		"    b_test.go:8: keepalived's log:\n        line one\n        line two\n" +
		"--- FAIL: TestB (2.00s)\n=== RUN   TestC\n--- PASS: TestC (0.00s)\n"))
	if len(p.failed) != 1 || p.failed[0].test != "TestB" {
		t.Fatalf("failed = %+v, want TestB alone", p.failed)
	}
	got := failureSummary([]string{"[1] "}, [][]failure{p.failed})
	want := "[1] FAILED TestB\n[1]     b_test.go:2: two\n[1]     b_test.go:3: three\n[1]     b_test.go:4: four\n" +
		"[1]     b_test.go:5: five\n[1]     b_test.go:6: six\n[1]     b_test.go:7: boom\n"
	if got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
}

// TestWideJob: a wide test's job names it back and weighs what the test
// does; other names are not wide jobs.
func TestWideJob(t *testing.T) {
	for test := range wideTests {
		j := wideJob(test)
		if got, ok := wideTest(j); !ok || got != test {
			t.Errorf("wideTest(%q) = %q, %v; want %q", j, got, ok, test)
		}
		if weight(j) != weight(test) {
			t.Errorf("weight(%q) = %v, want the test's %v", j, weight(j), weight(test))
		}
	}
	for _, j := range []string{"TestSmokeIPVS", jobSystemd, jobBrowser, wideJob("TestSmokeIPVS")} {
		if got, ok := wideTest(j); ok {
			t.Errorf("wideTest(%q) = %q, true; want not a wide job", j, got)
		}
	}
}
