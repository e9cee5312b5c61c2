package store

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// TestKubeHistory: what each Kubernetes Node was written with is kept per
// run and comes back as History.KubeNodes (the original of a shared Node is
// the VM whose identity the Node showed first, across runs); failed runs
// and runs before since do not count.
func TestKubeHistory(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "s.db"), Options{})
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	a := reconcile.KubeIdentity{BootID: "boot-a", SystemUUID: "uuid-a", CPUs: 4, MemoryBytes: 8 << 30, InternalIP: "10.0.0.1", Hostname: "wk", FirstSeen: t0, LastSeen: t0.Add(time.Minute), Seen: 3}
	b := reconcile.KubeIdentity{BootID: "boot-b", SystemUUID: "uuid-b", CPUs: 8, MemoryBytes: 16 << 30, InternalIP: "10.0.0.2", Hostname: "wk", FirstSeen: t0.Add(time.Hour), LastSeen: t0.Add(time.Hour), Seen: 1, EventsOnly: true}
	snap := func(at time.Time, ids ...reconcile.KubeIdentity) reconcile.Snapshot {
		return reconcile.Snapshot{CollectedAt: at, Kubernetes: []reconcile.KubeCluster{{Name: "prod", Nodes: []reconcile.KubeNode{{Name: "wk", Identities: ids}}}}}
	}
	for i, sn := range []reconcile.Snapshot{snap(t0, a), snap(t0.Add(time.Hour), a, b)} {
		if _, err := s.RecordRun(ctx, sn, reconcile.Reconcile(sn, reconcile.History{}), sn.CollectedAt, sn.CollectedAt.Add(time.Second)); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	h, err := s.History(ctx, t0.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	got := h.KubeNodes[reconcile.KubeNodeKey("prod", "wk")]
	if len(got) != 2 || got[0].BootID != "boot-a" || got[0].Seen != 6 || !got[0].FirstSeen.Equal(t0) || got[0].CPUs != 4 ||
		got[1].BootID != "boot-b" || !got[1].EventsOnly || got[1].SystemUUID != "uuid-b" {
		t.Fatalf("history of prod/wk: %+v", got)
	}
	// Only runs since then.
	if h, err := s.History(ctx, t0.Add(30*time.Minute)); err != nil || len(h.KubeNodes[reconcile.KubeNodeKey("prod", "wk")]) != 2 || h.KubeNodes[reconcile.KubeNodeKey("prod", "wk")][0].Seen != 3 {
		t.Errorf("history since the second run: %+v %v", h.KubeNodes, err)
	}
}
