package remediate_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/guest"
	"github.com/vmreconcile/vmreconcile/guest/guesttest"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/remediate"
	"github.com/vmreconcile/vmreconcile/store"
	"github.com/vmreconcile/vmreconcile/vsphere"
)

func TestMain(m *testing.M) { os.Exit(guesttest.Main(m)) }

const password = "Gu3st-Passw0rd"

func login() *types.NamePasswordAuthentication {
	return &types.NamePasswordAuthentication{Username: "root", Password: password}
}

// snapshot collects the simulator's inventory and probes the two VMs.
func snapshot(t *testing.T, ctx context.Context, c *vim25.Client, probe ...*object.VirtualMachine) (reconcile.Snapshot, reconcile.Result) {
	t.Helper()
	vms, err := vsphere.Inventory(ctx, c, c.ServiceContent.RootFolder, vsphere.InventoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snap := reconcile.Snapshot{CollectedAt: time.Now().UTC(), VMs: vms}
	var targets []reconcile.VM
	for _, v := range vms {
		for _, p := range probe {
			if v.Ref == p.Reference().Value {
				targets = append(targets, v)
			}
		}
	}
	snap.Guests = guest.ProbeAll(ctx, c, targets, func(reconcile.VM) types.BaseGuestAuthentication { return login() }, 4, time.Minute)
	return snap, reconcile.Reconcile(snap, reconcile.History{})
}

func backups(t *testing.T, root string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(root, "vmreconcile-backup-*"))
	return m
}

