package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"

	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// Run is one recorded audit run.
type Run struct {
	ID          int64     `json:"id"`
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	CollectedAt time.Time `json:"collected_at,omitzero"`
	OK          bool      `json:"ok"`
	Error       string    `json:"error,omitempty"`
	VCenters    []string  `json:"vcenters"`
	VMs         int       `json:"vms"`
	Templates   int       `json:"templates"`
	PoweredOn   int       `json:"powered_on"`
	Swarms      int       `json:"swarms"`
	Nodes       int       `json:"nodes"`
	Matched     int       `json:"matched_nodes"`
	Findings    int       `json:"findings"`
	Critical    int       `json:"critical"`
	Warning     int       `json:"warning"`
	Info        int       `json:"info"`
	Opened      int       `json:"opened"`
	Resolved    int       `json:"resolved"`
	// Partial, on a successful run, says why it could resolve nothing (a
	// source restarted or answered in part): RecordOptions.Partial.
	Partial string `json:"partial,omitempty"`
}

// RunDiff is what a recorded run changed in the findings.
type RunDiff struct {
	RunID int64
	// Opened are findings whose key was not open before this run.
	Opened []StoredFinding
	// Resolved are findings that were open and that this run resolved
	// (ResolvePolicy, or a remediation outcome).
	Resolved []StoredFinding
	// Absent are findings that were open, are absent from this run and stay
	// open: their absence is not confirmed yet (AbsentRuns, AbsentSince say
	// how far it is), or the run was partial.
	Absent []StoredFinding
	// StillOpen counts findings open before and still present in this run;
	// the open total after the run is len(Opened)+StillOpen+len(Absent).
	StillOpen int
}

// Default resolution policy (ResolvePolicy's zero value).
const (
	DefaultResolveRuns  = 3
	DefaultResolveAfter = 10 * time.Minute
)

// ResolvePolicy says when an open finding that runs no longer report
// resolves. Missing data is not a fix: a swarm manager that restarted lost
// its event history, and its first samples show one identity where a clone
// and its original take turns. So an open finding resolves only when
//
//   - Runs consecutive complete successful runs did not report it, and the
//     last of them came at least After after the first; or
//   - a complete successful run did not report it and the action journal
//     holds a "done" outcome, since the finding opened, for its key or for
//     one of its VMs (the remediation's own outcome); or
//   - a complete successful run did not report it but reported a more
//     severe finding about the same swarm node whose VMs include all of its
//     VMs: the same problem, reclassified (a clone-of-swarm-node or
//     node-flapping whose node is now reported as shared-node-id, which the
//     reconciler reports instead). That is evidence, not missing data; a
//     critical finding is never superseded.
//
// A run that reports it again resets the count (same episode: no new
// opening). A failed run (RecordFailure) or a partial one
// (RecordOptions.Partial) resets it too: the runs must be consecutive.
//
// The zero value is the default: DefaultResolveRuns runs spanning
// DefaultResolveAfter. With Runs > 0, After is used as given (0: no time
// condition; Runs 1 and After 0 resolve at the first absence, the behaviour
// before this policy, for tests only).
type ResolvePolicy struct {
	Runs  int
	After time.Duration
}

func (p ResolvePolicy) orDefault() ResolvePolicy {
	if p.Runs <= 0 {
		return ResolvePolicy{Runs: DefaultResolveRuns, After: DefaultResolveAfter}
	}
	return p
}

// RecordOptions tune RecordRunWith.
type RecordOptions struct {
	Resolve ResolvePolicy
	// Partial, when set, says why this run cannot count as evidence that a
	// finding went away (e.g. "swarm prod: event stream reconnected 12s
	// before the run: the manager may have restarted and lost its event
	// history"). Nothing resolves in it and absence counts restart; findings
	// it reports still open or stay open. It is stored as Run.Partial.
	Partial string
}

// RecordRun is RecordRunWith with the default options: the default
// ResolvePolicy, a complete run.
func (s *Store) RecordRun(ctx context.Context, snap reconcile.Snapshot, res reconcile.Result, started, finished time.Time) (RunDiff, error) {
	return s.RecordRunWith(ctx, snap, res, started, finished, RecordOptions{})
}

