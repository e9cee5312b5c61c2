package reconcile

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"
)

// Matching a Kubernetes Node's identity to a VM (documented in
// docs/findings.md, "How Kubernetes Nodes are matched to VMs"):
//
//  1. systemUUID. A Node's status.nodeInfo.systemUUID is the VM's BIOS UUID
//     (in either byte order of the first three fields, see UUIDMatches). It
//     is read from the hardware, so a copy that kept the hostname, the
//     address and the kubelet certificate still shows its own UUID: when the
//     identity has a valid systemUUID it decides. One VM with that UUID is
//     the match; several (a VM copied as files and registered with "I moved
//     it" keeps the UUID) are told apart by hostname, then by the swarm
//     ranking (address, resources, exact hostname, powered on, not a
//     template), and a full tie is ambiguous. A valid systemUUID that no VM
//     has is a machine outside the inventory: the identity is left
//     unmatched even when its hostname names a VM (that VM's own UUID says
//     it is another machine).
//  2. No valid systemUUID (older kubelets, a guest without DMI access): the
//     swarm rules on the Hostname address and the InternalIP, with the same
//     safeguards (an address alone never merges two hostnames; a strong
//     address on another VM contradicts the hostname; an InternalIP that
//     several Nodes present is weak).
//  3. An identity known only from events (a Rebooted event names a boot ID
//     no sample showed) carries no systemUUID, hostname or address and
//     matches nothing.

// kubeState is one Kubernetes Node in a Reconcile run.
type kubeState struct {
	cluster string // KubeCluster.Name
	server  string // KubeCluster.Server
	node    KubeNode
	key     string // KubeNodeKey(cluster, node name)
	matches []descMatch
	// vms: distinct VMs matched by any identity, in order of first match.
	vms []int
	// holders: distinct non-template VMs matched without ambiguity, in
	// order of first match: the machines known to have written the Node.
	holders []int
	// firstIdx: index of the first identity each holder matched.
	firstIdx map[int]int
}

type kubeTplCand struct {
	ks  *kubeState
	idx int
}

// indexKube indexes what Kubernetes matching needs: the VMs by BIOS UUID,
// and how many distinct Nodes present each InternalIP.
func (ix *index) indexKube(clusters []KubeCluster) {
	ix.byUUID = map[string][]int{}
	for i, v := range ix.vms {
		if u := canonUUID(v.BIOSUUID); u != "" {
			ix.byUUID[u] = append(ix.byUUID[u], i)
		}
	}
	ix.kubeAddr = map[string]int{}
	seen := map[string]bool{}
	for _, c := range clusters {
		for _, n := range c.Nodes {
			k := KubeNodeKey(c.Name, n.Name)
			for _, id := range n.Identities {
				if a := normIP(id.InternalIP); a != "" && !seen[a+"\x00"+k] {
					seen[a+"\x00"+k] = true
					ix.kubeAddr[a]++
				}
			}
		}
	}
}

// uuidVMs returns the VMs whose BIOS UUID is u (canonical) in either byte
// order, sorted.
func (ix *index) uuidVMs(u string) []int {
	out := slices.Clone(ix.byUUID[u])
	if s := swapUUID(u); s != u {
		for _, i := range ix.byUUID[s] {
			if !contains(out, i) {
				out = append(out, i)
			}
		}
	}
	slices.Sort(out)
	return out
}

// kubeDesc is an identity as a swarm-style description, for the hostname
// and address rules: the Hostname address (else the Node's name, which
// kubelet takes from the hostname), capacity and InternalIP.
func kubeDesc(id KubeIdentity, nodeName string) Description {
	h := id.Hostname
	if h == "" && !id.EventsOnly {
		h = nodeName
	}
	return Description{Hostname: h, NanoCPUs: id.CPUs * 1e9, MemoryBytes: id.MemoryBytes, Addr: id.InternalIP, EventsOnly: id.EventsOnly}
}

// hostOf is the name a VM is known by for hostname comparisons.
func hostOf(v VM) string { return cmp.Or(v.GuestHostname, v.Name) }

