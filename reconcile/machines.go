package reconcile

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Without a vCenter there is no VM to match a node's identities to; the only
// evidence of which machine answered as a node is what the cluster itself
// shows: hostname, address, CPUs and memory, engine version (and, for
// Kubernetes, system UUID, machine ID and boot ID). Machine grouping (below)
// turns one node's identities into the distinct machines that answered as it:
//
//  1. Identities equal on every attribute both know are one identity class
//     (an unknown attribute never tells two classes apart). Addresses that
//     identify no machine (loopback, 0.0.0.0, link-local) or that several
//     node IDs present (NAT, a DHCP lease handed on) count as unknown.
//  2. Two classes are one machine that changed when they differ in one
//     attribute only (a rename, a new address, a CPU or memory hot-add, an
//     engine upgrade; a new boot ID never counts) and the node never went
//     back from the later one to the earlier one. Changes in place (CPUs,
//     memory, version) are merged before renames and new addresses.
//  3. Two machines alternate when the node's sightings, reduced to these
//     machines, go A, B, A, B (or longer): one machine cannot go back and
//     forth like that, two machines holding the node's certificate do.
//     That alternation is the shared-node-id signal; a single change or a
//     single return (A, B, A: renamed and renamed back) is not.
//
// Sightings from node events carry the hostname only: they count for the
// one machine with that hostname, and are left out when several machines of
// the node share it.

// Machine is one machine as a cluster itself shows it: the identities of one
// node that the evidence does not tell apart (see docs/no-vsphere.md). Result
// and findings carry machines only for snapshots without a vCenter.
type Machine struct {
	Source  string `json:"source"`  // "swarm" (Kubernetes Nodes will say "kubernetes")
	Cluster string `json:"cluster"` // the swarm's cluster ID
	Node    string `json:"node"`    // the swarm node ID it answered as
	// Label is how findings name the machine: its hostname, with its
	// address when that is a usable one, and more when two machines of the
	// node would read alike ("wk-07 (10.0.0.7)").
	Label     string   `json:"label"`
	Hostnames []string `json:"hostnames"`
	// Addrs are the addresses the manager saw it at (Status.Addr), usable or not.
	Addrs    []string `json:"addrs,omitempty"`
	CPUs     []int    `json:"cpus,omitempty"`
	MemoryMB []int64  `json:"memory_mb,omitempty"`
	// Versions are the engine versions it reported.
	Versions []string `json:"versions,omitempty"`
	// Descriptions index the node's descriptions (nodes[].descriptions) that
	// are this machine.
	Descriptions []int     `json:"descriptions"`
	FirstSeen    time.Time `json:"first_seen"`
	LastSeen     time.Time `json:"last_seen"`
	Seen         int       `json:"seen"`
	// EventsOnly: known only from node events, which carry the hostname alone.
	EventsOnly bool `json:"events_only,omitempty"`
}

// ident is one identity as machine grouping sees it; "" and 0 are unknown.
type ident struct {
	host     string // short hostname
	addr     string // a usable address presented by this node only
	cpus     int
	memMB    int64
	version  string
	uuid     string // Kubernetes: system UUID
	mid      string // Kubernetes: machine ID
	boot     string // Kubernetes: boot ID
	hostOnly bool   // known from events only
}

// Attributes two identities can differ in, as evidence names them.
const (
	attrHostname = "hostname"
	attrAddress  = "address"
	attrCPUs     = "CPUs"
	attrMemory   = "memory"
	attrVersion  = "engine version"
	attrUUID     = "system UUID"
	attrMID      = "machine ID"
	attrBoot     = "boot ID"
)

