package reconcile

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// state is one Reconcile run: sorted inputs, the index and the matches.
type state struct {
	snap  Snapshot
	hist  History
	ix    *index
	nodes []*nodeState
	// vmNodes holds, per VM, the node IDs it matched (sorted, distinct).
	vmNodes [][]string
	// guests holds the usable guest probes, by VM; probes every probe, failed ones too.
	guests map[int]GuestIdentity
	probes map[int]GuestIdentity
	// tplCands holds, per template, the descriptions it was a hostname candidate for.
	tplCands map[int][]tplCand
	// noVC: the snapshot has no vCenter (NoVCenter); nodes are grouped into
	// machines instead of matched to VMs.
	noVC bool

	// Kubernetes: the Nodes (sorted by key), per VM the Node keys it
	// matched (sorted, distinct), per template the identities it was a
	// candidate for, and per lower-cased Node name the clusters having it.
	kube         []*kubeState
	vmKube       [][]string
	kubeTplCands map[int][]kubeTplCand
	kubeNames    map[string]map[string]bool
	kubeKeys     map[string]*kubeState // key → first Node state
}

type tplCand struct {
	ns   *nodeState
	desc int
}

type nodeState struct {
	cluster string
	node    Node
	matches []descMatch
	// vms: distinct VMs matched by any description, in order of first match.
	vms []int
	// holders: distinct non-template VMs matched without ambiguity, in order
	// of first match; these are the VMs known to have presented the ID.
	holders []int
	// firstDesc: index of the first description each holder matched.
	firstDesc map[int]int
	// Without a vCenter: the descriptions as machine grouping sees them, the
	// grouping and the machines.
	ids      []ident
	grouping grouping
	machines []Machine
}

func newState(snap Snapshot, hist History) *state {
	vms := withHistoryLineage(snap.VMs, hist)
	slices.SortStableFunc(vms, compareVM)

	swarms := slices.Clone(snap.Swarms)
	slices.SortStableFunc(swarms, func(a, b Swarm) int {
		return cmp.Or(cmp.Compare(a.ClusterID, b.ClusterID), cmp.Compare(a.Endpoint, b.Endpoint))
	})
	st := &state{snap: snap, hist: hist, ix: newIndex(vms, swarms), vmNodes: make([][]string, len(vms)), tplCands: map[int][]tplCand{}, noVC: NoVCenter(snap)}

	for _, sw := range swarms {
		for _, n := range sw.Nodes {
			st.nodes = append(st.nodes, &nodeState{cluster: sw.ClusterID, node: n})
		}
	}
	slices.SortStableFunc(st.nodes, func(a, b *nodeState) int {
		return cmp.Or(cmp.Compare(a.cluster, b.cluster), cmp.Compare(a.node.ID, b.node.ID))
	})
	for _, ns := range st.nodes {
		st.matchNode(ns)
	}
	for i := range st.vmNodes {
		sort.Strings(st.vmNodes[i])
	}
	st.addKube(snap.Kubernetes)
	st.addGuests(snap.Guests)
	return st
}

// withHistoryLineage returns a copy of vms with the lineage History keeps
// for VMs whose lineage vCenter no longer reports.
//
// History keeps lineage by moref alone, but morefs are per vCenter (every
// vCenter has a vm-42). When the snapshot holds the ref in two or more
// vCenters, the stored lineage is applied only where its source ref
// resolves, in the VM's own vCenter, to a VM of the recorded source name;
// applied blindly it made unrelated VMs "clones" of whatever VM carries the
// source's ref in their vCenter.
func withHistoryLineage(in []VM, hist History) []VM {
	vms := slices.Clone(in)
	refVCs := map[string]map[string]bool{}
	nameAt := map[string]string{} // vcenter \x00 ref → name
	for _, v := range vms {
		if refVCs[v.Ref] == nil {
			refVCs[v.Ref] = map[string]bool{}
		}
		refVCs[v.Ref][v.VCenter] = true
		nameAt[v.VCenter+"\x00"+v.Ref] = v.Name
	}
	for i := range vms {
		if vms[i].Lineage != nil {
			continue
		}
		if l, ok := hist.Lineage[vms[i].Ref]; ok {
			if len(refVCs[vms[i].Ref]) > 1 {
				if src, ok := nameAt[vms[i].VCenter+"\x00"+l.SourceRef]; !ok || src != l.SourceName {
					continue
				}
			}
			l := l
			vms[i].Lineage = &l
		}
	}
	return vms
}

