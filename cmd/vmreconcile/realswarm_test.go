package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/internal/vcsim"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/swarmtest"
)

// simVMFor creates a powered-on VM in vcsim whose guest reports the engine's
// hostname and address, as VMware Tools would inside the VM running it.
func simVMFor(t *testing.T, c *vim25.Client, e *swarmtest.Engine, cpus int32) types.ManagedObjectReference {
	t.Helper()
	vm, err := vcsim.CreateVM(context.Background(), c, vcsim.VM{
		Name: e.Name, Folder: "swarm", NumCPU: cpus, MemoryMB: 4096,
		Hostname: e.Name, IP: e.Addr, PowerOn: true, ToolsRunning: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return vm.Reference()
}

// TestRealSwarmAudit runs the built binary against vcsim and real dockerd
// engines: first a healthy swarm (manager + worker, no clone ever started),
// then with a clone engine started from a copy of the worker's data root —
// the bug itself — and a VM for it cloned from the worker's VM.
func TestRealSwarmAudit(t *testing.T) {
	cl := swarmtest.NewCluster(t, swarmtest.Options{
		Manager: swarmtest.EngineOptions{Hostname: "mgr"},
		Workers: []swarmtest.EngineOptions{{Hostname: "wk1"}},
	})
	wk := cl.Workers[0]
	u, c := startVCSim(t)
	simVMFor(t, c, cl.Manager, 2)
	wkVM := simVMFor(t, c, wk, 2)
	env := []string{"GOVC_URL=" + u.String(), "GOVC_INSECURE=1", "DOCKER_HOST=" + cl.Manager.Host}

	t.Run("healthy", func(t *testing.T) {
		r := runBin(t, env, "audit", "-json", "-observe", "3s", "-lookback", "5m")
		res := decode(t, r)
		if got := findingsOf(res, reconcile.KindSharedNodeID); len(got) != 0 {
			t.Errorf("healthy swarm has shared-node-id: %+v", got)
		}
		if r.code != ExitOK {
			t.Errorf("exit %d, want 0; findings %+v; stderr %s", r.code, res.Findings, r.stderr)
		}
		if res.Summary.Nodes != 2 || res.Summary.MatchedNodes != 2 {
			t.Errorf("summary = %+v", res.Summary)
		}
		for _, n := range res.Nodes {
			if n.Flips != 0 || len(n.VMs) != 1 {
				t.Errorf("node %s: flips %d, vms %v", n.ID, n.Flips, n.VMs)
			}
		}

		// No vSphere: the swarm alone, no finding, exit 0.
		r = runBin(t, []string{"DOCKER_HOST=" + cl.Manager.Host}, "audit", "-json", "-observe", "3s", "-lookback", "5m")
		res = decode(t, r)
		if r.code != ExitOK || len(res.Findings) != 0 || !slices.Equal(res.Summary.Sources, []string{"swarm " + cl.Manager.Host}) || res.Summary.Machines != 2 {
			t.Errorf("no vCenter, healthy: exit %d, findings %+v, summary %+v; stderr %s", r.code, res.Findings, res.Summary, r.stderr)
		}
	})

	t.Run("clone", func(t *testing.T) {
		clone := cl.Clone(t, wk, "wk1-clone", true)
		if clone.NodeID != wk.NodeID {
			t.Fatalf("clone node ID %s, worker %s", clone.NodeID, wk.NodeID)
		}
		if _, err := vcsim.Clone(context.Background(), c, wkVM, vcsim.CloneSpec{
			Name: "wk1-clone", PowerOn: true, Hostname: clone.Name, IP: clone.Addr, NumCPU: 1,
		}); err != nil {
			t.Fatal(err)
		}
		r := runBin(t, env, "audit", "-json", "-observe", "15s", "-lookback", "5m")
		if r.code != ExitFindings {
			t.Errorf("exit %d, want 3; stderr %s", r.code, r.stderr)
		}
		res := decode(t, r)
		shared := findingsOf(res, reconcile.KindSharedNodeID)
		if len(shared) != 1 {
			t.Fatalf("shared-node-id findings: %+v\nall: %+v", shared, res.Findings)
		}
		f := shared[0]
		if f.NodeID != wk.NodeID {
			t.Errorf("node_id %s, want the worker's %s", f.NodeID, wk.NodeID)
		}
		if !slices.Equal(f.VMs, []string{"wk1", "wk1-clone"}) || f.Original != "wk1" {
			t.Errorf("vms %v original %q, want [wk1 wk1-clone] and wk1", f.VMs, f.Original)
		}
		if strings.Contains(f.Remedy, "docker node rm") {
			t.Errorf("remedy suggests docker node rm: %s", f.Remedy)
		}
		// The manager really flipped: the node shows both hostnames, and
		// the clone's engine reported 1 CPU where the worker reports more.
		for _, n := range res.Nodes {
			if n.ID != wk.NodeID {
				continue
			}
			hosts := map[string]int{}
			for _, d := range n.Descriptions {
				hosts[d.Hostname] = d.CPUs()
			}
			if _, ok := hosts["wk1"]; !ok || hosts["wk1-clone"] != 1 || n.Flips < 1 {
				t.Errorf("node %s descriptions %v flips %d", n.ID, hosts, n.Flips)
			}
		}
		t.Logf("shared-node-id %s: vms %v, original %s, %d evidence lines", f.NodeID, f.VMs, f.Original, len(f.Evidence))

		// No vSphere (moby/moby#46167): the same command without a vCenter
		// names the two machines that answer as the node, and exits 3.
		r = runBin(t, []string{"DOCKER_HOST=" + cl.Manager.Host}, "audit", "-json", "-observe", "20s", "-lookback", "5m")
		if r.code != ExitFindings {
			t.Errorf("no vCenter: exit %d, want 3; stderr %s", r.code, r.stderr)
		}
		res = decode(t, r)
		shared = findingsOf(res, reconcile.KindSharedNodeID)
		if len(shared) != 1 || shared[0].NodeID != wk.NodeID || len(shared[0].VMs) != 0 || len(shared[0].Machines) != 2 {
			t.Fatalf("no vCenter: shared-node-id %+v\nall: %+v", shared, res.Findings)
		}
		var labels []string
		for _, m := range shared[0].Machines {
			labels = append(labels, m.Label)
		}
		ev := strings.Join(shared[0].Evidence, "\n")
		if !slices.Contains(labels, "wk1") || !slices.Contains(labels, "wk1-clone") || !strings.Contains(ev, "wk1-clone") || strings.Contains(shared[0].Remedy, "docker node rm ") {
			t.Errorf("no vCenter: machines %v, evidence %s, remedy %s", labels, ev, shared[0].Remedy)
		}
		// Lineage, guest probes and remediation need vSphere: one line, exit 2.
		for _, args := range [][]string{{"remediate"}, {"preclone", "wk1"}, {"audit", "-verify", "-l", "root:x"}} {
			r := runBin(t, []string{"DOCKER_HOST=" + cl.Manager.Host}, args...)
			if r.code != ExitUsage || !strings.Contains(r.stderr, "vCenter") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("%v without a vCenter: exit %d, stderr %q", args, r.code, r.stderr)
			}
		}
	})
}
