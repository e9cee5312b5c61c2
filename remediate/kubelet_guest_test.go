package remediate_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/guest"
	"github.com/vmreconcile/vmreconcile/guest/guesttest"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/remediate"
	"github.com/vmreconcile/vmreconcile/store"
	"github.com/vmreconcile/vmreconcile/vsphere"
)

// TestDisableKubeletGuest: the seed story on the Kubernetes side, through
// container-backed vcsim VMs. kwk-1 and its copy kwk-1-clone both hold the
// kubelet client certificate of Node kwk-1 and both kubelets write the Node
// (hand-built observation: their systemUUIDs alternate). The default action
// picks disable-kubelet for the copy (a Kubernetes finding); applying it
// disables kubelet there and moves its credentials into a timestamped
// backup; the original is only ever asked. A rerun does nothing twice, and
// a kubelet process that kubelet.service does not run stops the script
// before anything is moved.
func TestDisableKubeletGuest(t *testing.T) {
	ctx, c, model := guesttest.Simulator(t)
	const server = "https://10.0.0.100:6443"
	files, modes, keyPEM := guesttest.KubeletFiles(t, "kwk-1", server, time.Now().Add(365*24*time.Hour))
	spec := func(name string) guesttest.VMSpec {
		return guesttest.VMSpec{Name: name, Files: files, Modes: modes, Units: guesttest.KubeletRunning}
	}
	vms := guesttest.NewVMs(t, ctx, c, spec("kwk-1"), spec("kwk-1-clone"), spec("stray"))
	wk, cl, stray := vms[0], vms[1], vms[2]
	guesttest.RequireGuestPassword(model, password)
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	inv, err := vsphere.Inventory(ctx, c, c.ServiceContent.RootFolder, vsphere.InventoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byRef := map[string]reconcile.VM{}
	for _, v := range inv {
		byRef[v.Ref] = v
	}
	wkVM, clVM := byRef[wk.Reference().Value], byRef[cl.Reference().Value]
	observe := func() (reconcile.Snapshot, reconcile.Result) {
		t0 := time.Now().UTC().Add(-time.Minute)
		id := func(boot, uuid string, at time.Time) reconcile.KubeIdentity {
			return reconcile.KubeIdentity{BootID: boot, SystemUUID: uuid, Hostname: "kwk-1", FirstSeen: at, LastSeen: at.Add(30 * time.Second), Seen: 2}
		}
		n := reconcile.KubeNode{Name: "kwk-1", Ready: "True", Identities: []reconcile.KubeIdentity{id("boot-a", wkVM.BIOSUUID, t0), id("boot-b", clVM.BIOSUUID, t0.Add(10*time.Second))}}
		for k, d := range []int{0, 1, 0, 1} {
			n.Timeline = append(n.Timeline, reconcile.Sighting{Time: t0.Add(time.Duration(k) * 10 * time.Second), Description: d, Source: "watch"})
		}
		snap := reconcile.Snapshot{CollectedAt: time.Now().UTC(), VMs: inv,
			Kubernetes: []reconcile.KubeCluster{{Name: "prod", Server: "10.0.0.100:6443", Nodes: []reconcile.KubeNode{n}}}}
		snap.Guests = guest.ProbeAll(ctx, c, []reconcile.VM{wkVM, clVM}, func(reconcile.VM) types.BaseGuestAuthentication { return login() }, 2, time.Minute)
		return snap, reconcile.Reconcile(snap, reconcile.History{})
	}
	snap, res := observe()
	var shared *reconcile.Finding
	for i, f := range res.Findings {
		if f.Kind == reconcile.KindSharedK8sNode {
			shared = &res.Findings[i]
		}
	}
	if shared == nil || !shared.Confirmed || shared.Original != "kwk-1" || !slices.Equal(shared.VMs, []string{"kwk-1", "kwk-1-clone"}) {
		t.Fatalf("shared-k8s-node: %+v\nall: %+v", shared, res.Findings)
	}
	p, err := remediate.Compute(snap, res, remediate.Options{Settings: remediate.Settings{MaxPercent: 100}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 1 || p.Entries[0].VM.Name != "kwk-1-clone" || p.Entries[0].Action != remediate.ActionDisableKubelet || p.Blocked != "" {
		t.Fatalf("plan: %+v", p)
	}
	x := &remediate.Executor{Client: c, Journal: st, Auth: func(remediate.VMInfo) types.BaseGuestAuthentication { return login() }}
	if err := x.Preflight(ctx, p); err != nil {
		t.Fatal(err)
	}
	outs, err := x.Apply(ctx, p)
	if err != nil || len(outs) != 1 || outs[0].Status != remediate.StatusDone || !outs[0].Changed {
		t.Fatalf("apply: %v %+v", err, outs)
	}
	t.Logf("outcome: %s", outs[0].Detail)
	if calls := guesttest.SystemctlCalls(t, cl); guesttest.CountCalls(calls, "disable --now kubelet") != 1 {
		t.Errorf("clone systemctl calls: %q", calls)
	}
	guesttest.AssertOnlyQueries(t, wk, "kwk-1")
	// Moved, never deleted: the certificate and its key are in the backup.
	backup := strings.TrimSpace(guesttest.Exec(t, cl, "ls -d /var/backups/vmreconcile-kubelet-*"))
	if got, ok := guesttest.ReadFile(t, cl, backup+"/kubelet-pki/kubelet-client-current.pem"); !ok || !strings.Contains(got, keyPEM) {
		t.Errorf("backup %q lacks the kubelet PKI", backup)
	}
	if got, ok := guesttest.ReadFile(t, cl, backup+"/kubelet.conf"); !ok || !strings.Contains(got, server) {
		t.Errorf("backup lacks kubelet.conf")
	}
	if mode := strings.TrimSpace(guesttest.Exec(t, cl, "stat -c %a "+backup)); mode != "700" {
		t.Errorf("backup mode %s", mode)
	}
	for _, p := range []string{guesttest.KubeletClientPEM, guesttest.KubeletConf} {
		if _, ok := guesttest.ReadFile(t, cl, p); ok {
			t.Errorf("%s still in place in the copy", p)
		}
		if _, ok := guesttest.ReadFile(t, wk, p); !ok {
			t.Errorf("the original's %s was touched", p)
		}
	}
	if !strings.Contains(outs[0].Detail, "systemctl disable --now kubelet; moved kubelet-pki, kubelet.conf to /var/backups/vmreconcile-kubelet-") {
		t.Errorf("detail %q", outs[0].Detail)
	}
	es, _ := st.JournalEntries(ctx, p.ID)
	if len(es) != 2 || es[0].Action != "disable-kubelet" || es[1].Status != remediate.StatusDone {
		t.Errorf("journal: %+v", es)
	}

	// Rerun of the script (another plan): nothing twice.
	q := p
	q.ID = "plan-rerun"
	outs, err = x.Apply(ctx, q)
	if err != nil || outs[0].Status != remediate.StatusDone || outs[0].Changed || !strings.Contains(outs[0].Detail, "kubelet already disabled and inactive; identity files already moved") {
		t.Errorf("rerun: %v %+v", err, outs)
	}
	if n := guesttest.CountCalls(guesttest.SystemctlCalls(t, cl), "disable"); n != 1 {
		t.Errorf("%d disables", n)
	}
	// The probe now sees the copy clean, and a fresh plan has it as done.
	snap, res = observe()
	p2, err := remediate.Compute(snap, res, remediate.Options{Settings: remediate.Settings{MaxPercent: 100}})
	if err != nil || len(p2.Entries) != 0 || len(p2.AlreadyDone) != 1 || p2.AlreadyDone[0].VM.Name != "kwk-1-clone" {
		t.Errorf("plan after apply: %v %+v", err, p2)
	}

	// A kubelet that kubelet.service does not run (MKE runs it under
	// Docker): the unit is disabled, nothing is moved, the action fails.
	guesttest.WriteFiles(t, stray, map[string]guesttest.File{"/usr/local/bin/kubelet": {Content: "#!/bin/sh\nsleep 600\n", Mode: 0o755}})
	guesttest.Exec(t, stray, "cd / && (kubelet </dev/null >/dev/null 2>&1 &) ; sleep 0.5; pidof kubelet")
	sp := remediate.Plan{ID: "plan-stray", Entries: []remediate.Entry{{VM: remediate.VMInfo{Name: "stray", Ref: stray.Reference().Value, PowerState: "poweredOn"},
		Action: remediate.ActionDisableKubelet, Reason: "test"}}}
	outs, err = x.Apply(context.WithoutCancel(ctx), sp)
	if err == nil || outs[0].Status != remediate.StatusFailed || !strings.Contains(outs[0].Detail, "a kubelet process still runs outside kubelet.service") {
		t.Errorf("stray kubelet: %v %+v", err, outs)
	}
	if _, ok := guesttest.ReadFile(t, stray, guesttest.KubeletClientPEM); !ok {
		t.Errorf("credentials moved from under a running kubelet")
	}
}
