package reconcile

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Alternation of a Kubernetes Node (documented in docs/findings.md):
//
// A Node written by two machines shows their identities taking turns. Each
// kubelet that finds the Node's stored boot ID is not its own records a
// Warning event Rebooted naming its own boot ID and writes its identity.
// The timeline is reduced to material changes: another boot ID, or another
// machine (systemUUID, else machine ID, else hostname, InternalIP, CPUs and
// memory beyond MemoryTolerance). A kubelet upgrade or rollback (same boot,
// same machine) is no change; a reboot is one change to a new boot ID; a
// CPU or memory hot-add is one change. A return is an earlier boot ID
// coming back (a machine cannot go back to an earlier boot) or an earlier
// machine coming back. Rebooted events count too: the boot IDs they name,
// in time order (first and last occurrence of each aggregated event), with
// an earlier boot ID named again after another one.

// kubeStep is one step of a Node's reduced timeline.
type kubeStep struct {
	boot  string
	class int // machine class, -1 when unknown (events only)
}

// kubeAlternation counts a Node's material identity changes and the
// returns to an earlier boot or machine (timeline or Rebooted events,
// whichever shows more); machineBack is true when an earlier machine came
// back in the timeline.
func kubeAlternation(n KubeNode) (changes, returns int, machineBack bool) {
	seq := kubeSteps(n)
	seenBoot, seenClass := map[string]bool{}, map[int]bool{}
	for k, s := range seq {
		if k > 0 {
			prev := seq[k-1]
			bootBack := s.boot != "" && s.boot != prev.boot && seenBoot[s.boot]
			classBack := s.class >= 0 && prev.class >= 0 && s.class != prev.class && seenClass[s.class]
			if bootBack || classBack {
				returns++
			}
			if classBack {
				machineBack = true
			}
		}
		if s.boot != "" {
			seenBoot[s.boot] = true
		}
		if s.class >= 0 {
			seenClass[s.class] = true
		}
	}
	return max(0, len(seq)-1), max(returns, rebootReturns(n.Events)), machineBack
}

// kubeSteps reduces a Node's timeline to material changes.
func kubeSteps(n KubeNode) []kubeStep {
	ids := n.Identities
	class := machineClasses(ids)
	var seq []kubeStep
	for _, s := range n.Timeline {
		if s.Description < 0 || s.Description >= len(ids) {
			continue
		}
		cur := kubeStep{boot: ids[s.Description].BootID, class: class[s.Description]}
		if len(seq) > 0 {
			last := &seq[len(seq)-1]
			sameBoot := cur.boot == last.boot || cur.boot == "" || last.boot == ""
			sameClass := cur.class == last.class || cur.class < 0 || last.class < 0
			if sameBoot && sameClass {
				last.boot = cmp.Or(last.boot, cur.boot)
				if last.class < 0 {
					last.class = cur.class // learn the machine
				}
				continue
			}
		}
		seq = append(seq, cur)
	}
	return seq
}

// machineClasses groups identities by machine: class[i] is the index of
// the first identity of the same machine, -1 when the identity says
// nothing about its machine (known from events only).
func machineClasses(ids []KubeIdentity) []int {
	class := make([]int, len(ids))
	for i := range ids {
		class[i] = i
		if !machineKnown(ids[i]) {
			class[i] = -1
			continue
		}
		for j := 0; j < i; j++ {
			if class[j] == j && sameMachine(ids[j], ids[i]) {
				class[i] = j
				break
			}
		}
	}
	return class
}

func machineKnown(id KubeIdentity) bool {
	return canonUUID(id.SystemUUID) != "" || id.MachineID != "" || id.Hostname != "" || id.InternalIP != ""
}

// sameMachine: the systemUUIDs match (either byte order) and the machine
// IDs are equal, where known; with neither, hostname, address and resources
// as for a swarm node.
func sameMachine(a, b KubeIdentity) bool {
	ua, ub := canonUUID(a.SystemUUID), canonUUID(b.SystemUUID)
	haveUUID := ua != "" && ub != ""
	haveMID := a.MachineID != "" && b.MachineID != ""
	if haveUUID || haveMID {
		return (!haveUUID || UUIDMatches(ua, ub)) && (!haveMID || a.MachineID == b.MachineID)
	}
	return sameIdentity(kubeDesc(a, ""), kubeDesc(b, ""))
}

