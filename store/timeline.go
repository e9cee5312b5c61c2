package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// Timeline entry kinds.
const (
	EntryVMSeen          = "vm-seen"     // first run that saw the VM
	EntryVMGone          = "vm-gone"     // last run that saw a VM the latest run no longer saw
	EntryObservation     = "observation" // a node description over consecutive runs
	EntryFindingOpened   = "finding-opened"
	EntryFindingResolved = "finding-resolved"
	EntryLineage         = "lineage"
	EntryJournal         = "journal"
	EntryProbe           = "probe"
)

// TimelineEntry is one line of `vmreconcile history NODE|VM`.
type TimelineEntry struct {
	Time time.Time `json:"time"`
	// End is the last sighting of an observation episode.
	End    time.Time `json:"end,omitzero"`
	Kind   string    `json:"kind"`
	NodeID string    `json:"node_id,omitempty"`
	VMRef  string    `json:"vm_ref,omitempty"`
	VMName string    `json:"vm_name,omitempty"`
	// Text is the entry as one human-readable line.
	Text string `json:"text"`

	// Observation episodes: the description seen in Runs consecutive
	// successful runs FirstRun..LastRun, matched to VMRefs.
	Description *reconcile.Description `json:"description,omitempty"`
	FirstRun    int64                  `json:"first_run,omitempty"`
	LastRun     int64                  `json:"last_run,omitempty"`
	Runs        int                    `json:"runs,omitempty"`
	VMRefs      []string               `json:"vm_refs,omitempty"`

	Finding *StoredFinding           `json:"finding,omitempty"`
	Lineage *reconcile.Lineage       `json:"lineage,omitempty"`
	Journal *JournalEntry            `json:"journal,omitempty"`
	Probe   *reconcile.GuestIdentity `json:"probe,omitempty"`
}

// Subject is what a Timeline subject resolved to.
type Subject struct {
	Kind   string   `json:"kind"` // "node" or "vm"
	NodeID string   `json:"node_id,omitempty"`
	VMRefs []string `json:"vm_refs,omitempty"` // one, or the same ref in several vCenters
}

// ResolveSubject resolves a history subject, trying in order: an exact node
// ID, an exact VM ref, a VM name (current or journaled), a unique node ID
// prefix, a hostname some node reported. Several matches are ErrAmbiguous
// (the message lists them); none is ErrNotFound.
func (s *Store) ResolveSubject(ctx context.Context, subject string) (Subject, error) {
	subject = strings.TrimSpace(subject)
	if subject == "" {
		return Subject{}, fmt.Errorf("store: empty subject: %w", ErrNotFound)
	}
	exists := func(q string, args ...any) (bool, error) {
		var n int
		err := s.db.QueryRowContext(ctx, `SELECT EXISTS (`+q+`)`, args...).Scan(&n)
		return n == 1, err
	}
	if ok, err := exists(`SELECT 1 FROM node_observations WHERE node_id = ?1
		UNION ALL SELECT 1 FROM findings WHERE node_id = ?1
		UNION ALL SELECT 1 FROM guest_probes WHERE node_id = ?1`, subject); err != nil || ok {
		return Subject{Kind: "node", NodeID: subject}, err
	}
	if ok, err := exists(`SELECT 1 FROM vms WHERE ref = ?1 UNION ALL SELECT 1 FROM lineage WHERE vm_ref = ?1
		UNION ALL SELECT 1 FROM journal WHERE vm_ref = ?1 UNION ALL SELECT 1 FROM guest_probes WHERE vm_ref = ?1
		UNION ALL SELECT 1 FROM node_vms WHERE vm_ref = ?1`, subject); err != nil || ok {
		return Subject{Kind: "vm", VMRefs: []string{subject}}, err
	}
	refs, err := s.strings(ctx, `SELECT ref FROM vms WHERE name = ?1 UNION SELECT vm_ref FROM journal WHERE vm_name = ?1 AND vm_ref <> '' ORDER BY 1`, subject)
	if err != nil {
		return Subject{}, err
	}
	switch {
	case len(refs) == 1:
		return Subject{Kind: "vm", VMRefs: refs}, nil
	case len(refs) > 1:
		return Subject{}, fmt.Errorf("store: %q names several VMs (%s): give a VM ref: %w", subject, strings.Join(refs, ", "), ErrAmbiguous)
	}
	nodes, err := s.strings(ctx, `SELECT DISTINCT node_id FROM node_observations WHERE node_id > ? AND node_id < ? ORDER BY 1 LIMIT 10`,
		subject, subject+"\U0010FFFF")
	if err != nil {
		return Subject{}, err
	}
	if len(nodes) == 0 {
		nodes, err = s.strings(ctx, `SELECT DISTINCT node_id FROM node_observations WHERE hostname = ? ORDER BY 1 LIMIT 10`, subject)
		if err != nil {
			return Subject{}, err
		}
	}
	switch {
	case len(nodes) == 1:
		return Subject{Kind: "node", NodeID: nodes[0]}, nil
	case len(nodes) > 1:
		return Subject{}, fmt.Errorf("store: %q matches several nodes (%s): %w", subject, strings.Join(nodes, ", "), ErrAmbiguous)
	}
	return Subject{}, fmt.Errorf("store: no node or VM %q in the history: %w", subject, ErrNotFound)
}

