package daemon

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/internal/dockersim"
)

func fmtSscan(s string, v any) (int, error) { return fmt.Sscan(s, v) }

var httpGet = http.Get

// gatherText is the registry's /metrics body.
func gatherText(t *testing.T, m *metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// documentedAtZero are the series that exist, at 0, before anything
// happened (issue 11 item 4: alert rules and rate() work from the first
// scrape). Sources are those of the config in TestMetricsFromStart.
var documentedAtZero = []string{
	`vmreconcile_runs_total{result="ok",task="audit"}`, `vmreconcile_runs_total{result="error",task="audit"}`,
	`vmreconcile_runs_total{result="error",task="lineage"}`, `vmreconcile_runs_total{result="ok",task="prune"}`,
	`vmreconcile_runs_skipped_total{task="audit"}`,
	`vmreconcile_job_last_success_timestamp_seconds{task="audit"}`,
	`vmreconcile_last_audit_success`, `vmreconcile_last_audit_timestamp_seconds`,
	`vmreconcile_api_errors_total{source="vc1.example.com",source_type="vcenter"}`,
	`vmreconcile_api_errors_total{source="prod",source_type="swarm"}`,
	`vmreconcile_event_stream_reconnects_total{source="prod",source_type="swarm"}`,
	`vmreconcile_source_last_success_timestamp_seconds{source="vc1.example.com",source_type="vcenter"}`,
	`vmreconcile_detection_triggered_runs_total{source_type="swarm"}`,
	`vmreconcile_detection_triggered_runs_total{source_type="vcenter"}`,
	`vmreconcile_alerts_sent_total{event="opened",sink="webhook"}`, `vmreconcile_alerts_sent_total{event="resolved",sink="alertmanager"}`,
	`vmreconcile_alerts_failed_total{event="resolved",sink="slack"}`, `vmreconcile_alerts_dropped_total{event="opened",sink="webhook"}`,
	`vmreconcile_remediation_actions_total{result="taken"}`, `vmreconcile_remediation_actions_total{result="failed"}`,
}

// TestMetricsFromStart: before any run, every documented counter and gauge
// is there at 0, vmreconcile_findings_open has a series for every kind and
// severity, build_info says the version and Go version, and the removed
// vmreconcile_up and the old single source label are gone.
func TestMetricsFromStart(t *testing.T) {
	cfg := baseConfig(t)
	cfg.VCenters = []config.VCenter{{URL: "https://vc1.example.com/sdk"}}
	cfg.Swarms = []config.Swarm{{Name: "prod", Hosts: []string{"tcp://127.0.0.1:1"}}}
	d, err := New(Options{Config: cfg, Store: alertWorld(t)})
	if err != nil {
		t.Fatal(err)
	}
	body := gatherText(t, d.m)
	for _, s := range documentedAtZero {
		if !strings.Contains(body, "\n"+s+" 0\n") {
			t.Errorf("%s is not at 0 from the start", s)
		}
	}
	for _, k := range findingKinds {
		for _, sev := range severities {
			s := fmt.Sprintf(`vmreconcile_findings_open{kind=%q,severity=%q} 0`, k, sev)
			if !strings.Contains(body, s) {
				t.Errorf("missing %s", s)
			}
		}
	}
	bi := fmt.Sprintf(`vmreconcile_build_info{goversion=%q,version=%q} 1`, runtime.Version(), buildVersion())
	if !strings.Contains(body, bi) || buildVersion() == "" {
		t.Errorf("no %s", bi)
	}
	for _, gone := range []string{"vmreconcile_up", `source="vcenter `, `source="swarm `, `job="`, `instance="`} {
		if strings.Contains(body, gone) {
			t.Errorf("/metrics still has %s", gone)
		}
	}
}

// TestMetricsPromlint runs client_golang's promlint on the real /metrics of
// a daemon that completed audits (against vcsim and the Docker API
// simulator) and asserts no problem at all, and that the last-audit gauges
// say the audit succeeded.
func TestMetricsPromlint(t *testing.T) {
	t.Parallel()
	_, vcCfg := startVCSim(t, 0)
	eng := dockersim.New(dockersim.Options{Self: dockersim.NodeSpec{Hostname: "mgr", NanoCPUs: 2e9, MemoryBytes: 4 << 30}})
	if err := eng.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	cfg := baseConfig(t)
	cfg.VCenters = []config.VCenter{vcCfg}
	cfg.Swarms = []config.Swarm{{Name: "sim", Hosts: []string{eng.Host()}}}
	r := startDaemon(t, cfg, cfg.Store.Path, nil)
	r.waitReady(t, 20*time.Second)
	if err := r.d.AuditNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	resp, err := httpGet(r.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	problems, err := promlint.New(resp.Body).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if v := r.metric(t, "vmreconcile_last_audit_success"); v != 1 {
		t.Errorf("last_audit_success = %v after a successful audit", v)
	}
	if v := r.metric(t, "vmreconcile_last_audit_timestamp_seconds"); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last_audit_timestamp_seconds = %v", v)
	}
	if v := r.metric(t, `vmreconcile_source_last_success_timestamp_seconds{source="sim",source_type="swarm"}`); v <= 0 {
		t.Errorf("swarm source timestamp = %v", v)
	}
}

// TestMetricsLastAuditFailed: an audit that cannot reach its swarm sets
// vmreconcile_last_audit_success to 0 (vmreconcile_up said 1 regardless).
func TestMetricsLastAuditFailed(t *testing.T) {
	t.Parallel()
	_, vcCfg := startVCSim(t, 0)
	cfg := baseConfig(t)
	cfg.VCenters = []config.VCenter{vcCfg}
	cfg.Swarms = []config.Swarm{{Name: "gone", Hosts: []string{"tcp://127.0.0.1:1"}}}
	r := startDaemon(t, cfg, cfg.Store.Path, nil)
	deadline := time.Now().Add(15 * time.Second)
	for r.metric(t, "vmreconcile_last_audit_timestamp_seconds") <= 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if v := r.metric(t, "vmreconcile_last_audit_timestamp_seconds"); v <= 0 {
		t.Fatalf("no audit finished: %v", v)
	}
	if v := r.metric(t, "vmreconcile_last_audit_success"); v != 0 {
		t.Errorf("last_audit_success = %v after a failed audit, want 0", v)
	}
}

var metricName = regexp.MustCompile(`\bvmreconcile_[a-z_]+[a-z]\b`)

// TestMetricsDocumented: docs/metrics.md names every vmreconcile_ metric
// the daemon exports, and no other.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, n := range metricName.FindAllString(string(doc), -1) {
		documented[n] = true
	}
	exported := map[string]bool{}
	for name := range exportedMetrics(t) {
		if strings.HasPrefix(name, "vmreconcile_") {
			exported[name] = true
			if !documented[name] {
				t.Errorf("%s is not in docs/metrics.md", name)
			}
		}
	}
	for n := range documented {
		if !exported[n] && !slices.Contains([]string{"vmreconcile_up"}, n) {
			t.Errorf("docs/metrics.md names %s, which the daemon does not export", n)
		}
	}
}
