package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/vim25"

	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/internal/dockersim"
	"github.com/vmreconcile/vmreconcile/internal/vcsim"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/store"
)

const openMetric = `vmreconcile_findings_open{kind="shared-node-id",severity="critical"}`

// simVMs creates the swarm's VMs in vcsim: mgr and wk, powered on, with
// tools reporting their hostnames.
func simVMs(t *testing.T, c *vim25.Client) (wkRef string) {
	t.Helper()
	ctx := t.Context()
	if _, err := vcsim.CreateVM(ctx, c, vcsim.VM{Name: "mgr", Folder: "swarm", NumCPU: 2, MemoryMB: 4096, Hostname: "mgr", PowerOn: true, ToolsRunning: true}); err != nil {
		t.Fatal(err)
	}
	wk, err := vcsim.CreateVM(ctx, c, vcsim.VM{Name: "wk", Folder: "swarm", NumCPU: 2, MemoryMB: 4096, Hostname: "wk", PowerOn: true, ToolsRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	return wk.Reference().Value
}

func cloneSimVM(t *testing.T, c *vim25.Client, wkRef string) {
	t.Helper()
	src := vimRef(wkRef)
	if _, err := vcsim.Clone(t.Context(), c, src, vcsim.CloneSpec{Name: "clone", Hostname: "clone", PowerOn: true, NumCPU: 1}); err != nil {
		t.Fatal(err)
	}
}

// TestDaemonDockersim runs the daemon against vcsim and the Docker Engine API
// simulator (no root needed): a node ID flipping between two VMs is alerted
// within seconds, once, signed; /metrics and /readyz show it; a restart does
// not re-alert; the resolution is alerted exactly once.
func TestDaemonDockersim(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	vc, vcCfg := startVCSim(t, 0)
	wkRef := simVMs(t, vc)

	eng := dockersim.New(dockersim.Options{Self: dockersim.NodeSpec{Hostname: "mgr", NanoCPUs: 2e9, MemoryBytes: 4 << 30}})
	if err := eng.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	wkID, err := eng.AddNode(dockersim.NodeSpec{Hostname: "wk", NanoCPUs: 2e9, MemoryBytes: 4 << 30})
	if err != nil {
		t.Fatal(err)
	}

	hooks := newHookServer(t)
	hooks.fail = 1 // the first delivery fails: retried with backoff
	cfg := baseConfig(t)
	cfg.VCenters = []config.VCenter{vcCfg}
	cfg.Swarms = []config.Swarm{{Name: "sim", Hosts: []string{eng.Host()}}}
	cfg.Observe.Lookback = 4 * time.Second
	cfg.Alerts.Webhooks = []config.Webhook{{URL: hooks.URL + "/hook?token=abc", Secret: hookSecret, Retries: 3, Timeout: 5 * time.Second}}

	r := startDaemon(t, cfg, cfg.Store.Path, nil)
	r.waitReady(t, 20*time.Second)
	if v := r.metric(t, openMetric); v > 0 {
		t.Fatalf("shared-node-id open before the clone: %v", v)
	}

	// A clone of wk appears in vCenter and its engine takes turns with wk.
	cloneSimVM(t, vc, wkRef)
	start := time.Now()
	flapCtx, stopFlap := context.WithCancel(ctx)
	defer stopFlap()
	if err := eng.Flap(flapCtx, wkID, []dockersim.Identity{{Hostname: "clone", NanoCPUs: 1e9}, {Hostname: "wk", NanoCPUs: 2e9}}, 700*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	got := hooks.waitAlert(t, 20*time.Second, EventOpened, reconcile.KindSharedNodeID, wkID)
	latency := got.at.Sub(start)
	t.Logf("detection latency (dockersim): %s", latency.Round(time.Millisecond))
	if latency > 10*time.Second {
		t.Errorf("alert after %s, want <= 10s", latency)
	}
	if !got.sigOK {
		t.Errorf("bad or missing %s", SignatureHeader)
	}
	if f := got.alert.Finding; !slices.Contains(f.VMs, "wk") || !slices.Contains(f.VMs, "clone") || f.Severity != reconcile.Critical {
		t.Errorf("finding = %+v, want critical with VMs wk and clone", f)
	}
	if got.alert.FirstSeen.IsZero() || got.alert.ResolvedAt != nil || got.alert.Key == "" {
		t.Errorf("alert = %+v", got.alert)
	}
	if v := r.metric(t, openMetric); v != 1 {
		t.Errorf("%s = %v, want 1", openMetric, v)
	}
	if v := r.metric(t, `vmreconcile_detection_triggered_runs_total{source_type="swarm"}`); v < 1 {
		t.Errorf("detection-triggered runs (swarm) = %v, want >= 1", v)
	}
	if v := r.metric(t, `vmreconcile_alerts_sent_total{event="opened",sink="webhook"}`); v < 1 {
		t.Errorf("alerts sent = %v", v)
	}
	if v := r.metric(t, `vmreconcile_alerts_failed_total{event="opened",sink="webhook"}`); v != 0 {
		t.Errorf("alerts failed = %v, want 0 (one 500, then a successful retry)", v)
	}
	code, body := r.get(t, "/readyz")
	var rd Readiness
	if err := json.Unmarshal([]byte(body), &rd); err != nil || code != 200 || !rd.Ready {
		t.Errorf("/readyz = %d %s", code, body)
	}
	if logs := r.logs.String(); strings.Contains(logs, hookSecret) || strings.Contains(logs, "token=abc") || strings.Contains(logs, vcCfg.Password.Reveal()) {
		t.Errorf("a secret is in the log")
	}

	// Restart: the finding stays open and is not alerted again.
	r.stop(t)
	r = startDaemon(t, cfg, cfg.Store.Path, nil)
	r.waitReady(t, 20*time.Second)
	if err := r.d.AuditNow(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(hooks.alerts(EventOpened, reconcile.KindSharedNodeID, wkID)); n != 1 {
		t.Errorf("%d opened alerts after a restart, want 1", n)
	}
	if v := r.metric(t, openMetric); v != 1 {
		t.Errorf("after restart %s = %v, want 1", openMetric, v)
	}

	// The clone stops: once the flips are older than the lookback a run
	// resolves the finding, alerted exactly once.
	stopFlap()
	time.Sleep(100 * time.Millisecond)
	if err := eng.SetDescription(wkID, dockersim.Identity{Hostname: "wk", NanoCPUs: 2e9}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(cfg.Observe.Lookback + time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for len(hooks.alerts(EventResolved, reconcile.KindSharedNodeID, wkID)) == 0 && time.Now().Before(deadline) {
		if err := r.d.AuditNow(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := r.d.AuditNow(ctx); err != nil {
		t.Fatal(err)
	}
	res := hooks.alerts(EventResolved, reconcile.KindSharedNodeID, wkID)
	if len(res) != 1 || res[0].alert.ResolvedAt == nil || !res[0].sigOK {
		t.Fatalf("resolved alerts = %+v, want exactly one, signed, with resolved_at", res)
	}
	if n := len(hooks.alerts(EventOpened, reconcile.KindSharedNodeID, wkID)); n != 1 {
		t.Errorf("%d opened alerts, want 1", n)
	}
	if v := r.metric(t, openMetric); v > 0 {
		t.Errorf("after resolution %s = %v, want absent or 0", openMetric, v)
	}
}

// TestDaemonSkipsOverlappingRuns: with a slow swarm manager (every node
// list delayed; audits read vCenter from the live mirror, which costs no
// call) and an audit every second, scheduled runs that fire while one is
// running are skipped and counted, not queued or lost silently.
func TestDaemonSkipsOverlappingRuns(t *testing.T) {
	t.Parallel()
	_, vcCfg := startVCSim(t, 0)
	eng := dockersim.New(dockersim.Options{Self: dockersim.NodeSpec{Hostname: "mgr", NanoCPUs: 2e9, MemoryBytes: 4 << 30},
		OnRequest: func(r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/nodes") {
				time.Sleep(1500 * time.Millisecond)
			}
		}})
	if err := eng.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	cfg := baseConfig(t)
	cfg.VCenters = []config.VCenter{vcCfg}
	cfg.Swarms = []config.Swarm{{Name: "sim", Hosts: []string{eng.Host()}}}
	cfg.Schedules.Audit = "@every 1s"
	r := startDaemon(t, cfg, cfg.Store.Path, nil)
	deadline := time.Now().Add(30 * time.Second)
	metric := `vmreconcile_runs_skipped_total{task="audit"}`
	ok := `vmreconcile_runs_total{result="ok",task="audit"}`
	// Skips come while the first slow audit still runs: wait for both.
	for (r.metric(t, metric) < 2 || r.metric(t, ok) < 1) && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
	}
	if v := r.metric(t, metric); v < 2 {
		t.Fatalf("%s = %v after 30s of 1s schedules and slow audits, want >= 2", metric, v)
	}
	if !strings.Contains(r.logs.String(), "scheduled run skipped") {
		t.Errorf("skips not logged")
	}
	if v := r.metric(t, ok); v < 1 {
		t.Errorf("no audit completed: %v", v)
	}
}

// TestDaemonReadyzStale: a swarm that cannot be reached keeps /readyz at 503
// naming it, and counts API errors.
func TestDaemonReadyzStale(t *testing.T) {
	t.Parallel()
	_, vcCfg := startVCSim(t, 0)
	cfg := baseConfig(t)
	cfg.VCenters = []config.VCenter{vcCfg}
	cfg.Swarms = []config.Swarm{{Name: "gone", Hosts: []string{"tcp://127.0.0.1:1", "unix:///nonexistent/docker.sock"}}}
	r := startDaemon(t, cfg, cfg.Store.Path, nil)
	deadline := time.Now().Add(15 * time.Second)
	for r.metric(t, `vmreconcile_runs_total{result="error",task="audit"}`) < 1 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	code, body := r.get(t, "/readyz")
	var rd Readiness
	if err := json.Unmarshal([]byte(body), &rd); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	if code != 503 || rd.Ready || len(rd.Stale) == 0 {
		t.Fatalf("/readyz = %d %s, want 503 naming the swarm", code, body)
	}
	found := false
	for _, s := range rd.Stale {
		if s.Source == "swarm gone" && strings.Contains(s.Error, "no manager answers") {
			found = true
		}
	}
	if !found {
		t.Errorf("/readyz does not name swarm gone with its error: %s", body)
	}
	if v := r.metric(t, `vmreconcile_api_errors_total{source="gone",source_type="swarm"}`); v < 1 {
		t.Errorf("api errors for swarm gone = %v", v)
	}
	if code, body := r.get(t, "/livez"); code != 200 || body != "ok\n" {
		t.Errorf("/livez = %d %q", code, body)
	}
	runs, err := r.st.Runs(t.Context(), 0)
	if err != nil || len(runs) == 0 || runs[len(runs)-1].OK {
		t.Errorf("failed run not recorded: %+v %v", runs, err)
	}
	_ = store.ErrLocked
}

func TestSupersededBy(t *testing.T) {
	sf := func(kind string, sev reconcile.Severity, refs ...string) store.StoredFinding {
		f := reconcile.Finding{Kind: kind, Severity: sev, NodeID: "n1", VMRefs: refs}
		return store.StoredFinding{Finding: f, Key: f.Key()}
	}
	clone := sf(reconcile.KindCloneOfSwarmNode, reconcile.Warning, "vm-2")
	shared := sf(reconcile.KindSharedNodeID, reconcile.Critical, "vm-1", "vm-2")
	other := sf(reconcile.KindSharedNodeID, reconcile.Critical, "vm-1", "vm-3")
	mac := sf(reconcile.KindDuplicateMAC, reconcile.Warning, "vm-1", "vm-2")
	cases := []struct {
		name string
		f    store.StoredFinding
		open []store.StoredFinding
		want string
	}{
		{"clone became a shared node ID", clone, []store.StoredFinding{mac, other, shared}, shared.Key},
		{"other VMs", clone, []store.StoredFinding{other}, ""},
		{"not more severe", clone, []store.StoredFinding{mac}, ""},
		{"really resolved", shared, nil, ""},
	}
	for _, tc := range cases {
		if got := supersededBy(tc.f, tc.open); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
