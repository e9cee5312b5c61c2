package reconcile

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// NoVCenter reports whether a snapshot has no vCenter: no VM to match the
// nodes to. Reconcile then groups each node's identities into machines (see
// Machine) and reports a node ID answered by two machines as shared-node-id
// over machines instead of VMs.
func NoVCenter(s Snapshot) bool { return len(s.VCenters) == 0 && len(s.VMs) == 0 }

// groupNode groups a node's descriptions into machines (snapshots without a
// vCenter).
func (st *state) groupNode(ns *nodeState) {
	n := ns.node
	ids := make([]ident, len(n.Descriptions))
	for i, d := range n.Descriptions {
		ids[i] = swarmIdent(d, st.ix.addrNodes)
	}
	steps := stepsOf(n.Timeline, len(n.Descriptions), func(i int) bool { return n.Descriptions[i].EventsOnly })
	ns.ids = ids
	ns.grouping = groupMachines(ids, steps)
	ns.machines = swarmMachines(ns.cluster, n, ns.grouping)
}

// machineList is every node's machines, each node once (a swarm observed
// through two managers lists its nodes twice).
func (st *state) machineList() []Machine {
	out := []Machine{}
	seen := map[string]bool{}
	for _, ns := range st.nodes {
		if k := ns.cluster + "\x00" + ns.node.ID; !seen[k] {
			seen[k] = true
			out = append(out, ns.machines...)
		}
	}
	return out
}

// sharedMachines reports every node whose sightings alternate between two
// machines (A, B, A, B): shared-node-id without VMs.
func (st *state) sharedMachines() []Finding {
	var out []Finding
	for _, ns := range st.nodes {
		g := ns.grouping
		if len(g.alternating) == 0 {
			continue
		}
		var set []int
		for _, p := range g.alternating {
			for _, m := range p {
				if !slices.Contains(set, m) {
					set = append(set, m)
				}
			}
		}
		slices.Sort(set)
		out = append(out, st.sharedMachineFinding(ns, set))
	}
	return out
}

func (st *state) sharedMachineFinding(ns *nodeState, set []int) Finding {
	n := ns.node
	orig, why := st.originalMachine(ns, set)
	order := set
	if orig >= 0 {
		order = append([]int{orig}, slices.DeleteFunc(slices.Clone(set), func(m int) bool { return m == orig })...)
	}
	f := st.finding(KindSharedNodeID, Critical, n.ID, nil, -1)
	var ms []Machine
	for k, m := range order {
		mc := ns.machines[m]
		ms = append(ms, mc)
		f.Evidence = append(f.Evidence, fmt.Sprintf("machine %d/%d, %s: %s, answered as node %s %s from %s to %s",
			k+1, len(order), mc.Label, describeMachine(mc), n.ID, plural(mc.Seen, "time"), ts(mc.FirstSeen), ts(mc.LastSeen)))
	}
	f.Machines = ms
	moves, returns := machineSwitches(ns.grouping.runs)
	from, to := window(n)
	f.Evidence = append(f.Evidence, fmt.Sprintf("between %s and %s the node's session moved between these machines %d times, %d times back to a machine seen before: "+
		"one machine cannot go back and forth like that; two machines hold the node's certificate", ts(from), ts(to), moves, returns))
	f.Evidence = append(f.Evidence, machineDiff(ns, order[0], order[1]))
	f.Evidence = append(f.Evidence, why, confirmHint(n.ID, ms, st.ix.addrNodes))

	names := make([]string, len(ms))
	for k, m := range ms {
		names[k] = m.Label
	}
	if orig >= 0 {
		f.OriginalMachine = ms[0].Label
	}
	f.Remedy = sharedMachineRemedy(n.ID, names, orig >= 0)
	return f
}

// machineSwitches counts the moves between machines and the returns to a
// machine seen before.
func machineSwitches(runs []mrun) (moves, returns int) {
	seen := map[int]bool{}
	for k, r := range runs {
		if k > 0 {
			moves++
			if seen[r.m] {
				returns++
			}
		}
		seen[r.m] = true
	}
	return moves, returns
}

