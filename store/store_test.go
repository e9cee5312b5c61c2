package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

var ctx = context.Background()

func TestOpenMigrateIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "store.db")
	for i := 0; i < 3; i++ {
		s, err := Open(path, Options{Exclusive: i%2 == 0})
		if err != nil {
			t.Fatalf("open #%d: %v", i, err)
		}
		if v, err := versionOf(ctx, s.db); err != nil || v != len(migrations) {
			t.Fatalf("open #%d: version %d, %v; want %d", i, v, err, len(migrations))
		}
		if n := count(t, s, `SELECT count(*) FROM schema_version`); n != len(migrations) {
			t.Fatalf("open #%d: %d schema_version rows, want %d", i, n, len(migrations))
		}
		var mode string
		if err := s.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
			t.Fatalf("journal_mode %q, %v", mode, err)
		}
		if n := count(t, s, `PRAGMA foreign_keys`); n != 1 {
			t.Fatalf("foreign_keys = %d", n)
		}
		for _, tbl := range []string{"runs", "node_observations", "node_vms", "vms", "lineage", "findings", "guest_probes", "journal"} {
			if n := count(t, s, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, tbl); n != 1 {
				t.Fatalf("table %s missing", tbl)
			}
		}
		if i == 1 {
			record(t, s, at(0), []reconcile.VM{vmOf("vm-1", "wk-1", nil)}, nil)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("close #%d: %v", i, err)
		}
	}
	s := openT(t, path, Options{ReadOnly: true})
	if n := count(t, s, `SELECT count(*) FROM runs`); n != 1 {
		t.Fatalf("runs = %d after reopen, want 1", n)
	}
}

func TestOpenSchemaTooNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s := openT(t, path, Options{})
	if _, err := s.db.Exec(`INSERT INTO schema_version VALUES (99, 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, o := range []Options{{}, {ReadOnly: true}} {
		if _, err := Open(path, o); !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), "99") {
			t.Fatalf("Open(%+v) on schema 99: %v, want ErrSchema", o, err)
		}
	}
}

func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(filepath.Join(dir, "missing.db"), Options{ReadOnly: true})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read-only open of a missing store: %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("read-only open created the file")
	}
	if _, err := Open(filepath.Join(dir, "x.db"), Options{ReadOnly: true, Exclusive: true}); err == nil {
		t.Fatal("ReadOnly+Exclusive accepted")
	}
	path := filepath.Join(dir, "s.db")
	openT(t, path, Options{}).Close()
	ro := openT(t, path, Options{ReadOnly: true})
	snap, res := world(at(0), nil, nil)
	if _, err := ro.RecordRun(ctx, snap, res, at(0), at(0)); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("RecordRun on read-only: %v", err)
	}
	if _, err := ro.JournalIntent(ctx, JournalRecord{PlanID: "p", Action: "a"}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("JournalIntent on read-only: %v", err)
	}
	if err := ro.MarkAlerted(ctx, "k", false); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("MarkAlerted on read-only: %v", err)
	}
	// query_only also guards raw SQL.
	if _, err := ro.db.Exec(`DELETE FROM runs`); err == nil {
		t.Fatal("raw write on a read-only store succeeded")
	}
}

func TestRecordRunFindingLifecycle(t *testing.T) {
	s, _ := tempStore(t)
	vms := []reconcile.VM{vmOf("vm-1", "wk-1", nil), vmOf("vm-2", "wk-2", nil), vmOf("vm-3", "wk-3", nil)}
	a := finding(reconcile.KindSharedNodeID, reconcile.Critical, "n1", "vm-2", "vm-1")
	b := finding(reconcile.KindDuplicateMAC, reconcile.Warning, "", "vm-1", "vm-3")
	c := finding(reconcile.KindNodeWithoutVM, reconcile.Info, "n9")

	d := record(t, s, at(0), vms, nil, a, b, a) // a twice: recorded once
	if got, want := keys(d.Opened), []string{a.Key(), b.Key()}; !reflect.DeepEqual(got, want) {
		t.Fatalf("run 1 opened %v, want %v", got, want)
	}
	if len(d.Resolved) != 0 || d.StillOpen != 0 {
		t.Fatalf("run 1: resolved %v, still open %d", keys(d.Resolved), d.StillOpen)
	}
	if !d.Opened[0].FirstSeen.Equal(at(0)) || d.Opened[0].ID == 0 || d.Opened[0].Kind != reconcile.KindSharedNodeID {
		t.Fatalf("opened finding: %+v", d.Opened[0])
	}

	a2 := a
	a2.Evidence = []string{"hostname flipped 3 times"}
	a2.VMRefs = []string{"vm-1", "vm-2"} // same key, other order
	a2.Confirmed = true
	d = record(t, s, at(5), vms, nil, a2, c)
	if got := keys(d.Opened); !reflect.DeepEqual(got, []string{c.Key()}) {
		t.Fatalf("run 2 opened %v, want [%s]", got, c.Key())
	}
	if got := keys(d.Resolved); !reflect.DeepEqual(got, []string{b.Key()}) {
		t.Fatalf("run 2 resolved %v, want [%s]", got, b.Key())
	}
	if d.StillOpen != 1 {
		t.Fatalf("run 2 still open = %d, want 1", d.StillOpen)
	}
	if r := d.Resolved[0]; !r.ResolvedAt.Equal(at(5)) || r.Open() || !r.FirstSeen.Equal(at(0)) || r.Kind != reconcile.KindDuplicateMAC {
		t.Fatalf("resolved finding: %+v", r)
	}

	open, err := s.OpenFindings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keys(open), []string{a.Key(), c.Key()}; !reflect.DeepEqual(got, want) {
		t.Fatalf("open findings %v, want %v (most severe first)", got, want)
	}
	fa := open[0]
	if !fa.FirstSeen.Equal(at(0)) || !fa.LastSeen.Equal(at(5)) || fa.SeenRuns != 2 || !fa.Confirmed ||
		!reflect.DeepEqual(fa.Evidence, []string{"hostname flipped 3 times"}) || fa.Remedy != "fix it" || fa.NodeID != "n1" {
		t.Fatalf("still-open finding not refreshed: %+v", fa)
	}

	d = record(t, s, at(10), vms, nil)
	if got, want := keys(d.Resolved), []string{a.Key(), c.Key()}; !reflect.DeepEqual(got, want) || len(d.Opened) != 0 || d.StillOpen != 0 {
		t.Fatalf("run 3: resolved %v (want %v), opened %v, still %d", got, want, keys(d.Opened), d.StillOpen)
	}
	if open, _ := s.OpenFindings(ctx); len(open) != 0 {
		t.Fatalf("open after run 3: %v", keys(open))
	}

	// b comes back: a new episode.
	d = record(t, s, at(15), vms, nil, b)
	if got := keys(d.Opened); !reflect.DeepEqual(got, []string{b.Key()}) {
		t.Fatalf("run 4 opened %v", got)
	}
	eps, err := s.FindingEpisodes(ctx, b.Key())
	if err != nil || len(eps) != 2 || eps[0].Open() || !eps[1].Open() || !eps[1].FirstSeen.Equal(at(15)) {
		t.Fatalf("episodes of b: %+v, %v", eps, err)
	}
	last, ok, err := s.LastRun(ctx)
	if err != nil || !ok || last.Opened != 1 || last.Findings != 1 || last.VMs != 3 || !last.OK || !last.CollectedAt.Equal(at(15)) {
		t.Fatalf("last run %+v ok=%v err=%v", last, ok, err)
	}
	runs, err := s.Runs(ctx, 0)
	if err != nil || len(runs) != 4 || runs[1].Opened != 1 || runs[1].Resolved != 1 || runs[2].Resolved != 2 {
		t.Fatalf("runs: %+v, %v", runs, err)
	}
}

func TestRecordFailureKeepsFindings(t *testing.T) {
	s, _ := tempStore(t)
	a := finding(reconcile.KindSharedNodeID, reconcile.Critical, "n1", "vm-1", "vm-2")
	record(t, s, at(0), nil, nil, a)
	id, err := s.RecordFailure(ctx, at(4), at(5), errors.New("vc1: connection refused"))
	if err != nil || id == 0 {
		t.Fatal(id, err)
	}
	if open, _ := s.OpenFindings(ctx); len(open) != 1 {
		t.Fatalf("a failed run changed findings: %v", keys(open))
	}
	last, _, _ := s.LastRun(ctx)
	if last.OK || last.Error != "vc1: connection refused" {
		t.Fatalf("last run %+v", last)
	}
	d := record(t, s, at(10), nil, nil, a)
	if d.StillOpen != 1 || len(d.Opened)+len(d.Resolved) != 0 {
		t.Fatalf("after failure: %+v", d)
	}
}

func TestAlertsSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	now := at(100)
	opts := Options{Exclusive: true, Now: func() time.Time { return now }}
	s := openT(t, path, opts)
	a := finding(reconcile.KindSharedNodeID, reconcile.Critical, "n1", "vm-1", "vm-2")
	b := finding(reconcile.KindDuplicateMAC, reconcile.Warning, "", "vm-3", "vm-4")
	record(t, s, at(0), nil, nil, a, b)

	pendOpen, pendRes, err := s.PendingAlerts(ctx)
	if err != nil || !reflect.DeepEqual(keys(pendOpen), []string{a.Key(), b.Key()}) || len(pendRes) != 0 {
		t.Fatalf("pending %v / %v, %v", keys(pendOpen), keys(pendRes), err)
	}
	if err := s.MarkAlerted(ctx, a.Key(), false); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkAlerted(ctx, "nope|x|", false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("MarkAlerted unknown key: %v", err)
	}
	s.Close()

	s = openT(t, path, opts) // a daemon restart
	pendOpen, pendRes, _ = s.PendingAlerts(ctx)
	if !reflect.DeepEqual(keys(pendOpen), []string{b.Key()}) || len(pendRes) != 0 {
		t.Fatalf("after restart pending %v / %v, want [b] / []", keys(pendOpen), keys(pendRes))
	}
	if err := s.MarkAlerted(ctx, b.Key(), false); err != nil {
		t.Fatal(err)
	}
	record(t, s, at(5), nil, nil, a, b) // still open: nothing to alert
	if po, pr, _ := s.PendingAlerts(ctx); len(po)+len(pr) != 0 {
		t.Fatalf("still-open findings re-alerted: %v / %v", keys(po), keys(pr))
	}

	record(t, s, at(10), nil, nil, b) // a resolves
	s.Close()
	s = openT(t, path, opts)
	pendOpen, pendRes, _ = s.PendingAlerts(ctx)
	if len(pendOpen) != 0 || !reflect.DeepEqual(keys(pendRes), []string{a.Key()}) {
		t.Fatalf("after resolve + restart pending %v / %v, want [] / [a]", keys(pendOpen), keys(pendRes))
	}
	if !pendRes[0].AlertedOpen.Equal(at(100)) || !pendRes[0].ResolvedAt.Equal(at(10)) {
		t.Fatalf("resolved pending: %+v", pendRes[0])
	}
	if err := s.MarkAlerted(ctx, a.Key(), true); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkAlerted(ctx, a.Key(), true); err != nil { // idempotent
		t.Fatal(err)
	}
	s.Close()
	s = openT(t, path, opts)
	if po, pr, _ := s.PendingAlerts(ctx); len(po)+len(pr) != 0 {
		t.Fatalf("pending after all marked: %v / %v", keys(po), keys(pr))
	}

	// Opened and resolved while the sink was down: alerted as opened first,
	// then its resolution.
	c := finding(reconcile.KindNodeFlapping, reconcile.Warning, "n7")
	record(t, s, at(20), nil, nil, b, c)
	record(t, s, at(25), nil, nil, b)
	pendOpen, pendRes, _ = s.PendingAlerts(ctx)
	if !reflect.DeepEqual(keys(pendOpen), []string{c.Key()}) || len(pendRes) != 0 || pendOpen[0].Open() {
		t.Fatalf("unalerted and resolved: %v / %v", keys(pendOpen), keys(pendRes))
	}
	s.MarkAlerted(ctx, c.Key(), false)
	if _, pr, _ := s.PendingAlerts(ctx); !reflect.DeepEqual(keys(pr), []string{c.Key()}) {
		t.Fatalf("resolution of c not pending: %v", keys(pr))
	}
}

func TestHistoryAcrossRuns(t *testing.T) {
	s, _ := tempStore(t)
	vms := []reconcile.VM{vmOf("vm-1", "wk-1", nil), vmOf("vm-2", "wk-1-clone", &reconcile.Lineage{SourceRef: "vm-1", SourceName: "wk-1", Kind: "clone", Time: at(-60)})}
	record(t, s, at(0), vms, []reconcile.Node{nodeOf("n1", descOf("wk-1", at(-5), 3)), nodeOf("n2", descOf("wk-2", at(-5), 3))})
	if _, err := s.RecordFailure(ctx, at(3), at(4), errors.New("boom")); err != nil {
		t.Fatal(err)
	}
	record(t, s, at(10), vms, []reconcile.Node{nodeOf("n1", descOf("wk-1", at(5), 2), descOf("wk-1-clone", at(6), 2))})

	h, err := s.History(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	n1 := h.Nodes["n1"]
	if len(n1) != 2 || n1[0].Hostname != "wk-1" || n1[1].Hostname != "wk-1-clone" {
		t.Fatalf("n1 history: %+v", n1)
	}
	if d := n1[0]; d.Seen != 5 || !d.FirstSeen.Equal(at(-5)) || !d.LastSeen.Equal(at(9)) || d.CPUs() != 4 || d.MemoryMB() != 8192 || d.Addr != "10.0.0.1" || d.EngineVersion != "27.3.1" {
		t.Fatalf("merged description: %+v", d)
	}
	if len(h.Nodes["n2"]) != 1 {
		t.Fatalf("n2 history: %+v", h.Nodes["n2"])
	}
	if l, ok := h.Lineage["vm-2"]; !ok || l.SourceRef != "vm-1" || l.Kind != "clone" || !l.Time.Equal(at(-60)) {
		t.Fatalf("lineage: %+v", h.Lineage)
	}

	h, _ = s.History(ctx, at(1)) // only the second run (started at(5))
	if len(h.Nodes["n2"]) != 0 || len(h.Nodes["n1"]) != 2 || h.Nodes["n1"][0].Seen != 2 {
		t.Fatalf("history since: %+v", h.Nodes)
	}
}

func TestLineageSurvivesEventRetention(t *testing.T) {
	s, _ := tempStore(t)
	lin := &reconcile.Lineage{SourceRef: "vm-1", SourceName: "wk-1", Kind: "clone", Time: at(-600)}
	record(t, s, at(0), []reconcile.VM{vmOf("vm-1", "wk-1", nil), vmOf("vm-2", "wk-1-clone", lin)}, nil)
	// vCenter's event retention dropped the clone event: no lineage reported.
	record(t, s, at(10), []reconcile.VM{vmOf("vm-1", "wk-1-renamed", nil), vmOf("vm-2", "wk-1-clone", nil)}, nil)
	h, err := s.History(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Lineage["vm-2"]; got != *lin {
		t.Fatalf("lineage after retention: %+v, want %+v", got, *lin)
	}
	var first, last int64
	s.db.QueryRow(`SELECT first_recorded, last_reported FROM lineage WHERE vm_ref = 'vm-2'`).Scan(&first, &last)
	if first != at(0).UnixNano() || last != at(0).UnixNano() {
		t.Fatalf("first_recorded %d last_reported %d", first, last)
	}
}

func TestJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := openT(t, path, Options{Exclusive: true, Now: func() time.Time { return at(50) }})
	id1, err := s.JournalIntent(ctx, JournalRecord{PlanID: "plan-1", VMRef: "vm-2", VMName: "wk-1-clone", Action: "power-off", Reason: "clone of wk-1", FindingKey: "k1", Time: at(40)})
	if err != nil {
		t.Fatal(err)
	}
	id2, err := s.JournalIntent(ctx, JournalRecord{PlanID: "plan-1", VMRef: "vm-3", VMName: "wk-3-clone", Action: "disconnect-nic"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.JournalIntent(ctx, JournalRecord{VMRef: "vm-3"}); err == nil {
		t.Fatal("intent without plan/action accepted")
	}
	if err := s.JournalOutcome(ctx, id1, "done", "powered off in 3s"); err != nil {
		t.Fatal(err)
	}
	if err := s.JournalOutcome(ctx, id1, "failed", ""); err == nil {
		t.Fatal("second outcome accepted")
	}
	if err := s.JournalOutcome(ctx, 999, "done", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("outcome of unknown intent: %v", err)
	}
	if _, err := s.db.Exec(`UPDATE journal SET status = 'done' WHERE id = ?`, id2); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("journal UPDATE: %v, want append-only error", err)
	}
	s.Close() // a crash between intent 2 and its outcome
	s = openT(t, path, Options{ReadOnly: true})

	un, err := s.Unfinished(ctx)
	if err != nil || len(un) != 1 || un[0].ID != id2 || un[0].Action != "disconnect-nic" || un[0].Status != StatusPending || !un[0].Time.Equal(at(50)) {
		t.Fatalf("unfinished: %+v, %v", un, err)
	}
	es, err := s.JournalEntries(ctx, "plan-1")
	if err != nil || len(es) != 3 {
		t.Fatalf("entries: %+v, %v", es, err)
	}
	want := []struct {
		phase, status string
		intent        int64
	}{{PhaseIntent, StatusPending, 0}, {PhaseIntent, StatusPending, 0}, {PhaseOutcome, "done", id1}}
	for i, w := range want {
		if es[i].Phase != w.phase || es[i].Status != w.status || es[i].IntentID != w.intent {
			t.Fatalf("entry %d: %+v", i, es[i])
		}
	}
	if o := es[2]; o.VMRef != "vm-2" || o.Action != "power-off" || o.FindingKey != "k1" || o.Detail != "powered off in 3s" || o.PlanID != "plan-1" {
		t.Fatalf("outcome row: %+v", o)
	}
	if es, _ := s.JournalEntries(ctx, "other"); len(es) != 0 {
		t.Fatalf("other plan: %+v", es)
	}
}

func TestProbes(t *testing.T) {
	s, _ := tempStore(t)
	if _, ok, err := s.LastProbe(ctx, reconcile.VMKey{Ref: "vm-2"}); ok || err != nil {
		t.Fatalf("probe of unprobed VM: %v %v", ok, err)
	}
	g := reconcile.GuestIdentity{VMRef: "vm-2", ProbedAt: at(10), NodeID: "n1", ClusterID: "clu1", Role: "swarm-worker", MachineID: "m1", DockerActive: "yes"}
	if err := s.SaveProbe(ctx, g); err != nil {
		t.Fatal(err)
	}
	old := reconcile.GuestIdentity{VMRef: "vm-2", ProbedAt: at(5), Error: "tools not running"}
	if err := s.SaveProbe(ctx, old); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.LastProbe(ctx, reconcile.VMKey{Ref: "vm-2"})
	if err != nil || !ok || !reflect.DeepEqual(got, g) {
		t.Fatalf("last probe %+v %v %v, want %+v", got, ok, err, g)
	}
	// RecordRun keeps the snapshot's guest probes.
	snap, res := world(at(20), nil, nil)
	newer := reconcile.GuestIdentity{VMRef: "vm-2", ProbedAt: at(19), NodeID: "n1", MachineID: "m2"}
	snap.Guests = []reconcile.GuestIdentity{newer}
	if _, err := s.RecordRun(ctx, snap, res, at(15), at(20)); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.LastProbe(ctx, reconcile.VMKey{Ref: "vm-2"}); !reflect.DeepEqual(got, newer) {
		t.Fatalf("probe after run: %+v", got)
	}
}

func TestExclusiveLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s1 := openT(t, path, Options{Exclusive: true})
	_, err := Open(path, Options{Exclusive: true})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second exclusive open: %v, want ErrLocked", err)
	}
	want := fmt.Sprintf("store %s is in use by another vmreconcile process (pid %d)", path, os.Getpid())
	if err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	var le *LockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() || le.Path != path {
		t.Fatalf("LockedError %+v", le)
	}

	// Readers work while the daemon holds the store, and see its commits.
	ro := openT(t, path, Options{ReadOnly: true})
	record(t, s1, at(0), []reconcile.VM{vmOf("vm-1", "wk-1", nil)}, []reconcile.Node{nodeOf("n1", descOf("wk-1", at(-5), 1))},
		finding(reconcile.KindNodeFlapping, reconcile.Warning, "n1"))
	if open, err := ro.OpenFindings(ctx); err != nil || len(open) != 1 {
		t.Fatalf("reader: %v, %v", keys(open), err)
	}
	if tl, err := ro.Timeline(ctx, "n1"); err != nil || len(tl) == 0 {
		t.Fatalf("reader timeline: %v, %v", tl, err)
	}
	// A non-exclusive writer (audit) is not blocked by the lock either.
	w := openT(t, path, Options{})
	record(t, w, at(10), nil, nil)
	w.Close()

	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, Options{Exclusive: true})
	if err != nil {
		t.Fatalf("exclusive open after close: %v", err)
	}
	s2.Close()
}

func TestPrune(t *testing.T) {
	s, _ := tempStore(t)
	lin := &reconcile.Lineage{SourceRef: "vm-1", SourceName: "wk-1", Kind: "clone", Time: at(-100)}
	oldVMs := []reconcile.VM{vmOf("vm-1", "wk-1", nil), vmOf("vm-2", "gone-clone", lin), vmOf("vm-3", "kept-clone", lin)}
	keep := finding(reconcile.KindSharedNodeID, reconcile.Critical, "n1", "vm-1", "vm-3")
	gone := finding(reconcile.KindDuplicateMAC, reconcile.Warning, "", "vm-1", "vm-2")
	unalerted := finding(reconcile.KindNodeWithoutVM, reconcile.Info, "n5")
	nodes := []reconcile.Node{nodeOf("n1", descOf("wk-1", at(-5), 1))}
	record(t, s, at(0), oldVMs, nodes, keep, gone, unalerted)
	s.MarkAlerted(ctx, keep.Key(), false)
	s.MarkAlerted(ctx, gone.Key(), false)
	record(t, s, at(10), oldVMs, nodes, keep)
	s.MarkAlerted(ctx, gone.Key(), true)
	// vm-2 disappears; vm-3's lineage is no longer reported by vCenter.
	nowVMs := []reconcile.VM{vmOf("vm-1", "wk-1", nil), vmOf("vm-3", "kept-clone", nil)}
	record(t, s, at(1000), nowVMs, nodes, keep)
	s.SaveProbe(ctx, reconcile.GuestIdentity{VMRef: "vm-2", ProbedAt: at(1)})
	s.SaveProbe(ctx, reconcile.GuestIdentity{VMRef: "vm-3", ProbedAt: at(999)})
	done, _ := s.JournalIntent(ctx, JournalRecord{PlanID: "p", VMRef: "vm-2", Action: "power-off", Time: at(2)})
	s.JournalOutcome(ctx, done, "done", "") // outcome at wall-clock now: recent
	old, _ := s.JournalIntent(ctx, JournalRecord{PlanID: "p", VMRef: "vm-2", Action: "delete", Time: at(3)})
	if _, err := s.db.Exec(`INSERT INTO journal(intent_id, plan_id, action, phase, status, time) VALUES (?, 'p', 'delete', 'outcome', 'done', ?)`, old, at(4).UnixNano()); err != nil {
		t.Fatal(err)
	}
	unfinished, _ := s.JournalIntent(ctx, JournalRecord{PlanID: "p", VMRef: "vm-2", Action: "snapshot", Time: at(5)})

	n, err := s.Prune(ctx, at(500))
	if err != nil {
		t.Fatal(err)
	}
	// runs 1,2 (2) + their observations (2) + gone finding (1) + lineage vm-2 (1) + vms vm-2 (1)
	// + node_vms none (n1-vm-1 seen at 1000) + probe vm-2 (1) + journal pair old (2) = 10.
	// unalerted finding resolved at(10) without alert: pruned too (no resolution alert pending).
	if want := 11; n != want {
		t.Fatalf("pruned %d rows, want %d", n, want)
	}
	if c := count(t, s, `SELECT count(*) FROM runs`); c != 1 {
		t.Fatalf("runs left %d", c)
	}
	if open, _ := s.OpenFindings(ctx); !reflect.DeepEqual(keys(open), []string{keep.Key()}) {
		t.Fatalf("open findings after prune: %v", keys(open))
	}
	if eps, _ := s.FindingEpisodes(ctx, gone.Key()); len(eps) != 0 {
		t.Fatalf("resolved+alerted finding kept: %+v", eps)
	}
	h, _ := s.History(ctx, time.Time{})
	if _, ok := h.Lineage["vm-2"]; ok {
		t.Fatal("lineage of a VM gone for the retention period kept")
	}
	if l, ok := h.Lineage["vm-3"]; !ok || l.SourceRef != "vm-1" {
		t.Fatal("lineage of a VM still seen was pruned")
	}
	if _, ok, _ := s.LastProbe(ctx, reconcile.VMKey{Ref: "vm-2"}); ok {
		t.Fatal("old probe kept")
	}
	if _, ok, _ := s.LastProbe(ctx, reconcile.VMKey{Ref: "vm-3"}); !ok {
		t.Fatal("recent probe pruned")
	}
	un, _ := s.Unfinished(ctx)
	if len(un) != 1 || un[0].ID != unfinished {
		t.Fatalf("unfinished after prune: %+v", un)
	}
	es, _ := s.JournalEntries(ctx, "p")
	var ids []int64
	for _, e := range es {
		ids = append(ids, e.ID)
	}
	if len(es) != 3 || !slices.Contains(ids, done) || slices.Contains(ids, old) {
		t.Fatalf("journal after prune: %+v", es)
	}

	// Everything old: the latest successful run stays for History.
	s.MarkAlerted(ctx, keep.Key(), false)
	if _, err := s.Prune(ctx, at(100000)); err != nil {
		t.Fatal(err)
	}
	if c := count(t, s, `SELECT count(*) FROM runs`); c != 1 {
		t.Fatalf("latest run pruned: %d runs", c)
	}
	if h, _ := s.History(ctx, time.Time{}); len(h.Nodes["n1"]) != 1 {
		t.Fatalf("history after full prune: %+v", h.Nodes)
	}
	if open, _ := s.OpenFindings(ctx); len(open) != 1 {
		t.Fatal("open finding pruned")
	}
	if un, _ := s.Unfinished(ctx); len(un) != 1 {
		t.Fatal("unfinished intent pruned")
	}
}

func TestRelativePathWithOddCharacters(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	path := filepath.Join("my state", "vm?reconcile #1.db")
	s, err := Open(path, Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	record(t, s, at(0), []reconcile.VM{vmOf("vm-1", "wk-1", nil)}, nil)
	s.Close()
	for _, name := range []string{path, path + ".lock"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("%s not where asked: %v", name, err)
		}
	}
	ro := openT(t, path, Options{ReadOnly: true})
	if n := count(t, ro, `SELECT count(*) FROM vms`); n != 1 {
		t.Fatalf("vms = %d", n)
	}
	if n, err := ro.Prune(ctx, time.Time{}); n != 0 || err != nil {
		t.Fatalf("zero prune: %d %v", n, err)
	}
}
