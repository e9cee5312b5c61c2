package reconcile

import (
	"fmt"
	"slices"
	"strings"
)

// nodeVM names one VM (by index) holding one Node (by key).
type nodeVM struct {
	key string
	vm  int
}

// kubeCleanCopySteps is the safe fix for a VM that carries another
// machine's kubelet identity. It never touches the Node object.
const kubeCleanCopySteps = "1) `systemctl disable --now kubelet` (it stops writing the Node at once); " +
	"2) move the copied kubelet credentials aside, never delete them: `mkdir -p -m 700 /var/backups/vmreconcile-kubelet && " +
	"mv /var/lib/kubelet/pki /var/backups/vmreconcile-kubelet/pki && mv /etc/kubernetes/kubelet.conf /var/backups/vmreconcile-kubelet/kubelet.conf` " +
	"(`vmreconcile remediate` does 1 and 2: action disable-kubelet); " +
	"3) only if it should be a Kubernetes node: give it its own hostname (`hostnamectl set-hostname NEW`) and re-register it under its own name with its own certificate: " +
	"run `kubeadm token create --print-join-command` on a control-plane node and that join command on the copy " +
	"(`kubeadm reset -f` first if kubeadm finds leftovers; it never touches the Node object). " +
	"Or simply power it off (and disable kubelet before it is powered on again)."

// keepNode says why the shared Node must not be deleted.
func keepNode(node, owner string) string {
	who := "the original"
	if owner != "" {
		who = owner
	}
	return fmt.Sprintf("Do NOT delete Node %s from the cluster: it is %s's, and deleting it drops its labels, taints and annotations "+
		"(the original re-registers without them, and they must be re-created by hand); once the copy is stopped, the original's kubelet "+
		"restores the Node's status within seconds.", node, who)
}

// ---- shared-k8s-node, k8s-node-flapping ----

// kubeShared reports every Node whose identities alternate: shared-k8s-node
// when the writers resolve to two or more VMs (matched identities, plus VMs
// whose guest probe holds the Node's certificate), k8s-node-flapping when
// they do not (see kubeAlternation for what alternates). covered holds the
// VMs named by a shared-k8s-node finding.
func (st *state) kubeShared() (out []Finding, covered map[nodeVM]bool) {
	covered = map[nodeVM]bool{}
	for _, ks := range st.kube {
		changes, returns, machineBack := kubeAlternation(ks.node)
		if returns == 0 {
			continue
		}
		gh := st.kubeGuestHolders(ks)
		holders := slices.Clone(ks.holders)
		for _, i := range gh {
			if !contains(holders, i) {
				holders = append(holders, i)
			}
		}
		if len(holders) >= 2 {
			out = append(out, st.kubeSharedFinding(ks, holders, gh))
			for _, i := range holders {
				covered[nodeVM{ks.key, i}] = true
			}
			continue
		}
		// A single return of the boot ID alone is what reverting a VM to
		// a snapshot taken with its memory does: not enough on one VM.
		if machineBack || returns >= 2 {
			out = append(out, st.kubeFlapping(ks, changes, returns))
		}
	}
	return out, covered
}

