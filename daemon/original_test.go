package daemon

import (
	"strings"
	"testing"
	"time"

	_ "github.com/vmware/govmomi/vapi/simulator" // vcsim's vAPI (tags) endpoints

	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/internal/dockersim"
	"github.com/vmreconcile/vmreconcile/internal/vcsim"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/store"
)

// TestRemediationActsOnAlertedOriginal: the daemon's remediation plans from
// the run it recorded and alerted. Only the store's history tells the
// original here (no lineage: two VMs made independently; in this run's
// window the impostor's identity is seen first). The remediation used to
// probe the guests and reconcile again without the history, and then acted
// on the original it had just alerted as such.
func TestRemediationActsOnAlertedOriginal(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	vc, vcCfg := startVCSim(t, 0)
	for _, n := range []string{"wk-b", "wk-a"} {
		if _, err := vcsim.CreateVM(ctx, vc, vcsim.VM{Name: n, NumCPU: 2, MemoryMB: 4096, Hostname: n, PowerOn: true, ToolsRunning: true}); err != nil {
			t.Fatal(err)
		}
	}
	eng := dockersim.New(dockersim.Options{Self: dockersim.NodeSpec{Hostname: "mgr", NanoCPUs: 2e9, MemoryBytes: 4 << 30}})
	if err := eng.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	id, err := eng.AddNode(dockersim.NodeSpec{Hostname: "wk-a", NanoCPUs: 2e9, MemoryBytes: 4 << 30, CreatedAt: time.Now().Add(-2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}

	cfg := baseConfig(t)
	cfg.VCenters = []config.VCenter{vcCfg}
	cfg.Swarms = []config.Swarm{{Name: "sim", Hosts: []string{eng.Host()}}}
	cfg.Observe.Lookback = 30 * time.Second
	cfg.Policy.Remediate, cfg.Policy.MaxPercent = "dry-run", 100
	cfg.Guest.Login = "root:Guest-Pass-1" // the remediation probes the guests first
	st, err := store.Open(cfg.Store.Path, store.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &syncBuffer{}
	d, err := New(Options{Config: cfg, Store: st, Logger: NewLogger(config.Log{Format: "text", Level: "debug"}, logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.closeSources)

	// Run 1: node id is wk-a, and only wk-a.
	if err := d.AuditNow(ctx); err != nil {
		t.Fatal(err)
	}
	// Then wk-b's engine joins the fight, its identity first in the window.
	from := time.Now().Add(500 * time.Millisecond)
	time.Sleep(1500 * time.Millisecond)
	fight := []dockersim.Identity{{Hostname: "wk-b", NanoCPUs: 2e9, MemoryBytes: 4 << 30}, {Hostname: "wk-a", NanoCPUs: 2e9, MemoryBytes: 4 << 30}}
	if err := eng.Backfill(id, fight, from, time.Now(), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := d.AuditNow(ctx); err != nil {
		t.Fatal(err)
	}

	open, err := st.OpenFindings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var shared *store.StoredFinding
	for i := range open {
		if open[i].Kind == reconcile.KindSharedNodeID {
			shared = &open[i]
		}
	}
	if shared == nil || shared.Original != "wk-a" {
		t.Fatalf("recorded shared-node-id: %+v; want original wk-a (by history)", shared)
	}
	out := logs.String()
	if !strings.Contains(out, "remediation (dry run)") || !strings.Contains(out, "disable-docker on wk-b (") || strings.Contains(out, "disable-docker on wk-a (") {
		t.Errorf("the remediation does not act on exactly the impostor the run recorded (original wk-a):\n%s", out)
	}
}
