//go:build lab

package integration

import (
	"fmt"
	"strings"
	"testing"
)

// TestDirectorMetrics scrapes metrics_address from inside the director's
// namespace and checks the series against the kernel's own table: a
// stopped real server is down at weight 0, the others up at weight 1.
func TestDirectorMetrics(t *testing.T) {
	c := newCluster(t, "nat")
	services := c.service("web", "tcp", 80, "nat", "rr") + `[service.check]
type = "tcp"
interval = "200ms"
timeout = "200ms"
rise = 1
fall = 1
`
	key := "TCP " + vip + ":80"
	c.stopServer(2)
	down := c.rsAddrs[2] + ":80"
	c.startDirectorOn(c.director, `metrics_address = "127.0.0.1:9470"`, services, func(tab map[string]ipvsService) error {
		if got := tab[key].Backends[down]; got != "Masq 0" {
			return fmt.Errorf("stopped backend %s = %q, want Masq 0", down, got)
		}
		return nil
	})

	body := mustOut(c.director.Exec("curl", "-sf", "--max-time", "10", "http://127.0.0.1:9470/metrics"))
	for i, a := range c.rsAddrs {
		up, weight := "1", "1"
		if i == 2 {
			up, weight = "0", "0"
		}
		for _, want := range []string{
			fmt.Sprintf(`golvs_backend_up{backend="%s:80",service="web"} %s`, a, up),
			fmt.Sprintf(`golvs_backend_kernel_weight{backend="%s:80",service="web"} %s`, a, weight),
		} {
			if !strings.Contains(body, want+"\n") {
				t.Errorf("metrics lack %q", want)
			}
		}
	}
	if !strings.Contains(body, `golvs_service_healthy_backends{service="web"} 2`+"\n") ||
		!strings.Contains(body, "golvs_status_error 0\n") {
		t.Errorf("service series wrong:\n%s", grepLines(body, "golvs_service_", "golvs_status"))
	}
	// The kernel witness agrees.
	c.assertService(key, "rr", map[string]string{c.rsAddrs[0] + ":80": "Masq 1", c.rsAddrs[1] + ":80": "Masq 1", down: "Masq 0"})

	page := mustOut(c.director.Exec("curl", "-sf", "--max-time", "10", "http://127.0.0.1:9470/"))
	if !strings.Contains(page, "web") || !strings.Contains(page, down) || !strings.Contains(page, "down") {
		t.Errorf("status page:\n%s", page)
	}
}

func grepLines(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}