// RecordRunWith records one successful run in a single transaction: the run
// and its counts, the VMs seen, one node observation per distinct description
// per node, lineage (upserted, never deleted here), the guest probes of the
// snapshot, and the findings: a key not open before opens, an open one
// present again is updated (last_seen, evidence, severity...) and its absence
// count reset, an open one absent from res counts one more absence and
// resolves only as opts.Resolve says (see ResolvePolicy). The run's time is
// snap.CollectedAt (finished when zero).
//
// The caller must only record complete snapshots: a collection that failed or
// missed a vCenter or swarm is recorded with RecordFailure, and one whose
// source restarted or answered in part with opts.Partial set.
func (s *Store) RecordRunWith(ctx context.Context, snap reconcile.Snapshot, res reconcile.Result, started, finished time.Time, opts RecordOptions) (RunDiff, error) {
	var diff RunDiff
	at := snap.CollectedAt
	if at.IsZero() {
		at = finished
	}
	if at.IsZero() {
		return diff, errors.New("store: RecordRun needs snap.CollectedAt or finished")
	}
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		diff = RunDiff{}
		sum := res.Summary
		vcs, _ := json.Marshal(nonNil(snap.VCenters))
		r, err := tx.ExecContext(ctx, `INSERT INTO runs(started, finished, collected_at, ok, vcenters,
			vms, templates, powered_on, swarms, nodes, matched_nodes, findings, critical, warning, info, partial)
			VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			t2i(started), t2i(finished), t2i(snap.CollectedAt), string(vcs),
			sum.VMs, sum.Templates, sum.PoweredOn, sum.Swarms, sum.Nodes, sum.MatchedNodes,
			len(res.Findings), sum.Critical, sum.Warning, sum.Info, opts.Partial)
		if err != nil {
			return fmt.Errorf("insert run: %w", err)
		}
		runID, err := r.LastInsertId()
		if err != nil {
			return err
		}
		diff.RunID = runID
		if err := recordVMs(ctx, tx, snap.VMs, runID, at); err != nil {
			return err
		}
		if err := recordObservations(ctx, tx, snap.Swarms, res.Nodes, runID, at); err != nil {
			return err
		}
		if err := recordKubeObservations(ctx, tx, snap.Kubernetes, runID); err != nil {
			return err
		}
		for _, g := range snap.Guests {
			if g.VMRef == "" {
				continue
			}
			if g.ProbedAt.IsZero() {
				g.ProbedAt = at
			}
			if err := saveProbe(ctx, tx, g); err != nil {
				return err
			}
		}
		if err := recordFindings(ctx, tx, res.Findings, runID, at, opts, &diff); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE runs SET opened = ?, resolved = ? WHERE id = ?`, len(diff.Opened), len(diff.Resolved), runID)
		return err
	})
	if err != nil {
		return RunDiff{}, fmt.Errorf("store: record run: %w", err)
	}
	return diff, nil
}

