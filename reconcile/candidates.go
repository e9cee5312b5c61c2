package reconcile

import "sort"

// ProbeCandidates returns the refs of the VMs worth probing from inside
// (audit -verify): every VM a finding names, every VM matched to a swarm node,
// and the copies and sources around those node VMs by lineage (a clone whose
// engine is stopped right now shows on no manager, but still holds the node's
// certificate). Only powered-on VMs, never templates: guest operations need a
// running guest. Sorted, distinct.
func ProbeCandidates(snap Snapshot, res Result) []string {
	byRef := map[string]VM{}
	for _, v := range snap.VMs {
		byRef[v.Ref] = v
	}
	want := map[string]bool{}
	for _, f := range res.Findings {
		for _, r := range f.VMRefs {
			want[r] = true
		}
	}
	nodeVMs := map[string]bool{}
	for _, v := range res.VMs {
		if len(v.NodeIDs) > 0 {
			nodeVMs[v.Ref] = true
			want[v.Ref] = true
		}
	}
	// ancestors walks a VM's lineage up, guarding against cycles.
	ancestors := func(v VM) []string {
		var out []string
		seen := map[string]bool{v.Ref: true}
		for v.Lineage != nil && !seen[v.Lineage.SourceRef] {
			seen[v.Lineage.SourceRef] = true
			out = append(out, v.Lineage.SourceRef)
			src, ok := byRef[v.Lineage.SourceRef]
			if !ok {
				break
			}
			v = src
		}
		return out
	}
	for _, v := range snap.VMs {
		for _, a := range ancestors(v) {
			if nodeVMs[a] {
				want[v.Ref] = true // a copy of a node VM
			}
			if nodeVMs[v.Ref] {
				want[a] = true // a source of a node VM
			}
		}
	}
	var refs []string
	for r := range want {
		if v, ok := byRef[r]; ok && v.PoweredOn() && !v.Template {
			refs = append(refs, r)
		}
	}
	sort.Strings(refs)
	return refs
}
