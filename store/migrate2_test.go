package store

import (
	"database/sql"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// v1Store writes a store as schema version 1 left it (migration 1's SQL,
// rows as that binary wrote them: VMs keyed by ref alone in findings,
// probes and the journal).
//
// Two vCenters: vc1 has wk-1 (vm-1) and its clone wk-1-clone (vm-2); vc2
// has db-1, also vm-1. So vm-2 is vc1's, and vm-1 is vc1's for a row that
// names wk-1 and ambiguous for one that does not.
func v1Store(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	oldKey := "shared-node-id|n1|vm-1,vm-2"
	stmts := []string{
		migrations[0].sql,
		`CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`,
		`INSERT INTO schema_version VALUES (1, 1)`,
		`INSERT INTO runs(id, started, finished, ok) VALUES (1, 1, 2, 1)`,
		`INSERT INTO vms(vcenter, ref, name, path, first_seen, last_seen, first_run, last_run) VALUES
			('vc1', 'vm-1', 'wk-1', '/DC0/vm/wk-1', 1, 1, 1, 1),
			('vc1', 'vm-2', 'wk-1-clone', '/DC0/vm/wk-1-clone', 1, 1, 1, 1),
			('vc2', 'vm-1', 'db-1', '/DC1/vm/db-1', 1, 1, 1, 1)`,
		// open: the shared node ID of wk-1 and its clone.
		`INSERT INTO findings(key, kind, severity, node_id, vms, vm_paths, vm_refs, original, evidence, remedy, first_seen, last_seen, first_run, last_run, alerted_open)
			VALUES ('` + oldKey + `', 'shared-node-id', 'critical', 'n1', '["wk-1","wk-1-clone"]', '["/DC0/vm/wk-1","/DC0/vm/wk-1-clone"]',
			'["vm-1","vm-2"]', 'wk-1', '["e"]', 'r', 1, 1, 1, 1, 1)`,
		// open: a VM gone from the inventory (pruned from vms): no vCenter to derive.
		`INSERT INTO findings(key, kind, severity, node_id, vms, vm_paths, vm_refs, evidence, first_seen, last_seen, first_run, last_run)
			VALUES ('node-without-vm|n9|vm-77', 'node-without-vm', 'info', 'n9', '["gone"]', '["/DC0/vm/gone"]', '["vm-77"]', '[]', 1, 1, 1, 1)`,
		`INSERT INTO guest_probes(vm_ref, probed_at, node_id, identity) VALUES
			('vm-2', 5, 'n1', '{"vm_ref":"vm-2","probed_at":"2026-03-01T10:00:00Z","node_id":"n1","docker_active":"yes"}'),
			('vm-1', 5, 'n1', '{"vm_ref":"vm-1","probed_at":"2026-03-01T10:00:00Z","node_id":"n1"}')`,
		`INSERT INTO journal(id, plan_id, vm_ref, vm_name, action, finding_key, phase, status, time)
			VALUES (1, 'plan-1', 'vm-2', 'wk-1-clone', 'disable-docker', '` + oldKey + `', 'intent', 'pending', 10)`,
		`INSERT INTO journal(intent_id, plan_id, vm_ref, vm_name, action, finding_key, phase, status, time)
			VALUES (1, 'plan-1', 'vm-2', 'wk-1-clone', 'disable-docker', '` + oldKey + `', 'outcome', 'done', 11)`,
		`INSERT INTO journal(plan_id, vm_ref, vm_name, action, phase, status, time)
			VALUES ('plan-2', 'vm-1', 'wk-1', 'power-off', 'intent', 'pending', 12)`,
	}
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// A store made by schema 1 opens, and its open findings, probes and journal
// are found under the keys this binary uses: the open finding is still open
// after the next run (no resolve-and-reopen), the probe of vc1's vm-2 is
// found as such, and the journal rows name vc1.
func TestMigrateV1StoreToVMKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	v1Store(t, path)
	s := openT(t, path, Options{Exclusive: true})
	if v, err := versionOf(ctx, s.db); err != nil || v != len(migrations) || v < 2 {
		t.Fatalf("version %d, %v", v, err)
	}
	newKey := "shared-node-id|n1|vc1/vm-1,vc1/vm-2"
	open, err := s.OpenFindings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(open); !reflect.DeepEqual(got, []string{newKey, "node-without-vm|n9|vm-77"}) {
		t.Fatalf("open keys after migration %q", got)
	}
	if f := open[0]; !reflect.DeepEqual(f.VMVCenters, []string{"vc1", "vc1"}) || f.Key != f.Finding.Key() || f.AlertedOpen.IsZero() {
		t.Fatalf("migrated finding %+v", f)
	}

	// Probes: vm-2 is vc1's; vm-1 is in two vCenters and the probe names
	// neither, so it stays unattributed and is given to neither.
	if g, ok, err := s.LastProbe(ctx, reconcile.VMKey{VCenter: "vc1", Ref: "vm-2"}); err != nil || !ok || g.VCenter != "vc1" || g.NodeID != "n1" {
		t.Fatalf("probe of vc1/vm-2: %+v %v %v", g, ok, err)
	}
	for _, k := range []reconcile.VMKey{{VCenter: "vc1", Ref: "vm-1"}, {VCenter: "vc2", Ref: "vm-1"}, {Ref: "vm-1"}} {
		if g, ok, err := s.LastProbe(ctx, k); err != nil || ok {
			t.Errorf("ambiguous old probe found as %s: %+v %v", k, g, err)
		}
	}

	// Journal: vCenter filled in (vm-1 by its name), finding key rewritten,
	// still append-only.
	es, err := s.JournalEntries(ctx, "plan-1")
	if err != nil || len(es) != 2 {
		t.Fatalf("journal: %+v %v", es, err)
	}
	for _, e := range es {
		if e.Key() != (reconcile.VMKey{VCenter: "vc1", Ref: "vm-2"}) || e.FindingKey != newKey {
			t.Errorf("journal row %+v", e)
		}
	}
	if un, err := s.Unfinished(ctx); err != nil || len(un) != 1 || un[0].Key() != (reconcile.VMKey{VCenter: "vc1", Ref: "vm-1"}) {
		t.Errorf("unfinished %+v %v", un, err)
	}
	if _, err := s.db.Exec(`UPDATE journal SET status = 'x'`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("journal UPDATE after migration: %v", err)
	}
	if eps, err := s.FindingEpisodes(ctx, newKey); err != nil || len(eps) != 1 {
		t.Errorf("episodes under the new key: %+v %v", eps, err)
	}

	// The next run reports the same problem, keyed as reconcile keys it now:
	// it stays open and nothing opens. (The VM-less finding whose VM is gone
	// is absent once: it resolves only on confirmed absence, later.)
	f := reconcile.Finding{Kind: reconcile.KindSharedNodeID, Severity: reconcile.Critical, NodeID: "n1", Original: "wk-1",
		VMs: []string{"wk-1", "wk-1-clone"}, VMPaths: []string{"/DC0/vm/wk-1", "/DC0/vm/wk-1-clone"},
		VMRefs: []string{"vm-1", "vm-2"}, VMVCenters: []string{"vc1", "vc1"}}
	snap, res := world(at(30), []reconcile.VM{vmOf("vm-1", "wk-1", nil), vmOf("vm-2", "wk-1-clone", nil)}, nil, f)
	d, err := s.RecordRun(ctx, snap, res, at(29), at(30))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Opened) != 0 || d.StillOpen != 1 || len(d.Resolved) != 0 {
		t.Fatalf("run after migration: opened %q resolved %q still open %d", keys(d.Opened), keys(d.Resolved), d.StillOpen)
	}
	if eps, _ := s.FindingEpisodes(ctx, newKey); len(eps) != 1 || eps[0].SeenRuns != 2 || !eps[0].Open() {
		t.Errorf("episode after the run: %+v", eps)
	}
}

