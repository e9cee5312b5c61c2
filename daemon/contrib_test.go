package daemon

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

const (
	rulesFile     = "../contrib/prometheus/alerts.yml"
	rulesTestFile = "../contrib/prometheus/alerts_test.yml"
	dashboardFile = "../contrib/grafana/vmreconcile.json"
)

// exportedMetrics is the set of metric families the daemon exports.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	m := newMetrics()
	m.initSources([]string{"vcenter vc1", "swarm prod"}) // per-source families have no series without sources
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, f := range fams {
		out[f.GetName()] = true
	}
	return out
}

// TestPrometheusRules runs promtool (Debian's prometheus package) on
// contrib/prometheus: `check rules` on the alerts, `test rules` on their
// unit tests, which must have a case for every alert; and every metric the
// rules query must be one the daemon exports.
func TestPrometheusRules(t *testing.T) {
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	alerts := regexp.MustCompile(`(?m)^\s*- alert: (\S+)`).FindAllStringSubmatch(string(rules), -1)
	if len(alerts) < 4 {
		t.Fatalf("%d alerts in %s, want at least the four of issue 11 (critical shared node, stale source, failed runs, alerts failing)", len(alerts), rulesFile)
	}
	for _, a := range alerts {
		if !regexp.MustCompile(`(?m)^\s*alertname: ` + regexp.QuoteMeta(a[1]) + `\s*$`).Match(tests) {
			t.Errorf("alert %s has no case in %s", a[1], rulesTestFile)
		}
	}
	exported := exportedMetrics(t)
	for _, m := range metricName.FindAllString(string(rules), -1) {
		if !exported[m] {
			t.Errorf("%s queries %s, which the daemon does not export", rulesFile, m)
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		msg := "promtool not installed (apt-get install -y --no-install-recommends prometheus): skipping promtool check/test rules"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + "; CI=true: the runner must install it")
		}
		t.Skip(msg)
	}
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestGrafanaDashboard: contrib/grafana's dashboard is valid JSON with
// panels, and every metric it queries (panel targets, template variables)
// is one the daemon exports.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if dash.UID == "" || dash.Title == "" || len(dash.Panels) < 5 {
		t.Fatalf("dashboard uid %q title %q with %d panels", dash.UID, dash.Title, len(dash.Panels))
	}
	var queries []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			queries = append(queries, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		queries = append(queries, v.Definition)
	}
	exported := exportedMetrics(t)
	seen := map[string]bool{}
	for _, q := range queries {
		for _, m := range metricName.FindAllString(q, -1) {
			seen[m] = true
			if !exported[m] {
				t.Errorf("the dashboard queries %s, which the daemon does not export (in %q)", m, q)
			}
		}
	}
	for _, m := range []string{"vmreconcile_findings_open", "vmreconcile_last_audit_success", "vmreconcile_source_last_success_timestamp_seconds", "vmreconcile_alerts_failed_total"} {
		if !seen[m] {
			t.Errorf("the dashboard does not show %s", m)
		}
	}
}
