package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
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
}

// RunDiff is what a recorded run changed in the findings.
type RunDiff struct {
	RunID int64
	// Opened are findings whose key was not open before this run.
	Opened []StoredFinding
	// Resolved are findings that were open and are absent from this run.
	Resolved []StoredFinding
	// StillOpen counts findings open before and still present in this run;
	// the open total after the run is len(Opened)+StillOpen.
	StillOpen int
}

// RecordRun records one successful run in a single transaction: the run and
// its counts, the VMs seen, one node observation per distinct description per
// node, lineage (upserted, never deleted here), the guest probes of the
// snapshot, and the findings: a key not open before opens, an open one present
// again is updated (last_seen, evidence, severity...), an open one absent from
// res resolves. The run's time is snap.CollectedAt (finished when zero).
//
// The caller must only record complete snapshots: a collection that failed or
// missed a vCenter or swarm would resolve its findings. Record failed runs
// with RecordFailure.
func (s *Store) RecordRun(ctx context.Context, snap reconcile.Snapshot, res reconcile.Result, started, finished time.Time) (RunDiff, error) {
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
			vms, templates, powered_on, swarms, nodes, matched_nodes, findings, critical, warning, info)
			VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			t2i(started), t2i(finished), t2i(snap.CollectedAt), string(vcs),
			sum.VMs, sum.Templates, sum.PoweredOn, sum.Swarms, sum.Nodes, sum.MatchedNodes,
			len(res.Findings), sum.Critical, sum.Warning, sum.Info)
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
		if err := recordFindings(ctx, tx, res.Findings, runID, at, &diff); err != nil {
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

// RecordFailure records a run that failed (collection error...). It changes
// nothing else: findings stay as they were.
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
		id, err = r.LastInsertId()
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

func recordFindings(ctx context.Context, tx *sql.Tx, fs []reconcile.Finding, runID int64, at time.Time, diff *RunDiff) error {
	open := map[string]StoredFinding{}
	rows, err := tx.QueryContext(ctx, `SELECT `+findingCols+` FROM findings WHERE resolved_at IS NULL`)
	if err != nil {
		return err
	}
	for rows.Next() {
		f, err := scanFinding(rows)
		if err != nil {
			rows.Close()
			return err
		}
		open[f.Key] = f
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()

	ts := at.UnixNano()
	present := map[string]bool{}
	for _, f := range fs {
		key := f.Key()
		if present[key] {
			continue // the first (most severe) of duplicates wins
		}
		present[key] = true
		vms, paths, refs, ev := jsonList(f.VMs), jsonList(f.VMPaths), jsonList(f.VMRefs), jsonList(f.Evidence)
		if old, ok := open[key]; ok {
			if _, err := tx.ExecContext(ctx, `UPDATE findings SET severity = ?, vms = ?, vm_paths = ?, vm_refs = ?, original = ?,
				evidence = ?, remedy = ?, confirmed = ?, dormant = ?, last_seen = ?, last_run = ?, seen_runs = seen_runs + 1
				WHERE id = ?`, string(f.Severity), vms, paths, refs, f.Original, ev, f.Remedy, b2i(f.Confirmed), b2i(f.Dormant),
				ts, runID, old.ID); err != nil {
				return fmt.Errorf("update finding %s: %w", key, err)
			}
			diff.StillOpen++
			continue
		}
		r, err := tx.ExecContext(ctx, `INSERT INTO findings(key, kind, severity, node_id, vms, vm_paths, vm_refs, original,
			evidence, remedy, confirmed, dormant, first_seen, last_seen, first_run, last_run)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			key, f.Kind, string(f.Severity), f.NodeID, vms, paths, refs, f.Original, ev, f.Remedy,
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
		f := open[k]
		if _, err := tx.ExecContext(ctx, `UPDATE findings SET resolved_at = ?, resolved_run = ? WHERE id = ?`, ts, runID, f.ID); err != nil {
			return fmt.Errorf("resolve finding %s: %w", k, err)
		}
		f.ResolvedAt = at.UTC()
		diff.Resolved = append(diff.Resolved, f)
	}
	sortFindings(diff.Resolved)
	return nil
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
	matched_nodes, findings, critical, warning, info, opened, resolved`

func scanRun(sc interface{ Scan(...any) error }) (Run, error) {
	var r Run
	var started, finished, collected sql.NullInt64
	var ok int
	var vcs string
	err := sc.Scan(&r.ID, &started, &finished, &collected, &ok, &r.Error, &vcs, &r.VMs, &r.Templates, &r.PoweredOn,
		&r.Swarms, &r.Nodes, &r.Matched, &r.Findings, &r.Critical, &r.Warning, &r.Info, &r.Opened, &r.Resolved)
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