// differs lists the attributes known on both sides that differ.
func (a ident) differs(b ident) []string {
	var out []string
	ne := func(x, y string) bool { return x != "" && y != "" && x != y }
	if ne(a.host, b.host) {
		out = append(out, attrHostname)
	}
	if ne(a.addr, b.addr) {
		out = append(out, attrAddress)
	}
	if a.cpus > 0 && b.cpus > 0 && a.cpus != b.cpus {
		out = append(out, attrCPUs)
	}
	if a.memMB > 0 && b.memMB > 0 && !MemoryConsistent(min(a.memMB, b.memMB), max(a.memMB, b.memMB)) {
		out = append(out, attrMemory)
	}
	if ne(a.version, b.version) {
		out = append(out, attrVersion)
	}
	if ne(a.uuid, b.uuid) {
		out = append(out, attrUUID)
	}
	if ne(a.mid, b.mid) {
		out = append(out, attrMID)
	}
	if ne(a.boot, b.boot) {
		out = append(out, attrBoot)
	}
	return out
}

// oneChange reports whether two identities can be one machine that changed:
// at most one attribute differs, a new boot ID aside.
func (a ident) oneChange(b ident) bool {
	return len(slices.DeleteFunc(a.differs(b), func(s string) bool { return s == attrBoot })) <= 1
}

// swarmIdent is a swarm description as machine grouping sees it; addrNodes
// counts the node IDs presenting each address.
func swarmIdent(d Description, addrNodes map[string]int) ident {
	id := ident{host: shortHost(d.Hostname), version: d.EngineVersion, hostOnly: d.EventsOnly}
	if a := normIP(d.Addr); a != "" && usableIP(a) && addrNodes[a] <= 1 {
		id.addr = a
	}
	if d.NanoCPUs > 0 {
		id.cpus = d.CPUs()
	}
	if d.MemoryBytes > 0 {
		id.memMB = d.MemoryMB()
	}
	return id
}

// kubeIdent is a Kubernetes identity as machine grouping sees it, for when
// the Kubernetes source joins (addresses are per cluster, as for swarms).
func kubeIdent(k KubeIdentity, addrNodes map[string]int) ident {
	id := ident{host: shortHost(k.Hostname), version: k.KubeletVersion, cpus: int(k.CPUs),
		uuid: strings.ToLower(k.SystemUUID), mid: k.MachineID, boot: k.BootID, hostOnly: k.EventsOnly}
	if a := normIP(k.InternalIP); a != "" && usableIP(a) && addrNodes[a] <= 1 {
		id.addr = a
	}
	if k.MemoryBytes > 0 {
		id.memMB = k.MemoryBytes >> 20
	}
	return id
}

// minAlternation is the number of stretches (A, B, A, B) two machines must
// take turns in to count as two machines sharing a node.
const minAlternation = 4

// mstep is one sighting: which identity, when, and whether only the hostname
// is known (a node event).
type mstep struct {
	id       int
	at       time.Time
	hostOnly bool
}

// mrun is a stretch of consecutive sightings of one machine.
type mrun struct {
	m  int
	at time.Time // first sighting of the stretch
}

// grouping is one node's identities grouped into machines.
type grouping struct {
	machineOf []int  // identity → machine, machines numbered by first identity
	n         int    // machines
	runs      []mrun // the node's sightings reduced to machines
	// alternating holds the machine pairs (a < b) that alternate.
	alternating [][2]int
}

// stepsOf turns a node timeline into grouping steps.
func stepsOf(tl []Sighting, ndesc int, eventsOnly func(int) bool) []mstep {
	out := make([]mstep, 0, len(tl))
	for _, s := range tl {
		if s.Description < 0 || s.Description >= ndesc {
			continue
		}
		out = append(out, mstep{id: s.Description, at: s.Time, hostOnly: s.Source == "event" || eventsOnly(s.Description)})
	}
	return out
}

