package reconcile

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
)

// Matching rules (documented in the README, "How nodes are matched to VMs"):
//
//  1. Hostname. A description's hostname is compared with each VM's guest
//     hostname, case-insensitively, ignoring a trailing dot. A short name
//     matches an FQDN whose first label it is ("wk-01" ~ "wk-01.corp.local");
//     two FQDNs must be equal; "wk-01" never matches "wk-011". Only when no
//     guest hostname matches are VMs whose guest hostname is unknown (VMware
//     Tools not reporting) compared by their inventory name instead.
//  2. Several hostname candidates (duplicate hostnames) are ranked, in order,
//     by: the description's address is one of the VM's IPs; vCPU/memory
//     consistency; exact (not short-vs-FQDN) hostname; powered on; not a
//     template. A unique best wins and the runners-up are recorded in the
//     evidence; a tie matches all tied VMs and is marked ambiguous.
//  3. Address. With no hostname candidate, the address alone matches only if
//     it is "strong" (see strongAddr) and the VM's guest hostname is unknown:
//     an IP never merges two different hostnames into one VM.
//  4. Contradiction. When the hostname points at one VM but a strong address
//     belongs to another, the description is left unmatched (e.g. a DHCP
//     lease handed to another VM, or two nodes that swapped hostnames).
//
// Resources are consistent when the CPU counts are equal and the memory the
// engine reports is within MemoryTolerance of the VM's configured memory.

// MemoryTolerance returns how far (MiB) the memory an engine reports may be
// from a VM's configured memory and still count as consistent: 10% of the
// configured memory, at least 256 MiB (the kernel and firmware keep some).
func MemoryTolerance(configuredMB int64) int64 {
	return max(256, configuredMB/10)
}

// MemoryConsistent reports whether an engine's memory (MiB) fits a VM's
// configured memory (MB as vSphere reports it, which are MiB).
func MemoryConsistent(engineMiB, configuredMB int64) bool {
	d := configuredMB - engineMiB
	if d < 0 {
		d = -d
	}
	return d <= MemoryTolerance(configuredMB)
}

// HostnameMatches reports whether two hostnames name the same host: equal
// case-insensitively, or a short name equal to the other's first label.
func HostnameMatches(a, b string) bool {
	a, b = normHost(a), normHost(b)
	if a == "" || b == "" {
		return false
	}
	if a == b {
		return true
	}
	if isIPLiteral(a) || isIPLiteral(b) {
		return false
	}
	switch {
	case !strings.Contains(a, "."):
		return a == shortHost(b)
	case !strings.Contains(b, "."):
		return b == shortHost(a)
	}
	return false
}

func normHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

func isIPLiteral(h string) bool { return net.ParseIP(h) != nil }

// shortHost returns the first label of a normalized hostname.
func shortHost(h string) string {
	h = normHost(h)
	if isIPLiteral(h) {
		return h
	}
	if i := strings.IndexByte(h, '.'); i > 0 {
		return h[:i]
	}
	return h
}

// normIP returns the canonical form of an address ("" when it is not one).
// A port, if any, is dropped.
func normIP(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(s)
		if err2 != nil {
			return ""
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone("").String()
}

// usableIP reports whether an address can identify a machine at all.
func usableIP(s string) bool {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return false
	}
	return !(a.IsUnspecified() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsMulticast())
}

// index holds the VMs (sorted) and lookups over them.
type index struct {
	vms       []VM
	byHost    map[string][]int // short guest hostname → VMs
	byName    map[string][]int // short VM name → VMs without a guest hostname
	byIP      map[string][]int // address → VMs holding it
	byRef     map[VMKey]int    // vCenter and ref → VM
	refs      map[string][]int // ref → VMs (all vCenters)
	addrNodes map[string]int   // address → distinct nodes presenting it
	parent    []int            // lineage source in the snapshot, -1 if none
	// Kubernetes (indexKube): BIOS UUID (canonical) → VMs, and address →
	// distinct Kubernetes Nodes presenting it as InternalIP.
	byUUID   map[string][]int
	kubeAddr map[string]int
}