func (st *state) kubeSharedFinding(ks *kubeState, holders, guestHolders []int) Finding {
	orig, why := st.pickOriginal(holders, st.kubeFirstSeenRank(ks))
	vms := orderWithOriginal(holders, orig)
	n := ks.node
	f := st.finding(KindSharedK8sNode, Critical, n.Name, vms, orig)
	f.Cluster = ks.cluster
	f.Evidence = append(f.Evidence, st.kubeIdentityLines(ks)...)
	from, to := kubeWindow(n)
	moves, back := vmSwitches(ks.node.Timeline, ks.matches)
	f.Evidence = append(f.Evidence, fmt.Sprintf("Node %s (cluster %s) changed identity %d times between %s and %s; its writer moved between VMs %d times (%d returns to a VM seen before)",
		n.Name, orUnknown(ks.cluster), n.Flips(), ts(from), ts(to), moves, back))
	f.Evidence = append(f.Evidence, kubeFlipLines(n)...)
	f.Evidence = append(f.Evidence, st.rebootedLines(ks)...)
	if n.ControlPlane {
		f.Evidence = append(f.Evidence, fmt.Sprintf("Node %s is a control-plane node: the copy also holds /etc/kubernetes/pki (the cluster's CA keys) and, with stacked etcd, an etcd member's data", n.Name))
	}
	for _, i := range vms {
		for _, j := range vms {
			if i != j {
				if s := st.lineageFact(i, j); s != "" {
					f.Evidence = append(f.Evidence, s)
				}
			}
		}
	}
	f.Evidence = append(f.Evidence, why)
	if len(guestHolders) >= 2 {
		f.Confirmed = true
	}
	for _, i := range guestHolders {
		g := st.guests[i]
		f.Evidence = append(f.Evidence, kubeProbeLine(st.ix.vms[i].Name, g))
		if g.KubeletActive == "no" {
			f.Dormant = true
		}
		if !contains(ks.holders, i) {
			f.Dormant = true
			f.Evidence = append(f.Evidence, fmt.Sprintf("VM %s holds the Node's certificate but was not seen writing the Node during the observation", st.ix.vms[i].Name))
		}
	}
	f.Remedy = kubeSharedRemedy(n.Name, st.names(vms, orig), orig >= 0)
	return f
}

func kubeProbeLine(vm string, g GuestIdentity) string {
	return fmt.Sprintf("guest probe of VM %s (%s): kubelet client certificate CN=system:node:%s, O=%s, API server %s, kubelet enabled=%s, active=%s",
		vm, ts(g.ProbedAt), g.KubeletNode, orUnknown(g.KubeletOrg), orUnknown(g.KubeletServer), orUnknown(g.KubeletEnabled), orUnknown(g.KubeletActive))
}

func kubeSharedRemedy(node string, names []string, haveOriginal bool) string {
	var b strings.Builder
	owner := ""
	if haveOriginal {
		owner = names[0]
		fmt.Fprintf(&b, "Leave %s (the original) alone. ", names[0])
		names = names[1:]
	} else {
		b.WriteString("First decide which VM is the original (the machine the Node's pods, labels and taints belong to) and leave it alone. ")
	}
	b.WriteString(keepNode(node, owner) + " ")
	if haveOriginal {
		fmt.Fprintf(&b, "On %s: ", strings.Join(names, ", "))
	} else {
		fmt.Fprintf(&b, "On every other VM of %s: ", strings.Join(names, ", "))
	}
	b.WriteString(kubeCleanCopySteps)
	return b.String()
}

func (st *state) kubeFlapping(ks *kubeState, changes, returns int) Finding {
	vms := slices.Clone(ks.vms)
	slices.Sort(vms)
	n := ks.node
	f := st.finding(KindK8sNodeFlapping, Warning, n.Name, vms, -1)
	f.Cluster = ks.cluster
	f.Evidence = append(f.Evidence, st.kubeIdentityLines(ks)...)
	from, to := kubeWindow(n)
	f.Evidence = append(f.Evidence, fmt.Sprintf("Node %s (cluster %s) changed identity %d times between %s and %s (%d material changes), coming back to an earlier boot ID or machine %d times",
		n.Name, orUnknown(ks.cluster), n.Flips(), ts(from), ts(to), changes, returns))
	f.Evidence = append(f.Evidence, kubeFlipLines(n)...)
	f.Evidence = append(f.Evidence, st.rebootedLines(ks)...)
	switch len(vms) {
	case 0:
		f.Evidence = append(f.Evidence, "no identity matched a VM: the machines writing this Node may be outside the inventory (a systemUUID no VM has) or lack VMware Tools")
	case 1:
		f.Evidence = append(f.Evidence, fmt.Sprintf("only VM %s is known; the other identity matched no VM (a copy outside the inventory, or one whose systemUUID is unknown)", st.ix.vms[vms[0]].Name))
	}
	f.Remedy = fmt.Sprintf("Two machines probably write Node %s with the same kubelet client certificate (/var/lib/kubelet/pki). "+
		"Find the one that is not supposed to be this node (the systemUUIDs, hostnames and addresses above; a systemUUID that no VM has is a machine outside this inventory), and on it: %s %s",
		n.Name, kubeCleanCopySteps, keepNode(n.Name, ""))
	return f
}