// groupMachines groups one node's identities into machines (see above).
func groupMachines(ids []ident, steps []mstep) grouping {
	// 1. identity classes
	class := make([]int, len(ids))
	for i := range ids {
		class[i] = i
		for j := range i {
			if class[j] == j && len(ids[j].differs(ids[i])) == 0 {
				class[i] = j
				break
			}
		}
	}
	seq := classSeq(ids, class, steps)

	// 2. merge classes that are one machine that changed once
	parent := make([]int, len(ids))
	for i := range parent {
		parent[i] = i
	}
	find := func(x int) int {
		for parent[x] != x {
			x = parent[x]
		}
		return x
	}
	mapped := func() []int {
		out := make([]int, len(seq))
		for k, r := range seq {
			out[k] = find(r.m)
		}
		return out
	}
	// Changes in place (resources, engine version) merge before renames and
	// new addresses: in A, B, A', B (A' is A after a hot-add) A and A' are
	// one machine, and B must not be merged with A first.
	for _, inPlace := range []bool{true, false} {
		for x := range ids {
			for y := x + 1; y < len(ids); y++ {
				if class[x] != x || class[y] != y || find(x) == find(y) || !ids[x].oneChange(ids[y]) {
					continue
				}
				if inPlace && slices.ContainsFunc(ids[x].differs(ids[y]), func(a string) bool { return a == attrHostname || a == attrAddress }) {
					continue
				}
				if runsOf(mapped(), find(x), find(y)) <= 2 {
					parent[max(find(x), find(y))] = min(find(x), find(y))
				}
			}
		}
	}

	// 3. number the machines, reduce the sightings, find alternation
	g := grouping{machineOf: make([]int, len(ids))}
	num := map[int]int{}
	for i := range ids {
		r := find(class[i])
		if _, ok := num[r]; !ok {
			num[r] = g.n
			g.n++
		}
		g.machineOf[i] = num[r]
	}
	for _, r := range seq {
		m := g.machineOf[r.m]
		if k := len(g.runs); k == 0 || g.runs[k-1].m != m {
			g.runs = append(g.runs, mrun{m: m, at: r.at})
		}
	}
	ms := make([]int, len(g.runs))
	for k, r := range g.runs {
		ms[k] = r.m
	}
	for a := range g.n {
		for b := a + 1; b < g.n; b++ {
			if runsOf(ms, a, b) >= minAlternation {
				g.alternating = append(g.alternating, [2]int{a, b})
			}
		}
	}
	return g
}

// classSeq reduces the steps to identity classes; a hostname-only step
// counts for the one class with its hostname and is dropped when there are
// several.
func classSeq(ids []ident, class []int, steps []mstep) []mrun {
	var seq []mrun
	for _, s := range steps {
		c := class[s.id]
		if s.hostOnly {
			c = -1
			for j := range ids {
				if class[j] == j && ids[j].host == ids[s.id].host && ids[j].host != "" {
					if c >= 0 {
						c = -2 // several
						break
					}
					c = j
				}
			}
			if c < 0 {
				continue
			}
		}
		if k := len(seq); k == 0 || seq[k-1].m != c {
			seq = append(seq, mrun{m: c, at: s.at})
		}
	}
	return seq
}

// runsOf counts the stretches of a or b in seq, restricted to those two.
func runsOf(seq []int, a, b int) int {
	n, last := 0, -1
	for _, m := range seq {
		if (m == a || m == b) && m != last {
			n++
			last = m
		}
	}
	return n
}

// swarmMachines builds the machines of a swarm node from its grouping.
func swarmMachines(cluster string, n Node, g grouping) []Machine {
	ms := make([]Machine, g.n)
	for i := range ms {
		ms[i] = Machine{Source: "swarm", Cluster: cluster, Node: n.ID, Hostnames: []string{}, Descriptions: []int{}, EventsOnly: true}
	}
	for di, d := range n.Descriptions {
		m := &ms[g.machineOf[di]]
		m.Descriptions = append(m.Descriptions, di)
		addUnique(&m.Hostnames, d.Hostname)
		addUnique(&m.Addrs, d.Addr)
		addUnique(&m.Versions, d.EngineVersion)
		if d.NanoCPUs > 0 && !slices.Contains(m.CPUs, d.CPUs()) {
			m.CPUs = append(m.CPUs, d.CPUs())
		}
		if d.MemoryBytes > 0 && !slices.Contains(m.MemoryMB, d.MemoryMB()) {
			m.MemoryMB = append(m.MemoryMB, d.MemoryMB())
		}
		if !d.FirstSeen.IsZero() && (m.FirstSeen.IsZero() || d.FirstSeen.Before(m.FirstSeen)) {
			m.FirstSeen = d.FirstSeen
		}
		if d.LastSeen.After(m.LastSeen) {
			m.LastSeen = d.LastSeen
		}
		m.Seen += d.Seen
		m.EventsOnly = m.EventsOnly && d.EventsOnly
	}
	labelMachines(ms)
	return ms
}

