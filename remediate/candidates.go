package remediate

import (
	"fmt"
	"slices"
	"sort"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

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

func isKube(kind string) bool { return slices.Contains(reconcile.KubeIdentityKinds, kind) }

// what names the identity of a finding: "node ID X" or "Kubernetes Node X
// (cluster C)".
func what(f *reconcile.Finding) string {
	if isKube(f.Kind) {
		if f.Cluster != "" {
			return fmt.Sprintf("Kubernetes Node %s (cluster %s)", f.NodeID, f.Cluster)
		}
		return "Kubernetes Node " + f.NodeID
	}
	return "node ID " + f.NodeID
}

// claims collects, from the findings, the VMs named for action.
type claims struct {
	refs        map[string][]reconcile.VM
	swarm, kube map[string]*claim // vmKey → first claim
	order       []string          // vmKeys, in order of first claim
	noOriginal  map[string]*reconcile.Finding
	ambiguous   map[string]*reconcile.Finding // ref → finding naming a ref several VMs carry
}

// name records the j-th VM of f as an impostor, when the ref resolves to
// exactly one VM of the snapshot.
func (c *claims) name(f *reconcile.Finding, j int, reason string) {
	vs := resolve(c.refs, f, j)
	if len(vs) != 1 {
		if len(vs) > 1 {
			if _, ok := c.ambiguous[f.VMRefs[j]]; !ok {
				c.ambiguous[f.VMRefs[j]] = f
			}
		}
		return
	}
	k := vmKey(vs[0])
	m := c.swarm
	if isKube(f.Kind) {
		m = c.kube
	}
	if _, ok := m[k]; ok {
		return
	}
	m[k] = &claim{f, reason}
	if !slices.Contains(c.order, k) {
		c.order = append(c.order, k)
	}
}

// undetermined records every VM of a finding whose original cannot be told.
func (c *claims) undetermined(f *reconcile.Finding) {
	for j, ref := range f.VMRefs {
		vs := resolve(c.refs, f, j)
		if len(vs) == 0 {
			vs = c.refs[ref]
		}
		for _, v := range vs {
			if _, ok := c.noOriginal[vmKey(v)]; !ok {
				c.noOriginal[vmKey(v)] = f
			}
		}
	}
}

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

// nodeOf names a finding's node: "n1" for swarm, "wk-01 (cluster prod)"
// for Kubernetes.
func nodeOf(f *reconcile.Finding) string {
	if isKube(f.Kind) {
		if f.Cluster != "" {
			return f.NodeID + " (cluster " + f.Cluster + ")"
		}
		return f.NodeID
	}
	return "node " + f.NodeID
}

func (c *claims) candidate(v reconcile.VM, note string) candidate {
	k := vmKey(v)
	return candidate{vm: v, swarm: c.swarm[k], kube: c.kube[k], note: note}
}

// candidates lists the VMs to consider, in order, and the VMs refused
// before any per-VM check (findings without an original, refs several
// vCenters' VMs carry).
func candidates(snap reconcile.Snapshot, res reconcile.Result, s Settings) ([]candidate, []Refusal, error) {
	c := &claims{refs: refIndex(snap), swarm: map[string]*claim{}, kube: map[string]*claim{},
		noOriginal: map[string]*reconcile.Finding{}, ambiguous: map[string]*reconcile.Finding{}}
	for i := range res.Findings {
		c.add(&res.Findings[i])
	}
	if len(s.Select) > 0 {
		out, err := c.selected(snap, s.Select)
		return out, nil, err
	}
	byKey := map[string]reconcile.VM{}
	for _, v := range snap.VMs {
		byKey[vmKey(v)] = v
	}
	var out []candidate
	seen := map[string]bool{}
	for _, k := range c.order {
		if v, ok := byKey[k]; ok && !seen[k] {
			seen[k] = true
			out = append(out, c.candidate(v, ""))
		}
	}
	var refused []Refusal
	for _, k := range sortedKeys(noOriginalSet(c.noOriginal)) {
		f := c.noOriginal[k]
		v, ok := byKey[k]
		if !ok || seen[k] {
			continue
		}
		seen[k] = true
		refused = append(refused, Refusal{VM: vmInfo(v), FindingKey: f.Key(),
			Why: fmt.Sprintf("shares %s but the evidence cannot tell which VM is the original", what(f)),
			Fix: "decide which VM is the original and name the others with -vm NAME"})
	}
	for _, ref := range sortedKeys(noOriginalSet(c.ambiguous)) {
		f := c.ambiguous[ref]
		for _, v := range c.refs[ref] {
			if seen[vmKey(v)] {
				continue
			}
			seen[vmKey(v)] = true
			refused = append(refused, Refusal{VM: vmInfo(v), FindingKey: f.Key(),
				Why: fmt.Sprintf("the finding names ref %s, which several vCenters' VMs carry with the same path and name: cannot tell which one it means", ref),
				Fix: "name the impostor with -vm PATH"})
		}
	}
	return out, refused, nil
}

// selected lists the VMs -vm selects, with the findings that name them.
func (c *claims) selected(snap reconcile.Snapshot, patterns []string) ([]candidate, error) {
	matched := map[string]bool{}
	vms := slices.Clone(snap.VMs)
	sort.SliceStable(vms, func(i, j int) bool { return vms[i].Name < vms[j].Name })
	var out []candidate
	seen := map[string]bool{}
	for _, v := range vms {
		hit := false
		for _, p := range patterns {
			if matchPattern(p, v) {
				matched[p] = true
				hit = true
			}
		}
		if !hit || seen[vmKey(v)] {
			continue
		}
		seen[vmKey(v)] = true
		cd := c.candidate(v, "; selected with -vm")
		if f := c.noOriginal[vmKey(v)]; f != nil && cd.first() == nil {
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