// ---- clone-of-k8s-node ----

// kubeByKey returns the first Node state with key.
func (st *state) kubeByKey(key string) *kubeState { return st.kubeKeys[key] }

// nearestKubeAncestor returns the nearest lineage ancestor of VM i that is
// matched to a Kubernetes Node.
func (st *state) nearestKubeAncestor(i int) (int, bool) {
	for _, a := range st.ix.ancestors(i) {
		if len(st.vmKube[a]) > 0 {
			return a, true
		}
	}
	return -1, false
}

// kubeCleaned reports whether a successful guest probe of VM i shows it no
// longer carries ks's kubelet identity: no kubelet credentials at all, or
// a certificate for another Node (it re-registered under its own name).
func (st *state) kubeCleaned(i int, ks *kubeState) (bool, string) {
	g, ok := st.guests[i]
	if !ok {
		return false, ""
	}
	switch {
	case g.KubeletNode == "" && !g.KubeletCreds:
		return true, "no kubelet credentials"
	case g.KubeletNode != "" && !strings.EqualFold(g.KubeletNode, ks.node.Name):
		return true, "a certificate for Node " + g.KubeletNode
	}
	return false, ""
}

// kubeClones reports copies of Kubernetes node VMs: by lineage (a VM copied
// from a VM that wrote a Node, powered on or not) and by guest probe (a VM
// holding the certificate of a Node another VM writes), unless a
// shared-k8s-node finding names the pair already, the copy writes a Node of
// its own, or its probe shows it clean.
func (st *state) kubeClones(covered map[nodeVM]bool) []Finding {
	var out []Finding
	done := map[nodeVM]bool{}
	for i, v := range st.ix.vms {
		if v.Template {
			continue
		}
		a, ok := st.nearestKubeAncestor(i)
		if !ok {
			continue
		}
		if rejoined(st.vmKube[i], st.vmKube[a]) {
			continue // the copy writes its own, different Node: it was fixed
		}
		anc := st.ix.ancestors(i)
		for _, key := range st.vmKube[a] {
			ks := st.kubeByKey(key)
			if covered[nodeVM{key, i}] || done[nodeVM{key, i}] {
				continue
			}
			if clean, _ := st.kubeCleaned(i, ks); clean {
				continue
			}
			src := a // the farthest ancestor that wrote the Node owns it
			for _, b := range anc {
				if slices.Contains(st.vmKube[b], key) {
					src = b
				}
			}
			done[nodeVM{key, i}] = true
			out = append(out, st.kubeCloneFinding(ks, src, i, st.lineageFact(i, src)))
		}
	}
	return append(out, st.kubeGuestCopies(covered, done)...)
}

// kubeGuestCopies reports VMs whose guest probe holds the certificate of a
// Node that other VMs write, with no lineage to tell (a copy made outside
// vCenter, or whose events are gone).
func (st *state) kubeGuestCopies(covered, done map[nodeVM]bool) []Finding {
	var out []Finding
	for _, ks := range st.kube {
		if len(ks.holders) == 0 {
			continue
		}
		src := ks.holders[0]
		if len(ks.holders) > 1 {
			if o, _ := st.pickOriginal(ks.holders, st.kubeFirstSeenRank(ks)); o >= 0 {
				src = o
			}
		}
		for _, i := range st.kubeGuestHolders(ks) {
			k := nodeVM{ks.key, i}
			if contains(ks.holders, i) || covered[k] || done[k] {
				continue
			}
			done[k] = true
			out = append(out, st.kubeCloneFinding(ks, src, i, fmt.Sprintf("no lineage: VM %s holds the certificate of Node %s, which VM %s writes", st.ix.vms[i].Name, ks.node.Name, st.ix.vms[src].Name)))
		}
	}
	return out
}

