package main

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// The end-to-end suite is split over guests that boot side by side, one per
// host CPU: under emulation each guest keeps one core busy, and the suite run
// in one guest took longer than CI allows.

// testWeights are durations seen for the suite's longer tests in a
// clean-clone CI run on a quiet 2-core host, two guests side by side
// (2026-12-03: shards 12m42s and 15m11s under the earlier figures); a
// test not listed counts as defaultWeight. They only balance the shards:
// a wrong figure makes one shard end later, never a test fail.
var testWeights = map[string]time.Duration{
	"TestConnSyncMixed":           134 * time.Second,
	"TestConnSyncKeepalived":      107 * time.Second,
	"TestChaosHealthFlapStorm":    120 * time.Second,
	"TestChaosLinkFlap":           81 * time.Second,
	"TestRollingKeepalivedIPv6":   63 * time.Second,
	"TestNATPairFailoverAddress":  63 * time.Second,
	"TestBGPConnectionsSurvive":   56 * time.Second,
	"TestConnSyncGolvs":           54 * time.Second,
	"TestRollingKeepalived":       46 * time.Second,
	"TestBGPDirector":             41 * time.Second,
	"TestFailoverKeepalived":      40 * time.Second,
	"TestBGPDirectorDrainSelf":    36 * time.Second,
	"TestMHOrderDirectors":        33 * time.Second,
	"TestFailoverKill9Preempt":    30 * time.Second,
	"TestSmokeIPVS":               30 * time.Second,
	"TestChaosKill9MidApply":      29 * time.Second,
	"TestFailoverAuth":            29 * time.Second,
	"TestFailoverTrackDecrement":  26 * time.Second,
	"TestFailoverSIGTERM":         26 * time.Second,
	"TestHealthRemoveDrainDR":     25 * time.Second,
	"TestHealthAgentDrainDR":      23 * time.Second,
	"TestHealthQuorumSorryDR":     20 * time.Second,
	"TestBGPECMP":                 19 * time.Second,
	"TestFailover":                18 * time.Second,
	"TestImportKeepalived":        16 * time.Second,
	"TestBGPHoldTimer":            15 * time.Second,
	"TestChaosStateDir":           14 * time.Second,
	"TestChaosTableWiped":         14 * time.Second,
	"TestBGPBFD":                  13 * time.Second,
	"TestDirectorDrain":           13 * time.Second,
	"TestRealserverRestartAdopts": 13 * time.Second,
	"TestMHOrderCanonical":        13 * time.Second,
	"TestBGPIPv6":                 12 * time.Second,
	"TestChaosReloadStorm":        12 * time.Second,
	"TestDirectorTUN":             12 * time.Second,
}

const defaultWeight = 10 * time.Second

// Pseudo-jobs that are not tests of the integration binary but take a
// shard's time all the same.
const (
	jobSystemd = "<systemd guest>"          // a second boot, systemd as PID 1
	jobTunMode = "<realserver TestTunMode>" // cmd/realserver's lab test
	// The status page in Chromium on this host against a director in its
	// own guest (integration/statuspage_browser_test.go).
	jobBrowser = "<status page in Chromium>"
)

// wideJob is the job of a test in wideTests: a guest of its own.
func wideJob(test string) string { return "<" + test + " in a wide guest>" }

// wideTest is the test a wideJob runs.
func wideTest(job string) (string, bool) {
	t, ok := strings.CutPrefix(job, "<")
	if !ok {
		return "", false
	}
	t, ok = strings.CutSuffix(t, " in a wide guest>")
	return t, ok && wideTests[t] > 1
}

var jobWeights = map[string]time.Duration{
	jobSystemd: 190 * time.Second, // its boot and its tests
	jobTunMode: 5 * time.Second,
	jobBrowser: 70 * time.Second, // its own boot, Chromium, the tests (41 s)
}

func weight(name string) time.Duration {
	if t, ok := wideTest(name); ok {
		name = t // its boot is in the figure
	}
	if w, ok := testWeights[name]; ok {
		return w
	}
	if w, ok := jobWeights[name]; ok {
		return w
	}
	return defaultWeight
}

