package metrics

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/golvs/golvs/director/status"
)

func fixedStatus(context.Context) (status.Status, error) {
	return status.Status{Services: []status.ServiceStatus{{
		Name: "web", Key: "tcp:10.0.0.10:80", InKernel: true, Quorum: 2, Serving: 1, QuorumLost: true,
		Backends: []status.BackendStatus{
			{Address: netip.MustParseAddrPort("10.0.1.1:80"), Configured: true, ConfiguredWeight: 3,
				InKernel: true, KernelWeight: 3, ActiveConns: 7, InactiveConns: 2, Health: "up"},
			{Address: netip.MustParseAddrPort("10.0.1.2:80"), Configured: true, ConfiguredWeight: 1,
				InKernel: true, KernelWeight: 0, Health: "down"},
			{Address: netip.MustParseAddrPort("10.0.1.3:80"), InKernel: true, KernelWeight: 0,
				ActiveConns: 1, Health: "-", Draining: true},
		},
	}}}, nil
}

func get(t *testing.T, src Source, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler(src, nil).ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func TestMetrics(t *testing.T) {
	src := Source{Status: fixedStatus, VRRP: func() VRRPInfo { return VRRPInfo{State: "master", Priority: 150} },
		LocalErrors: func() uint64 { return 4 }, StalledProbes: func() uint64 { return 6 }, StateWrites: func() (uint64, error) { return 3, errors.New("no space left on device") }}
	code, body := get(t, src, "/metrics")
	if code != 200 {
		t.Fatalf("status %d:\n%s", code, body)
	}
	for _, want := range []string{
		`golvs_backend_up{backend="10.0.1.1:80",service="web"} 1`,
		`golvs_backend_up{backend="10.0.1.2:80",service="web"} 0`,
		`golvs_backend_configured_weight{backend="10.0.1.1:80",service="web"} 3`,
		`golvs_backend_kernel_weight{backend="10.0.1.2:80",service="web"} 0`,
		`golvs_backend_active_connections{backend="10.0.1.1:80",service="web"} 7`,
		`golvs_backend_draining{backend="10.0.1.3:80",service="web"} 1`,
		`golvs_service_healthy_backends{service="web"} 1`,
		`golvs_service_in_kernel{service="web"} 1`,
		`golvs_vrrp_state{state="master"} 1`,
		`golvs_vrrp_state{state="backup"} 0`,
		`golvs_vrrp_priority 150`,
		`golvs_status_error 0`,
		`golvs_health_local_errors_total 4`,
		`golvs_health_probes_stalled_total 6`,
		`golvs_service_quorum_lost{service="web"} 1`,
		`golvs_state_write_error 1`,
		`golvs_state_write_errors_total 3`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("missing %q", want)
		}
	}
	// A leftover that is not configured has no health series.
	if strings.Contains(body, `golvs_backend_up{backend="10.0.1.3:80"`) {
		t.Error("unconfigured draining destination reported as a backend_up series")
	}
}

func TestMetricsStatusError(t *testing.T) {
	src := Source{Status: func(context.Context) (status.Status, error) {
		return status.Status{}, errors.New("netlink: timeout")
	}}
	_, body := get(t, src, "/metrics")
	if !strings.Contains(body, "golvs_status_error 1\n") {
		t.Errorf("want golvs_status_error 1 in:\n%s", body)
	}
	if code, _ := get(t, src, "/"); code != 503 {
		t.Errorf("status page with a failing kernel read: code %d, want 503", code)
	}
}

func TestStatusPage(t *testing.T) {
	code, body := get(t, Source{Status: fixedStatus}, "/")
	if code != 200 || !strings.Contains(body, "web") || !strings.Contains(body, "10.0.1.3:80") || !strings.Contains(body, "draining") {
		t.Errorf("status page %d:\n%s", code, body)
	}
}