// Timeline returns everything the store knows about subject (see
// ResolveSubject), in time order.
//
// For a node: its descriptions as observation episodes (a description seen
// in consecutive successful runs is one entry), the findings about it
// opening and resolving, the lineage of the VMs it matched, the journal
// entries about those VMs or its findings, and guest probes that read its
// node ID or probed those VMs. For a VM: when it was first (and, if gone,
// last) seen, its lineage and the copies made of it, the observations of
// every node it matched, the findings naming it, its journal entries and
// its last guest probe.
func (s *Store) Timeline(ctx context.Context, subject string) ([]TimelineEntry, error) {
	subj, err := s.ResolveSubject(ctx, subject)
	if err != nil {
		return nil, err
	}
	t := &timeline{s: s, ctx: ctx, names: map[string]string{}}
	if subj.Kind == "node" {
		err = t.node(subj.NodeID)
	} else {
		err = t.vm(subj.VMRefs)
	}
	if err != nil {
		return nil, fmt.Errorf("store: timeline %s: %w", subject, err)
	}
	order := map[string]int{EntryVMSeen: 0, EntryLineage: 1, EntryObservation: 2, EntryProbe: 3,
		EntryFindingOpened: 4, EntryJournal: 5, EntryFindingResolved: 6, EntryVMGone: 7}
	sort.SliceStable(t.out, func(i, j int) bool {
		a, b := t.out[i], t.out[j]
		if !a.Time.Equal(b.Time) {
			return a.Time.Before(b.Time)
		}
		if order[a.Kind] != order[b.Kind] {
			return order[a.Kind] < order[b.Kind]
		}
		return a.Text < b.Text
	})
	return t.out, nil
}

type timeline struct {
	s     *Store
	ctx   context.Context
	names map[string]string // VM ref -> name
	out   []TimelineEntry
}

func (t *timeline) node(id string) error {
	refs, err := t.observations([]string{id})
	if err != nil {
		return err
	}
	more, err := t.s.strings(t.ctx, `SELECT vm_ref FROM node_vms WHERE node_id = ?`, id)
	if err != nil {
		return err
	}
	refs = mergeStrings(refs, more)
	fs, err := t.s.queryFindings(t.ctx, `node_id = ? ORDER BY id`, id)
	if err != nil {
		return err
	}
	var keys []string
	for _, f := range fs {
		keys = append(keys, f.Key)
		refs = mergeStrings(refs, f.VMRefs)
	}
	if err := t.loadNames(refs); err != nil {
		return err
	}
	t.findings(fs)
	if err := t.lineage(`vm_ref IN (SELECT value FROM json_each(?))`, jsonList(refs)); err != nil {
		return err
	}
	if err := t.journal(`vm_ref IN (SELECT value FROM json_each(?1)) OR finding_key IN (SELECT value FROM json_each(?2))`,
		jsonList(refs), jsonList(keys)); err != nil {
		return err
	}
	return t.probes(`node_id = ?1 OR vm_ref IN (SELECT value FROM json_each(?2))`, id, jsonList(refs))
}

