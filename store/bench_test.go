package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// BenchmarkRecordRun records runs of 5,000 VMs (a third with lineage), 1,000
// nodes (50 with a second, flipped description) and 50 findings, 5 of which
// change each run (5 open, 5 resolve), into a store that grows by a run per
// iteration.
func BenchmarkRecordRun(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.db")
	s, err := Open(path, Options{Exclusive: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	vms := make([]reconcile.VM, 5000)
	for i := range vms {
		var lin *reconcile.Lineage
		if i%3 == 0 && i > 0 {
			lin = &reconcile.Lineage{SourceRef: fmt.Sprintf("vm-%d", i-1), SourceName: fmt.Sprintf("wk-%d", i-1), Kind: "clone", Time: at(-1000)}
		}
		vms[i] = vmOf(fmt.Sprintf("vm-%d", i), fmt.Sprintf("wk-%d", i), lin)
	}
	run := 0
	mk := func() (reconcile.Snapshot, reconcile.Result) {
		when := at(5 * run)
		nodes := make([]reconcile.Node, 1000)
		for i := range nodes {
			n := nodeOf(fmt.Sprintf("node%020d", i), descOf(fmt.Sprintf("wk-%d", i), when.Add(-5*time.Minute), 10))
			if i < 50 {
				n.Descriptions = append(n.Descriptions, descOf(fmt.Sprintf("wk-%d", 1000+i), when.Add(-3*time.Minute), 4))
			}
			nodes[i] = n
		}
		fs := make([]reconcile.Finding, 50)
		for i := range fs {
			k := i
			if i < 5 {
				k = 1000 + run*5 + i // five new ones each run
			}
			fs[i] = finding(reconcile.KindSharedNodeID, reconcile.Critical, fmt.Sprintf("node%020d", k), fmt.Sprintf("vm-%d", k), fmt.Sprintf("vm-%d", 1000+k))
		}
		return world(when, vms, nodes, fs...)
	}
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		snap, res := mk()
		b.StartTimer()
		d, err := s.RecordRunWith(ctx, snap, res, snap.CollectedAt.Add(-time.Minute), snap.CollectedAt, immediate)
		if err != nil {
			b.Fatal(err)
		}
		if run > 0 && (len(d.Opened) != 5 || len(d.Resolved) != 5 || d.StillOpen != 45) {
			b.Fatalf("run %d diff: %d opened %d resolved %d still", run, len(d.Opened), len(d.Resolved), d.StillOpen)
		}
		run++
	}
}
