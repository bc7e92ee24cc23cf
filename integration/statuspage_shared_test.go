//go:build lab || browser

package integration

// What the two halves of the status page's browser test share: the guest
// half (statuspage_lab_test.go) and the host half
// (statuspage_browser_test.go).

// Env of TestStatusPageLabGuest, set by its host half.
const (
	envPagePort    = "GOLVS_PAGE_PORT"
	envControlPort = "GOLVS_CONTROL_PORT"
)

// pageCheck is what the guest tells the host over the control endpoint:
// the backend it will kill and the check timing the director runs, from
// which the host derives its bound.
type pageCheck struct {
	Backend    string `json:"backend"`
	IntervalMS int64  `json:"interval_ms"`
	TimeoutMS  int64  `json:"timeout_ms"`
	Fall       int    `json:"fall"`
}
