package reconcile

import (
	"fmt"
	"testing"
	"time"
)

// Adversarial cases from review; each names the bug it pins.
func TestReviewAdversarial(t *testing.T) {
	// A clone that kept hostname AND resources: only the address tells the
	// two identities apart.
	twin := mkVM("wk-01-twin", host("wk-01"), ip("10.0.0.9"), copyOf(worker))
	dTwin := d("wk-01", 2, 3900, "10.0.0.9")
	twice := func(s Snapshot) Snapshot {
		sw := s.Swarms[0]
		sw.Endpoint = "tcp://mgr-02:2376"
		s.Swarms = append(s.Swarms, sw)
		return s
	}
	vc2 := func(v VM) VM { v.VCenter = "vc2"; v.Path = "/DC9/vm/" + v.Name; return v }
	cases := []struct {
		name string
		snap Snapshot
		hist History
		want []want
	}{
		{
			name: "kept hostname and resources: the address decides",
			snap: snap(vms(worker, twin), node("n1", ds(dWorker, dTwin), flipping...)),
			want: []want{
				{KindSharedNodeID, "n1", []string{"wk-01", "wk-01-twin"}, "wk-01"},
				{KindDuplicateHostname, "", []string{"wk-01", "wk-01-twin"}, "wk-01"},
			},
		},
		{
			name: "same swarm observed through two managers: addresses stay strong",
			snap: twice(snap(vms(worker, twin), node("n1", ds(dWorker, dTwin), flipping...))),
			want: []want{
				{KindSharedNodeID, "n1", []string{"wk-01", "wk-01-twin"}, "wk-01"},
				{KindDuplicateHostname, "", []string{"wk-01", "wk-01-twin"}, "wk-01"},
			},
		},
		{
			name: "same swarm observed twice: DHCP re-use still contradicts",
			snap: twice(snap(vms(mkVM("wk-01", ip("10.0.0.50")), mkVM("db-01", ip("10.0.0.5"))),
				node("n1", ds(d("wk-01", 2, 3900, "10.0.0.5"), d("wk-01", 2, 3900, "10.0.0.50"))))),
		},
		{
			name: "same short name in two domains is not a duplicate hostname",
			snap: snap(vms(mkVM("app-prod", host("app01.prod.example.com")), mkVM("app-test", host("app01.test.example.com")))),
		},
		{
			name: "same FQDN twice, another domain once: only the two",
			snap: snap(vms(mkVM("a", host("app01.prod.example.com")), mkVM("b", host("APP01.prod.example.com.")), mkVM("c", host("app01.test.example.com")))),
			want: []want{{KindDuplicateHostname, "", []string{"a", "b"}, ""}},
		},
		{
			name: "a short name bridges two FQDNs",
			snap: snap(vms(mkVM("a", host("app01.prod.example.com")), mkVM("b", host("app01")), mkVM("c", host("app01.test.example.com")))),
			want: []want{{KindDuplicateHostname, "", []string{"a", "b", "c"}, ""}},
		},
		{
			name: "history lineage of a ref that two vCenters use is not applied",
			// vm-x and vm-wk-01 exist in both vCenters; the stored lineage
			// (vm-x copied from wk-01) names a source that vc2's vm-wk-01
			// (db-09) is not: it is vc1's, so vc2's vm-x is no clone.
			snap: snap(vms(worker, mkVM("other", func(v *VM) { v.Ref = "vm-x" }),
				vc2(mkVM("unrelated", func(v *VM) { v.Ref = "vm-x" })),
				vc2(mkVM("db-09", func(v *VM) { v.Ref = worker.Ref }))),
				node("n1", ds(dWorker)), node("n2", ds(d("db-09", 2, 3900, "")))),
			hist: History{Lineage: map[string]Lineage{"vm-x": *lin(worker)}},
			want: []want{{KindCloneOfSwarmNode, "n1", []string{"wk-01", "other"}, "wk-01"}},
		},
		{
			name: "history lineage of a ref only one vCenter uses still applies",
			snap: snap(vms(worker, mkVM("other", func(v *VM) { v.Ref = "vm-x" })), node("n1", ds(dWorker))),
			hist: History{Lineage: map[string]Lineage{"vm-x": {SourceRef: worker.Ref, SourceName: "wk-01-old-name", Kind: "clone"}}},
			want: []want{{KindCloneOfSwarmNode, "n1", []string{"wk-01", "other"}, "wk-01"}},
		},
		{
			name: "no lineage: an earlier run saw the worker long before the clone",
			snap: snap(vms(worker, func() VM { c := clone; c.Lineage = nil; return c }()), node("n1", ds(dClone, dWorker), 0, 1, 0, 1)),
			hist: History{Nodes: map[string][]Description{"n1": {
				func() Description {
					x := dWorker
					x.FirstSeen, x.LastSeen, x.Seen = t0.Add(-9*time.Minute), t0.Add(-8*time.Minute), 5
					return x
				}(),
			}}},
			want: []want{{KindSharedNodeID, "n1", []string{"wk-01", "wk-01-clone"}, "wk-01"}},
		},
		{
			name: "copy of an impostor: the clone finding names the real original, not the impostor",
			snap: snap(vms(worker, clone, mkVM("wk-01-clone-2", ip("10.0.0.33"), copyOf(clone))), node("n1", ds(dWorker, dClone), flipping...)),
			want: []want{
				{KindSharedNodeID, "n1", []string{"wk-01", "wk-01-clone"}, "wk-01"},
				{KindCloneOfSwarmNode, "n1", []string{"wk-01", "wk-01-clone-2"}, "wk-01"},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Reconcile(tc.snap, tc.hist)
			if g := got(r.Findings); !equalWants(g, tc.want) {
				t.Errorf("findings:\n got  %v\n want %v", g, tc.want)
				dump(t, r)
			}
			checkRemedies(t, r)
		})
	}
}

// BenchmarkDuplicatesOneTemplate: 16,000 VMs deployed from one template,
// all reporting hostname "ubuntu" and one MAC. The duplicate checks must stay
// linear (they were quadratic: 2.7 s at 4,000 VMs); compare ns/op at
// -benchtime=1x across sizes. The content is checked too.
func BenchmarkDuplicatesOneTemplate(b *testing.B) {
	tpl := mkVM("tpl", template())
	l := []VM{tpl}
	for i := range 16000 {
		l = append(l, mkVM(fmt.Sprintf("app-%05d", i), host("ubuntu"), mac("00:50:56:00:00:01"), copyOf(tpl)))
	}
	for b.Loop() {
		r := Reconcile(snap(l), History{})
		if len(r.Findings) != 2 || len(r.Findings[0].VMs) != 16000 {
			b.Fatalf("want a duplicate-hostname and a duplicate-mac finding over all 16,000 VMs, got %d findings", len(r.Findings))
		}
	}
}