// machineDiff says what tells two machines of a node apart.
func machineDiff(ns *nodeState, a, b int) string {
	first := func(m int) ident { return ns.ids[ns.machines[m].Descriptions[0]] }
	ia, ib := first(a), first(b)
	ma, mb := ns.machines[a], ns.machines[b]
	var p []string
	for _, attr := range ia.differs(ib) {
		var va, vb string
		switch attr {
		case attrHostname:
			va, vb = strings.Join(ma.Hostnames, "/"), strings.Join(mb.Hostnames, "/")
		case attrAddress:
			va, vb = ia.addr, ib.addr
		case attrCPUs:
			va, vb = fmt.Sprint(ia.cpus), fmt.Sprint(ib.cpus)
		case attrMemory:
			va, vb = fmt.Sprintf("%d MiB", ia.memMB), fmt.Sprintf("%d MiB", ib.memMB)
		case attrVersion:
			va, vb = ia.version, ib.version
		default:
			va, vb = "…", "…"
		}
		p = append(p, fmt.Sprintf("%s (%s ≠ %s)", attr, va, vb))
	}
	if len(p) == 0 {
		return fmt.Sprintf("%s and %s differ in what the manager showed of them at different times", ma.Label, mb.Label)
	}
	s := fmt.Sprintf("%s and %s differ in %s", ma.Label, mb.Label, strings.Join(p, ", "))
	if len(p) == 1 && strings.HasPrefix(p[0], attrAddress) {
		s += "; only the address differs: a host with several addresses that reconnects from another one looks alike, which the certificate comparison below rules out"
	}
	return s
}

// reach says how to log in to machine k of ms: its address when that is
// usable and no other machine of ms has it, else its hostname.
func reach(ms []Machine, k int) (string, bool) {
	a := machineAddr(ms[k])
	for j, o := range ms {
		if j != k && a != "" && machineAddr(o) == a {
			a = ""
		}
	}
	if a != "" {
		return a, true
	}
	h := strings.Join(ms[k].Hostnames, "/")
	for j, o := range ms {
		if j != k && strings.Join(o.Hostnames, "/") == h {
			return "the machine " + ms[k].Label, false // same hostname: name it by its label
		}
	}
	return "the machine named " + h, false
}

// confirmHint tells the admin how to prove, on the machines, that they share
// the node's identity.
func confirmHint(id string, ms []Machine, addrNodes map[string]int) string {
	var where []string
	var noAddr []string
	for k, m := range ms {
		r, byAddr := reach(ms, k)
		where = append(where, r)
		if !byAddr {
			noAddr = append(noAddr, m.Label+": "+addrReason(ms, k, addrNodes))
		}
	}
	s := fmt.Sprintf("to confirm: log in to %s and compare /var/lib/docker/swarm/certificates/swarm-node.crt: "+
		"on each, `openssl x509 -noout -subject -in /var/lib/docker/swarm/certificates/swarm-node.crt` shows CN=%s and `docker info --format '{{.Swarm.NodeID}}'` prints %s",
		joinAnd(where), id, id)
	if len(noAddr) > 0 {
		s += " (" + strings.Join(noAddr, "; ") + ")"
	}
	return s
}

// addrReason says why machine k of ms is not reached by address.
func addrReason(ms []Machine, k int, addrNodes map[string]int) string {
	m := ms[k]
	if len(m.Addrs) == 0 {
		return "its address is unknown (seen in node events only)"
	}
	a := normIP(m.Addrs[0])
	switch {
	case a == "" || !usableIP(a):
		return fmt.Sprintf("the address the manager saw, %s, identifies no machine (loopback, unspecified or link-local)", strings.Join(m.Addrs, "/"))
	case addrNodes[a] > 1:
		return fmt.Sprintf("the address the manager saw, %s, is presented by %d nodes (NAT or proxy)", a, addrNodes[a])
	}
	return fmt.Sprintf("the address the manager saw, %s, is the other machine's too (NAT or proxy)", a)
}

func joinAnd(l []string) string {
	switch len(l) {
	case 0:
		return ""
	case 1:
		return l[0]
	}
	return strings.Join(l[:len(l)-1], ", ") + " and " + l[len(l)-1]
}