func newIndex(vms []VM, swarms []Swarm) *index {
	ix := &index{
		vms:       vms,
		byHost:    map[string][]int{},
		byName:    map[string][]int{},
		byIP:      map[string][]int{},
		byRef:     make(map[VMKey]int, len(vms)),
		refs:      make(map[string][]int, len(vms)),
		addrNodes: map[string]int{},
		parent:    make([]int, len(vms)),
	}
	for i, v := range vms {
		if h := shortHost(v.GuestHostname); h != "" {
			ix.byHost[h] = append(ix.byHost[h], i)
		} else if n := shortHost(v.Name); n != "" {
			ix.byName[n] = append(ix.byName[n], i)
		}
		seen := map[string]bool{}
		for _, s := range v.IPs {
			if a := normIP(s); a != "" && !seen[a] {
				seen[a] = true
				ix.byIP[a] = append(ix.byIP[a], i)
			}
		}
		k := v.Key()
		if _, dup := ix.byRef[k]; !dup {
			ix.byRef[k] = i
		}
		ix.refs[v.Ref] = append(ix.refs[v.Ref], i)
	}
	for i, v := range vms {
		ix.parent[i] = -1
		if v.Lineage == nil || v.Lineage.SourceRef == "" {
			continue
		}
		if p, ok := ix.byRef[VMKey{VCenter: v.VCenter, Ref: v.Lineage.SourceRef}]; ok && p != i {
			ix.parent[i] = p
		}
	}
	// Count distinct node IDs per address, not Node entries: one swarm
	// observed through two managers (two Swarm entries) lists every node
	// twice, and counting those twice made every address look shared (NAT),
	// which switched off the address tie-break and the DHCP contradiction.
	seen := map[string]bool{} // address \x00 node ID
	for _, sw := range swarms {
		for _, n := range sw.Nodes {
			for _, d := range n.Descriptions {
				if a := normIP(d.Addr); a != "" && !seen[a+"\x00"+n.ID] {
					seen[a+"\x00"+n.ID] = true
					ix.addrNodes[a]++
				}
			}
		}
	}
	return ix
}

// vmByRef finds a VM by vCenter and moref; with no vCenter (an old probe),
// by moref alone, and only when a single VM has that ref: morefs repeat
// across vCenters, and a probe must never be pinned on another vCenter's VM.
func (ix *index) vmByRef(vcenter, ref string) (int, bool) {
	if vcenter != "" {
		i, ok := ix.byRef[VMKey{VCenter: vcenter, Ref: ref}]
		return i, ok
	}
	if l := ix.refs[ref]; len(l) == 1 {
		return l[0], true
	}
	return -1, false
}

// ancestors returns the lineage chain of VM i inside the snapshot, nearest
// first. Cycles (bad data) are cut.
func (ix *index) ancestors(i int) []int {
	var out []int
	seen := map[int]bool{i: true}
	for p := ix.parent[i]; p >= 0 && !seen[p]; p = ix.parent[p] {
		seen[p] = true
		out = append(out, p)
	}
	return out
}

// descendsFrom reports whether VM i is a copy (direct or transitive) of VM j.
func (ix *index) descendsFrom(i, j int) bool {
	for _, a := range ix.ancestors(i) {
		if a == j {
			return true
		}
	}
	return false
}

// strongAddr returns the one VM that holds addr when the address can identify
// a machine: a usable unicast address, held by exactly one VM and presented by
// at most one node. Addresses shared by many VMs (docker0's 172.17.0.1) or by
// many nodes (a NAT address) are weak evidence.
func (ix *index) strongAddr(addr string, addrNodes map[string]int) (int, bool) {
	if addr == "" || !usableIP(addr) || addrNodes[addr] > 1 {
		return -1, false
	}
	if l := ix.byIP[addr]; len(l) == 1 {
		return l[0], true
	}
	return -1, false
}

// descMatch is the outcome of matching one description.
type descMatch struct {
	vms        []int // matched VMs (more than one only when ambiguous)
	candidates []int // every hostname candidate, matched or not
	ambiguous  bool
	evidence   []string
}

// unique returns the single VM matched without ambiguity.
func (m descMatch) unique() (int, bool) {
	if len(m.vms) == 1 && !m.ambiguous {
		return m.vms[0], true
	}
	return -1, false
}

func (ix *index) vmNames(l []int) string {
	s := make([]string, len(l))
	for k, i := range l {
		v := ix.vms[i]
		state := v.PowerState
		if v.Template {
			state = "template"
		}
		if state == "" {
			state = "power state unknown"
		}
		s[k] = fmt.Sprintf("%s (%s)", v.Name, state)
	}
	return strings.Join(s, ", ")
}

