package daemon

import (
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/store"
)

// Version is the version vmreconcile_build_info reports. The command sets it
// (its build version); when empty, the main module's version from the Go
// build info is used ("dev" for a plain `go build` in the repository).
var Version = ""

// Sink types, as the alert metrics' sink label names them.
const (
	SinkWebhook      = "webhook"
	SinkAlertmanager = "alertmanager"
	SinkSlack        = "slack"
)

// Source types, as the source_type label names them.
const (
	SourceVCenter    = "vcenter"
	SourceSwarm      = "swarm"
	SourceKubernetes = "kubernetes"
)

// findingKinds are the kinds whose vmreconcile_findings_open series exist
// (at 0) from the start; a kind not listed still gets its series when open.
var findingKinds = []string{
	reconcile.KindSharedNodeID, reconcile.KindNodeFlapping, reconcile.KindCloneOfSwarmNode,
	reconcile.KindTemplateCarriesSwarm, reconcile.KindDuplicateBIOSUUID, reconcile.KindDuplicateMAC,
	reconcile.KindDuplicateHostname, reconcile.KindNodeWithoutVM, reconcile.KindNodeReadyVMOff,
	reconcile.KindSharedEngineID, reconcile.KindSharedMachineID,
	reconcile.KindSharedK8sNode, reconcile.KindK8sNodeFlapping, reconcile.KindCloneOfK8sNode,
	reconcile.KindTemplateCarriesKubelet,
}

var severities = []reconcile.Severity{reconcile.Info, reconcile.Warning, reconcile.Critical}

