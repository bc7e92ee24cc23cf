package main

import "testing"

// Each benchmark's raw lines and the table printed after them are found
// in go test -v output, which goes on after the table.
func TestFailoverSection(t *testing.T) {
	out := "=== RUN   TestFailoverConnsBench\n    x_test.go:1: run 1\n" +
		"GOLVS-FAILOVER-CONNS-RAW-BEGIN\n{\"impl\":\"golvs\"}\n{\"impl\":\"keepalived\"}\nGOLVS-FAILOVER-CONNS-RAW-END\n" +
		"connections kept\nimpl  phase\n\nper implementation\n--- PASS: TestFailoverConnsBench (1.00s)\nPASS\n"
	raw, table, ok := failoverSection(out, "GOLVS-FAILOVER-CONNS-RAW-BEGIN", "GOLVS-FAILOVER-CONNS-RAW-END")
	if !ok || raw != "{\"impl\":\"golvs\"}\n{\"impl\":\"keepalived\"}\n" || table != "connections kept\nimpl  phase\n\nper implementation\n" {
		t.Errorf("section: %v %q %q", ok, raw, table)
	}
	if _, _, ok := failoverSection(out, "GOLVS-FAILOVER-BENCH-RAW-BEGIN", "GOLVS-FAILOVER-BENCH-RAW-END"); ok {
		t.Error("found a section that is not there")
	}
	if s := loadSummary([]loadSample{{load: 3, guests: 2}, {load: 9, guests: 4}, {load: 5, guests: 3}}); s == "" {
		t.Error("no load summary")
	}
}