func (t *timeline) vm(refs []string) error {
	rl := jsonList(refs)
	if err := t.loadNames(refs); err != nil {
		return err
	}
	var lastRun int64
	if err := t.s.db.QueryRowContext(t.ctx, `SELECT coalesce(max(id), 0) FROM runs WHERE ok = 1`).Scan(&lastRun); err != nil {
		return err
	}
	rows, err := t.s.db.QueryContext(t.ctx, `SELECT vcenter, ref, name, path, template, first_seen, last_seen, last_run
		FROM vms WHERE ref IN (SELECT value FROM json_each(?))`, rl)
	if err != nil {
		return err
	}
	for rows.Next() {
		var vc, ref, name, path string
		var tmpl int
		var first, last sql.NullInt64
		var run int64
		if err := rows.Scan(&vc, &ref, &name, &path, &tmpl, &first, &last, &run); err != nil {
			rows.Close()
			return err
		}
		what := "VM"
		if tmpl == 1 {
			what = "template"
		}
		where := path
		if vc != "" {
			where += " on " + vc
		}
		t.add(TimelineEntry{Time: i2t(first), Kind: EntryVMSeen, VMRef: ref, VMName: name,
			Text: fmt.Sprintf("%s %s (%s) first seen at %s", what, name, ref, where)})
		if run < lastRun {
			t.add(TimelineEntry{Time: i2t(last), Kind: EntryVMGone, VMRef: ref, VMName: name,
				Text: fmt.Sprintf("%s %s (%s) last seen; later runs no longer report it", what, name, ref)})
		}
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return err
	}
	rows.Close()

	nodes, err := t.s.strings(t.ctx, `SELECT node_id FROM node_vms WHERE vm_ref IN (SELECT value FROM json_each(?1))
		UNION SELECT node_id FROM guest_probes WHERE vm_ref IN (SELECT value FROM json_each(?1)) AND node_id <> '' ORDER BY 1`, rl)
	if err != nil {
		return err
	}
	obsRefs, err := t.observations(nodes)
	if err != nil {
		return err
	}
	fs, err := t.s.queryFindings(t.ctx, `EXISTS (SELECT 1 FROM json_each(findings.vm_refs) WHERE value IN (SELECT value FROM json_each(?))) ORDER BY id`, rl)
	if err != nil {
		return err
	}
	for _, f := range fs {
		obsRefs = mergeStrings(obsRefs, f.VMRefs)
	}
	if err := t.loadNames(obsRefs); err != nil {
		return err
	}
	t.findings(fs)
	if err := t.lineage(`vm_ref IN (SELECT value FROM json_each(?1)) OR source_ref IN (SELECT value FROM json_each(?1))`, rl); err != nil {
		return err
	}
	if err := t.journal(`vm_ref IN (SELECT value FROM json_each(?))`, rl); err != nil {
		return err
	}
	return t.probes(`vm_ref IN (SELECT value FROM json_each(?))`, rl)
}

func (t *timeline) add(e TimelineEntry) { t.out = append(t.out, e) }