// rebootBootID returns the boot ID a Rebooted event names ("Node wk-01 has
// been rebooted, boot id: ID"), "" when it names none.
func rebootBootID(msg string) string {
	i := strings.LastIndex(msg, "boot id:")
	if i < 0 {
		return ""
	}
	f := strings.Fields(msg[i+len("boot id:"):])
	if len(f) == 0 {
		return ""
	}
	return strings.TrimRight(f[0], ".,;")
}

// rebootReturns counts the returns to an earlier boot ID among the boot
// IDs Rebooted events name, in time order.
func rebootReturns(events []KubeEvent) int {
	type point struct {
		t    time.Time
		boot string
	}
	var pts []point
	for _, e := range events {
		b := rebootBootID(e.Message)
		if e.Reason != "Rebooted" || b == "" {
			continue
		}
		pts = append(pts, point{e.First, b})
		if e.Count > 1 && e.Last.After(e.First) {
			pts = append(pts, point{e.Last, b})
		}
	}
	slices.SortStableFunc(pts, func(a, b point) int { return a.t.Compare(b.t) })
	returns := 0
	seen := map[string]bool{}
	prev := ""
	for _, p := range pts {
		if p.boot == prev {
			continue
		}
		if seen[p.boot] {
			returns++
		}
		seen[p.boot] = true
		prev = p.boot
	}
	return returns
}

// ---- evidence ----

// describeKube is one identity in a line.
func describeKube(id KubeIdentity) string {
	var p []string
	add := func(label, v string) {
		if v != "" {
			p = append(p, label+" "+v)
		}
	}
	add("boot ID", id.BootID)
	add("systemUUID", id.SystemUUID)
	add("machine ID", id.MachineID)
	add("hostname", id.Hostname)
	add("InternalIP", id.InternalIP)
	if id.CPUs > 0 || id.MemoryBytes > 0 {
		p = append(p, descResources(kubeDesc(id, "")))
	}
	add("kubelet", id.KubeletVersion)
	add("kernel", id.KernelVersion)
	if id.EventsOnly {
		p = append(p, "known from events only")
	}
	if len(p) == 0 {
		return "no identity fields"
	}
	return strings.Join(p, ", ")
}

// kubeIdentityLines describes each identity of a Node and what it matched.
func (st *state) kubeIdentityLines(ks *kubeState) []string {
	var out []string
	ids := ks.node.Identities
	for ii, id := range ids {
		m := ks.matches[ii]
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
		out = append(out, fmt.Sprintf("identity %d/%d: %s, seen %s from %s to %s → %s",
			ii+1, len(ids), describeKube(id), plural(id.Seen, "time"), ts(id.FirstSeen), ts(id.LastSeen), to))
	}
	return out
}

// kubeFlipLines shows how the boot ID and the capacity moved along the
// timeline ("capacity cpu 4 -> 8 -> 4"), when they changed.
func kubeFlipLines(n KubeNode) []string {
	var boots, cpus, mems []string
	var lastMem int64
	for _, s := range n.Timeline {
		if s.Description < 0 || s.Description >= len(n.Identities) {
			continue
		}
		id := n.Identities[s.Description]
		if b := shortID(id.BootID); b != "" && (len(boots) == 0 || boots[len(boots)-1] != b) {
			boots = append(boots, b)
		}
		if c := id.CPUs; c > 0 && (len(cpus) == 0 || cpus[len(cpus)-1] != fmt.Sprint(c)) {
			cpus = append(cpus, fmt.Sprint(c))
		}
		if mb := id.MemoryBytes >> 20; mb > 0 && (len(mems) == 0 || !MemoryConsistent(min(mb, lastMem), max(mb, lastMem))) {
			mems = append(mems, fmt.Sprintf("%d MiB", mb))
			lastMem = mb
		}
	}
	var out []string
	if len(boots) > 1 {
		out = append(out, "boot ID "+arrows(boots))
	}
	if len(cpus) > 1 {
		out = append(out, "capacity cpu "+arrows(cpus))
	}
	if len(mems) > 1 {
		out = append(out, "capacity memory "+arrows(mems))
	}
	return out
}