// addGuests keeps the latest guest probe of each VM (probes), and the
// latest usable one (guests).
func (st *state) addGuests(probes []GuestIdentity) {
	st.guests = map[int]GuestIdentity{}
	st.probes = map[int]GuestIdentity{}
	guests := slices.Clone(probes)
	slices.SortStableFunc(guests, func(a, b GuestIdentity) int {
		return cmp.Or(cmp.Compare(a.VCenter, b.VCenter), cmp.Compare(a.VMRef, b.VMRef), a.ProbedAt.Compare(b.ProbedAt))
	})
	for _, g := range guests {
		i, ok := st.ix.vmByRef(g.VCenter, g.VMRef)
		if !ok {
			continue
		}
		st.probes[i] = g // the latest probe wins, failed or not
		if g.Error == "" {
			st.guests[i] = g
		}
	}
}

// matchNode matches a node's descriptions to VMs, or without a vCenter
// groups them into machines.
func (st *state) matchNode(ns *nodeState) {
	ns.firstDesc = map[int]int{}
	if st.noVC {
		// nothing to match: every description would read "no VM has hostname …"
		ns.matches = make([]descMatch, len(ns.node.Descriptions))
		st.groupNode(ns)
		return
	}
	for di, d := range ns.node.Descriptions {
		m := st.ix.match(d)
		ns.matches = append(ns.matches, m)
		for _, c := range m.candidates {
			if st.ix.vms[c].Template {
				st.tplCands[c] = append(st.tplCands[c], tplCand{ns, di})
			}
		}
		for _, v := range m.vms {
			if !contains(ns.vms, v) {
				ns.vms = append(ns.vms, v)
			}
		}
		if v, ok := m.unique(); ok && !st.ix.vms[v].Template && !contains(ns.holders, v) {
			ns.holders = append(ns.holders, v)
			ns.firstDesc[v] = di
		}
	}
	for _, v := range ns.vms {
		if !slices.Contains(st.vmNodes[v], ns.node.ID) {
			st.vmNodes[v] = append(st.vmNodes[v], ns.node.ID)
		}
	}
}

func compareVM(a, b VM) int {
	return cmp.Or(
		cmp.Compare(a.Name, b.Name),
		cmp.Compare(a.VCenter, b.VCenter),
		cmp.Compare(a.Path, b.Path),
		cmp.Compare(a.Ref, b.Ref),
		cmp.Compare(a.InstanceUUID, b.InstanceUUID),
		cmp.Compare(a.BIOSUUID, b.BIOSUUID),
	)
}

func (st *state) vmStatuses() []VMStatus {
	out := make([]VMStatus, len(st.ix.vms))
	for i, v := range st.ix.vms {
		out[i] = VMStatus{VM: v, NodeIDs: st.vmNodes[i], KubeNodes: st.vmKube[i]}
		if g, ok := st.probes[i]; ok {
			out[i].Guest = &g
		}
	}
	return out
}

func (st *state) nodeStatuses() []NodeStatus {
	out := make([]NodeStatus, 0, len(st.nodes))
	for _, ns := range st.nodes {
		n := ns.node
		s := NodeStatus{
			ClusterID: ns.cluster, ID: n.ID, Role: n.Role, State: n.State,
			Availability: n.Availability, Flips: n.Flips(),
			Descriptions: make([]MatchedDescription, len(n.Descriptions)),
			VMs:          []string{}, VMRefs: []string{},
		}
		for di, d := range n.Descriptions {
			m := ns.matches[di]
			md := MatchedDescription{Description: d, VMRefs: []string{}, Evidence: m.evidence}
			if md.Evidence == nil {
				md.Evidence = []string{}
			}
			for _, v := range m.vms {
				md.VMRefs = append(md.VMRefs, st.ix.vms[v].Ref)
			}
			s.Descriptions[di] = md
		}
		for _, v := range ns.vms {
			s.VMs = append(s.VMs, st.ix.vms[v].Name)
			s.VMRefs = append(s.VMRefs, st.ix.vms[v].Ref)
		}
		out = append(out, s)
	}
	return out
}

