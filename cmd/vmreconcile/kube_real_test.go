package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"

	"github.com/vmreconcile/vmreconcile/internal/vcsim"
	"github.com/vmreconcile/vmreconcile/kubetest"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

// biosUUID is a VM's BIOS UUID (config.uuid), as vCenter reports it.
func biosUUID(t *testing.T, c *vim25.Client, vm *object.VirtualMachine) string {
	t.Helper()
	var m mo.VirtualMachine
	if err := property.DefaultCollector(c).RetrieveOne(context.Background(), vm.Reference(), []string{"config.uuid"}, &m); err != nil {
		t.Fatal(err)
	}
	return m.Config.Uuid
}

// swapUUID writes a UUID's first three fields byte-swapped, as Linux shows
// product_uuid on older VM hardware versions.
func swapUUID(u string) string {
	p := strings.Split(u, "-")
	rev := func(s string) string {
		var b strings.Builder
		for i := len(s) - 2; i >= 0; i -= 2 {
			b.WriteString(s[i : i+2])
		}
		return b.String()
	}
	p[0], p[1], p[2] = rev(p[0]), rev(p[1]), rev(p[2])
	return strings.Join(p, "-")
}

// TestRealKubernetesAudit is the story as the team first saw it, on a real
// kube-apiserver (etcd, v1.37.2) with vCenter (vcsim): the Node of VM
// k8s-wk-1 is also written by a clone of that VM, whose kubelet booted with
// the same hostname and credentials. The writers are test agents that write
// node status as kubelet's node-status loop does (not real kubelets). A
// Kubernetes-only estate: no swarm anywhere.
func TestRealKubernetesAudit(t *testing.T) {
	srv := kubetest.NewServer(t, kubetest.Options{})
	u, c := startVCSim(t)
	ctx := context.Background()
	wk, err := vcsim.CreateVM(ctx, c, vcsim.VM{Name: "k8s-wk-1", NumCPU: 4, MemoryMB: 8192, Hostname: "k8s-wk-1", IP: "10.1.0.21", PowerOn: true, ToolsRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	other, err := vcsim.CreateVM(ctx, c, vcsim.VM{Name: "k8s-wk-2", NumCPU: 4, MemoryMB: 8192, Hostname: "k8s-wk-2", IP: "10.1.0.22", PowerOn: true, ToolsRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"GOVC_URL=" + u.String(), "GOVC_INSECURE=1"}
	args := func(observe string) []string {
		return []string{"audit", "-json", "-kubeconfig", srv.Kubeconfig, "-observe", observe, "-lookback", "5m"}
	}
	// k8s-wk-2's kubelet shows the byte-swapped form of its BIOS UUID.
	srv.Agent(t, kubetest.AgentOptions{Node: "k8s-wk-2", SystemUUID: swapUUID(biosUUID(t, c, other)), CPUs: 4, MemoryBytes: 8 << 30,
		InternalIP: "10.1.0.22", Period: time.Second})
	srv.Agent(t, kubetest.AgentOptions{Node: "k8s-wk-1", SystemUUID: biosUUID(t, c, wk), CPUs: 4, MemoryBytes: 8 << 30,
		InternalIP: "10.1.0.21", Period: time.Second})

	t.Run("healthy", func(t *testing.T) {
		r := runBin(t, env, args("3s")...)
		res := decode(t, r)
		if r.code != ExitOK || len(findingsOf(res, reconcile.KindSharedK8sNode)) != 0 || len(findingsOf(res, reconcile.KindK8sNodeFlapping)) != 0 {
			t.Errorf("healthy cluster: exit %d, findings %+v; stderr %s", r.code, res.Findings, r.stderr)
		}
		if res.Summary.KubeNodes != 2 || res.Summary.MatchedKubeNodes != 2 || res.Summary.Swarms != 0 {
			t.Errorf("summary %+v: want 2 Nodes, both matched (one by a byte-swapped systemUUID), no swarm", res.Summary)
		}
		if !strings.Contains(r.stderr, "swarm side skipped") {
			t.Errorf("no note that the absent default swarm was skipped: %q", r.stderr)
		}
	})

	t.Run("clone writes the same Node", func(t *testing.T) {
		clone, err := vcsim.Clone(ctx, c, wk.Reference(), vcsim.CloneSpec{Name: "k8s-wk-1-clone", PowerOn: true, Hostname: "k8s-wk-1", IP: "10.1.0.99", NumCPU: 8})
		if err != nil {
			t.Fatal(err)
		}
		srv.Agent(t, kubetest.AgentOptions{Node: "k8s-wk-1", SystemUUID: swapUUID(biosUUID(t, c, clone)), CPUs: 8, MemoryBytes: 16 << 30,
			InternalIP: "10.1.0.99", Period: time.Second})
		r := runBin(t, env, args("8s")...)
		if r.code != ExitFindings {
			t.Errorf("exit %d, want 3; stderr %s", r.code, r.stderr)
		}
		res := decode(t, r)
		shared := findingsOf(res, reconcile.KindSharedK8sNode)
		if len(shared) != 1 {
			t.Fatalf("shared-k8s-node: %+v\nall: %+v", shared, res.Findings)
		}
		f := shared[0]
		if f.NodeID != "k8s-wk-1" || !slices.Equal(f.VMs, []string{"k8s-wk-1", "k8s-wk-1-clone"}) || f.Original != "k8s-wk-1" || f.Severity != reconcile.Critical {
			t.Errorf("finding %+v: want Node k8s-wk-1 over both VMs, original k8s-wk-1", f)
		}
		ev := strings.Join(f.Evidence, "\n")
		if !strings.Contains(ev, "Rebooted") || !strings.Contains(ev, "cpu 4 -> 8 -> 4") && !strings.Contains(ev, "cpu 8 -> 4 -> 8") {
			t.Errorf("evidence lacks the Rebooted events or the CPU flips:\n%s", ev)
		}
		if strings.Contains(f.Remedy, "kubectl delete") && !strings.Contains(f.Remedy, "Do NOT delete") {
			t.Errorf("remedy suggests kubectl delete node: %s", f.Remedy)
		}
		t.Logf("shared-k8s-node: %d evidence lines; original %s", len(f.Evidence), f.Original)
	})
}