// originalMachine picks the machine that held the node's ID first: the one
// seen first (in this run or, from the daemon's history, in an earlier one),
// provided it answered alone for longer than twice the longest turn the
// machines took once they alternated. Otherwise the observation started when
// the node was already flapping, and which machine came first is luck: -1.
func (st *state) originalMachine(ns *nodeState, set []int) (int, string) {
	first := map[int]time.Time{}
	fromHist := map[int]bool{}
	for _, m := range set {
		if t := ns.machines[m].FirstSeen; !t.IsZero() {
			first[m] = t
		}
	}
	for _, hd := range st.hist.Nodes[ns.node.ID] {
		hid := swarmIdent(hd, st.ix.addrNodes)
		hit := -1
		for _, m := range set {
			for _, di := range ns.machines[m].Descriptions {
				if len(hid.differs(ns.ids[di])) == 0 && hit != m {
					if hit >= 0 {
						hit = -2 // fits several machines
						break
					}
					hit = m
				}
			}
			if hit == -2 {
				break
			}
		}
		if hit >= 0 && !hd.FirstSeen.IsZero() {
			if t, ok := first[hit]; !ok || hd.FirstSeen.Before(t) {
				first[hit], fromHist[hit] = hd.FirstSeen, true
			}
		}
	}
	order := slices.Clone(set)
	slices.SortStableFunc(order, func(a, b int) int {
		ta, oka := first[a]
		tb, okb := first[b]
		switch {
		case oka && okb:
			return ta.Compare(tb)
		case oka:
			return -1
		case okb:
			return 1
		}
		return 0
	})
	undetermined := "the evidence cannot tell which machine is the original: both answered as the node from the start of what was observed " +
		"(the flapping began before the observation, and the manager keeps only its last 256 events); the daemon's history, kept across runs, would tell"
	o, other := order[0], order[1]
	to, ok1 := first[o]
	tn, ok2 := first[other]
	if !ok1 || !ok2 || !tn.After(to) {
		return -1, undetermined
	}
	turn := longestTurn(ns.grouping.runs)
	lead := tn.Sub(to)
	if lead <= 2*turn {
		return -1, fmt.Sprintf("the evidence cannot tell which machine is the original: %s answered alone for only %s before %s first did, "+
			"not more than twice the longest turn the machines took afterwards (%s), so which came first may be luck; the daemon's history, kept across runs, would tell",
			ns.machines[o].Label, span(lead), ns.machines[other].Label, span(turn))
	}
	where := ""
	if fromHist[o] {
		where = " (an earlier run)"
	}
	return o, fmt.Sprintf("original %s: it answered as node %s from %s%s, %s before %s first did (%s); once they alternated, a machine held the node for %s at most",
		ns.machines[o].Label, ns.node.ID, ts(to), where, span(lead), ns.machines[other].Label, ts(tn), span(turn))
}

// span formats a duration for evidence: seconds, and days past two days.
func span(d time.Duration) string {
	d = d.Round(time.Second)
	if d < 48*time.Hour {
		return d.String()
	}
	days := d / (24 * time.Hour)
	return fmt.Sprintf("%dd%s", days, (d - days*24*time.Hour).String())
}

// longestTurn is the longest time one machine held the node between two
// switches, the first stretch (before any switch) left out.
func longestTurn(runs []mrun) time.Duration {
	var longest time.Duration
	for k := 1; k+1 < len(runs); k++ {
		longest = max(longest, runs[k+1].at.Sub(runs[k].at))
	}
	return longest
}

func sharedMachineRemedy(id string, names []string, haveOriginal bool) string {
	var b strings.Builder
	if haveOriginal {
		fmt.Fprintf(&b, "Leave %s, the original, alone. ", names[0])
		names = names[1:]
	} else {
		fmt.Fprintf(&b, "First decide which machine is the original and leave it alone: the one that joined the swarm as node %s. "+
			"Usually that is the machine created first (compare creation dates in your cloud provider's or hypervisor's console; a copy keeps the original's file dates, so dates inside the machines do not tell), "+
			"the one your DNS and inventory name for this node, and the one whose hostname `docker node ls` showed before the flapping began. ", id)
	}
	fmt.Fprintf(&b, "Do NOT remove node %s on a manager: the ID is shared, and a removed ID is blacklisted by the swarm, which locks the original out too. ", id)
	if haveOriginal {
		fmt.Fprintf(&b, "On %s: ", joinAnd(names))
	} else {
		fmt.Fprintf(&b, "On every other machine of %s: ", joinAnd(names))
	}
	b.WriteString(cleanCopySteps)
	return b.String()
}
