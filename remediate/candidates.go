package remediate

import (
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// vmIndex holds a snapshot's VMs and guest probes by key. VMs are keyed by
// vCenter and ref: several vCenters hand out the same morefs.
type vmIndex struct {
	byKey  map[reconcile.VMKey]reconcile.VM
	refs   map[string][]reconcile.VM // ref → the VMs carrying it, one per vCenter using it
	guests map[reconcile.VMKey]reconcile.GuestIdentity
}

func newVMIndex(snap reconcile.Snapshot) *vmIndex {
	ix := &vmIndex{byKey: map[reconcile.VMKey]reconcile.VM{}, refs: map[string][]reconcile.VM{}, guests: map[reconcile.VMKey]reconcile.GuestIdentity{}}
	for _, v := range snap.VMs {
		ix.byKey[v.Key()] = v
		ix.refs[v.Ref] = append(ix.refs[v.Ref], v)
	}
	for _, g := range snap.Guests {
		if old, ok := ix.guests[g.Key()]; !ok || !g.ProbedAt.Before(old.ProbedAt) {
			ix.guests[g.Key()] = g // the latest probe wins
		}
	}
	return ix
}

// guest returns the guest probe of v: its own, or one that names no
// vCenter when no other vCenter's VM has v's ref.
func (ix *vmIndex) guest(v reconcile.VM) (reconcile.GuestIdentity, bool) {
	if g, ok := ix.guests[v.Key()]; ok {
		return g, true
	}
	if len(ix.refs[v.Ref]) == 1 {
		g, ok := ix.guests[reconcile.VMKey{Ref: v.Ref}]
		return g, ok
	}
	return reconcile.GuestIdentity{}, false
}

// resolve returns the VMs the j-th VM of a finding can be. A finding names
// its VMs' vCenters (Finding.VMVCenters): that VM, if the snapshot has it.
// One that does not (older JSON or store rows) names them by ref, path and
// name: when several vCenters have a VM with that ref, the path and name
// narrow it down. More than one result means the finding is ambiguous and
// must not be acted on.
func (ix *vmIndex) resolve(f *reconcile.Finding, j int) []reconcile.VM {
	if j < len(f.VMVCenters) {
		if v, ok := ix.byKey[reconcile.VMKey{VCenter: f.VMVCenters[j], Ref: f.VMRefs[j]}]; ok {
			return []reconcile.VM{v}
		}
		return nil
	}
	vs := ix.refs[f.VMRefs[j]]
	if len(vs) <= 1 {
		return vs
	}
	var out []reconcile.VM
	for _, v := range vs {
		if j < len(f.VMPaths) && f.VMPaths[j] != "" && v.Path != f.VMPaths[j] {
			continue
		}
		if j < len(f.VMs) && f.VMs[j] != "" && v.Name != f.VMs[j] {
			continue
		}
		out = append(out, v)
	}
	return out
}

// claim is a finding naming a VM for action, and why.
type claim struct {
	f      *reconcile.Finding
	reason string
}

// candidate is a VM some finding or selector names for action.
type candidate struct {
	vm reconcile.VM
	// swarm and kube are the first swarm identity finding and the first
	// Kubernetes identity finding that name the VM for action; both nil
	// when it was selected with -vm and no finding names it.
	swarm, kube *claim
	// note is added to the reasons ("; selected with -vm"), or is the
	// whole reason when no finding names the VM.
	note string
}

// first is the claim the VM is known by first (refusals name its finding).
func (c candidate) first() *claim {
	if c.swarm != nil {
		return c.swarm
	}
	return c.kube
}

// findingKey is the key of the finding a refusal of c names, "" for none.
func (c candidate) findingKey() string {
	if cl := c.first(); cl != nil {
		return cl.f.Key()
	}
	return ""
}

func isKube(kind string) bool { return slices.Contains(reconcile.KubeIdentityKinds, kind) }

// what names the identity of a finding: "node ID X" or "Kubernetes Node X
// (cluster C)".
func what(f *reconcile.Finding) string {
	if isKube(f.Kind) {
		return "Kubernetes Node " + nodeOf(f)
	}
	return "node ID " + f.NodeID
}

// nodeOf names a finding's node: "node n1" for swarm, "wk-01 (cluster
// prod)" for Kubernetes.
func nodeOf(f *reconcile.Finding) string {
	if isKube(f.Kind) {
		if f.Cluster != "" {
			return f.NodeID + " (cluster " + f.Cluster + ")"
		}
		return f.NodeID
	}
	return "node " + f.NodeID
}

// claims is what the findings name for action, before -vm selection.
type claims struct {
	ix          *vmIndex
	swarm, kube map[reconcile.VMKey]*claim // first claim of each side
	order       []reconcile.VMKey          // in order of first claim
	// noOriginal: VMs of findings whose original is undetermined;
	// ambiguous: refs (of findings without vCenters) that several
	// vCenters' VMs carry with the same path and name.
	noOriginal map[reconcile.VMKey]*reconcile.Finding
	ambiguous  map[string]*reconcile.Finding
}

func findClaims(res reconcile.Result, ix *vmIndex) *claims {
	c := &claims{ix: ix, swarm: map[reconcile.VMKey]*claim{}, kube: map[reconcile.VMKey]*claim{},
		noOriginal: map[reconcile.VMKey]*reconcile.Finding{}, ambiguous: map[string]*reconcile.Finding{}}
	for i := range res.Findings {
		c.add(&res.Findings[i])
	}
	return c
}

// name records the j-th VM of f as an impostor, when it resolves to exactly
// one VM of the snapshot.
func (c *claims) name(f *reconcile.Finding, j int, reason string) {
	vs := c.ix.resolve(f, j)
	if len(vs) != 1 {
		if _, ok := c.ambiguous[f.VMRefs[j]]; !ok && len(vs) > 1 {
			c.ambiguous[f.VMRefs[j]] = f
		}
		return
	}
	k := vs[0].Key()
	m := c.swarm
	if isKube(f.Kind) {
		m = c.kube
	}
	if _, ok := m[k]; ok {
		return
	}
	if c.swarm[k] == nil && c.kube[k] == nil {
		c.order = append(c.order, k)
	}
	m[k] = &claim{f, reason}
}

// undetermined records every VM of a finding whose original cannot be told.
func (c *claims) undetermined(f *reconcile.Finding) {
	for j, ref := range f.VMRefs {
		vs := c.ix.resolve(f, j)
		if len(vs) == 0 && j >= len(f.VMVCenters) {
			vs = c.ix.refs[ref]
		}
		for _, v := range vs {
			if _, ok := c.noOriginal[v.Key()]; !ok {
				c.noOriginal[v.Key()] = f
			}
		}
	}
}

// add records the VMs finding f names for action.
func (c *claims) add(f *reconcile.Finding) {
	if len(f.VMRefs) == 0 { // nothing to act on (and no index to take)
		return
	}
	last := len(f.VMRefs) - 1
	switch f.Kind {
	case reconcile.KindSharedNodeID, reconcile.KindSharedK8sNode:
		if f.Original == "" {
			c.undetermined(f)
			return
		}
		conf, verb := "", "answers as"
		if f.Confirmed {
			conf = ", confirmed in the guest"
		}
		if isKube(f.Kind) {
			verb = "writes"
		}
		for j := 1; j < len(f.VMRefs); j++ {
			c.name(f, j, fmt.Sprintf("%s %s of %s (the original, left alone)%s", verb, nodeOf(f), f.Original, conf))
		}
	case reconcile.KindCloneOfSwarmNode:
		if last >= 1 {
			c.name(f, last, fmt.Sprintf("clone of swarm node %s (%s, left alone) carrying its swarm state", f.NodeID, f.Original))
		}
	case reconcile.KindCloneOfK8sNode:
		switch {
		case last < 1:
		case f.Original == "":
			c.undetermined(f)
		default:
			c.name(f, last, fmt.Sprintf("copy of Kubernetes node %s (%s, left alone) carrying its kubelet credentials", nodeOf(f), f.Original))
		}
	case reconcile.KindTemplateCarriesSwarm:
		c.name(f, last, fmt.Sprintf("template carries the swarm identity of node %s", f.NodeID))
	case reconcile.KindTemplateCarriesKubelet:
		c.name(f, last, fmt.Sprintf("template carries the kubelet identity of Kubernetes Node %s", nodeOf(f)))
	}
}

func (c *claims) candidate(v reconcile.VM, note string) candidate {
	k := v.Key()
	return candidate{vm: v, swarm: c.swarm[k], kube: c.kube[k], note: note}
}

// candidates lists the VMs to consider, in order, and the VMs refused
// before any per-VM check (findings without an original, ambiguous refs).
// ix may be nil (it is then built from snap).
func candidates(snap reconcile.Snapshot, res reconcile.Result, s Settings, ix *vmIndex) ([]candidate, []Refusal, error) {
	if ix == nil {
		ix = newVMIndex(snap)
	}
	c := findClaims(res, ix)
	if len(s.Select) > 0 {
		out, err := c.selected(snap, s.Select)
		return out, nil, err
	}
	var out []candidate
	var refused []Refusal
	seen := map[reconcile.VMKey]bool{}
	for _, k := range c.order {
		v, ok := ix.byKey[k]
		if !ok || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, c.candidate(v, ""))
	}
	for _, k := range sortedVMKeys(c.noOriginal) {
		f := c.noOriginal[k]
		v, ok := ix.byKey[k]
		if !ok || seen[k] {
			continue
		}
		seen[k] = true
		refused = append(refused, Refusal{VM: vmInfo(v), FindingKey: f.Key(),
			Why: fmt.Sprintf("shares %s but the evidence cannot tell which VM is the original", what(f)),
			Fix: "decide which VM is the original and name the others with -vm NAME"})
	}
	for _, ref := range slices.Sorted(maps.Keys(c.ambiguous)) {
		f := c.ambiguous[ref]
		for _, v := range ix.refs[ref] {
			if seen[v.Key()] {
				continue
			}
			seen[v.Key()] = true
			refused = append(refused, Refusal{VM: vmInfo(v), FindingKey: f.Key(),
				Why: fmt.Sprintf("the finding names ref %s, which several vCenters' VMs carry with the same path and name: cannot tell which one it means", ref),
				Fix: "name the impostor with -vm PATH"})
		}
	}
	return out, refused, nil
}