// Reconcile matches the snapshot's swarm nodes to its VMs and derives the
// findings. It is pure and deterministic: the same snapshot and history give
// the same Result (and the same JSON), whatever the order of the input slices.
func Reconcile(snap Snapshot, hist History) Result {
	st := newState(snap, hist)
	res := Result{VMs: st.vmStatuses(), Nodes: st.nodeStatuses(), KubeNodes: st.kubeNodeStatuses()}
	if st.noVC {
		res.Machines = st.machineList()
	}

	var fs []Finding
	shared := st.sharedNodeIDs()
	if st.noVC {
		shared = append(shared, st.sharedMachines()...)
	}
	fs = append(fs, shared...)
	sharedNodes := map[string]bool{}
	covered := map[string]bool{} // nodeID \x00 VM key
	for _, f := range shared {
		sharedNodes[f.NodeID] = true
		for _, k := range f.VMKeys() {
			covered[f.NodeID+"\x00"+k.String()] = true
		}
	}
	fs = append(fs, st.flapping(sharedNodes)...)
	fs = append(fs, st.nodeVMState()...)
	fs = append(fs, st.clones(covered)...)
	fs = append(fs, st.templates()...)
	fs = append(fs, st.duplicates()...)
	fs = append(fs, st.guestDuplicates()...)
	kshared, kcovered := st.kubeShared()
	fs = append(fs, kshared...)
	fs = append(fs, st.kubeClones(kcovered)...)
	fs = append(fs, st.kubeTemplates()...)
	res.Findings = sortFindings(fs)
	crossReference(res.Findings)

	s := &res.Summary
	s.CollectedAt = snap.CollectedAt
	s.VMs = len(st.ix.vms)
	for _, v := range st.ix.vms {
		if v.Template {
			s.Templates++
		}
		if v.PoweredOn() {
			s.PoweredOn++
		}
	}
	s.Sources = Sources(snap)
	s.Swarms = len(snap.Swarms)
	s.Nodes = len(st.nodes)
	s.Machines = len(res.Machines)
	for _, ns := range st.nodes {
		if len(ns.vms) > 0 {
			s.MatchedNodes++
		}
	}
	s.KubeClusters = len(snap.Kubernetes)
	s.KubeNodes = len(st.kube)
	for _, ks := range st.kube {
		if len(ks.vms) > 0 {
			s.MatchedKubeNodes++
		}
	}
	for _, f := range res.Findings {
		switch f.Severity {
		case Critical:
			s.Critical++
		case Warning:
			s.Warning++
		case Info:
			s.Info++
		}
		if f.Severity.Rank() > s.Highest.Rank() {
			s.Highest = f.Severity
		}
	}
	return res
}

// sortFindings orders findings (most severe first, then kind, node ID, VM
// names) and drops repeats of the same Key (a swarm observed twice).
func sortFindings(fs []Finding) []Finding {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(
			-cmp.Compare(a.Severity.Rank(), b.Severity.Rank()),
			cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.Cluster, b.Cluster),
			cmp.Compare(a.NodeID, b.NodeID),
			slices.Compare(a.VMs, b.VMs),
			cmp.Compare(a.Key(), b.Key()),
			cmp.Compare(a.Original, b.Original),
			slices.Compare(a.Evidence, b.Evidence),
		)
	})
	out := make([]Finding, 0, len(fs))
	seen := map[string]bool{}
	for _, f := range fs {
		if seen[f.Key()] {
			continue
		}
		seen[f.Key()] = true
		for _, p := range []*[]string{&f.VMs, &f.VMPaths, &f.VMRefs, &f.VMVCenters, &f.Evidence} {
			if *p == nil {
				*p = []string{}
			}
		}
		out = append(out, f)
	}
	return out
}

// ---- helpers shared by the findings ----

func ts(t time.Time) string {
	if t.IsZero() {
		return "unknown time"
	}
	return t.UTC().Format(time.RFC3339)
}