func (st *state) kubeCloneFinding(ks *kubeState, src, i int, how string) Finding {
	v, s := st.ix.vms[i], st.ix.vms[src]
	n := ks.node
	sev := Warning
	if n.ControlPlane {
		sev = Critical
	}
	f := st.finding(KindCloneOfK8sNode, sev, n.Name, []int{src, i}, src)
	f.Cluster = ks.cluster
	f.Evidence = append(f.Evidence, how, fmt.Sprintf("VM %s is Kubernetes Node %s of cluster %s", s.Name, n.Name, orUnknown(ks.cluster)))
	g, probed := st.guests[i]
	switch {
	case !v.PoweredOn():
		f.Dormant = true
		when := "powered on"
		if v.PowerState == "suspended" {
			when = "resumed"
		}
		f.Evidence = append(f.Evidence, fmt.Sprintf("VM %s is %s and carries a copy of %s's disk, including /var/lib/kubelet/pki, unless it was cleaned: it takes over Node %s when %s",
			v.Name, orUnknown(v.PowerState), s.Name, n.Name, when))
	case slices.Contains(st.vmKube[i], ks.key):
		f.Evidence = append(f.Evidence, fmt.Sprintf("VM %s was also seen writing Node %s", v.Name, n.Name))
	case probed && g.KubeletActive == "no":
		f.Dormant = true
		f.Evidence = append(f.Evidence, fmt.Sprintf("VM %s's kubelet is stopped now (enabled at boot: %s): it takes over Node %s when its kubelet starts", v.Name, orUnknown(g.KubeletEnabled), n.Name))
	default:
		f.Evidence = append(f.Evidence, fmt.Sprintf("Kubernetes has not seen VM %s write Node %s during this observation (kubelet off, or not yet started): it takes over the Node as soon as its kubelet runs", v.Name, n.Name))
	}
	if probed && st.guestHoldsKube(g, ks, i) {
		f.Confirmed = true
		f.Evidence = append(f.Evidence, kubeProbeLine(v.Name, g))
	}
	if v.GuestHostname != "" && !HostnameMatches(v.GuestHostname, n.Name) {
		f.Evidence = append(f.Evidence, fmt.Sprintf("VM %s's guest hostname is %s, not %s: unless its kubelet runs with --hostname-override it fails to register (its certificate is for Node %s), but it still holds the Node's credentials", v.Name, v.GuestHostname, n.Name, n.Name))
	}
	cp := ""
	if n.ControlPlane {
		f.Evidence = append(f.Evidence, fmt.Sprintf("Node %s is a control-plane node: the copy also holds /etc/kubernetes/pki (the cluster's CA and service-account keys) and, with stacked etcd, an etcd member's data", n.Name))
		cp = "It is a copy of a CONTROL-PLANE node: its disk holds the cluster's CA keys and possibly an etcd member; never connect it to the network as it is (disconnect its network adapter in vSphere before powering it on), and treat its disk as secret as the original's. "
	}
	f.Remedy = fmt.Sprintf("Leave %s alone. %sOn %s: %s %s", s.Name, cp, v.Name, kubeCleanCopySteps, keepNode(n.Name, s.Name))
	return f
}

// ---- template-carries-kubelet-identity ----

func (st *state) kubeTemplates() []Finding {
	var out []Finding
	for i, v := range st.ix.vms {
		if !v.Template {
			continue
		}
		type hit struct {
			ks  *kubeState
			src int
			ev  []string
		}
		hits := map[string]*hit{}
		var keys []string
		get := func(ks *kubeState) *hit {
			if hits[ks.key] == nil {
				hits[ks.key] = &hit{ks: ks, src: -1}
				keys = append(keys, ks.key)
			}
			return hits[ks.key]
		}
		if a, ok := st.nearestKubeAncestor(i); ok {
			for _, key := range st.vmKube[a] {
				h := get(st.kubeByKey(key))
				h.src = a
				h.ev = append(h.ev, st.lineageFact(i, a), fmt.Sprintf("VM %s is Kubernetes Node %s", st.ix.vms[a].Name, h.ks.node.Name))
			}
		}
		for _, c := range st.kubeTplCands[i] {
			h := get(c.ks)
			what := "a candidate for"
			if contains(c.ks.matches[c.idx].vms, i) {
				what = "matched to"
			}
			h.ev = append(h.ev, fmt.Sprintf("template %s is %s Node %s's identity %d (%s)", v.Name, what, c.ks.node.Name, c.idx+1, strings.Join(c.ks.matches[c.idx].evidence, "; ")))
			if h.src < 0 && len(c.ks.holders) > 0 {
				h.src = c.ks.holders[0]
			}
		}
		slices.Sort(keys)
		for _, key := range keys {
			out = append(out, st.kubeTemplateFinding(i, hits[key].ks, hits[key].src, hits[key].ev))
		}
	}
	return out
}

