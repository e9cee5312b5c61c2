package reconcile

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// ---- shared-node-id ----

// sharedNodeIDs reports every node ID held by two or more VMs: VMs matched
// without ambiguity by the node's descriptions, plus VMs whose guest probe
// found the ID in swarm-node.crt (Confirmed).
func (st *state) sharedNodeIDs() []Finding {
	guestHolders := map[string][]int{}
	for _, i := range slices.Sorted(maps.Keys(st.guests)) {
		if id := st.guests[i].NodeID; id != "" {
			guestHolders[id] = append(guestHolders[id], i)
		}
	}
	var out []Finding
	done := map[string]bool{}
	for _, ns := range st.nodes {
		gh := guestHolders[ns.node.ID]
		holders := slices.Clone(ns.holders)
		for _, i := range gh {
			if !contains(holders, i) {
				holders = append(holders, i)
			}
		}
		if len(holders) < 2 {
			continue
		}
		done[ns.node.ID] = true
		out = append(out, st.sharedFinding(ns.node.ID, ns, holders, gh))
	}
	for _, id := range slices.Sorted(maps.Keys(guestHolders)) {
		if gh := guestHolders[id]; !done[id] && len(gh) >= 2 {
			out = append(out, st.sharedFinding(id, nil, gh, gh))
		}
	}
	return out
}

func (st *state) sharedFinding(id string, ns *nodeState, holders, guestHolders []int) Finding {
	rank := map[int]int{}
	if ns != nil {
		rank = st.firstSeenRank(ns)
	}
	orig, why := st.pickOriginal(holders, rank)
	vms := orderWithOriginal(holders, orig)
	f := st.finding(KindSharedNodeID, Critical, id, vms, orig)

	if ns != nil {
		n := ns.node
		for di, d := range n.Descriptions {
			m := ns.matches[di]
			to := "no VM"
			switch v, ok := m.unique(); {
			case ok:
				to = "VM " + st.ix.vms[v].Name
			case len(m.vms) > 0:
				to = "ambiguous: " + st.ix.vmNames(m.vms)
			}
			if len(m.evidence) > 0 {
				to += " (" + strings.Join(m.evidence, "; ") + ")"
			}
			f.Evidence = append(f.Evidence, fmt.Sprintf("identity %d/%d: %s, seen %s from %s to %s → %s",
				di+1, len(n.Descriptions), describe(d), plural(d.Seen, "time"), ts(d.FirstSeen), ts(d.LastSeen), to))
		}
		from, to := window(n)
		moves, returns := vmSwitches(ns.node.Timeline, ns.matches)
		f.Evidence = append(f.Evidence, fmt.Sprintf("identity changed %d times between %s and %s; the session moved between VMs %d times (%d returns to a VM seen before)",
			n.Flips(), ts(from), ts(to), moves, returns))
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
		f.Evidence = append(f.Evidence, fmt.Sprintf("guest probe of VM %s (%s): swarm-node.crt CN=%s, docker enabled=%s, active=%s",
			st.ix.vms[i].Name, ts(g.ProbedAt), g.NodeID, orUnknown(g.DockerEnabled), orUnknown(g.DockerActive)))
		if g.DockerActive == "no" {
			f.Dormant = true
		}
		if ns == nil || !contains(ns.holders, i) {
			f.Dormant = true
			f.Evidence = append(f.Evidence, fmt.Sprintf("VM %s holds the ID but the manager did not see it as this node during the observation", st.ix.vms[i].Name))
		}
	}
	f.Remedy = sharedRemedy(id, st.names(vms, orig), orig >= 0)
	if mgr, ev := st.swarmManager(id, vms...); mgr {
		f.Evidence = append(f.Evidence, ev)
		f.Remedy = fmt.Sprintf("Node %s is a swarm MANAGER: a copy holds the raft log (every service, secret and config) and the cluster's root CA key, and fighting over the node can break the raft quorum. "+
			"Disconnect the copy's network adapter in vSphere first; afterwards rotate the join tokens (`docker swarm join-token --rotate worker`, and `manager`) and the CA (`docker swarm ca --rotate`). ", id) + f.Remedy
	}
	return f
}