// arrows joins a sequence as "a -> b -> a", eliding the middle of a long one.
func arrows(l []string) string {
	const keep = 12
	if len(l) <= keep {
		return strings.Join(l, " -> ")
	}
	return strings.Join(l[:keep/2], " -> ") + fmt.Sprintf(" -> … (%d more) … -> ", len(l)-keep) + strings.Join(l[len(l)-keep/2:], " -> ")
}

// shortID shortens a boot ID (a UUID) to its first 8 characters for the
// sequences; the identity lines carry the full ID.
func shortID(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

// rebootedLines summarises a Node's Rebooted events: how many, when, the
// boot IDs they name and the VM each boot ID is, then the first events.
func (st *state) rebootedLines(ks *kubeState) []string {
	var evs []KubeEvent
	total := 0
	var from, to time.Time
	var boots []string
	for _, e := range ks.node.Events {
		if e.Reason != "Rebooted" {
			continue
		}
		evs = append(evs, e)
		total += max(e.Count, 1)
		if from.IsZero() || (!e.First.IsZero() && e.First.Before(from)) {
			from = e.First
		}
		to = later(to, e.Last)
		if b := rebootBootID(e.Message); b != "" && !slices.Contains(boots, b) {
			boots = append(boots, b)
		}
	}
	if len(evs) == 0 {
		return nil
	}
	named := make([]string, len(boots))
	for k, b := range boots {
		named[k] = b + " (" + st.bootOwner(ks, b) + ")"
	}
	out := []string{fmt.Sprintf("%s (%s) between %s and %s; kubelet records Rebooted when the Node's stored boot ID is not its own, so with two writers every overwrite is a \"reboot\"; boot IDs named: %s",
		plural(len(evs), "Rebooted event"), plural(total, "occurrence"), ts(from), ts(to), orNone(strings.Join(named, ", ")))}
	const show = 4
	for k, e := range evs {
		if k == show {
			out = append(out, fmt.Sprintf("and %s more", plural(len(evs)-show, "Rebooted event")))
			break
		}
		out = append(out, fmt.Sprintf("event Rebooted (%s) ×%d, %s to %s, from %s: %q", orUnknown(e.Type), max(e.Count, 1), ts(e.First), ts(e.Last), orUnknown(e.Source), e.Message))
	}
	return out
}

// bootOwner names the VM whose identity had boot ID b.
func (st *state) bootOwner(ks *kubeState, b string) string {
	var vms []string
	for ii, id := range ks.node.Identities {
		if id.BootID != b {
			continue
		}
		if v, ok := ks.matches[ii].unique(); ok && !slices.Contains(vms, st.ix.vms[v].Name) {
			vms = append(vms, st.ix.vms[v].Name)
		}
	}
	if len(vms) == 0 {
		return "no VM"
	}
	return "VM " + strings.Join(vms, ", VM ")
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// kubeWindow returns the time span a Node was observed in.
func kubeWindow(n KubeNode) (from, to time.Time) {
	var sp timeSpan
	for _, s := range n.Timeline {
		sp.add(s.Time, s.Time)
	}
	for _, id := range n.Identities {
		sp.add(id.FirstSeen, id.LastSeen)
	}
	return sp.from, sp.to
}

// kubeFirstSeenRank ranks the VMs that wrote the Node by when their
// identity was first seen, in this run and in earlier runs (History).
func (st *state) kubeFirstSeenRank(ks *kubeState) map[int]int {
	first := map[int]time.Time{}
	note := func(v int, t time.Time) {
		if _, holder := ks.firstIdx[v]; !holder || t.IsZero() {
			return
		}
		if f, ok := first[v]; !ok || t.Before(f) {
			first[v] = t
		}
	}
	for ii, m := range ks.matches {
		if v, ok := m.unique(); ok {
			note(v, ks.node.Identities[ii].FirstSeen)
		}
	}
	for _, id := range st.hist.KubeNodes[ks.key] {
		if v, ok := st.ix.matchKube(id, ks.node.Name).unique(); ok {
			note(v, id.FirstSeen)
		}
	}
	return rankFirstSeen(ks.firstIdx, first)
}