// RecordFailure records a run that failed (collection error...). Findings
// stay as they were, except that the absence counts of open findings restart
// (ResolvePolicy wants consecutive runs: a failed run is not evidence either
// way, and the runs around it are not consecutive).
func (s *Store) RecordFailure(ctx context.Context, started, finished time.Time, runErr error) (int64, error) {
	msg := "unknown error"
	if runErr != nil {
		msg = runErr.Error()
	}
	var id int64
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `INSERT INTO runs(started, finished, ok, error) VALUES (?, ?, 0, ?)`, t2i(started), t2i(finished), msg)
		if err != nil {
			return err
		}
		if id, err = r.LastInsertId(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE findings SET absent_runs = 0, absent_since = NULL WHERE resolved_at IS NULL AND absent_runs > 0`)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: record failure: %w", err)
	}
	return id, nil
}

func recordVMs(ctx context.Context, tx *sql.Tx, vms []reconcile.VM, runID int64, at time.Time) error {
	vmStmt, err := tx.PrepareContext(ctx, `INSERT INTO vms(vcenter, ref, name, path, bios_uuid, instance_uuid, template, first_seen, last_seen, first_run, last_run)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(vcenter, ref) DO UPDATE SET name = excluded.name, path = excluded.path,
			bios_uuid = excluded.bios_uuid, instance_uuid = excluded.instance_uuid, template = excluded.template,
			last_seen = excluded.last_seen, last_run = excluded.last_run`)
	if err != nil {
		return err
	}
	defer vmStmt.Close()
	linStmt, err := tx.PrepareContext(ctx, `INSERT INTO lineage(vcenter, vm_ref, source_ref, source_name, kind, time, first_recorded, last_reported)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(vcenter, vm_ref) DO UPDATE SET source_ref = excluded.source_ref, source_name = excluded.source_name,
			kind = excluded.kind, time = coalesce(excluded.time, lineage.time), last_reported = excluded.last_reported`)
	if err != nil {
		return err
	}
	defer linStmt.Close()
	ts := at.UnixNano()
	for _, vm := range vms {
		if vm.Ref == "" {
			continue
		}
		if _, err := vmStmt.ExecContext(ctx, vm.VCenter, vm.Ref, vm.Name, vm.Path, vm.BIOSUUID, vm.InstanceUUID, b2i(vm.Template), ts, ts, runID, runID); err != nil {
			return fmt.Errorf("upsert vm %s: %w", vm.Ref, err)
		}
		if l := vm.Lineage; l != nil && l.SourceRef != "" {
			if _, err := linStmt.ExecContext(ctx, vm.VCenter, vm.Ref, l.SourceRef, l.SourceName, l.Kind, t2i(l.Time), ts, ts); err != nil {
				return fmt.Errorf("upsert lineage %s: %w", vm.Ref, err)
			}
		}
	}
	return nil
}

// descKey identifies a distinct description of a node.
type descKey struct {
	cluster, node, hostname, addr, engine string
	cpus, mem                             int64
}

func keyOf(cluster, node string, d reconcile.Description) descKey {
	return descKey{cluster: cluster, node: node, hostname: d.Hostname, addr: d.Addr, engine: d.EngineVersion, cpus: d.NanoCPUs, mem: d.MemoryBytes}
}

type observation struct {
	node reconcile.Node
	desc reconcile.Description
	refs []string
}

func recordObservations(ctx context.Context, tx *sql.Tx, swarms []reconcile.Swarm, nodes []reconcile.NodeStatus, runID int64, at time.Time) error {
	matched := map[descKey][]string{}
	for _, n := range nodes {
		for _, md := range n.Descriptions {
			k := keyOf(n.ClusterID, n.ID, md.Description)
			matched[k] = mergeStrings(matched[k], md.VMRefs)
		}
	}
	// Merge: one row per distinct description per node per run, even when
	// two managers of the same swarm both reported it.
	obs := map[descKey]*observation{}
	var order []descKey
	for _, sw := range swarms {
		for _, n := range sw.Nodes {
			for _, d := range n.Descriptions {
				k := keyOf(sw.ClusterID, n.ID, d)
				o := obs[k]
				if o == nil {
					obs[k] = &observation{node: n, desc: d, refs: matched[k]}
					order = append(order, k)
					continue
				}
				if !d.FirstSeen.IsZero() && (o.desc.FirstSeen.IsZero() || d.FirstSeen.Before(o.desc.FirstSeen)) {
					o.desc.FirstSeen = d.FirstSeen
				}
				if d.LastSeen.After(o.desc.LastSeen) {
					o.desc.LastSeen = d.LastSeen
					o.node = n
				}
				o.desc.Seen = max(o.desc.Seen, d.Seen)
				o.desc.EventsOnly = o.desc.EventsOnly && d.EventsOnly
			}
		}
	}
	if len(order) == 0 {
		return nil
	}
	obsStmt, err := tx.PrepareContext(ctx, `INSERT INTO node_observations(run_id, cluster_id, node_id, role, state, availability,
		hostname, nano_cpus, memory_bytes, addr, engine_version, events_only, first_seen, last_seen, seen, vm_refs)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer obsStmt.Close()
	nvStmt, err := tx.PrepareContext(ctx, `INSERT INTO node_vms(node_id, vm_ref, first_seen, last_seen) VALUES (?, ?, ?, ?)
		ON CONFLICT(node_id, vm_ref) DO UPDATE SET last_seen = max(node_vms.last_seen, excluded.last_seen)`)
	if err != nil {
		return err
	}
	defer nvStmt.Close()
	ts := at.UnixNano()
	for _, k := range order {
		o := obs[k]
		refs, _ := json.Marshal(nonNil(o.refs))
		d := o.desc
		if _, err := obsStmt.ExecContext(ctx, runID, k.cluster, k.node, o.node.Role, o.node.State, o.node.Availability,
			d.Hostname, d.NanoCPUs, d.MemoryBytes, d.Addr, d.EngineVersion, b2i(d.EventsOnly),
			t2i(d.FirstSeen), t2i(d.LastSeen), d.Seen, string(refs)); err != nil {
			return fmt.Errorf("insert observation of node %s: %w", k.node, err)
		}
		for _, ref := range o.refs {
			if _, err := nvStmt.ExecContext(ctx, k.node, ref, ts, ts); err != nil {
				return err
			}
		}
	}
	return nil
}