// firstSeenRank ranks the VMs that held the node's ID (rank 0 first) by when
// their identity was first seen: in this run's descriptions and in those that
// earlier runs kept for the ID (History). This run alone is not enough: once a
// clone flips with the node, the manager's 256-event memory and the lookback
// show both identities from the start of the replay in either order, so the
// clone was often "seen first" and named the original, and the remedy told the
// admin to disable Docker on the real node. Unknown times and ties keep the
// order of first sighting in this run.
func (st *state) firstSeenRank(ns *nodeState) map[int]int {
	first := map[int]time.Time{}
	note := func(v int, t time.Time) {
		if _, holder := ns.firstDesc[v]; !holder || t.IsZero() {
			return
		}
		if f, ok := first[v]; !ok || t.Before(f) {
			first[v] = t
		}
	}
	for di, m := range ns.matches {
		if v, ok := m.unique(); ok {
			note(v, ns.node.Descriptions[di].FirstSeen)
		}
	}
	for _, d := range st.hist.Nodes[ns.node.ID] {
		if v, ok := st.ix.match(d).unique(); ok {
			note(v, d.FirstSeen)
		}
	}
	return rankFirstSeen(ns.firstDesc, first)
}

// rankFirstSeen ranks holders (VM → index of the first identity it
// matched) by first (VM → earliest time its identity was seen; unknown
// times rank after known ones), ties by the first identity they matched.
func rankFirstSeen(firstIdx map[int]int, first map[int]time.Time) map[int]int {
	hs := slices.Sorted(maps.Keys(firstIdx))
	slices.SortStableFunc(hs, func(a, b int) int {
		fa, oka := first[a]
		fb, okb := first[b]
		switch {
		case oka && okb:
			if c := fa.Compare(fb); c != 0 {
				return c
			}
		case oka:
			return -1
		case okb:
			return 1
		}
		return cmp.Compare(firstIdx[a], firstIdx[b])
	})
	rank := make(map[int]int, len(hs))
	for k, v := range hs {
		rank[v] = k
	}
	return rank
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// timeSpan is the time span of sightings: the earliest start, the latest end.
type timeSpan struct{ from, to time.Time }

func (s *timeSpan) add(first, last time.Time) {
	if s.from.IsZero() || (!first.IsZero() && first.Before(s.from)) {
		s.from = first
	}
	if last.After(s.to) {
		s.to = last
	}
}

// window returns the time span a node was observed in.
func window(n Node) (from, to time.Time) {
	var sp timeSpan
	for _, s := range n.Timeline {
		sp.add(s.Time, s.Time)
	}
	for _, d := range n.Descriptions {
		sp.add(d.FirstSeen, d.LastSeen)
	}
	return sp.from, sp.to
}

// rejoined reports whether a copy answers as nodes of its own (own) and as
// none of its ancestor's (theirs): it was fixed, not a copy carrying the
// ancestor's identity.
func rejoined(own, theirs []string) bool {
	if len(own) == 0 {
		return false
	}
	for _, id := range theirs {
		if slices.Contains(own, id) {
			return false
		}
	}
	return true
}

// vmSwitches counts, along a timeline whose sightings index matches (a swarm
// node's descriptions, a Kubernetes Node's identities), how often the
// identity moved from one VM to another and how often it moved back to a VM
// seen before.
func vmSwitches(timeline []Sighting, matches []descMatch) (moves, returns int) {
	prev := -1
	seen := map[int]bool{}
	for _, s := range timeline {
		if s.Description < 0 || s.Description >= len(matches) {
			continue
		}
		v, ok := matches[s.Description].unique()
		if !ok || v == prev {
			continue
		}
		if prev >= 0 {
			moves++
			if seen[v] {
				returns++
			}
		}
		seen[v] = true
		prev = v
	}
	return moves, returns
}

// names splits vms into the original's name and the others' names.
func (st *state) names(vms []int, orig int) (names []string) {
	for _, i := range vms {
		if i != orig {
			names = append(names, st.ix.vms[i].Name)
		}
	}
	if orig >= 0 {
		return append([]string{st.ix.vms[orig].Name}, names...)
	}
	return names
}

// cleanCopySteps is the safe fix for a VM that carries another node's swarm
// state. It never touches the manager's node list.
const cleanCopySteps = "1) `systemctl disable --now docker.service docker.socket` (it stops answering as the node at once); " +
	"2) move the copied swarm state aside while Docker is stopped: `mv /var/lib/docker/swarm /var/lib/docker/swarm.copied`; " +
	"3) only if it should be a swarm node: `systemctl enable --now docker.service docker.socket`, `docker swarm leave --force` (local only: it never touches the manager) " +
	"and `docker swarm join --token <token> <manager>:2377` to join as a NEW node. " +
	"Or simply power it off (and disable Docker before it is powered on again)."

func sharedRemedy(id string, names []string, haveOriginal bool) string {
	var b strings.Builder
	if haveOriginal {
		fmt.Fprintf(&b, "Leave %s (the original) alone. ", names[0])
		names = names[1:]
	} else {
		b.WriteString("First decide which VM is the original (the one the node's tasks belong on) and leave it alone. ")
	}
	fmt.Fprintf(&b, "Do NOT remove node %s on a manager: the ID is shared, and a removed ID is blacklisted by the swarm, which locks the original out too. ", id)
	if haveOriginal {
		fmt.Fprintf(&b, "On %s: ", strings.Join(names, ", "))
	} else {
		fmt.Fprintf(&b, "On every other VM of %s: ", strings.Join(names, ", "))
	}
	b.WriteString(cleanCopySteps)
	return b.String()
}

// ---- node-flapping ----

// flapping reports nodes whose identity alternates without resolving to two
// known VMs (nodes with a shared-node-id finding are skipped).
//
// Within a run: the timeline is reduced to material identity changes
// (hostname, address, CPU count, memory beyond MemoryTolerance; sightings from
// events only carry the hostname and are compared by hostname alone), and the
// node flaps when an identity comes back after another one (A→B→A).
// Without a vCenter, the changes and returns are those between machines
// (see Machine), and nodes with a shared-node-id over machines are skipped.
// Across runs: the node flaps when History holds two or more distinct
// hostnames for it and its current hostname is one of them but not the latest
// (hostnames compared by short name).
func (st *state) flapping(skip map[string]bool) []Finding {
	var out []Finding
	for _, ns := range st.nodes {
		if skip[ns.node.ID] {
			continue
		}
		changes, returns := alternation(ns.node)
		if st.noVC {
			// by machines: a NAT address pool or a loopback address
			// changing under one machine is no flap
			changes, returns = machineSwitches(ns.grouping.runs)
		}
		cross := st.historyFlap(ns.node)
		if returns == 0 && cross == "" {
			continue
		}
		vms := slices.Clone(ns.vms)
		slices.Sort(vms)
		f := st.finding(KindNodeFlapping, Warning, ns.node.ID, vms, -1)
		n := ns.node
		for di, d := range n.Descriptions {
			to := "no VM"
			if m := ns.matches[di]; len(m.vms) > 0 {
				to = st.ix.vmNames(m.vms)
			}
			if st.noVC {
				to = "machine " + ns.machines[ns.grouping.machineOf[di]].Label
			}
			f.Evidence = append(f.Evidence, fmt.Sprintf("identity %d/%d: %s, seen %s from %s to %s → %s",
				di+1, len(n.Descriptions), describe(d), plural(d.Seen, "time"), ts(d.FirstSeen), ts(d.LastSeen), to))
		}
		if returns > 0 {
			from, to := window(n)
			f.Evidence = append(f.Evidence, fmt.Sprintf("identity changed %d times between %s and %s (%d material changes), coming back to an earlier identity %d times",
				n.Flips(), ts(from), ts(to), changes, returns))
		}
		if cross != "" {
			f.Evidence = append(f.Evidence, cross)
		}
		switch {
		case st.noVC && returns == 0:
			f.Machines = ns.machines
		case st.noVC:
			f.Machines = ns.machines
			f.Evidence = append(f.Evidence, fmt.Sprintf("%s seen; one return is not enough to tell two machines from one that changed and changed back: "+
				"shared-node-id takes %d stretches in turn (A, B, A, B); a longer observation (-observe) tells", plural(len(ns.machines), "machine"), minAlternation))
		case len(vms) == 0:
			f.Evidence = append(f.Evidence, "no identity matched a VM: the machines answering as this node may be outside the inventory or lack VMware Tools")
		case len(vms) == 1:
			f.Evidence = append(f.Evidence, fmt.Sprintf("only VM %s is known; the other identity matched no VM (a copy outside the inventory, without VMware Tools, or with the same hostname)", st.ix.vms[vms[0]].Name))
		}
		f.Remedy = fmt.Sprintf("Two machines probably answer as node %s with the same /var/lib/docker/swarm. Find the one that is not supposed to be this node (use the hostnames and addresses above), and on it: %s "+
			"Do NOT remove node %s on a manager: a removed ID is blacklisted, which would lock out the rightful machine too.", n.ID, cleanCopySteps, n.ID)
		out = append(out, f)
	}
	return out
}

type step struct {
	desc  int
	host  string
	class int // -1 for event-only sightings
}

// alternation reduces a node's timeline to material identity changes and
// counts the changes and the returns to an identity seen before.
func alternation(n Node) (changes, returns int) {
	ds := n.Descriptions
	class := make([]int, len(ds))
	for i := range ds {
		class[i] = i
		for j := 0; j < i; j++ {
			if class[j] == j && sameIdentity(ds[j], ds[i]) {
				class[i] = j
				break
			}
		}
	}
	var seq []step
	for _, s := range n.Timeline {
		if s.Description < 0 || s.Description >= len(ds) {
			continue
		}
		d := ds[s.Description]
		cur := step{desc: s.Description, host: shortHost(d.Hostname), class: class[s.Description]}
		if s.Source == "event" || d.EventsOnly {
			cur.class = -1
		}
		if len(seq) > 0 {
			last := &seq[len(seq)-1]
			if last.class < 0 || cur.class < 0 {
				if last.host == cur.host {
					if last.class < 0 && cur.class >= 0 {
						*last = cur // learn the full identity
					}
					continue
				}
			} else if last.class == cur.class {
				continue
			}
		}
		seq = append(seq, cur)
	}
	seenClass := map[int]bool{}
	seenHost := map[string]bool{}
	for k, s := range seq {
		if k > 0 {
			back := s.host != seq[k-1].host && seenHost[s.host]
			if s.class >= 0 && seenClass[s.class] {
				back = true
			}
			if back {
				returns++
			}
		}
		if s.class >= 0 {
			seenClass[s.class] = true
		}
		seenHost[s.host] = true
	}
	return max(0, len(seq)-1), returns
}

// sameIdentity reports whether two descriptions are the same machine as far
// as flapping goes: same hostname and address, same CPUs and memory within
// tolerance where both are known. The engine version is ignored.
func sameIdentity(a, b Description) bool {
	if shortHost(a.Hostname) != shortHost(b.Hostname) || normIP(a.Addr) != normIP(b.Addr) {
		return false
	}
	if a.NanoCPUs > 0 && b.NanoCPUs > 0 && a.CPUs() != b.CPUs() {
		return false
	}
	if a.MemoryBytes > 0 && b.MemoryBytes > 0 && !MemoryConsistent(min(a.MemoryMB(), b.MemoryMB()), max(a.MemoryMB(), b.MemoryMB())) {
		return false
	}
	return true
}

// currentHostname is the hostname of the node's latest identity.
func currentHostname(n Node) string {
	for k := len(n.Timeline) - 1; k >= 0; k-- {
		if i := n.Timeline[k].Description; i >= 0 && i < len(n.Descriptions) {
			return n.Descriptions[i].Hostname
		}
	}
	best := -1
	for i, d := range n.Descriptions {
		if best < 0 || !d.LastSeen.Before(n.Descriptions[best].LastSeen) {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return n.Descriptions[best].Hostname
}

// historyFlap applies the cross-run rule (see flapping); "" when it does not hold.
func (st *state) historyFlap(n Node) string {
	hd := st.hist.Nodes[n.ID]
	hosts := map[string]bool{}
	latest := -1
	for i, d := range hd {
		h := shortHost(d.Hostname)
		if h == "" {
			continue
		}
		hosts[h] = true
		if latest < 0 || !d.LastSeen.Before(hd[latest].LastSeen) {
			latest = i
		}
	}
	cur := shortHost(currentHostname(n))
	if len(hosts) < 2 || cur == "" || !hosts[cur] || cur == shortHost(hd[latest].Hostname) {
		return ""
	}
	return fmt.Sprintf("across runs: earlier runs saw hostnames %s (latest %s, last seen %s); this run it is %s again",
		strings.Join(slices.Sorted(maps.Keys(hosts)), ", "), shortHost(hd[latest].Hostname), ts(hd[latest].LastSeen), cur)
}

// ---- node-without-vm, node-ready-vm-off ----

func (st *state) nodeVMState() []Finding {
	guestHeld := map[string]bool{}
	for _, g := range st.guests {
		if g.NodeID != "" {
			guestHeld[g.NodeID] = true
		}
	}
	var out []Finding
	for _, ns := range st.nodes {
		n := ns.node
		if len(ns.vms) == 0 && !guestHeld[n.ID] && !st.noVC { // without a vCenter every node would be one
			f := st.finding(KindNodeWithoutVM, Info, n.ID, nil, -1)
			for di, d := range n.Descriptions {
				f.Evidence = append(f.Evidence, fmt.Sprintf("identity %d/%d: %s: %s", di+1, len(n.Descriptions), describe(d), strings.Join(ns.matches[di].evidence, "; ")))
			}
			f.Evidence = append(f.Evidence, fmt.Sprintf("node state %s, role %s", orUnknown(n.State), orUnknown(n.Role)))
			f.Remedy = "No VM in the inventory matches this node: it may be a physical host, a VM in a vCenter not configured, or a VM without VMware Tools (no guest hostname or IP). " +
				"If it is Down and you are sure no machine holds its ID any more (no powered-off VM or template carries its /var/lib/docker/swarm), it can be removed on a manager; otherwise leave it."
			out = append(out, f)
		}
		if strings.EqualFold(n.State, "ready") && len(ns.vms) == 1 {
			v := ns.vms[0]
			if vm := st.ix.vms[v]; !vm.PoweredOn() {
				f := st.finding(KindNodeReadyVMOff, Warning, n.ID, []int{v}, v)
				state := orUnknown(vm.PowerState)
				if vm.Template {
					state = "a template"
				}
				f.Evidence = append(f.Evidence, fmt.Sprintf("node %s is Ready (latest sample) but its only matched VM %s is %s", n.ID, vm.Name, state))
				if len(n.Descriptions) > 0 {
					f.Evidence = append(f.Evidence, "latest identity: "+describe(n.Descriptions[len(n.Descriptions)-1]))
				}
				for _, m := range ns.matches {
					f.Evidence = append(f.Evidence, m.evidence...)
				}
				f.Evidence = append(f.Evidence, "another machine (a copy of the VM, possibly outside this inventory or without VMware Tools) is answering as this node; if the VM was powered off seconds before the sample, the manager may not have noticed yet")
				f.Remedy = fmt.Sprintf("Find the machine answering as node %s (its address above) — a copy of %s — and on it: %s Leave %s alone, and do NOT remove node %s on a manager: a removed ID is blacklisted, which locks %s out when it is powered on again.",
					n.ID, vm.Name, cleanCopySteps, vm.Name, n.ID, vm.Name)
				out = append(out, f)
			}
		}
	}
	return out
}

// ---- clone-of-swarm-node, template-carries-swarm-identity ----

// nearestNodeAncestor returns the nearest lineage ancestor of VM i that is
// matched to a swarm node.
func (st *state) nearestNodeAncestor(i int) (int, bool) {
	for _, a := range st.ix.ancestors(i) {
		if len(st.vmNodes[a]) > 0 {
			return a, true
		}
	}
	return -1, false
}

// clones reports copies of swarm node VMs (by lineage) that have not
// rejoined as a node of their own, powered on or not: a powered-off or
// suspended copy is Dormant, it takes over the node when powered on. A copy
// of a manager is critical.
func (st *state) clones(covered map[string]bool) []Finding {
	var out []Finding
	for i, v := range st.ix.vms {
		if v.Template {
			continue
		}
		a, ok := st.nearestNodeAncestor(i)
		if !ok {
			continue
		}
		if rejoined(st.vmNodes[i], st.vmNodes[a]) {
			continue // the copy answers as its own, different node: it was fixed
		}
		anc := st.ix.ancestors(i)
		for _, id := range st.vmNodes[a] {
			if covered[id+"\x00"+v.Key().String()] {
				continue
			}
			// The node's owner is the farthest ancestor that holds the ID,
			// not the nearest: when the nearest is itself a copy answering
			// as the node (wk-01 ← clone ← clone-2), naming it the one to
			// "leave alone" contradicted the shared-node-id remedy for it.
			a := a
			for _, b := range anc {
				if slices.Contains(st.vmNodes[b], id) {
					a = b
				}
			}
			out = append(out, st.cloneFinding(id, a, i))
		}
	}
	return out
}

func (st *state) cloneFinding(id string, a, i int) Finding {
	v, src := st.ix.vms[i], st.ix.vms[a]
	mgr, mgrEv := st.swarmManager(id, a, i)
	sev := Warning
	if mgr {
		sev = Critical
	}
	f := st.finding(KindCloneOfSwarmNode, sev, id, []int{a, i}, a)
	f.Evidence = append(f.Evidence, st.lineageFact(i, a), fmt.Sprintf("VM %s is swarm node %s", src.Name, id))
	if mgr {
		f.Evidence = append(f.Evidence, mgrEv)
	}
	switch {
	case !v.PoweredOn():
		f.Dormant = true
		when := "powered on"
		if v.PowerState == "suspended" {
			when = "resumed"
		}
		f.Evidence = append(f.Evidence, fmt.Sprintf("VM %s is %s and carries a copy of %s's disk, including /var/lib/docker/swarm, unless it was cleaned: it takes over node %s when %s",
			v.Name, orUnknown(v.PowerState), src.Name, id, when))
	case slices.Contains(st.vmNodes[i], id):
		f.Evidence = append(f.Evidence, fmt.Sprintf("VM %s is powered on and carries a copy of %s's disk, including /var/lib/docker/swarm, unless it was cleaned", v.Name, src.Name),
			fmt.Sprintf("VM %s was also seen answering as node %s", v.Name, id))
	default:
		f.Evidence = append(f.Evidence, fmt.Sprintf("VM %s is powered on and carries a copy of %s's disk, including /var/lib/docker/swarm, unless it was cleaned", v.Name, src.Name),
			fmt.Sprintf("the manager has not seen VM %s as node %s during this observation (Docker off or not yet started): it takes over the node as soon as its Docker runs", v.Name, id))
	}
	if v.GuestHostname != "" && HostnameMatches(v.GuestHostname, src.GuestHostname) {
		f.Evidence = append(f.Evidence, fmt.Sprintf("VM %s also kept the guest hostname %s", v.Name, v.GuestHostname))
	}
	if mgr {
		f.Remedy = managerCopyRemedy(id, src.Name, v.Name)
	} else {
		f.Remedy = fmt.Sprintf("Leave %s alone. On %s: %s Do NOT remove node %s on a manager: it belongs to %s, and a removed ID is blacklisted.",
			src.Name, v.Name, cleanCopySteps, id, src.Name)
	}
	return f
}

// swarmManager reports whether node id is a manager: its role in a swarm
// observed, or the role of the certificate a guest probe of one of vms read.
func (st *state) swarmManager(id string, vms ...int) (bool, string) {
	for _, ns := range st.nodes {
		if ns.node.ID == id && strings.EqualFold(ns.node.Role, "manager") {
			return true, fmt.Sprintf("node %s is a swarm MANAGER (role manager in swarm %s)", id, orUnknown(ns.cluster))
		}
	}
	for _, i := range vms {
		if g, ok := st.guests[i]; ok && g.NodeID == id && g.Role == "swarm-manager" {
			return true, fmt.Sprintf("node %s is a swarm MANAGER (swarm-node.crt OU swarm-manager in VM %s)", id, st.ix.vms[i].Name)
		}
	}
	return false, ""
}

// managerCopyRemedy is the fix for a copy of a manager VM: why it is
// critical, and what to do about it.
func managerCopyRemedy(id, src, cp string) string {
	return fmt.Sprintf("%s is a copy of swarm MANAGER %s: its /var/lib/docker/swarm holds the raft log (every service, secret and config of the swarm) and the cluster's root CA key, "+
		"and started on the network it rejoins raft as manager %s, which can break the quorum and corrupt the cluster state. "+
		"Leave %s alone. Never power %s on with its network connected: disconnect its network adapter in vSphere first. Then, on %s: %s "+
		"Treat its disk as secret as the manager's (delete the VM once nothing on it is needed). If it ever ran connected, rotate the join tokens "+
		"(`docker swarm join-token --rotate worker`, and `manager`) and the CA (`docker swarm ca --rotate`). Do NOT remove node %s on a manager: it belongs to %s, and a removed ID is blacklisted.",
		cp, src, id, src, cp, cp, cleanCopySteps, id, src)
}

func (st *state) templates() []Finding {
	var out []Finding
	for i, v := range st.ix.vms {
		if !v.Template {
			continue
		}
		type hit struct {
			src int
			ev  []string
		}
		hits := map[string]*hit{}
		get := func(id string) *hit {
			if hits[id] == nil {
				hits[id] = &hit{src: -1}
			}
			return hits[id]
		}
		if a, ok := st.nearestNodeAncestor(i); ok {
			for _, id := range st.vmNodes[a] {
				h := get(id)
				h.src = a
				h.ev = append(h.ev, st.lineageFact(i, a), fmt.Sprintf("VM %s is swarm node %s", st.ix.vms[a].Name, id))
			}
		}
		for _, c := range st.tplCands[i] {
			ns, di := c.ns, c.desc
			h := get(ns.node.ID)
			what := "a candidate for"
			if contains(ns.matches[di].vms, i) {
				what = "matched to"
			}
			same := "its guest hostname " + v.GuestHostname
			if v.GuestHostname == "" {
				same = "its name"
			}
			h.ev = append(h.ev, fmt.Sprintf("template %s is %s node %s's identity %d (hostname %s = %s)",
				v.Name, what, ns.node.ID, di+1, ns.node.Descriptions[di].Hostname, same))
			if h.src < 0 && len(ns.holders) > 0 {
				h.src = ns.holders[0]
			}
		}
		for _, id := range slices.Sorted(maps.Keys(hits)) {
			h := hits[id]
			vms := []int{i}
			if h.src >= 0 {
				vms = []int{h.src, i}
			}
			sev := Warning
			mgr, mgrEv := st.swarmManager(id, vms...)
			if mgr {
				sev = Critical
				h.ev = append(h.ev, mgrEv+": every VM deployed from this template carries the swarm's raft log and root CA key")
			}
			f := st.finding(KindTemplateCarriesSwarm, sev, id, vms, h.src)
			f.Evidence = append(h.ev, "every VM deployed from this template boots with the node's swarm state and takes over the node when its Docker starts")
			f.Remedy = fmt.Sprintf("Do not deploy from %s as it is. Convert it to a VM, power it on with its network disconnected, run `systemctl disable --now docker.service docker.socket`, "+
				"move /var/lib/docker/swarm aside (also delete /var/lib/docker/engine-id, /etc/docker/key.json on old engines, and empty /etc/machine-id), power it off and convert it back to a template. "+
				"Check the VMs already deployed from it (clone-of-swarm-node findings). Do NOT remove node %s on a manager.", v.Name, id)
			out = append(out, f)
		}
	}
	return out
}

// ---- duplicate-bios-uuid, duplicate-mac, duplicate-hostname ----

func normMAC(s string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", ":")
}

func (st *state) duplicates() []Finding {
	bios := map[string][]int{}
	macs := map[string][]int{}
	hosts := map[string][]int{}
	for i, v := range st.ix.vms {
		if u := strings.ToLower(strings.TrimSpace(v.BIOSUUID)); u != "" && strings.Trim(u, "0-") != "" {
			bios[u] = append(bios[u], i)
		}
		seen := map[string]bool{}
		for _, m := range v.MACs {
			if m = normMAC(m); m != "" && strings.Trim(m, "0:") != "" && !seen[m] {
				seen[m] = true
				macs[m] = append(macs[m], i)
			}
		}
		if h := shortHost(v.GuestHostname); !v.Template && h != "" && h != "localhost" {
			hosts[h] = append(hosts[h], i)
		}
	}
	var out []Finding
	out = append(out, st.dupFindings(KindDuplicateBIOSUUID, "BIOS UUID", bios,
		"kept its BIOS UUID: a VM registered from copied files with \"I moved it\" (or hand-copied) keeps it; a vSphere clone gets a new one",
		"Give the copy a new BIOS UUID: power it off, delete the uuid.bios line from its .vmx (or unregister it and register it again answering \"I copied it\"); vSphere generates a new one. "+
			"Software keyed on the BIOS UUID (backup, monitoring, CMDB, cloud-init, the guest's product_uuid) otherwise takes both VMs for one machine.")...)
	out = append(out, st.dupFindings(KindDuplicateMAC, "MAC", macs,
		"kept its MAC: vcsim clones keep the source's MACs; a real vSphere clone gets new ones unless the MAC was set by hand or the VM was copied as files",
		"Give the copy new MAC addresses: power it off, set each network adapter's MAC address to Automatic (or a new manual one). "+
			"Two running VMs with one MAC on the same network break each other's connectivity.")...)
	out = append(out, st.dupFindings(KindDuplicateHostname, "guest hostname", sameHostname(st.ix.vms, hosts),
		"kept its guest hostname (no guest customization was applied)",
		"Rename the guest of all but one VM (`hostnamectl set-hostname <new>`, and /etc/hosts); a swarm node shows the new name in `docker node ls` after `systemctl restart docker`.")...)
	return out
}

// sameHostname splits groups of VMs with the same short guest hostname into
// groups whose hostnames name the same host by the matching rules
// (HostnameMatches): app01.prod.example.com and app01.test.example.com share
// a first label but are two hosts (prod and test twins are common), so they
// are no duplicate. A short name matches every FQDN of its label, so a group
// holding one keeps all its VMs (keyed by the short name); otherwise each
// FQDN with two or more VMs is a group of its own (keyed by the FQDN).
// Linear in the number of VMs.
func sameHostname(vms []VM, byShort map[string][]int) map[string][]int {
	out := map[string][]int{}
	for short, g := range byShort {
		if len(g) < 2 {
			continue
		}
		full := map[string][]int{}
		bare := false
		for _, i := range g {
			h := normHost(vms[i].GuestHostname)
			if !strings.Contains(h, ".") || isIPLiteral(h) {
				bare = true
			}
			full[h] = append(full[h], i)
		}
		if bare {
			out[short] = g
			continue
		}
		for h, l := range full {
			if len(l) >= 2 {
				out[h] = l
			}
		}
	}
	return out
}

func (st *state) dupFindings(kind, what string, groups map[string][]int, copyNote, remedy string) []Finding {
	var out []Finding
	for _, val := range slices.Sorted(maps.Keys(groups)) {
		g := groups[val]
		if len(g) < 2 {
			continue
		}
		// Linear in the group (times lineage depth): walk each VM's
		// ancestors against the group instead of testing every pair; a
		// pairwise test took seconds for a few thousand VMs deployed from
		// one template that all report the hostname "ubuntu" or keep a MAC.
		in := make(map[int]int, len(g)) // VM → position in g
		for k, i := range g {
			in[i] = k
		}
		inGroup := func(i int) []int { // ancestors of i in the group
			var l []int
			for _, a := range st.ix.ancestors(i) {
				if _, ok := in[a]; ok {
					l = append(l, a)
				}
			}
			return l
		}
		orig := -1
		var roots []int
		copies := false
		for _, i := range g {
			isCopy := len(inGroup(i)) > 0
			if isCopy {
				copies = true
			} else {
				roots = append(roots, i)
			}
		}
		if copies && len(roots) == 1 {
			orig = roots[0]
		}
		vms := orderWithOriginal(g, orig)
		f := st.finding(kind, Warning, "", vms, orig)
		var list []string
		for _, i := range vms {
			v := st.ix.vms[i]
			list = append(list, fmt.Sprintf("%s (%s, %s)", v.Name, v.Path, powerLabel(v)))
		}
		f.Evidence = append(f.Evidence, fmt.Sprintf("%s %s on %d VMs: %s", what, val, len(vms), strings.Join(list, "; ")))
		pos := make(map[int]int, len(vms))
		for k, i := range vms {
			pos[i] = k
		}
		for _, i := range vms {
			anc := inGroup(i)
			slices.SortFunc(anc, func(a, b int) int { return pos[a] - pos[b] })
			for _, j := range anc {
				if s := st.lineageFact(i, j); s != "" {
					f.Evidence = append(f.Evidence, s, fmt.Sprintf("VM %s is a copy of %s and %s", st.ix.vms[i].Name, st.ix.vms[j].Name, copyNote))
				}
			}
		}
		if kind == KindDuplicateHostname {
			var ids []string
			for _, i := range vms {
				for _, id := range st.vmNodes[i] {
					ids = append(ids, st.ix.vms[i].Name+" = node "+id)
				}
			}
			if len(ids) > 0 {
				f.Evidence = append(f.Evidence, "swarm nodes: "+strings.Join(ids, ", "))
			}
		}
		f.Remedy = remedy
		out = append(out, f)
	}
	return out
}

func powerLabel(v VM) string {
	if v.Template {
		return "template"
	}
	return orUnknown(v.PowerState)
}

// ---- shared-engine-id, shared-machine-id (guest probes) ----

func (st *state) guestDuplicates() []Finding {
	engines := map[string][]int{}
	machines := map[string][]int{}
	for _, i := range slices.Sorted(maps.Keys(st.guests)) {
		g := st.guests[i]
		if g.EngineID != "" {
			engines[g.EngineID] = append(engines[g.EngineID], i)
		}
		if g.MachineID != "" {
			machines[g.MachineID] = append(machines[g.MachineID], i)
		}
	}
	var out []Finding
	out = append(out, st.dupFindings(KindSharedEngineID, "Docker engine ID (/var/lib/docker/engine-id)", engines,
		"kept the source's Docker engine ID",
		"On the copy: stop Docker (`systemctl disable --now docker.service docker.socket`), delete /var/lib/docker/engine-id (and /etc/docker/key.json on old engines); Docker creates a new ID when it starts again.")...)
	out = append(out, st.dupFindings(KindSharedMachineID, "machine ID (/etc/machine-id)", machines,
		"kept the source's /etc/machine-id",
		"On the copy: `rm -f /etc/machine-id /var/lib/dbus/machine-id && systemd-machine-id-setup`, then reboot. DHCP client IDs and journald derive from it and collide otherwise.")...)
	return out
}
