package reconcile

import (
	"slices"
	"testing"
)

func TestProbeCandidates(t *testing.T) {
	on := func(ref, name string, src string) VM {
		v := VM{Ref: ref, Name: name, Path: "/DC0/vm/" + name, PowerState: "poweredOn", GuestHostname: name}
		if src != "" {
			v.Lineage = &Lineage{SourceRef: src, Kind: "clone"}
		}
		return v
	}
	base := on("vm-1", "base", "")
	wk := on("vm-2", "wk", "vm-1")            // node VM, itself a copy of base
	dormant := on("vm-3", "wk-copy", "vm-2")  // copy of the node VM, engine stopped: on no manager
	deeper := on("vm-4", "wk-copy-2", "vm-3") // transitive copy
	off := on("vm-5", "wk-off", "vm-2")       // copy, powered off: cannot be probed
	off.PowerState = "poweredOff"
	tpl := on("vm-6", "wk-tpl", "vm-2") // template: cannot be probed
	tpl.Template = true
	other := on("vm-7", "web", "")        // unrelated
	loopA := on("vm-8", "loop-a", "vm-9") // a lineage cycle must not hang
	loopB := on("vm-9", "loop-b", "vm-8")
	snap := Snapshot{
		VMs: []VM{base, wk, dormant, deeper, off, tpl, other, loopA, loopB},
		Swarms: []Swarm{{ClusterID: "c", Nodes: []Node{{ID: "n1", Role: "worker", State: "ready",
			Descriptions: []Description{{Hostname: "wk", Seen: 1}}, Timeline: []Sighting{{Description: 0}}}}}},
	}
	var got []string
	for _, v := range ProbeCandidates(snap, Reconcile(snap, History{})) {
		got = append(got, v.Ref)
	}
	want := []string{"vm-1", "vm-2", "vm-3", "vm-4"}
	if !slices.Equal(got, want) {
		t.Errorf("candidates = %v, want %v", got, want)
	}
}

// TestGuestProbeVCenter: morefs repeat across vCenters, so a probe is pinned
// on the VM of its own vCenter, and a probe without a vCenter only on a ref
// that a single VM has.
func TestGuestProbeVCenter(t *testing.T) {
	a := VM{VCenter: "vc1", Ref: "vm-1", Name: "a", Path: "/DC0/vm/a", PowerState: "poweredOn"}
	b := VM{VCenter: "vc2", Ref: "vm-1", Name: "b", Path: "/DC0/vm/b", PowerState: "poweredOn"}
	c := VM{VCenter: "vc2", Ref: "vm-2", Name: "c", Path: "/DC0/vm/c", PowerState: "poweredOn"}
	probed := func(res Result) map[string]string {
		out := map[string]string{}
		for _, v := range res.VMs {
			if v.Guest != nil {
				out[v.Name] = v.Guest.NodeID
			}
		}
		return out
	}
	res := Reconcile(Snapshot{VMs: []VM{a, b, c}, Guests: []GuestIdentity{
		{VCenter: "vc2", VMRef: "vm-1", NodeID: "n-b"},
		{VMRef: "vm-1", NodeID: "n-ambiguous"}, // no vCenter, two VMs with vm-1: pinned on none
		{VMRef: "vm-2", NodeID: "n-c"},         // no vCenter, one VM with vm-2
	}}, History{})
	got := probed(res)
	if len(got) != 2 || got["b"] != "n-b" || got["c"] != "n-c" {
		t.Errorf("probes pinned on %v, want b:n-b and c:n-c", got)
	}
}