func addUnique(l *[]string, s string) {
	if s != "" && !slices.Contains(*l, s) {
		*l = append(*l, s)
	}
}

// labelMachines names each machine by hostname and usable address; where two
// would read alike, it adds the CPUs, memory and engine versions that vary
// between the machines, then a number.
func labelMachines(ms []Machine) {
	varies := func(f func(Machine) string) bool {
		for _, m := range ms[1:] {
			if f(m) != f(ms[0]) {
				return true
			}
		}
		return false
	}
	cpus := func(m Machine) string {
		var p []string
		for _, c := range m.CPUs {
			p = append(p, plural(c, "CPU"))
		}
		return strings.Join(p, "/")
	}
	mem := func(m Machine) string {
		var p []string
		for _, mb := range m.MemoryMB {
			p = append(p, fmt.Sprintf("%d MiB", mb))
		}
		return strings.Join(p, "/")
	}
	ver := func(m Machine) string {
		if len(m.Versions) == 0 {
			return ""
		}
		return "engine " + strings.Join(m.Versions, "/")
	}
	parts := []func(Machine) string{machineAddr}
	for step := 0; ; step++ {
		count := map[string]int{}
		for i, m := range ms {
			var p []string
			for _, f := range parts {
				if v := f(m); v != "" {
					p = append(p, v)
				}
			}
			ms[i].Label = cmp.Or(strings.Join(m.Hostnames, "/"), "(unnamed)")
			if len(p) > 0 {
				ms[i].Label += " (" + strings.Join(p, ", ") + ")"
			}
			count[ms[i].Label]++
		}
		dup := false
		for _, c := range count {
			dup = dup || c > 1
		}
		if !dup {
			return
		}
		if step > 0 {
			break
		}
		for _, f := range []func(Machine) string{cpus, mem, ver} {
			if varies(f) {
				parts = append(parts, f)
			}
		}
	}
	for i := range ms {
		ms[i].Label += fmt.Sprintf(" #%d", i+1)
	}
}

// machineAddr is the machine's first usable address ("" when none).
func machineAddr(m Machine) string {
	for _, a := range m.Addrs {
		if n := normIP(a); n != "" && usableIP(n) {
			return n
		}
	}
	return ""
}

// describeMachine says everything the cluster showed of a machine.
func describeMachine(m Machine) string {
	var p []string
	switch {
	case len(m.Addrs) == 0:
		p = append(p, "address unknown")
	default:
		p = append(p, "addr "+strings.Join(m.Addrs, "/"))
	}
	var r []string
	for _, c := range m.CPUs {
		r = append(r, plural(c, "CPU"))
	}
	for _, mb := range m.MemoryMB {
		r = append(r, fmt.Sprintf("%d MiB", mb))
	}
	if len(r) > 0 {
		p = append(p, strings.Join(r, " / "))
	}
	if len(m.Versions) > 0 {
		p = append(p, "engine "+strings.Join(m.Versions, "/"))
	}
	if m.EventsOnly {
		p = append(p, "known from node events only")
	}
	return "hostname " + cmp.Or(strings.Join(m.Hostnames, "/"), "unknown") + " (" + strings.Join(p, ", ") + ")"
}