func (st *state) kubeTemplateFinding(i int, ks *kubeState, src int, ev []string) Finding {
	v := st.ix.vms[i]
	vms := []int{i}
	if src >= 0 {
		vms = []int{src, i}
	}
	sev := Warning
	if ks.node.ControlPlane {
		sev = Critical
		ev = append(ev, fmt.Sprintf("Node %s is a control-plane node: the template also holds the cluster's CA keys (/etc/kubernetes/pki)", ks.node.Name))
	}
	f := st.finding(KindTemplateCarriesKubelet, sev, ks.node.Name, vms, src)
	f.Cluster = ks.cluster
	f.Evidence = append(ev, "every VM deployed from this template boots with the Node's kubelet client certificate and takes over the Node when its kubelet starts (with the same hostname)")
	f.Remedy = fmt.Sprintf("Do not deploy from %s as it is. Convert it to a VM, power it on with its network disconnected, and generalize it (`vmreconcile preclone -generalize-plan`): "+
		"`systemctl disable --now kubelet`, move /var/lib/kubelet/pki and /etc/kubernetes/kubelet.conf aside, empty /etc/machine-id; power it off and convert it back to a template. "+
		"VMs deployed from it join with `kubeadm join` under their own names. Check the VMs already deployed from it (clone-of-k8s-node findings). %s", v.Name, keepNode(ks.node.Name, ""))
	return f
}

// ---- MKE: one copy holding a swarm node and a Kubernetes Node ----

// crossReference adds to each swarm identity finding and each Kubernetes
// identity finding that name the same copy (a VM other than the
// original) a line naming the other finding: on MKE a node VM is both a
// swarm node and a Kubernetes Node, and its copy carries both.
func crossReference(fs []Finding) {
	swarm := []string{KindSharedNodeID, KindCloneOfSwarmNode, KindTemplateCarriesSwarm, KindNodeFlapping}
	kube := []string{KindSharedK8sNode, KindCloneOfK8sNode, KindTemplateCarriesKubelet, KindK8sNodeFlapping}
	copies := func(f Finding) []string {
		var out []string
		for j := range f.VMRefs {
			if f.Original != "" && j < len(f.VMs) && f.VMs[j] == f.Original {
				continue
			}
			out = append(out, f.VMPaths[j]+"\x00"+f.VMRefs[j])
		}
		return out
	}
	kubeBy := map[string][]int{}
	for k, f := range fs {
		if slices.Contains(kube, f.Kind) {
			for _, c := range copies(f) {
				kubeBy[c] = append(kubeBy[c], k)
			}
		}
	}
	for s := range fs {
		if !slices.Contains(swarm, fs[s].Kind) {
			continue
		}
		for j, c := range copies(fs[s]) {
			for _, k := range kubeBy[c] {
				name := vmNameOf(fs[s], c, j)
				fs[s].Evidence = append(fs[s].Evidence, fmt.Sprintf("the same copy, VM %s, also holds Kubernetes Node %s of cluster %s (%s): an MKE node, or a VM that is both a swarm and a Kubernetes node; fix both (on MKE its kubelet runs under Docker)",
					name, fs[k].NodeID, orUnknown(fs[k].Cluster), fs[k].Kind))
				fs[k].Evidence = append(fs[k].Evidence, fmt.Sprintf("the same copy, VM %s, also holds swarm node %s (%s): an MKE node, or a VM that is both a swarm and a Kubernetes node; fix both (on MKE its kubelet runs under Docker)",
					name, fs[s].NodeID, fs[s].Kind))
			}
		}
	}
}

// vmNameOf returns the name of the VM of f whose path\x00ref is c.
func vmNameOf(f Finding, c string, _ int) string {
	for j := range f.VMRefs {
		if f.VMPaths[j]+"\x00"+f.VMRefs[j] == c {
			return f.VMs[j]
		}
	}
	return ""
}