// fit tells how a description's resources compare with a VM's configuration:
// 2 consistent, 1 unknown, 0 inconsistent.
func fit(d Description, v VM) (int, string) {
	haveCPU := d.NanoCPUs > 0 && v.NumCPU > 0
	haveMem := d.MemoryBytes > 0 && v.MemoryMB > 0
	if !haveCPU && !haveMem {
		return 1, ""
	}
	ok := true
	if haveCPU && d.CPUs() != int(v.NumCPU) {
		ok = false
	}
	if haveMem && !MemoryConsistent(d.MemoryMB(), int64(v.MemoryMB)) {
		ok = false
	}
	res := descResources(d)
	cfg := fmt.Sprintf("(%d vCPU, %d MB)", v.NumCPU, v.MemoryMB)
	if ok {
		return 2, fmt.Sprintf("%s consistent with VM config %s", res, cfg)
	}
	return 0, fmt.Sprintf("%s NOT consistent with VM config of %s %s", res, v.Name, cfg)
}

func descResources(d Description) string {
	var p []string
	if d.NanoCPUs > 0 {
		p = append(p, plural(d.CPUs(), "CPU"))
	}
	if d.MemoryBytes > 0 {
		p = append(p, fmt.Sprintf("%d MiB", d.MemoryMB()))
	}
	if len(p) == 0 {
		return "resources unknown"
	}
	return strings.Join(p, " / ")
}

func hasIP(v VM, addr string) bool {
	for _, s := range v.IPs {
		if normIP(s) == addr {
			return true
		}
	}
	return false
}

// match matches one swarm node description to VMs.
func (ix *index) match(d Description) descMatch { return ix.matchIn(d, ix.addrNodes) }

// matchIn matches one description to VMs; addrNodes counts the distinct
// nodes presenting each address among the nodes of the description's kind
// (swarm nodes, Kubernetes Nodes): a swarm node and a Kubernetes Node on one
// VM (MKE) present the same address without making it a NAT address.
func (ix *index) matchIn(d Description, addrNodes map[string]int) descMatch {
	var m descMatch
	hn := normHost(d.Hostname)
	addr := normIP(d.Addr)
	// addrOK: the address may be used to tell hostname candidates apart.
	addrOK := addr != "" && usableIP(addr) && addrNodes[addr] <= 1

	byName := false
	if hn != "" {
		for _, i := range ix.byHost[shortHost(hn)] {
			if HostnameMatches(hn, ix.vms[i].GuestHostname) {
				m.candidates = append(m.candidates, i)
			}
		}
		if len(m.candidates) == 0 {
			for _, i := range ix.byName[shortHost(hn)] {
				if HostnameMatches(hn, ix.vms[i].Name) {
					m.candidates = append(m.candidates, i)
				}
			}
			byName = len(m.candidates) > 0
		}
	}
	hostEv := func(i int) string {
		if byName {
			return fmt.Sprintf("hostname %s = name of VM %s (its guest hostname is unknown)", d.Hostname, ix.vms[i].Name)
		}
		return fmt.Sprintf("hostname %s = guest hostname of VM %s", d.Hostname, ix.vms[i].Name)
	}
	owner, strong := ix.strongAddr(addr, addrNodes)

	if len(m.candidates) == 0 {
		switch {
		case strong && (hn == "" || normHost(ix.vms[owner].GuestHostname) == ""):
			m.vms = []int{owner}
			m.evidence = append(m.evidence, fmt.Sprintf("addr %s in VM %s IPs (no hostname match; the VM reports no guest hostname)", addr, ix.vms[owner].Name))
			if _, ev := fit(d, ix.vms[owner]); ev != "" {
				m.evidence = append(m.evidence, ev)
			}
		case strong:
			m.evidence = append(m.evidence, fmt.Sprintf("no VM has hostname %s; addr %s belongs to VM %s whose guest hostname is %s: not matched on the address alone", d.Hostname, addr, ix.vms[owner].Name, ix.vms[owner].GuestHostname))
		default:
			m.evidence = append(m.evidence, fmt.Sprintf("no VM has hostname %q", d.Hostname))
			if ev := ix.weakAddrNote(addr, addrNodes); ev != "" {
				m.evidence = append(m.evidence, ev)
			}
		}
		return m
	}

	if strong && !contains(m.candidates, owner) {
		m.evidence = append(m.evidence, fmt.Sprintf("hostname %s points at %s but addr %s belongs only to VM %s (guest hostname %q): contradicting evidence, not matched",
			d.Hostname, ix.vmNames(m.candidates), addr, ix.vms[owner].Name, ix.vms[owner].GuestHostname))
		return m
	}

	rs, top := ix.rankVMs(d, m.candidates, addrOK)
	for _, r := range rs[:top] {
		m.vms = append(m.vms, r.i)
		m.evidence = append(m.evidence, hostEv(r.i))
		if r.key[0] == 1 {
			m.evidence = append(m.evidence, fmt.Sprintf("addr %s in VM %s IPs", addr, ix.vms[r.i].Name))
		}
		if r.fitE != "" {
			m.evidence = append(m.evidence, r.fitE)
		}
	}
	if len(rs) > 1 {
		if top > 1 {
			m.ambiguous = true
			m.evidence = append(m.evidence, fmt.Sprintf("ambiguous: hostname %s matches %d VMs equally well: %s", d.Hostname, top, ix.vmNames(m.vms)))
		} else {
			why := rankReason(rs, addr)
			others := make([]int, 0, len(rs)-1)
			for _, r := range rs[1:] {
				others = append(others, r.i)
			}
			m.evidence = append(m.evidence, fmt.Sprintf("hostname %s also matches %s; chose %s because %s", d.Hostname, ix.vmNames(others), ix.vms[rs[0].i].Name, why))
		}
	}
	return m
}