// partition splits jobs into n shards of about equal weight: heaviest
// first, each to the lightest shard so far. Within a shard the jobs keep
// the suite's order. Pure, so that it is tested without a guest.
func partition(jobs []string, n int, weight func(string) time.Duration) [][]string {
	if n < 1 {
		n = 1
	}
	order := slices.Clone(jobs)
	slices.SortStableFunc(order, func(a, b string) int {
		return int(weight(b) - weight(a))
	})
	shard := make(map[string]int, len(jobs))
	load := make([]time.Duration, n)
	for _, j := range order {
		i := slices.Index(load, slices.Min(load))
		shard[j] = i
		load[i] += weight(j)
	}
	out := make([][]string, n)
	for _, j := range jobs {
		out[shard[j]] = append(out[shard[j]], j)
	}
	return out
}

// runRegexp is a go test -run pattern matching exactly these tests.
func runRegexp(tests []string) string {
	quoted := make([]string, len(tests))
	for i, t := range tests {
		quoted[i] = regexp.QuoteMeta(t)
	}
	return "^(" + strings.Join(quoted, "|") + ")$"
}

// listedTests parses `go test -list` output: the test names, without the
// summary line.
func listedTests(out []byte) []string {
	var tests []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "Test") && !strings.ContainsAny(line, " \t") {
			tests = append(tests, line)
		}
	}
	return tests
}

// prefixWriter writes whole lines to w, each starting with prefix, so that
// shards' outputs interleave by line; it also remembers each failed test's
// last lines, because CI shows only the tail of a run.
type prefixWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
	recent []string  // lines since the last test started, at most keepLines
	failed []failure // in the order they failed
}

// failure is a failed test and the last lines it printed before it ended.
type failure struct {
	test  string
	lines []string
}

// testMessage is a line a test printed with t.Log or t.Error.
var testMessage = regexp.MustCompile(`^[\w./-]+\.go:\d+: `)

// keepLines is how many of a failed test's last messages the summary
// keeps: the failure is among them unless clean-ups logged more.
const keepLines = 6

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		p.emit(p.buf[:i+1])
		p.buf = p.buf[i+1:]
	}
}

// Flush writes a last line that had no newline.
func (p *prefixWriter) Flush() {
	if len(p.buf) > 0 {
		p.emit(append(p.buf, '\n'))
		p.buf = nil
	}
}

func (p *prefixWriter) emit(line []byte) {
	p.note(strings.TrimRight(string(line), "\r\n"))
	p.mu.Lock()
	defer p.mu.Unlock()
	io.WriteString(p.w, p.prefix)
	p.w.Write(line)
}

// note keeps the lines of the running test and records it when it fails.
func (p *prefixWriter) note(line string) {
	trimmed := strings.TrimSpace(line)
	switch {
	case strings.HasPrefix(trimmed, "=== RUN"):
		p.recent = p.recent[:0]
	case strings.HasPrefix(trimmed, "--- FAIL: "):
		name, _, _ := strings.Cut(strings.TrimPrefix(trimmed, "--- FAIL: "), " ")
		p.failed = append(p.failed, failure{test: name, lines: slices.Clone(p.recent)})
	case strings.HasPrefix(trimmed, "panic: "):
		p.failed = append(p.failed, failure{test: "(panic)", lines: append(slices.Clone(p.recent), trimmed)})
	case testMessage.MatchString(trimmed) && !strings.HasSuffix(trimmed, ":"):
		// Only the test's own lines (file.go:N: ...), and not the headers
		// of the logs a failing test dumps from its clean-ups ("director
		// output:"), which come after its message.
		p.recent = append(p.recent, trimmed)
		if len(p.recent) > keepLines {
			p.recent = p.recent[len(p.recent)-keepLines:]
		}
	}
}

// failureSummary is the run's last words: which tests failed in which
// shard, each with its last lines.
func failureSummary(prefixes []string, failed [][]failure) string {
	var b strings.Builder
	for i, fs := range failed {
		for _, f := range fs {
			fmt.Fprintf(&b, "%sFAILED %s\n", prefixes[i], f.test)
			for _, l := range f.lines {
				fmt.Fprintf(&b, "%s    %s\n", prefixes[i], truncate(l, 300))
			}
		}
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