// selected lists the VMs -vm selects, by name, with the findings that name
// each, if any. A pattern that matches no VM is a *SelectError.
func (c *claims) selected(snap reconcile.Snapshot, patterns []string) ([]candidate, error) {
	var out []candidate
	seen := map[reconcile.VMKey]bool{}
	matched := map[string]bool{}
	vms := slices.Clone(snap.VMs)
	sort.SliceStable(vms, func(i, j int) bool { return vms[i].Name < vms[j].Name })
	for _, v := range vms {
		hit := false
		for _, p := range patterns {
			if matchPattern(p, v) {
				matched[p] = true
				hit = true
			}
		}
		if !hit || seen[v.Key()] {
			continue
		}
		seen[v.Key()] = true
		cd := c.candidate(v, "; selected with -vm")
		if f := c.noOriginal[v.Key()]; f != nil && cd.first() == nil {
			cl := &claim{f, fmt.Sprintf("shares %s (original undetermined)", what(f))}
			if isKube(f.Kind) {
				cd.kube = cl
			} else {
				cd.swarm = cl
			}
		}
		if cd.first() == nil {
			cd.note = "selected with -vm (no finding names it)"
		}
		out = append(out, cd)
	}
	var missing []string
	for _, p := range patterns {
		if !matched[p] {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return nil, &SelectError{Patterns: missing}
	}
	return out, nil
}