// ranked is a candidate VM and its rank for a description: key compares
// lexicographically (higher is better): the address is one of its IPs,
// resources fit (2 consistent, 1 unknown, 0 not), exact hostname, powered on,
// not a template.
type ranked struct {
	i    int
	key  [5]int
	fitE string
}

// rankVMs ranks candidate VMs for a description, best first, and returns
// how many tie for the top.
func (ix *index) rankVMs(d Description, cands []int, addrOK bool) ([]ranked, int) {
	hn := normHost(d.Hostname)
	addr := normIP(d.Addr)
	rs := make([]ranked, len(cands))
	for k, i := range cands {
		v := ix.vms[i]
		f, fe := fit(d, v)
		r := ranked{i: i, fitE: fe}
		if addrOK && hasIP(v, addr) {
			r.key[0] = 1
		}
		r.key[1] = f
		if hn != "" && normHost(v.GuestHostname) == hn {
			r.key[2] = 1
		}
		if v.PoweredOn() {
			r.key[3] = 1
		}
		if !v.Template {
			r.key[4] = 1
		}
		rs[k] = r
	}
	sort.SliceStable(rs, func(a, b int) bool { return compareRank(rs[a].key, rs[b].key) > 0 })
	top := min(1, len(rs))
	for top < len(rs) && compareRank(rs[0].key, rs[top].key) == 0 {
		top++
	}
	return rs, top
}

// compareRank is >0 when a ranks higher than b.
func compareRank(a, b [5]int) int {
	for k := range a {
		if a[k] != b[k] {
			return a[k] - b[k]
		}
	}
	return 0
}

// rankReason says why the first of rs ranks above the second.
func rankReason(rs []ranked, addr string) string {
	reasons := []string{"its IPs hold addr " + addr, "its vCPU/memory fit the reported resources", "its hostname matches exactly", "it is powered on", "it is not a template"}
	for k := range rs[0].key {
		if rs[0].key[k] != rs[1].key[k] {
			return reasons[k]
		}
	}
	return ""
}

func (ix *index) weakAddrNote(addr string, addrNodes map[string]int) string {
	switch {
	case addr == "":
		return ""
	case !usableIP(addr):
		return fmt.Sprintf("addr %s identifies no machine (unspecified, loopback or link-local)", addr)
	case addrNodes[addr] > 1:
		return fmt.Sprintf("addr %s is presented by %d nodes (NAT or proxy): too weak to match on", addr, addrNodes[addr])
	case len(ix.byIP[addr]) > 1:
		return fmt.Sprintf("addr %s is held by %d VMs: too weak to match on", addr, len(ix.byIP[addr]))
	case len(ix.byIP[addr]) == 0:
		return fmt.Sprintf("addr %s is in no VM's IPs", addr)
	}
	return ""
}

func contains(l []int, x int) bool {
	for _, y := range l {
		if y == x {
			return true
		}
	}
	return false
}

func plural(n int, what string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}
