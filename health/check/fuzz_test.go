package check

import (
	"fmt"
	"strings"
	"testing"
)

// FuzzParseAgent feeds the agent-reply parser arbitrary answers (the
// agent port is reachable by anyone on the backend's host). It must not
// panic; its error message stays short whatever the answer's size (it is
// shown in status and logs); a pass carries a weight in 0..100 or none;
// and the canonical spelling of what it read reads back the same.
func FuzzParseAgent(f *testing.F) {
	for _, s := range []string{
		"up\n", "ready", "drain", "50%", "up 0%", "up,100%", "drain 30%\n",
		"down", "down disk full", "fail", "", "101%", "-1%", "+5%", "x%",
		"%", "UP\tDRAIN\r\n75%", "<html>hello</html>", "up down", "down " + strings.Repeat("x", 600),
		"\u00a0up\u2028", "9999999999999999999%", "up,,,drain",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := ParseAgent(body)
		if r.Err != nil {
			if n := len(r.Err.Error()); n > 200 {
				t.Fatalf("error message of %d bytes: %.80q...", n, r.Err.Error())
			}
			if r.Drain || r.WeightPercent != WeightNotReported {
				t.Fatalf("failed answer carries drain/weight: %+v", r)
			}
			return
		}
		if r.WeightPercent != WeightNotReported && (r.WeightPercent < 0 || r.WeightPercent > 100) {
			t.Fatalf("weight %d%% accepted from %q", r.WeightPercent, body)
		}
		canon := "up"
		if r.Drain {
			canon += " drain"
		}
		if r.WeightPercent != WeightNotReported {
			canon += fmt.Sprintf(" %d%%", r.WeightPercent)
		}
		if again := ParseAgent(canon); again != r {
			t.Fatalf("%q read as %+v, its canonical form %q as %+v", body, r, canon, again)
		}
	})
}