func (st *state) finding(kind string, sev Severity, nodeID string, vms []int, original int) Finding {
	f := Finding{Kind: kind, Severity: sev, NodeID: nodeID, VMs: []string{}, VMPaths: []string{}, VMRefs: []string{}, VMVCenters: []string{}}
	for _, i := range vms {
		v := st.ix.vms[i]
		f.VMs = append(f.VMs, v.Name)
		f.VMPaths = append(f.VMPaths, v.Path)
		f.VMRefs = append(f.VMRefs, v.Ref)
		f.VMVCenters = append(f.VMVCenters, v.VCenter)
	}
	if original >= 0 {
		f.Original = st.ix.vms[original].Name
	}
	return f
}

func describe(d Description) string {
	var p []string
	if d.Addr != "" {
		p = append(p, "addr "+d.Addr)
	}
	if r := descResources(d); r != "resources unknown" {
		p = append(p, r)
	}
	if d.EventsOnly {
		p = append(p, "known from events only")
	}
	s := "hostname " + d.Hostname
	if len(p) > 0 {
		s += " (" + strings.Join(p, ", ") + ")"
	}
	return s
}

// lineageFact explains how VM i descends from VM j ("" when it does not).
func (st *state) lineageFact(i, j int) string {
	anc := st.ix.ancestors(i)
	k := slices.Index(anc, j)
	if k < 0 {
		return ""
	}
	v := st.ix.vms[i]
	if k == 0 {
		l := v.Lineage
		return fmt.Sprintf("lineage: VM %s was copied from %s (%s, %s)", v.Name, st.ix.vms[j].Name, cmp.Or(l.Kind, "clone"), ts(l.Time))
	}
	chain := []string{v.Name}
	for _, a := range anc[:k+1] {
		chain = append(chain, st.ix.vms[a].Name)
	}
	return fmt.Sprintf("lineage: VM %s descends from %s: %s", v.Name, st.ix.vms[j].Name, strings.Join(chain, " ← "))
}

// pickOriginal picks the VM of set that rightfully owns an identity:
//  1. by lineage, the only VM of the set that is not a copy of another one;
//  2. else the VM whose identity the manager saw first (rank, lower first);
//  3. else the VM created first (vSphere creation time);
//  4. else none (-1): the evidence cannot tell.
func (st *state) pickOriginal(set []int, rank map[int]int) (int, string) {
	var roots []int
	copies := false
	for _, i := range set {
		isCopy := false
		for _, j := range set {
			if i != j && st.ix.descendsFrom(i, j) {
				isCopy = true
				break
			}
		}
		if isCopy {
			copies = true
		} else {
			roots = append(roots, i)
		}
	}
	if copies && len(roots) == 1 {
		return roots[0], fmt.Sprintf("original %s: by lineage, the others are copies of it", st.ix.vms[roots[0]].Name)
	}
	if len(roots) == 0 {
		roots = set
	}
	best, bestRank := -1, 0
	for _, i := range roots {
		if r, ok := rank[i]; ok && (best < 0 || r < bestRank) {
			best, bestRank = i, r
		}
	}
	if best >= 0 {
		return best, fmt.Sprintf("original %s: no lineage decides; its identity was seen first", st.ix.vms[best].Name)
	}
	best = -1
	var bestT time.Time
	tie := false
	for _, i := range roots {
		c := st.ix.vms[i].Created
		if c.IsZero() {
			continue
		}
		switch {
		case best < 0 || c.Before(bestT):
			best, bestT, tie = i, c, false
		case c.Equal(bestT):
			tie = true
		}
	}
	if best >= 0 && !tie {
		return best, fmt.Sprintf("original %s: no lineage or sighting decides; it was created first (%s)", st.ix.vms[best].Name, ts(bestT))
	}
	return -1, "the evidence cannot tell which VM is the original"
}

// orderWithOriginal returns set with the original first, the rest by name
// (VMs are sorted by name, so by index).
func orderWithOriginal(set []int, original int) []int {
	rest := slices.Clone(set)
	slices.Sort(rest)
	if original < 0 {
		return rest
	}
	rest = slices.DeleteFunc(rest, func(i int) bool { return i == original })
	return append([]int{original}, rest...)
}
