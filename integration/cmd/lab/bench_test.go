package main

import (
	"strings"
	"testing"
	"time"
)

// The raw block goes to the results file, not the console, and the
// table after it is kept for both.
func TestBenchRawSplit(t *testing.T) {
	out := "bench: 100 services: ipvsadm -R\n" + benchRawBegin + "\n{\"Services\":100}\n" + benchRawEnd + "\n\n  services ...\nok   100: ...\n"
	raw, report := splitRaw(out)
	if raw != "{\"Services\":100}\n" {
		t.Errorf("raw %q", raw)
	}
	if report != "\n  services ...\nok   100: ...\n" {
		t.Errorf("report %q", report)
	}
	var console strings.Builder
	f := &rawFilter{w: &console}
	for _, line := range strings.SplitAfter(out, "\n") {
		f.Write([]byte(line))
	}
	if strings.Contains(console.String(), "Services") || !strings.Contains(console.String(), "ok   100") {
		t.Errorf("console got %q", console.String())
	}
	if raw, _ := splitRaw("no markers\n"); raw != "" {
		t.Errorf("raw without markers: %q", raw)
	}
}

// Many-VIP runs get a file and a header of their own.
func TestBenchResultsName(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 5, 0, 0, time.UTC)
	name, layout := resultsName("/r", now, false)
	if name != "/r/2026-12-02T0805Z.txt" || !strings.Contains(layout, "one VIP,") {
		t.Errorf("default layout: %s (%s)", name, layout)
	}
	name, layout = resultsName("/r", now, true)
	if name != "/r/2026-12-02T0805Z-manyvip.txt" || !strings.Contains(layout, "one VIP per service") {
		t.Errorf("many VIPs: %s (%s)", name, layout)
	}
}
