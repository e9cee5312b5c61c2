package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vmreconcile/vmreconcile/store"
)

// Metric names (README, "Metrics"). Every metric lives in the daemon's own
// registry, never in the global default one.
type metrics struct {
	reg *prometheus.Registry

	findingsOpen     *prometheus.GaugeVec   // kind, severity
	jobLastSuccess   *prometheus.GaugeVec   // job
	jobLastDuration  *prometheus.GaugeVec   // job
	runs             *prometheus.CounterVec // job, result
	skipped          *prometheus.CounterVec // job
	apiErrors        *prometheus.CounterVec // source
	sourceLastOK     *prometheus.GaugeVec   // source
	streamReconnects *prometheus.CounterVec // source
	detectionRuns    *prometheus.CounterVec // source
	alertsSent       *prometheus.CounterVec // event
	alertsFailed     *prometheus.CounterVec // event
	actions          *prometheus.CounterVec // result
	up               prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.findingsOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vmreconcile_findings_open",
		Help: "Findings currently open in the store, by kind and severity.",
	}, []string{"kind", "severity"})
	m.jobLastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vmreconcile_job_last_success_timestamp_seconds",
		Help: "Unix time of the last successful run of each job (audit, lineage, prune).",
	}, []string{"job"})
	m.jobLastDuration = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vmreconcile_job_last_duration_seconds",
		Help: "Duration of the last run of each job, successful or not.",
	}, []string{"job"})
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmreconcile_runs_total",
		Help: "Job runs by job and result (ok, error).",
	}, []string{"job", "result"})
	m.skipped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmreconcile_runs_skipped_total",
		Help: "Scheduled runs skipped because the previous run of the same job was still running.",
	}, []string{"job"})
	m.apiErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmreconcile_api_errors_total",
		Help: "API errors by source (\"vcenter NAME\", \"swarm NAME\").",
	}, []string{"source"})
	m.sourceLastOK = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vmreconcile_source_last_success_timestamp_seconds",
		Help: "Unix time each source was last collected successfully (what /readyz checks).",
	}, []string{"source"})
	m.streamReconnects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmreconcile_event_stream_reconnects_total",
		Help: "Reconnections of the change streams (swarm node events, vSphere property updates).",
	}, []string{"source"})
	m.detectionRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmreconcile_detection_triggered_runs_total",
		Help: "Audit runs triggered by a change (node name flip, VM clone or power-on) rather than the schedule.",
	}, []string{"source"})
	m.alertsSent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmreconcile_alerts_sent_total",
		Help: "Alerts delivered to a webhook, by event (opened, resolved).",
	}, []string{"event"})
	m.alertsFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmreconcile_alerts_failed_total",
		Help: "Alerts a webhook did not accept after all retries, by event (they stay pending and are retried after the next run).",
	}, []string{"event"})
	m.actions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vmreconcile_remediation_actions_total",
		Help: "Automatic remediation attempts by result (taken, dry_run, refused, failed).",
	}, []string{"result"})
	m.up = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vmreconcile_up",
		Help: "1 while the daemon runs.",
	})
	m.reg.MustRegister(m.findingsOpen, m.jobLastSuccess, m.jobLastDuration, m.runs, m.skipped,
		m.apiErrors, m.sourceLastOK, m.streamReconnects, m.detectionRuns, m.alertsSent, m.alertsFailed,
		m.actions, m.up,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Pre-create the label sets people alert on, so that they read 0 rather
	// than being absent before the first event.
	for _, job := range []string{JobAudit, JobLineage, JobPrune} {
		m.skipped.WithLabelValues(job)
		m.runs.WithLabelValues(job, "ok")
		m.runs.WithLabelValues(job, "error")
	}
	for _, ev := range []string{EventOpened, EventResolved} {
		m.alertsSent.WithLabelValues(ev)
		m.alertsFailed.WithLabelValues(ev)
	}
	for _, r := range []string{"taken", "dry_run", "refused", "failed"} {
		m.actions.WithLabelValues(r)
	}
	return m
}

// setOpenFindings replaces the open-findings gauge with the store's view.
func (m *metrics) setOpenFindings(open []store.StoredFinding) {
	m.findingsOpen.Reset()
	for _, f := range open {
		m.findingsOpen.WithLabelValues(f.Kind, string(f.Severity)).Inc()
	}
}
