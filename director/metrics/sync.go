package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/director/status"
)

// syncCollector exports connection sync ([failover.sync]) at scrape time.
type syncCollector struct {
	read    func(ctx context.Context) (status.SyncStatus, error)
	timeout time.Duration
	log     *slog.Logger

	running, asConfigured, conns, synced, readErr *prometheus.Desc
}

func newSyncCollector(read func(ctx context.Context) (status.SyncStatus, error), timeout time.Duration, log *slog.Logger) *syncCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("golvs_sync_"+name, help, labels, nil)
	}
	return &syncCollector{read: read, timeout: timeout, log: log,
		running:      d("daemon_running", "1 while the kernel runs this sync daemon.", "state"),
		asConfigured: d("daemon_as_configured", "1 while the sync daemon runs with the configured settings.", "state"),
		conns:        d("connections", "IPVS connection entries by origin: made here (local) or received from the peer (sync).", "origin"),
		synced:       d("synced_connections", "Connection entries received from the peer, by protocol state.", "state"),
		readErr:      d("status_error", "1 if reading the sync daemons for this scrape failed."),
	}
}

func (c *syncCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.running, c.asConfigured, c.conns, c.synced, c.readErr} {
		ch <- d
	}
}

func (c *syncCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st, err := c.read(ctx)
	gauge(c.readErr, b2f(err != nil))
	if err != nil {
		c.log.Warn("metrics: reading the sync daemons failed", "err", err)
		return
	}
	for _, s := range []ipvs.SyncState{ipvs.SyncMaster, ipvs.SyncBackup} {
		state := st.DaemonState(s)
		gauge(c.running, b2f(state != "stopped"), s.String())
		gauge(c.asConfigured, b2f(state == "running"), s.String())
	}
	if o := st.Origins; o != nil {
		gauge(c.conns, float64(o.Local), "local")
		gauge(c.conns, float64(o.Synced), "sync")
		for state, n := range o.SyncedByState {
			gauge(c.synced, float64(n), state)
		}
	}
}
