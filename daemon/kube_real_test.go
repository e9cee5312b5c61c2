package daemon

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/mo"

	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/internal/vcsim"
	"github.com/vmreconcile/vmreconcile/kubetest"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

// TestRealKubernetesDaemonDetectsFlip: on a real kube-apiserver, the daemon
// follows the Nodes and, when a clone's kubelet starts writing the Node of
// the VM it was cloned from, alerts shared-k8s-node within seconds (the
// goal, <= 10 s, is checked by scripts/bench-detect, not here). The writers
// are test agents that write node status as kubelet's node-status loop does
// (not real kubelets).
func TestRealKubernetesDaemonDetectsFlip(t *testing.T) {
	kubetest.Require(t)
	t.Parallel()
	srv := kubetest.NewServer(t, kubetest.Options{})
	vc, vcCfg := startVCSim(t, 0)
	ctx := context.Background()
	wk, err := vcsim.CreateVM(ctx, vc, vcsim.VM{Name: "kwk", NumCPU: 4, MemoryMB: 8192, Hostname: "kwk", IP: "10.9.0.1", PowerOn: true, ToolsRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	uuidOf := func(ref string) string {
		var m mo.VirtualMachine
		if err := property.DefaultCollector(vc).RetrieveOne(ctx, vimRef(ref), []string{"config.uuid"}, &m); err != nil {
			t.Fatal(err)
		}
		return m.Config.Uuid
	}
	srv.Agent(t, kubetest.AgentOptions{Node: "kwk", SystemUUID: uuidOf(wk.Reference().Value), CPUs: 4, MemoryBytes: 8 << 30,
		InternalIP: "10.9.0.1", Period: time.Second})

	hooks := newHookServer(t)
	cfg := baseConfig(t)
	cfg.VCenters = []config.VCenter{vcCfg}
	cfg.Kubernetes = []config.Kubernetes{{Name: "real", Kubeconfig: srv.Kubeconfig}}
	cfg.Observe.Lookback = 15 * time.Second
	cfg.Alerts.Webhooks = []config.Webhook{{URL: hooks.URL, Secret: hookSecret, Retries: 3, Timeout: 5 * time.Second}}
	r := startDaemon(t, cfg, cfg.Store.Path, nil)
	r.waitReady(t, 30*time.Second)

	// The VM is cloned and powered on; let the audit that triggers finish
	// first, so that the latency measured is the Kubernetes path's.
	okBefore := r.metric(t, `vmreconcile_runs_total{result="ok",task="audit"}`)
	clone, err := vcsim.Clone(ctx, vc, wk.Reference(), vcsim.CloneSpec{Name: "kwk-clone", PowerOn: true, Hostname: "kwk", IP: "10.9.0.2", NumCPU: 8})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if r.metric(t, `vmreconcile_runs_total{result="ok",task="audit"}`) > okBefore {
			break
		}
	}
	if n := len(hooks.alerts(EventOpened, reconcile.KindSharedK8sNode, "")); n != 0 {
		t.Fatalf("shared-k8s-node alerted before the clone's kubelet started")
	}
	start := time.Now()
	srv.Agent(t, kubetest.AgentOptions{Node: "kwk", SystemUUID: uuidOf(clone.Reference().Value), CPUs: 8, MemoryBytes: 16 << 30,
		InternalIP: "10.9.0.2", Period: time.Second})
	got := hooks.waitAlert(t, 60*time.Second, EventOpened, reconcile.KindSharedK8sNode, "kwk")
	latency := got.at.Sub(start)
	if f := got.alert.Finding; !slices.Equal(f.VMs, []string{"kwk", "kwk-clone"}) || f.Original != "kwk" {
		t.Errorf("finding VMs %v original %q, want [kwk kwk-clone] and kwk", f.VMs, f.Original)
	}
	if v := r.metric(t, `vmreconcile_detection_triggered_runs_total{source_type="kubernetes"}`); v < 1 {
		t.Errorf("no Kubernetes-triggered run counted: %v", v)
	}
	if os.Getenv("VMRECONCILE_TEST_LOG") != "" {
		t.Fail()
	}
	t.Logf("detection latency (real kube-apiserver, clone kubelet start → webhook): %s", latency.Round(time.Millisecond))
}
