package reconcile

// ProbeCandidates returns the VMs worth probing from inside
// (audit -verify): every VM a finding names, every VM matched to a swarm node
// or a Kubernetes Node, and the copies and sources around those node VMs by
// lineage (a clone whose engine or kubelet is stopped right now shows on no
// manager or API server, but still holds the node's certificate). Only powered-on VMs, never templates: guest operations need a
// running guest. In snapshot order, distinct. VMs are told apart by vCenter
// and ref: morefs repeat across vCenters.
func ProbeCandidates(snap Snapshot, res Result) []VM {
	key := VM.Key
	byRef := map[VMKey]VM{}
	for _, v := range snap.VMs {
		byRef[key(v)] = v
	}
	want := map[VMKey]bool{}
	for _, f := range res.Findings {
		for i, k := range f.VMKeys() {
			if i < len(f.VMVCenters) {
				want[k] = true // the finding names the VM's vCenter
				continue
			}
			// an older finding names VMs by ref, path and name: resolve each to its vCenter
			for _, v := range snap.VMs {
				if v.Ref == k.Ref && (i >= len(f.VMPaths) || v.Path == f.VMPaths[i]) {
					want[key(v)] = true
				}
			}
		}
	}
	nodeVMs := map[VMKey]bool{}
	for _, v := range res.VMs {
		if len(v.NodeIDs) > 0 || len(v.KubeNodes) > 0 {
			nodeVMs[key(v.VM)] = true
			want[key(v.VM)] = true
		}
	}
	// ancestors walks a VM's lineage up within its vCenter, guarding against cycles.
	ancestors := func(v VM) []VMKey {
		var out []VMKey
		seen := map[VMKey]bool{key(v): true}
		for v.Lineage != nil {
			k := VMKey{VCenter: v.VCenter, Ref: v.Lineage.SourceRef}
			if seen[k] {
				break
			}
			seen[k] = true
			out = append(out, k)
			src, ok := byRef[k]
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
				want[key(v)] = true // a copy of a node VM
			}
			if nodeVMs[key(v)] {
				want[a] = true // a source of a node VM
			}
		}
	}
	var out []VM
	for _, v := range snap.VMs {
		if k := key(v); want[k] && v.PoweredOn() && !v.Template {
			out = append(out, v)
			delete(want, k)
		}
	}
	return out
}