func recordFindings(ctx context.Context, tx *sql.Tx, fs []reconcile.Finding, runID int64, at time.Time, opts RecordOptions, diff *RunDiff) error {
	open, err := openFindingsTx(ctx, tx)
	if err != nil {
		return err
	}
	ts := at.UnixNano()
	present := map[string]bool{}
	for _, f := range fs {
		key := f.Key()
		if present[key] {
			continue // the first (most severe) of duplicates wins
		}
		present[key] = true
		vms, paths, refs, vcs, ev := jsonList(f.VMs), jsonList(f.VMPaths), jsonList(f.VMRefs), jsonList(f.VMVCenters), jsonList(f.Evidence)
		if old, ok := open[key]; ok {
			if _, err := tx.ExecContext(ctx, `UPDATE findings SET severity = ?, vms = ?, vm_paths = ?, vm_refs = ?, vm_vcenters = ?, original = ?,
				evidence = ?, remedy = ?, confirmed = ?, dormant = ?, last_seen = ?, last_run = ?, seen_runs = seen_runs + 1,
				absent_runs = 0, absent_since = NULL
				WHERE id = ?`, string(f.Severity), vms, paths, refs, vcs, f.Original, ev, f.Remedy, b2i(f.Confirmed), b2i(f.Dormant),
				ts, runID, old.ID); err != nil {
				return fmt.Errorf("update finding %s: %w", key, err)
			}
			diff.StillOpen++
			continue
		}
		r, err := tx.ExecContext(ctx, `INSERT INTO findings(key, kind, severity, node_id, vms, vm_paths, vm_refs, vm_vcenters, original,
			evidence, remedy, confirmed, dormant, first_seen, last_seen, first_run, last_run)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			key, f.Kind, string(f.Severity), f.NodeID, vms, paths, refs, vcs, f.Original, ev, f.Remedy,
			b2i(f.Confirmed), b2i(f.Dormant), ts, ts, runID, runID)
		if err != nil {
			return fmt.Errorf("insert finding %s: %w", key, err)
		}
		id, _ := r.LastInsertId()
		diff.Opened = append(diff.Opened, StoredFinding{Finding: f, ID: id, Key: key, FirstSeen: at.UTC(), LastSeen: at.UTC(), SeenRuns: 1})
	}
	keys := make([]string, 0, len(open))
	for k := range open {
		if !present[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		f, err := settleAbsent(ctx, tx, open[k], fs, runID, at, opts)
		if err != nil {
			return fmt.Errorf("finding %s: %w", k, err)
		}
		if f.Open() {
			diff.Absent = append(diff.Absent, f)
		} else {
			diff.Resolved = append(diff.Resolved, f)
		}
	}
	sortFindings(diff.Resolved)
	sortFindings(diff.Absent)
	return nil
}

// openFindingsTx returns the open findings by key.
func openFindingsTx(ctx context.Context, tx *sql.Tx) (map[string]StoredFinding, error) {
	open := map[string]StoredFinding{}
	rows, err := tx.QueryContext(ctx, `SELECT `+findingCols+` FROM findings WHERE resolved_at IS NULL`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		f, err := scanFinding(rows)
		if err != nil {
			return nil, err
		}
		open[f.Key] = f
	}
	return open, rows.Err()
}

// settleAbsent handles an open finding that the run at time at did not
// report: one more absence, resolution when opts.Resolve (or a remediation
// outcome) allows, nothing but a reset in a partial run. It returns the
// finding as it now is.
func settleAbsent(ctx context.Context, tx *sql.Tx, f StoredFinding, present []reconcile.Finding, runID int64, at time.Time, opts RecordOptions) (StoredFinding, error) {
	if opts.Partial != "" {
		f.AbsentRuns, f.AbsentSince = 0, time.Time{}
		_, err := tx.ExecContext(ctx, `UPDATE findings SET absent_runs = 0, absent_since = NULL WHERE id = ?`, f.ID)
		return f, err
	}
	f.AbsentRuns++
	if f.AbsentRuns == 1 || f.AbsentSince.IsZero() {
		f.AbsentSince = at.UTC()
	}
	p := opts.Resolve.orDefault()
	done, err := remediated(ctx, tx, f)
	if err != nil {
		return f, err
	}
	switch {
	case done:
		f.ResolvedBy = ResolvedByRemediation
	case superseded(f.Finding, present):
		f.ResolvedBy = ResolvedBySuperseded
	case f.AbsentRuns >= p.Runs && at.Sub(f.AbsentSince) >= p.After:
		f.ResolvedBy = ResolvedByAbsence
	default:
		_, err := tx.ExecContext(ctx, `UPDATE findings SET absent_runs = ?, absent_since = ? WHERE id = ?`,
			f.AbsentRuns, f.AbsentSince.UnixNano(), f.ID)
		return f, err
	}
	f.ResolvedAt = at.UTC()
	_, err = tx.ExecContext(ctx, `UPDATE findings SET resolved_at = ?, resolved_run = ?, resolved_by = ?, absent_runs = ?, absent_since = ?
		WHERE id = ?`, at.UnixNano(), runID, f.ResolvedBy, f.AbsentRuns, f.AbsentSince.UnixNano(), f.ID)
	return f, err
}

// superseded reports whether a finding in present is about f's swarm node,
// more severe, and covers all of f's VMs.
func superseded(f reconcile.Finding, present []reconcile.Finding) bool {
	if f.NodeID == "" {
		return false
	}
	for _, g := range present {
		if g.NodeID != f.NodeID || g.Cluster != f.Cluster || g.Severity.Rank() <= f.Severity.Rank() {
			continue
		}
		covered := true
		keys := g.VMKeys()
		for _, k := range f.VMKeys() {
			if !slices.Contains(keys, k) {
				covered = false
				break
			}
		}
		if covered {
			return true
		}
	}
	return false
}

// remediated reports whether the journal holds, at or after f opened, a
// "done" outcome for f's key on every VM of f but its original (each by
// vCenter and ref): only then does a remediation explain f's absence. One
// copy of two fixed, a done action on a same-moref VM of another vCenter, or
// an action for another finding does not.
func remediated(ctx context.Context, tx *sql.Tx, f StoredFinding) (bool, error) {
	acted := 0
	for i, ref := range f.VMRefs {
		if ref == "" || (i < len(f.VMs) && f.VMs[i] == f.Original && f.Original != "") {
			continue
		}
		vc := ""
		if i < len(f.VMVCenters) {
			vc = f.VMVCenters[i]
		}
		var n int
		err := tx.QueryRowContext(ctx, `SELECT count(*) FROM journal WHERE phase = 'outcome' AND status = 'done' AND time >= ?
			AND finding_key = ? AND vm_ref = ? AND vcenter = ?`, f.FirstSeen.UnixNano(), f.Key, ref, vc).Scan(&n)
		if err != nil {
			return false, err
		}
		if n == 0 {
			return false, nil
		}
		acted++
	}
	return acted > 0, nil
}

// History builds what earlier runs saw for the reconciler: every distinct
// description of each node ID over the successful runs started at or after
// since (zero: all kept runs), merged across runs (earliest first_seen,
// latest last_seen, summed sightings), in order of first sighting; and all
// lineage kept, by VM ref.
func (s *Store) History(ctx context.Context, since time.Time) (reconcile.History, error) {
	h := reconcile.History{Nodes: map[string][]reconcile.Description{}, Lineage: map[string]reconcile.Lineage{}}
	rows, err := s.db.QueryContext(ctx, `SELECT o.node_id, o.hostname, o.nano_cpus, o.memory_bytes, o.addr, o.engine_version,
			min(o.events_only), min(o.first_seen), max(o.last_seen), sum(o.seen)
		FROM node_observations o JOIN runs r ON r.id = o.run_id
		WHERE r.ok = 1 AND r.started >= ?
		GROUP BY o.node_id, o.hostname, o.nano_cpus, o.memory_bytes, o.addr, o.engine_version
		ORDER BY o.node_id, min(o.first_seen), o.hostname, o.addr`, since2i(since))
	if err != nil {
		return h, fmt.Errorf("store: history: %w", err)
	}
	for rows.Next() {
		var node string
		var d reconcile.Description
		var eventsOnly int
		var first, last sql.NullInt64
		if err := rows.Scan(&node, &d.Hostname, &d.NanoCPUs, &d.MemoryBytes, &d.Addr, &d.EngineVersion, &eventsOnly, &first, &last, &d.Seen); err != nil {
			rows.Close()
			return h, fmt.Errorf("store: history: %w", err)
		}
		d.EventsOnly = eventsOnly == 1
		d.FirstSeen, d.LastSeen = i2t(first), i2t(last)
		h.Nodes[node] = append(h.Nodes[node], d)
	}
	if err := rows.Err(); err != nil {
		return h, fmt.Errorf("store: history: %w", err)
	}
	rows.Close()

	if h.KubeNodes, err = s.kubeHistory(ctx, since); err != nil {
		return h, err
	}

	rows, err = s.db.QueryContext(ctx, `SELECT vm_ref, source_ref, source_name, kind, time FROM lineage ORDER BY vm_ref, last_reported`)
	if err != nil {
		return h, fmt.Errorf("store: history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ref string
		var l reconcile.Lineage
		var t sql.NullInt64
		if err := rows.Scan(&ref, &l.SourceRef, &l.SourceName, &l.Kind, &t); err != nil {
			return h, fmt.Errorf("store: history: %w", err)
		}
		l.Time = i2t(t)
		h.Lineage[ref] = l // refs in two vCenters: the latest reported wins
	}
	if err := rows.Err(); err != nil {
		return h, fmt.Errorf("store: history: %w", err)
	}
	return h, nil
}

const runCols = `id, started, finished, collected_at, ok, error, vcenters, vms, templates, powered_on, swarms, nodes,
	matched_nodes, findings, critical, warning, info, opened, resolved, partial`

func scanRun(sc interface{ Scan(...any) error }) (Run, error) {
	var r Run
	var started, finished, collected sql.NullInt64
	var ok int
	var vcs string
	err := sc.Scan(&r.ID, &started, &finished, &collected, &ok, &r.Error, &vcs, &r.VMs, &r.Templates, &r.PoweredOn,
		&r.Swarms, &r.Nodes, &r.Matched, &r.Findings, &r.Critical, &r.Warning, &r.Info, &r.Opened, &r.Resolved, &r.Partial)
	if err != nil {
		return r, err
	}
	r.Started, r.Finished, r.CollectedAt = i2t(started), i2t(finished), i2t(collected)
	r.OK = ok == 1
	_ = json.Unmarshal([]byte(vcs), &r.VCenters)
	return r, nil
}

// LastRun returns the most recent run (successful or not); ok is false when
// no run was recorded.
func (s *Store) LastRun(ctx context.Context) (run Run, ok bool, err error) {
	run, err = scanRun(s.db.QueryRowContext(ctx, `SELECT `+runCols+` FROM runs ORDER BY id DESC LIMIT 1`))
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, false, nil
	}
	if err != nil {
		return Run{}, false, fmt.Errorf("store: last run: %w", err)
	}
	return run, true, nil
}

// Runs returns the last limit runs (all when limit <= 0), oldest first.
func (s *Store) Runs(ctx context.Context, limit int) ([]Run, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.db.QueryContext(ctx, `SELECT * FROM (SELECT `+runCols+` FROM runs ORDER BY id DESC LIMIT ?) ORDER BY id`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: runs: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("store: runs: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func jsonList(s []string) string {
	b, _ := json.Marshal(nonNil(s))
	return string(b)
}

func mergeStrings(a, b []string) []string {
	for _, x := range b {
		found := false
		for _, y := range a {
			if x == y {
				found = true
				break
			}
		}
		if !found {
			a = append(a, x)
		}
	}
	return a
}