// Probes of the same ref in two vCenters are two probes.
func TestProbesKeyedByVCenter(t *testing.T) {
	s, _ := tempStore(t)
	a := reconcile.GuestIdentity{VCenter: "vc1", VMRef: "vm-62", ProbedAt: at(1), NodeID: "n1"}
	b := reconcile.GuestIdentity{VCenter: "vc2", VMRef: "vm-62", ProbedAt: at(2), NodeID: "n2"}
	for _, g := range []reconcile.GuestIdentity{a, b} {
		if err := s.SaveProbe(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []reconcile.GuestIdentity{a, b} {
		got, ok, err := s.LastProbe(ctx, g.Key())
		if err != nil || !ok || !reflect.DeepEqual(got, g) {
			t.Errorf("LastProbe(%s) = %+v %v %v, want %+v", g.Key(), got, ok, err, g)
		}
	}
	// Without a vCenter the ref is ambiguous: no probe.
	if got, ok, _ := s.LastProbe(ctx, reconcile.VMKey{Ref: "vm-62"}); ok {
		t.Errorf("ambiguous ref gave %+v", got)
	}
	// A ref in one vCenter only is found without naming it, and a probe
	// without vCenter is found by a key that names the only one known.
	c := reconcile.GuestIdentity{VCenter: "vc1", VMRef: "vm-7", ProbedAt: at(3), NodeID: "n3"}
	d := reconcile.GuestIdentity{VMRef: "vm-8", ProbedAt: at(3), NodeID: "n4"}
	s.SaveProbe(ctx, c)
	s.SaveProbe(ctx, d)
	if got, ok, _ := s.LastProbe(ctx, reconcile.VMKey{Ref: "vm-7"}); !ok || got.NodeID != "n3" {
		t.Errorf("vm-7 without vCenter: %+v %v", got, ok)
	}
	if got, ok, _ := s.LastProbe(ctx, reconcile.VMKey{VCenter: "vc1", Ref: "vm-8"}); !ok || got.NodeID != "n4" {
		t.Errorf("old probe of vm-8 as vc1/vm-8: %+v %v", got, ok)
	}
	if _, ok, _ := s.LastProbe(ctx, reconcile.VMKey{VCenter: "vc2", Ref: "vm-7"}); ok {
		t.Error("vc1's probe of vm-7 given for vc2/vm-7")
	}
}