// matchKube matches one identity of Node nodeName to VMs.
func (ix *index) matchKube(id KubeIdentity, nodeName string) descMatch {
	d := kubeDesc(id, nodeName)
	u := canonUUID(id.SystemUUID)
	if u == "" {
		if d.Hostname == "" && normIP(d.Addr) == "" {
			return descMatch{evidence: []string{"no systemUUID, hostname or address (known from events only): not matched"}}
		}
		m := ix.matchIn(d, ix.kubeAddr)
		if strings.TrimSpace(id.SystemUUID) != "" {
			m.evidence = append([]string{fmt.Sprintf("systemUUID %q is not a UUID: matched by hostname and address", id.SystemUUID)}, m.evidence...)
		}
		return m
	}
	var m descMatch
	// Templates that kept the hostname are candidates too (a template
	// cannot write a Node, but it carries the identity).
	hm := ix.matchIn(d, ix.kubeAddr)
	for _, c := range hm.candidates {
		if ix.vms[c].Template {
			m.candidates = append(m.candidates, c)
		}
	}
	cands := ix.uuidVMs(u)
	for _, c := range cands {
		if !contains(m.candidates, c) {
			m.candidates = append(m.candidates, c)
		}
	}
	if len(cands) == 0 {
		m.evidence = append(m.evidence, fmt.Sprintf("systemUUID %s matches no VM's BIOS UUID (in either byte order): a machine outside this inventory (another vCenter, a physical host)", id.SystemUUID))
		if len(hm.vms) > 0 {
			m.evidence = append(m.evidence, fmt.Sprintf("hostname %s points at %s, whose BIOS UUID differs: not matched on the hostname", d.Hostname, ix.vmNames(hm.vms)))
		}
		return m
	}
	ix.pickByUUID(&m, d, id.SystemUUID, cands)
	var others []int
	for _, c := range hm.candidates {
		if !contains(cands, c) && !ix.vms[c].Template {
			others = append(others, c)
		}
	}
	if len(others) > 0 {
		m.evidence = append(m.evidence, fmt.Sprintf("hostname %s also names %s, whose BIOS UUID differs: another machine (the systemUUID decides)", d.Hostname, ix.vmNames(others)))
	}
	return m
}

// pickByUUID chooses among the VMs that have the identity's systemUUID.
func (ix *index) pickByUUID(m *descMatch, d Description, uuid string, cands []int) {
	best := cands
	if len(cands) > 1 && d.Hostname != "" {
		var named []int
		for _, c := range cands {
			if HostnameMatches(d.Hostname, hostOf(ix.vms[c])) {
				named = append(named, c)
			}
		}
		if len(named) > 0 {
			best = named
		}
	}
	addr := normIP(d.Addr)
	addrOK := addr != "" && usableIP(addr) && ix.kubeAddr[addr] <= 1
	rs, top := ix.rankVMs(d, best, addrOK)
	for _, r := range rs[:top] {
		v := ix.vms[r.i]
		m.vms = append(m.vms, r.i)
		m.evidence = append(m.evidence, uuidEvidence(uuid, v))
		if d.Hostname != "" && !HostnameMatches(d.Hostname, hostOf(v)) {
			m.evidence = append(m.evidence, fmt.Sprintf("hostname %s differs from VM %s's guest hostname %s: the systemUUID decides (a copy that kept the identity, or a renamed guest)", d.Hostname, v.Name, orUnknown(v.GuestHostname)))
		}
		if r.fitE != "" {
			m.evidence = append(m.evidence, r.fitE)
		}
	}
	if len(cands) == 1 {
		return
	}
	if top > 1 {
		m.ambiguous = true
		m.evidence = append(m.evidence, fmt.Sprintf("ambiguous: systemUUID %s is the BIOS UUID of %d VMs that fit equally well: %s", uuid, top, ix.vmNames(m.vms)))
		return
	}
	others := slices.DeleteFunc(slices.Clone(cands), func(i int) bool { return i == rs[0].i })
	why := "its hostname matches"
	if len(rs) > 1 {
		why = rankReason(rs, addr)
	}
	m.evidence = append(m.evidence, fmt.Sprintf("systemUUID %s is also the BIOS UUID of %s (duplicate BIOS UUID); chose %s because %s", uuid, ix.vmNames(others), ix.vms[rs[0].i].Name, why))
}

func uuidEvidence(uuid string, v VM) string {
	if canonUUID(uuid) == canonUUID(v.BIOSUUID) {
		return fmt.Sprintf("systemUUID %s = BIOS UUID of VM %s", uuid, v.Name)
	}
	return fmt.Sprintf("systemUUID %s = BIOS UUID %s of VM %s with the first three fields byte-swapped (older VM hardware)", uuid, v.BIOSUUID, v.Name)
}

