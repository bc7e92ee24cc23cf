// Package metrics serves [director] metrics_address: Prometheus metrics at
// /metrics and the status page at / (a live HTML page for browsers, the
// plain-text table for curl; page.go).
//
// Metrics are computed at scrape time from the same Status that `director
// status` shows, so there is no second copy of the state to drift.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/golvs/golvs/director/status"
	"github.com/golvs/golvs/internal/netlimit"
)

// VRRPInfo is the failover state at scrape time.
type VRRPInfo struct {
	State    string // init | backup | master | fault
	Priority int
}

// Source is where the numbers come from.
type Source struct {
	Status func(ctx context.Context) (status.Status, error)
	// VRRP is nil without [failover].
	VRRP func() VRRPInfo
	// LocalErrors, when set, counts check results that were the
	// director's own fault (EMFILE...), which left the backend's state
	// alone.
	LocalErrors func() uint64
	// StalledProbes, when set, counts probes that timed out while the
	// director itself stalled, which left the backend's state alone.
	StalledProbes func() uint64
	// BGP is nil without [bgp] (see bgp.go).
	BGP func(ctx context.Context) *status.BGP
	// StateWrites, when set, reports the state file: how many writes
	// failed since start, and the last write's error (nil once written).
	StateWrites func() (failures uint64, last error)
	// Sync is nil without [failover.sync] (see sync.go).
	Sync func(ctx context.Context) (status.SyncStatus, error)
	// VRRPTransitions and HealthTransitions, when set, list the last
	// state changes with their reasons, newest first, for the page.
	VRRPTransitions   func() []string
	HealthTransitions func() []string
}

// vrrpStates are exported as one series each so a dashboard can alert on
// "no director is master".
var vrrpStates = []string{"init", "backup", "master", "fault"}

type collector struct {
	src     Source
	timeout time.Duration
	log     *slog.Logger

	up, weight, kernelWeight, active, inactive, draining, opDrain *prometheus.Desc
	inKernel, quorumUp, quorumLost                                *prometheus.Desc
	vrrpState, vrrpPriority, scrapeErr                            *prometheus.Desc
}

func newCollector(src Source, timeout time.Duration, log *slog.Logger) *collector {
	b := []string{"service", "backend"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("golvs_"+name, help, labels, nil)
	}
	return &collector{
		src: src, timeout: timeout, log: log,
		up:           d("backend_up", "1 if the backend's health check passes (drain counts as up).", b...),
		weight:       d("backend_configured_weight", "Weight from the topology file.", b...),
		kernelWeight: d("backend_kernel_weight", "Weight in the kernel's IPVS table; absent when the backend is not in it.", b...),
		active:       d("backend_active_connections", "IPVS active connections.", b...),
		inactive:     d("backend_inactive_connections", "IPVS inactive connections.", b...),
		draining:     d("backend_draining", "1 while a leaving backend waits at weight 0 for its connections to end.", b...),
		opDrain:      d("backend_operator_drain", "1 while an operator drain (director drain) is in force.", b...),
		inKernel:     d("service_in_kernel", "1 if the virtual service exists in the kernel.", "service"),
		quorumUp:     d("service_healthy_backends", "Configured backends whose check passes.", "service"),
		quorumLost:   d("service_quorum_lost", "1 while fewer backends serve than the service's quorum (the sorry server, if any, takes the traffic).", "service"),
		vrrpState:    d("vrrp_state", "1 for the current VRRP state.", "state"),
		vrrpPriority: d("vrrp_priority", "Current VRRP priority."),
		scrapeErr:    d("status_error", "1 if reading the kernel for this scrape failed."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.weight, c.kernelWeight, c.active, c.inactive, c.draining,
		c.opDrain, c.inKernel, c.quorumUp, c.quorumLost, c.vrrpState, c.vrrpPriority, c.scrapeErr} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if c.src.VRRP != nil {
		info := c.src.VRRP()
		for _, s := range vrrpStates {
			gauge(c.vrrpState, b2f(s == info.State), s)
		}
		gauge(c.vrrpPriority, float64(info.Priority))
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st, err := c.src.Status(ctx)
	gauge(c.scrapeErr, b2f(err != nil))
	if err != nil {
		c.log.Warn("metrics: reading status failed", "err", err)
		return
	}
	for _, s := range st.Services {
		gauge(c.inKernel, b2f(s.InKernel), s.Name)
		healthy := 0
		for _, b := range s.Backends {
			addr := b.Address.String()
			if b.Configured {
				up := b.Health == "up" || b.Health == "drain"
				if up {
					healthy++
				}
				gauge(c.up, b2f(up), s.Name, addr)
				gauge(c.weight, float64(b.ConfiguredWeight), s.Name, addr)
				gauge(c.opDrain, b2f(b.OperatorDrain), s.Name, addr)
			}
			if b.InKernel {
				gauge(c.kernelWeight, float64(b.KernelWeight), s.Name, addr)
				gauge(c.active, float64(b.ActiveConns), s.Name, addr)
				gauge(c.inactive, float64(b.InactiveConns), s.Name, addr)
			}
			gauge(c.draining, b2f(b.Draining), s.Name, addr)
		}
		gauge(c.quorumUp, float64(healthy), s.Name)
		gauge(c.quorumLost, b2f(s.QuorumLost), s.Name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Handler serves /metrics, the status page at / and its data at
// /status.json.
func Handler(src Source, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &pager{src: src, hist: newHistory(), now: time.Now}
	// Every reader, scrapes included, feeds the page's history.
	src.Status = p.status
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(src, 10*time.Second, log),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if src.LocalErrors != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "golvs_health_local_errors_total",
			Help: "Check results that failed on the director itself (e.g. out of file descriptors) and so left the backend's health as it was.",
		}, func() float64 { return float64(src.LocalErrors()) }))
	}
	if src.StalledProbes != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "golvs_health_probes_stalled_total",
			Help: "Probes that timed out while the director itself could not run for at least half their timeout (a starved VM), and so left the backend's health as it was.",
		}, func() float64 { return float64(src.StalledProbes()) }))
	}
	if src.StateWrites != nil {
		// A full or read-only disk does not stop the director, so only
		// these tell the operator that a restart would forget services.
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "golvs_state_write_error",
			Help: "1 while the last write of the state file failed (a full or read-only disk); every pass tries again.",
		}, func() float64 { _, err := src.StateWrites(); return b2f(err != nil) }))
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "golvs_state_write_errors_total",
			Help: "Writes of the state file that failed.",
		}, func() float64 { n, _ := src.StateWrites(); return float64(n) }))
	}
	if src.Sync != nil {
		reg.MustRegister(newSyncCollector(src.Sync, 10*time.Second, log))
	}
	if src.BGP != nil {
		reg.MustRegister(newBGPCollector(src.BGP, 10*time.Second))
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /{$}", p.serveRoot)
	mux.HandleFunc("GET /status.json", p.serveJSON)
	serveAssets(mux)
	return mux
}

// Listen binds addr; it is separate from Serve so a bad address fails the
// director's start instead of a background goroutine.
func Listen(addr string) (net.Listener, error) {
	return net.Listen("tcp", addr)
}

// Serve serves h on ln until ctx ends, with netlimit.Metrics().
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	return ServeLimits(ctx, ln, h, netlimit.Metrics())
}

// ServeLimits is Serve with other limits (tests shorten them).
func ServeLimits(ctx context.Context, ln net.Listener, h http.Handler, lim netlimit.Limits) error {
	srv := lim.Server(h)
	ln = lim.Listener(ln)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
