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
	got := ProbeCandidates(snap, Reconcile(snap, History{}))
	want := []string{"vm-1", "vm-2", "vm-3", "vm-4"}
	if !slices.Equal(got, want) {
		t.Errorf("candidates = %v, want %v", got, want)
	}
}
