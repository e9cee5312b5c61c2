package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

func openT(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func tempStore(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", "vmreconcile.db")
	return openT(t, path, Options{Exclusive: true}), path
}

func vmOf(ref, name string, lin *reconcile.Lineage) reconcile.VM {
	return reconcile.VM{VCenter: "vc1", Ref: ref, Name: name, Path: "/DC0/vm/" + name, PowerState: "poweredOn",
		BIOSUUID: "uuid-" + ref, NumCPU: 4, MemoryMB: 8192, GuestHostname: name, Lineage: lin}
}

func descOf(host string, first time.Time, seen int) reconcile.Description {
	return reconcile.Description{Hostname: host, NanoCPUs: 4e9, MemoryBytes: 8 << 30, Addr: "10.0.0." + host[len(host)-1:],
		EngineVersion: "27.3.1", FirstSeen: first, LastSeen: first.Add(4 * time.Minute), Seen: seen}
}

func nodeOf(id string, ds ...reconcile.Description) reconcile.Node {
	return reconcile.Node{ID: id, Role: "worker", State: "ready", Availability: "active", Descriptions: ds}
}

// world builds a snapshot and the result a reconciler would give, matching
// descriptions to the VM whose name equals the hostname.
func world(when time.Time, vms []reconcile.VM, nodes []reconcile.Node, fs ...reconcile.Finding) (reconcile.Snapshot, reconcile.Result) {
	snap := reconcile.Snapshot{CollectedAt: when, VCenters: []string{"vc1"}, VMs: vms,
		Swarms: []reconcile.Swarm{{Endpoint: "tcp://mgr:2376", ClusterID: "clu1", ObservedFrom: when.Add(-5 * time.Minute), ObservedTo: when, Nodes: nodes}}}
	byName := map[string]string{}
	for _, v := range vms {
		byName[v.Name] = v.Ref
	}
	res := reconcile.Result{Summary: reconcile.Summary{CollectedAt: when, VMs: len(vms), Swarms: 1, Nodes: len(nodes)}, Findings: fs}
	for _, n := range nodes {
		ns := reconcile.NodeStatus{ClusterID: "clu1", ID: n.ID, Role: n.Role, State: n.State}
		for _, d := range n.Descriptions {
			md := reconcile.MatchedDescription{Description: d}
			if ref, ok := byName[d.Hostname]; ok {
				md.VMRefs = []string{ref}
				ns.VMRefs = append(ns.VMRefs, ref)
			}
			ns.Descriptions = append(ns.Descriptions, md)
		}
		res.Nodes = append(res.Nodes, ns)
	}
	for _, f := range fs {
		switch f.Severity {
		case reconcile.Critical:
			res.Summary.Critical++
		case reconcile.Warning:
			res.Summary.Warning++
		default:
			res.Summary.Info++
		}
	}
	return snap, res
}

func finding(kind string, sev reconcile.Severity, node string, refs ...string) reconcile.Finding {
	f := reconcile.Finding{Kind: kind, Severity: sev, NodeID: node, VMRefs: refs, Evidence: []string{"evidence of " + kind}, Remedy: "fix it"}
	for _, r := range refs {
		f.VMs = append(f.VMs, "name-"+r)
		f.VMPaths = append(f.VMPaths, "/DC0/vm/name-"+r)
	}
	return f
}

// immediate resolves a finding at its first absence: the tests of other
// store behaviour use it; resolve_test.go tests the real policy.
var immediate = RecordOptions{Resolve: ResolvePolicy{Runs: 1}}

func record(t testing.TB, s *Store, when time.Time, vms []reconcile.VM, nodes []reconcile.Node, fs ...reconcile.Finding) RunDiff {
	t.Helper()
	snap, res := world(when, vms, nodes, fs...)
	d, err := s.RecordRunWith(context.Background(), snap, res, when.Add(-5*time.Minute), when.Add(time.Second), immediate)
	if err != nil {
		t.Fatalf("RecordRun(%s): %v", when, err)
	}
	return d
}

func keys(fs []StoredFinding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Key)
	}
	return out
}

func count(t testing.TB, s *Store, q string, args ...any) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}
