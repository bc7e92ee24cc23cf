package health

import (
	"fmt"
	"testing"
)

// The ring keeps the last recentMax lines, newest first.
func TestRecentLogBounded(t *testing.T) {
	var r recentLog
	if got := r.newestFirst(); len(got) != 0 {
		t.Fatalf("empty ring gave %q", got)
	}
	for i := range recentMax + 5 {
		r.add(fmt.Sprint(i))
	}
	got := r.newestFirst()
	if len(got) != recentMax || got[0] != fmt.Sprint(recentMax+4) || got[recentMax-1] != "5" {
		t.Errorf("got %d lines %q..%q, want %d lines %d..5", len(got), got[0], got[len(got)-1], recentMax, recentMax+4)
	}
}