// addKube matches every Kubernetes Node of the snapshot.
func (st *state) addKube(clusters []KubeCluster) {
	cs := slices.Clone(clusters)
	slices.SortStableFunc(cs, func(a, b KubeCluster) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Server, b.Server))
	})
	st.ix.indexKube(cs)
	for _, c := range cs {
		for _, n := range c.Nodes {
			st.kube = append(st.kube, &kubeState{cluster: c.Name, server: c.Server, node: n, key: KubeNodeKey(c.Name, n.Name)})
		}
	}
	slices.SortStableFunc(st.kube, func(a, b *kubeState) int { return cmp.Compare(a.key, b.key) })
	st.vmKube = make([][]string, len(st.ix.vms))
	st.kubeTplCands = map[int][]kubeTplCand{}
	st.kubeNames = map[string]map[string]bool{}
	st.kubeKeys = map[string]*kubeState{}
	for _, ks := range st.kube {
		if _, ok := st.kubeKeys[ks.key]; !ok {
			st.kubeKeys[ks.key] = ks
		}
		name := strings.ToLower(ks.node.Name)
		if st.kubeNames[name] == nil {
			st.kubeNames[name] = map[string]bool{}
		}
		st.kubeNames[name][ks.cluster] = true
		ks.firstIdx = map[int]int{}
		for ii, id := range ks.node.Identities {
			m := st.ix.matchKube(id, ks.node.Name)
			ks.matches = append(ks.matches, m)
			for _, c := range m.candidates {
				if st.ix.vms[c].Template {
					st.kubeTplCands[c] = append(st.kubeTplCands[c], kubeTplCand{ks, ii})
				}
			}
			for _, v := range m.vms {
				if !contains(ks.vms, v) {
					ks.vms = append(ks.vms, v)
				}
			}
			if v, ok := m.unique(); ok && !st.ix.vms[v].Template && !contains(ks.holders, v) {
				ks.holders = append(ks.holders, v)
				ks.firstIdx[v] = ii
			}
		}
		for _, v := range ks.vms {
			if !slices.Contains(st.vmKube[v], ks.key) {
				st.vmKube[v] = append(st.vmKube[v], ks.key)
			}
		}
	}
	for i := range st.vmKube {
		sort.Strings(st.vmKube[i])
	}
}

func (st *state) kubeNodeStatuses() []KubeNodeStatus {
	if len(st.kube) == 0 {
		return nil
	}
	out := make([]KubeNodeStatus, 0, len(st.kube))
	for _, ks := range st.kube {
		n := ks.node
		s := KubeNodeStatus{
			Cluster: ks.cluster, Name: n.Name, UID: n.UID, Ready: n.Ready, ControlPlane: n.ControlPlane,
			Flips: n.Flips(), Identities: make([]MatchedKubeIdentity, len(n.Identities)),
			VMs: []string{}, VMRefs: []string{},
		}
		for ii, id := range n.Identities {
			m := ks.matches[ii]
			mi := MatchedKubeIdentity{KubeIdentity: id, VMRefs: []string{}, Evidence: m.evidence}
			if mi.Evidence == nil {
				mi.Evidence = []string{}
			}
			for _, v := range m.vms {
				mi.VMRefs = append(mi.VMRefs, st.ix.vms[v].Ref)
			}
			s.Identities[ii] = mi
		}
		for _, v := range ks.vms {
			s.VMs = append(s.VMs, st.ix.vms[v].Name)
			s.VMRefs = append(s.VMRefs, st.ix.vms[v].Ref)
		}
		out = append(out, s)
	}
	return out
}

// apiHostPort returns the host:port of an API server URL or address,
// lower-cased, with the https default port; "" when there is none.
func apiHostPort(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// guestHoldsKube reports whether VM i's guest probe g found the kubelet
// client certificate of ks's Node: the certificate names the Node (CN
// system:node:NAME), and the kubelet's API server is the cluster's. When
// either server is unknown, the Node's name must be unique among the
// clusters observed; a VM matched to the Node needs only the name (the
// cluster may be reached through another address).
func (st *state) guestHoldsKube(g GuestIdentity, ks *kubeState, i int) bool {
	if g.KubeletNode == "" || !strings.EqualFold(g.KubeletNode, ks.node.Name) {
		return false
	}
	if contains(ks.vms, i) {
		return true
	}
	a, b := apiHostPort(g.KubeletServer), apiHostPort(ks.server)
	if a != "" && b != "" {
		return a == b
	}
	return len(st.kubeNames[strings.ToLower(ks.node.Name)]) == 1
}

// kubeGuestHolders returns the VMs (sorted) whose guest probe holds ks's
// Node certificate.
func (st *state) kubeGuestHolders(ks *kubeState) []int {
	var out []int
	for _, i := range st.guestVMs() {
		if st.guestHoldsKube(st.guests[i], ks, i) {
			out = append(out, i)
		}
	}
	return out
}

// guestVMs returns the VMs with a usable guest probe, sorted.
func (st *state) guestVMs() []int {
	out := make([]int, 0, len(st.guests))
	for i := range st.guests {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}