func (t *timeline) loadNames(refs []string) error {
	var missing []string
	for _, r := range refs {
		if _, ok := t.names[r]; !ok {
			missing = append(missing, r)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	rows, err := t.s.db.QueryContext(t.ctx, `SELECT ref, name FROM vms WHERE ref IN (SELECT value FROM json_each(?)) ORDER BY last_seen`, jsonList(missing))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var ref, name string
		if err := rows.Scan(&ref, &name); err != nil {
			return err
		}
		t.names[ref] = name
	}
	return rows.Err()
}

// vmLabel is "name (ref)", or the ref alone when the name is unknown.
func (t *timeline) vmLabel(ref string) string {
	if n := t.names[ref]; n != "" {
		return n + " (" + ref + ")"
	}
	return ref
}

type episode struct {
	e       TimelineEntry
	lastPos int
}

// observations adds the observation episodes of nodes and returns the VM
// refs they matched.
func (t *timeline) observations(nodes []string) ([]string, error) {
	if len(nodes) == 0 {
		return nil, nil
	}
	runPos := map[int64]int{}
	ids, err := t.s.int64s(t.ctx, `SELECT id FROM runs WHERE ok = 1 ORDER BY id`)
	if err != nil {
		return nil, err
	}
	for i, id := range ids {
		runPos[id] = i
	}
	rows, err := t.s.db.QueryContext(t.ctx, `SELECT run_id, cluster_id, node_id, role, hostname, nano_cpus, memory_bytes, addr,
			engine_version, events_only, first_seen, last_seen, seen, vm_refs
		FROM node_observations WHERE node_id IN (SELECT value FROM json_each(?)) ORDER BY node_id, run_id, id`, jsonList(nodes))
	if err != nil {
		return nil, err
	}
	var eps []*episode
	open := map[descKey]*episode{}
	var allRefs []string
	for rows.Next() {
		var run int64
		var cluster, node, role, refsJSON string
		var d reconcile.Description
		var eventsOnly int
		var first, last sql.NullInt64
		if err := rows.Scan(&run, &cluster, &node, &role, &d.Hostname, &d.NanoCPUs, &d.MemoryBytes, &d.Addr,
			&d.EngineVersion, &eventsOnly, &first, &last, &d.Seen, &refsJSON); err != nil {
			rows.Close()
			return nil, err
		}
		d.EventsOnly = eventsOnly == 1
		d.FirstSeen, d.LastSeen = i2t(first), i2t(last)
		var refs []string
		_ = json.Unmarshal([]byte(refsJSON), &refs)
		allRefs = mergeStrings(allRefs, refs)
		pos, ok := runPos[run]
		if !ok {
			continue // observations of a failed run cannot exist; be safe
		}
		k := keyOf(cluster, node, d)
		if ep := open[k]; ep != nil && ep.lastPos == pos-1 {
			ep.lastPos = pos
			ep.e.LastRun = run
			ep.e.Runs++
			ep.e.VMRefs = mergeStrings(ep.e.VMRefs, refs)
			ed := ep.e.Description
			ed.Seen += d.Seen
			ed.EventsOnly = ed.EventsOnly && d.EventsOnly
			if d.LastSeen.After(ed.LastSeen) {
				ed.LastSeen = d.LastSeen
			}
			continue
		}
		dc := d
		ep := &episode{lastPos: pos, e: TimelineEntry{Kind: EntryObservation, NodeID: node, Description: &dc,
			FirstRun: run, LastRun: run, Runs: 1, VMRefs: refs}}
		open[k] = ep
		eps = append(eps, ep)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, err
	}
	rows.Close()
	if err := t.loadNames(allRefs); err != nil {
		return nil, err
	}
	for _, ep := range eps {
		e := ep.e
		d := e.Description
		e.Time, e.End = d.FirstSeen, d.LastSeen
		if len(e.VMRefs) == 1 {
			e.VMRef, e.VMName = e.VMRefs[0], t.names[e.VMRefs[0]]
		}
		runs := fmt.Sprintf("run %d", e.FirstRun)
		if e.Runs > 1 {
			runs = fmt.Sprintf("%d runs (%d-%d)", e.Runs, e.FirstRun, e.LastRun)
		}
		matched := "no VM"
		if len(e.VMRefs) > 0 {
			var ls []string
			for _, r := range e.VMRefs {
				ls = append(ls, t.vmLabel(r))
			}
			matched = strings.Join(ls, ", ")
		}
		e.Text = fmt.Sprintf("node %s as %s in %s, %d sightings, matched %s", e.NodeID, describe(*d), runs, d.Seen, matched)
		t.add(e)
	}
	return allRefs, nil
}

func describe(d reconcile.Description) string {
	parts := []string{"hostname " + d.Hostname}
	if d.NanoCPUs > 0 {
		parts = append(parts, fmt.Sprintf("%d CPUs", d.CPUs()))
	}
	if d.MemoryBytes > 0 {
		parts = append(parts, fmt.Sprintf("%d MiB", d.MemoryMB()))
	}
	if d.Addr != "" {
		parts = append(parts, "addr "+d.Addr)
	}
	if d.EngineVersion != "" {
		parts = append(parts, "engine "+d.EngineVersion)
	}
	s := strings.Join(parts, ", ")
	if d.EventsOnly {
		s += " (from events only)"
	}
	return s
}

func (t *timeline) findings(fs []StoredFinding) {
	for i := range fs {
		f := &fs[i]
		var vms []string
		for j, r := range f.VMRefs {
			if j < len(f.VMs) && f.VMs[j] != "" {
				vms = append(vms, f.VMs[j]+" ("+r+")")
			} else {
				vms = append(vms, t.vmLabel(r))
			}
		}
		about := ""
		if f.NodeID != "" {
			about = " node " + f.NodeID
		}
		if len(vms) > 0 {
			about += " VMs " + strings.Join(vms, ", ")
		}
		if f.Original != "" {
			about += "; original " + f.Original
		}
		t.add(TimelineEntry{Time: f.FirstSeen, Kind: EntryFindingOpened, NodeID: f.NodeID, Finding: f,
			Text: fmt.Sprintf("%s finding %s opened:%s", f.Severity, f.Kind, about)})
		if !f.ResolvedAt.IsZero() {
			t.add(TimelineEntry{Time: f.ResolvedAt, Kind: EntryFindingResolved, NodeID: f.NodeID, Finding: f,
				Text: fmt.Sprintf("finding %s resolved (open since %s, %d runs):%s", f.Kind, f.FirstSeen.Format(time.RFC3339), f.SeenRuns, about)})
		}
	}
}

func (t *timeline) lineage(where string, args ...any) error {
	rows, err := t.s.db.QueryContext(t.ctx, `SELECT vm_ref, source_ref, source_name, kind, time, first_recorded FROM lineage WHERE `+where, args...)
	if err != nil {
		return err
	}
	type lrow struct {
		ref string
		l   reconcile.Lineage
		rec time.Time
	}
	var ls []lrow
	var refs []string
	for rows.Next() {
		var r lrow
		var tm sql.NullInt64
		var rec int64
		if err := rows.Scan(&r.ref, &r.l.SourceRef, &r.l.SourceName, &r.l.Kind, &tm, &rec); err != nil {
			rows.Close()
			return err
		}
		r.l.Time, r.rec = i2t(tm), time.Unix(0, rec).UTC()
		ls = append(ls, r)
		refs = append(refs, r.ref, r.l.SourceRef)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return err
	}
	rows.Close()
	if err := t.loadNames(refs); err != nil {
		return err
	}
	for _, r := range ls {
		l := r.l
		when := l.Time
		if when.IsZero() {
			when = r.rec
		}
		verb := map[string]string{"clone": "cloned from", "deploy": "deployed from template", "linked-clone": "linked-cloned from"}[l.Kind]
		if verb == "" {
			verb = "copied (" + l.Kind + ") from"
		}
		src := l.SourceRef
		if l.SourceName != "" {
			src = l.SourceName + " (" + l.SourceRef + ")"
		}
		t.add(TimelineEntry{Time: when, Kind: EntryLineage, VMRef: r.ref, VMName: t.names[r.ref], Lineage: &l,
			Text: fmt.Sprintf("%s %s %s", t.vmLabel(r.ref), verb, src)})
	}
	return nil
}

func (t *timeline) journal(where string, args ...any) error {
	es, err := t.s.queryJournal(t.ctx, where, args...)
	if err != nil {
		return err
	}
	for i := range es {
		e := &es[i]
		vm := e.VMRef
		if e.VMName != "" {
			vm = e.VMName + " (" + e.VMRef + ")"
		}
		var text string
		if e.Phase == PhaseIntent {
			text = fmt.Sprintf("plan %s: intent to %s %s", e.PlanID, e.Action, vm)
			if e.Reason != "" {
				text += ": " + e.Reason
			}
		} else {
			text = fmt.Sprintf("plan %s: %s %s: %s", e.PlanID, e.Action, vm, e.Status)
			if e.Detail != "" {
				text += " (" + e.Detail + ")"
			}
		}
		t.add(TimelineEntry{Time: e.Time, Kind: EntryJournal, VMRef: e.VMRef, VMName: e.VMName, Journal: e, Text: text})
	}
	return nil
}

func (t *timeline) probes(where string, args ...any) error {
	ids, err := t.s.strings(t.ctx, `SELECT identity FROM guest_probes WHERE `+where+` ORDER BY probed_at`, args...)
	if err != nil {
		return err
	}
	for _, js := range ids {
		var g reconcile.GuestIdentity
		if err := json.Unmarshal([]byte(js), &g); err != nil {
			return err
		}
		var text string
		if g.Error != "" {
			text = fmt.Sprintf("guest probe of %s failed: %s", t.vmLabel(g.VMRef), g.Error)
		} else {
			text = fmt.Sprintf("guest probe of %s: node ID %s, cluster %s, role %s, machine-id %s, docker active %s",
				t.vmLabel(g.VMRef), orNone(g.NodeID), orNone(g.ClusterID), orNone(g.Role), orNone(g.MachineID), orNone(g.DockerActive))
		}
		t.add(TimelineEntry{Time: g.ProbedAt, Kind: EntryProbe, NodeID: g.NodeID, VMRef: g.VMRef, VMName: t.names[g.VMRef], Probe: &g, Text: text})
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func (s *Store) strings(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func (s *Store) int64s(ctx context.Context, q string, args ...any) ([]int64, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