// metrics are the daemon's Prometheus metrics (docs/metrics.md). Every metric
// lives in the daemon's own registry, never in the global default one.
type metrics struct {
	reg *prometheus.Registry

	buildInfo        *prometheus.GaugeVec // version, goversion
	findingsOpen     *prometheus.GaugeVec // kind, severity
	jobLastSuccess   *prometheus.GaugeVec // task (not "job": Prometheus owns that label)
	jobLastDuration  *prometheus.GaugeVec // task
	lastAuditSuccess prometheus.Gauge
	lastAuditTime    prometheus.Gauge
	runs             *prometheus.CounterVec // task, result
	skipped          *prometheus.CounterVec // task
	apiErrors        sourceCounter          // source_type, source
	sourceLastOK     sourceGauge            // source_type, source
	streamReconnects sourceCounter          // source_type, source
	detectionRuns    typeCounter            // source_type
	alertsSent       *prometheus.CounterVec // sink, event
	alertsFailed     *prometheus.CounterVec // sink, event
	alertsDropped    *prometheus.CounterVec // sink, event
	actions          *prometheus.CounterVec // result
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m.buildInfo = gauge("vmreconcile_build_info", "Always 1; the labels say which vmreconcile and Go built this daemon.", "version", "goversion")
	m.findingsOpen = gauge("vmreconcile_findings_open", "Findings currently open in the store, by kind and severity.", "kind", "severity")
	m.jobLastSuccess = gauge("vmreconcile_job_last_success_timestamp_seconds", "Unix time of the last successful run of each task (audit, lineage, prune); 0 before the first.", "task")
	m.jobLastDuration = gauge("vmreconcile_job_last_duration_seconds", "Duration of the last run of each task, successful or not.", "task")
	m.lastAuditSuccess = prometheus.NewGauge(prometheus.GaugeOpts{Name: "vmreconcile_last_audit_success",
		Help: "1 when the last audit collected every source and was recorded, 0 when it failed or none finished yet."})
	m.lastAuditTime = prometheus.NewGauge(prometheus.GaugeOpts{Name: "vmreconcile_last_audit_timestamp_seconds",
		Help: "Unix time the last audit finished, successful or not; 0 before the first."})
	m.runs = counter("vmreconcile_runs_total", "Task runs (audit, lineage, prune) by task and result (ok, error).", "task", "result")
	m.skipped = counter("vmreconcile_runs_skipped_total", "Scheduled runs skipped because the previous run of the same task was still running.", "task")
	m.apiErrors = sourceCounter{counter("vmreconcile_api_errors_total", "API errors by source (source_type vcenter or swarm, source its host or name).", "source_type", "source")}
	m.sourceLastOK = sourceGauge{gauge("vmreconcile_source_last_success_timestamp_seconds", "Unix time each source was last collected successfully (what /readyz checks); 0 before the first.", "source_type", "source")}
	m.streamReconnects = sourceCounter{counter("vmreconcile_event_stream_reconnects_total", "Reconnections of the change streams (swarm node events, vCenter property updates).", "source_type", "source")}
	m.detectionRuns = typeCounter{counter("vmreconcile_detection_triggered_runs_total", "Audit runs triggered by a change (node name flip, VM clone or power-on) rather than the schedule, by the source type that saw it.", "source_type")}
	m.alertsSent = counter("vmreconcile_alerts_sent_total", "Alerts a sink accepted, by sink type (webhook, alertmanager, slack) and event (opened, resolved).", "sink", "event")
	m.alertsFailed = counter("vmreconcile_alerts_failed_total", "Alert deliveries that failed after all retries, by sink type and event; the alert is tried again later unless dropped.", "sink", "event")
	m.alertsDropped = counter("vmreconcile_alerts_dropped_total", "Alerts given up on (the sink refused them with HTTP 4xx after all retries), by sink type and event; recorded in the store.", "sink", "event")
	m.actions = counter("vmreconcile_remediation_actions_total", "Automatic remediation attempts by result (taken, dry_run, refused, failed).", "result")
	m.reg.MustRegister(m.buildInfo, m.findingsOpen, m.jobLastSuccess, m.jobLastDuration, m.lastAuditSuccess, m.lastAuditTime,
		m.runs, m.skipped, m.apiErrors.v, m.sourceLastOK.v, m.streamReconnects.v, m.detectionRuns.v,
		m.alertsSent, m.alertsFailed, m.alertsDropped, m.actions,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.buildInfo.WithLabelValues(buildVersion(), runtime.Version()).Set(1)
	m.precreate()
	return m
}

// precreate makes every documented series read 0 from the start rather than
// be absent until its first event: rate() and alert rules then work from the
// first scrape.
func (m *metrics) precreate() {
	for _, job := range []string{JobAudit, JobLineage, JobPrune} {
		m.skipped.WithLabelValues(job)
		m.runs.WithLabelValues(job, "ok")
		m.runs.WithLabelValues(job, "error")
		m.jobLastSuccess.WithLabelValues(job)
		m.jobLastDuration.WithLabelValues(job)
	}
	for _, sink := range []string{SinkWebhook, SinkAlertmanager, SinkSlack} {
		for _, ev := range []string{EventOpened, EventResolved} {
			m.alertsSent.WithLabelValues(sink, ev)
			m.alertsFailed.WithLabelValues(sink, ev)
			m.alertsDropped.WithLabelValues(sink, ev)
		}
	}
	for _, r := range []string{"taken", "dry_run", "refused", "failed"} {
		m.actions.WithLabelValues(r)
	}
	for _, t := range []string{SourceVCenter, SourceSwarm, SourceKubernetes} {
		m.detectionRuns.v.WithLabelValues(t)
	}
	m.setOpenFindings(nil)
}

// initSources creates the per-source series of the configured sources
// ("vcenter HOST", "swarm NAME") at 0.
func (m *metrics) initSources(labels []string) {
	for _, l := range labels {
		m.apiErrors.WithLabelValues(l)
		m.streamReconnects.WithLabelValues(l)
		m.sourceLastOK.WithLabelValues(l)
	}
}

// jobFinished records the end of a job run (called for every job; only
// audits move the last-audit gauges).
func (m *metrics) jobFinished(job string, ok bool, at time.Time) {
	if job != JobAudit {
		return
	}
	if ok {
		m.lastAuditSuccess.Set(1)
	} else {
		m.lastAuditSuccess.Set(0)
	}
	m.lastAuditTime.Set(float64(at.Unix()))
}

// setOpenFindings replaces the open-findings gauge with the store's view:
// every known kind and severity at 0, plus the open counts.
func (m *metrics) setOpenFindings(open []store.StoredFinding) {
	m.findingsOpen.Reset()
	for _, k := range findingKinds {
		for _, s := range severities {
			m.findingsOpen.WithLabelValues(k, string(s))
		}
	}
	for _, f := range open {
		m.findingsOpen.WithLabelValues(f.Kind, string(f.Severity)).Inc()
	}
}

// buildVersion is Version, or the main module's version, or "dev".
func buildVersion() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// splitSource turns a source label ("vcenter HOST", "swarm NAME") into its
// source_type and source labels. The detection trigger's "vsphere" is the
// vcenter type.
func splitSource(label string) (typ, name string) {
	typ, name, _ = strings.Cut(label, " ")
	if typ == "vsphere" {
		typ = SourceVCenter
	}
	return typ, name
}

// sourceCounter is a counter by source_type and source, taking the daemon's
// one-string source label.
type sourceCounter struct{ v *prometheus.CounterVec }

func (s sourceCounter) WithLabelValues(label string) prometheus.Counter {
	t, n := splitSource(label)
	return s.v.WithLabelValues(t, n)
}

// sourceGauge is a gauge by source_type and source.
type sourceGauge struct{ v *prometheus.GaugeVec }

func (s sourceGauge) WithLabelValues(label string) prometheus.Gauge {
	t, n := splitSource(label)
	return s.v.WithLabelValues(t, n)
}

// typeCounter is a counter by source_type, taking "swarm" or "vsphere".
type typeCounter struct{ v *prometheus.CounterVec }

func (s typeCounter) WithLabelValues(typ string) prometheus.Counter {
	t, _ := splitSource(typ)
	return s.v.WithLabelValues(t)
}