func TestApplyGuestOperations(t *testing.T) {
	ctx, c, model := guesttest.Simulator(t)
	cert := guesttest.NodeCert(t, "x1kq7bq9vbyt0sbxbivvv1i5o", "swarm-worker", "cluster1", time.Now().Add(30*24*time.Hour))
	wkRoot, clRoot := guesttest.DockerRoot(t, cert, "0b1f6c1e-3c1a-4f5e-9a55-0e3b0e8d1c22"), guesttest.DockerRoot(t, cert, "0b1f6c1e-3c1a-4f5e-9a55-0e3b0e8d1c22")
	// The worker first: without lineage, the VM created first is the original.
	wk := guesttest.NewVM(t, ctx, c, guesttest.VMSpec{Name: "worker-1", Dirs: map[string]string{"/var/lib/docker": wkRoot}, Units: guesttest.DockerRunning})
	time.Sleep(1100 * time.Millisecond)
	cl := guesttest.NewVM(t, ctx, c, guesttest.VMSpec{Name: "worker-1-clone", Dirs: map[string]string{"/var/lib/docker": clRoot}, Units: guesttest.DockerRunning})
	guesttest.RequireGuestPassword(model, password)
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clRef := cl.Reference().Value

	snap, res := snapshot(t, ctx, c, wk, cl)
	var shared *reconcile.Finding
	for i, f := range res.Findings {
		if f.Kind == reconcile.KindSharedNodeID {
			shared = &res.Findings[i]
		}
	}
	if shared == nil || !shared.Confirmed || shared.Original != "worker-1" || !slices.Equal(shared.VMs, []string{"worker-1", "worker-1-clone"}) {
		t.Fatalf("shared-node-id finding: %+v\nall: %+v", shared, res.Findings)
	}
	settings := remediate.Settings{ForgetIdentity: true, MaxPercent: 100}
	p, err := remediate.Compute(snap, res, remediate.Options{Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 1 || p.Entries[0].VM.Ref != clRef || p.Blocked != "" {
		t.Fatalf("plan: %+v", p)
	}

	x := &remediate.Executor{Client: c, Journal: st, Auth: func(remediate.VMInfo) types.BaseGuestAuthentication { return login() }}

	t.Run("skip marker", func(t *testing.T) {
		m := object.NewCustomFieldsManager(c)
		def, err := m.Add(ctx, remediate.SkipMarker, "VirtualMachine", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Set(ctx, cl.Reference(), def.Key, "INC-1234 keep"); err != nil {
			t.Fatal(err)
		}
		skip, err := remediate.SkipMarkers(ctx, c, "", []reconcile.VMKey{{Ref: wk.Reference().Value}, {Ref: clRef}})
		if err != nil || len(skip) != 1 || !strings.Contains(skip[reconcile.VMKey{Ref: clRef}], "INC-1234") {
			t.Fatalf("skip markers %v %v", skip, err)
		}
		q, _ := remediate.Compute(snap, res, remediate.Options{Settings: settings, Skip: skip})
		if len(q.Entries) != 0 || len(q.Refused) != 1 || !strings.Contains(q.Refused[0].Why, "INC-1234") {
			t.Errorf("plan with skip marker: %+v", q)
		}
		// An empty value clears the marker.
		if err := m.Set(ctx, cl.Reference(), def.Key, ""); err != nil {
			t.Fatal(err)
		}
		if skip, _ := remediate.SkipMarkers(ctx, c, "", []reconcile.VMKey{{Ref: clRef}}); len(skip) != 0 {
			t.Errorf("cleared marker still seen: %v", skip)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		bad := *x
		bad.Auth = func(remediate.VMInfo) types.BaseGuestAuthentication {
			return &types.NamePasswordAuthentication{Username: "root", Password: "wrong-Passw0rd"}
		}
		err := bad.Preflight(ctx, p)
		var pe *remediate.PreflightError
		if !errors.As(err, &pe) || len(pe.Lines) != 1 || !strings.Contains(pe.Lines[0], "worker-1-clone ("+clRef+"): invalid guest login") ||
			strings.Contains(err.Error(), "wrong-Passw0rd") {
			t.Fatalf("preflight: %v", err)
		}
		t.Logf("preflight: %s", pe.Lines[0])
		if n := guesttest.CountCalls(guesttest.SystemctlCalls(t, cl), "disable"); n != 0 {
			t.Errorf("clone touched")
		}
	})

	t.Run("apply", func(t *testing.T) {
		if err := x.Preflight(ctx, p); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		outs, err := x.Apply(ctx, p)
		t.Logf("apply: %s", time.Since(start))
		if err != nil || len(outs) != 1 || outs[0].Status != remediate.StatusDone || !outs[0].Changed {
			t.Fatalf("apply: %v %+v", err, outs)
		}
		t.Logf("outcome: %s", outs[0].Detail)
		calls := guesttest.SystemctlCalls(t, cl)
		if guesttest.CountCalls(calls, "disable --now docker.service docker.socket") != 1 {
			t.Errorf("clone systemctl calls: %q", calls)
		}
		guesttest.AssertOnlyQueries(t, wk, "worker-1")
		// Identity moved, not deleted; the original's untouched.
		if _, err := os.Stat(filepath.Join(clRoot, "swarm")); !os.IsNotExist(err) {
			t.Errorf("clone still has /var/lib/docker/swarm: %v", err)
		}
		b := backups(t, clRoot)
		if len(b) != 1 {
			t.Fatalf("backups %v", b)
		}
		if got, _ := os.ReadFile(filepath.Join(b[0], "swarm", "certificates", "swarm-node.crt")); string(got) != cert {
			t.Errorf("backup lacks the certificate")
		}
		if _, err := os.Stat(filepath.Join(b[0], "engine-id")); err != nil {
			t.Errorf("engine-id not in backup: %v", err)
		}
		if _, err := os.Stat(filepath.Join(wkRoot, "swarm", "certificates", "swarm-node.crt")); err != nil || len(backups(t, wkRoot)) != 0 {
			t.Errorf("original's identity touched: %v", err)
		}
		es, _ := st.JournalEntries(ctx, p.ID)
		if len(es) != 2 || es[0].Phase != "intent" || es[1].Status != "done" || es[0].Action != "disable-docker+forget-identity" {
			t.Errorf("journal: %+v", es)
		}

		// The same plan again: reported from the journal, not redone.
		outs, err = x.Apply(ctx, p)
		if err != nil || outs[0].Status != remediate.StatusAlreadyDone {
			t.Errorf("reapply: %v %+v", err, outs)
		}
		// The guest script itself is idempotent too.
		q := p
		q.ID = "plan-rerun"
		outs, err = x.Apply(ctx, q)
		if err != nil || outs[0].Status != remediate.StatusDone || outs[0].Changed || !strings.Contains(outs[0].Detail, "already") {
			t.Errorf("rerun: %v %+v", err, outs)
		}
		t.Logf("rerun outcome: %s", outs[0].Detail)
		if n := guesttest.CountCalls(guesttest.SystemctlCalls(t, cl), "disable"); n != 1 || len(backups(t, clRoot)) != 1 {
			t.Errorf("rerun did something twice: %d disables, backups %v", n, backups(t, clRoot))
		}
	})

	t.Run("interrupted", func(t *testing.T) {
		// A run died between intent and outcome (the intent is all that is left).
		id, err := st.JournalIntent(ctx, store.JournalRecord{PlanID: "plan-crashed", VMRef: clRef, VMName: "worker-1-clone", Action: "disable-docker+forget-identity"})
		if err != nil {
			t.Fatal(err)
		}
		if u, _ := st.Unfinished(ctx); len(u) != 1 {
			t.Fatalf("unfinished: %+v", u)
		}
		q := p
		q.ID = "plan-after-crash"
		outs, err := x.Apply(ctx, q)
		if err != nil || outs[0].Resumed != id || outs[0].Changed {
			t.Fatalf("resume: %v %+v", err, outs)
		}
		if u, _ := st.Unfinished(ctx); len(u) != 0 {
			t.Errorf("still unfinished: %+v", u)
		}
		es, _ := st.JournalEntries(ctx, "plan-crashed")
		if len(es) != 2 || es[1].Status != remediate.StatusSuperseded {
			t.Errorf("crashed plan's journal: %+v", es)
		}
		if n := guesttest.CountCalls(guesttest.SystemctlCalls(t, cl), "disable"); n != 1 {
			t.Errorf("%d disables", n)
		}
	})

	t.Run("power-off", func(t *testing.T) {
		q := p
		q.ID = "plan-power"
		q.Entries = []remediate.Entry{{VM: p.Entries[0].VM, Action: remediate.ActionPowerOff, Reason: "test"}}
		start := time.Now()
		outs, err := x.Apply(ctx, q)
		if err != nil || outs[0].Status != remediate.StatusDone || !strings.Contains(outs[0].Detail, "guest shut down") {
			t.Fatalf("power-off: %v %+v", err, outs)
		}
		t.Logf("power-off: %s in %s", outs[0].Detail, time.Since(start))
		if s, _ := cl.PowerState(ctx); s != types.VirtualMachinePowerStatePoweredOff {
			t.Errorf("power state %s", s)
		}
		if s, _ := wk.PowerState(ctx); s != types.VirtualMachinePowerStatePoweredOn {
			t.Errorf("original's power state %s", s)
		}
		q.ID = "plan-power-2"
		outs, err = x.Apply(ctx, q)
		if err != nil || outs[0].Changed || !strings.Contains(outs[0].Detail, "already powered off") {
			t.Errorf("power-off again: %v %+v", err, outs)
		}
	})
}
