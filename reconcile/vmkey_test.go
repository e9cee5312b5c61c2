package reconcile

import (
	"slices"
	"testing"
)

func TestVMKeyString(t *testing.T) {
	for _, k := range []VMKey{{VCenter: "vc.example.com", Ref: "vm-62"}, {VCenter: "127.0.0.1:8989", Ref: "vm-62"}, {Ref: "vm-62"}} {
		got, err := ParseVMKey(k.String())
		if err != nil || got != k {
			t.Errorf("ParseVMKey(%q) = %+v, %v; want %+v", k.String(), got, err, k)
		}
	}
	if s := (VMKey{VCenter: "vc1", Ref: "vm-1"}).String(); s != "vc1/vm-1" {
		t.Errorf("String = %q", s)
	}
	for _, bad := range []string{"", "vc1/", "/vm-1", "vc1/vm-1/x", "vm-1,vm-2", "a|b"} {
		if k, err := ParseVMKey(bad); err == nil {
			t.Errorf("ParseVMKey(%q) accepted: %+v", bad, k)
		}
	}
	if (VM{VCenter: "vc2", Ref: "vm-9"}).Key() != (VMKey{"vc2", "vm-9"}) || (GuestIdentity{VCenter: "vc2", VMRef: "vm-9"}).Key() != (VMKey{"vc2", "vm-9"}) {
		t.Error("VM.Key / GuestIdentity.Key")
	}
}

// A finding recorded before findings named vCenters keys as it did; one
// that names them keys by vCenter and ref.
func TestFindingKeyNamesVCenters(t *testing.T) {
	old := Finding{Kind: KindSharedNodeID, NodeID: "n1", VMRefs: []string{"vm-2", "vm-1"}}
	if k := old.Key(); k != "shared-node-id|n1|vm-1,vm-2" {
		t.Errorf("old key %q", k)
	}
	f := old
	f.VMVCenters = []string{"vc2", "vc1"}
	if k := f.Key(); k != "shared-node-id|n1|vc1/vm-1,vc2/vm-2" {
		t.Errorf("key %q", k)
	}
}

// Two vCenters hand out the same morefs. The same problem on VMs of the
// same refs in two vCenters is two findings, not one: keyed by ref alone,
// the second was dropped as a repeat of the first.
func TestFindingsCollidingRefsTwoVCenters(t *testing.T) {
	a := mkVM("a", mac("00:50:56:aa:aa:aa"))
	b := mkVM("b", mac("00:50:56:aa:aa:aa"))
	c := mkVM("c", mac("00:50:56:cc:cc:cc"))
	e := mkVM("e", mac("00:50:56:cc:cc:cc"))
	a.Ref, b.Ref = "vm-10", "vm-11"
	c.VCenter, c.Ref, e.VCenter, e.Ref = "vc2", "vm-10", "vc2", "vm-11"
	s := snap(vms(a, b, c, e))
	s.VCenters = []string{"vc1", "vc2"}
	res := Reconcile(s, History{})
	var keys []string
	for _, f := range res.Findings {
		if f.Kind == KindDuplicateMAC {
			keys = append(keys, f.Key())
			if len(f.VMVCenters) != len(f.VMRefs) {
				t.Errorf("vm_vcenters %v for refs %v", f.VMVCenters, f.VMRefs)
			}
		}
	}
	want := []string{"duplicate-mac||vc1/vm-10,vc1/vm-11", "duplicate-mac||vc2/vm-10,vc2/vm-11"}
	slices.Sort(keys)
	if !slices.Equal(keys, want) {
		t.Fatalf("duplicate-mac keys %q, want %q", keys, want)
	}
}

// ProbeCandidates takes a finding's vCenters as given: a finding about
// vc2's vm-10 does not make vc1's vm-10 worth probing.
func TestProbeCandidatesByKey(t *testing.T) {
	a, c := mkVM("a"), mkVM("c")
	a.Ref, c.VCenter, c.Ref, c.Path = "vm-10", "vc2", "vm-10", "/DC0/vm/a" // same ref and path
	s := snap(vms(a, c))
	res := Result{Findings: []Finding{{Kind: KindDuplicateHostname, VMs: []string{"c"}, VMPaths: []string{"/DC0/vm/a"}, VMRefs: []string{"vm-10"}, VMVCenters: []string{"vc2"}}}}
	got := ProbeCandidates(s, res)
	if len(got) != 1 || got[0].Key() != (VMKey{"vc2", "vm-10"}) {
		t.Errorf("candidates %+v", got)
	}
}
