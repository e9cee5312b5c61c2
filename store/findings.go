package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// StoredFinding is a finding as the store keeps it: one row per episode (a
// key that resolves and comes back later opens a new episode, alerted anew).
type StoredFinding struct {
	reconcile.Finding
	ID        int64     `json:"id"`
	Key       string    `json:"key"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// ResolvedAt is the time of the run that resolved it (see ResolvePolicy:
	// the last of the runs that confirmed its absence); zero while open.
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// ResolvedBy says what resolved it: ResolvedByAbsence,
	// ResolvedByRemediation or ResolvedBySuperseded; "" while open.
	ResolvedBy string `json:"resolved_by,omitempty"`
	SeenRuns   int    `json:"seen_runs"`
	// AbsentRuns counts the consecutive complete successful runs, up to now,
	// that no longer reported the finding, and AbsentSince is the time of the
	// first of them; 0 and zero while the last run reported it. They are kept
	// on a resolved finding as they were when it resolved.
	AbsentRuns  int       `json:"absent_runs,omitempty"`
	AbsentSince time.Time `json:"absent_since,omitzero"`
	// AlertedOpen and AlertedResolved are when MarkAlerted recorded the
	// alerts; zero until then.
	AlertedOpen     time.Time `json:"alerted_open,omitzero"`
	AlertedResolved time.Time `json:"alerted_resolved,omitzero"`
}

// Open reports whether the finding is still open.
func (f StoredFinding) Open() bool { return f.ResolvedAt.IsZero() }

// How a finding resolved (StoredFinding.ResolvedBy).
const (
	// ResolvedByAbsence: enough consecutive complete runs no longer
	// reported it (ResolvePolicy).
	ResolvedByAbsence = "absence"
	// ResolvedByRemediation: a run no longer reported it and the journal
	// holds a "done" outcome for it (its key, or one of its VMs) since it
	// opened.
	ResolvedByRemediation = "remediation"
	// ResolvedBySuperseded: a run no longer reported it but reported a more
	// severe finding about the same swarm node covering all its VMs.
	ResolvedBySuperseded = "superseded"
)

const findingCols = `id, key, kind, severity, node_id, vms, vm_paths, vm_refs, vm_vcenters, original, evidence, remedy, confirmed, dormant,
	first_seen, last_seen, resolved_at, seen_runs, alerted_open, alerted_resolved, absent_runs, absent_since, resolved_by`

func scanFinding(sc interface{ Scan(...any) error }) (StoredFinding, error) {
	var f StoredFinding
	var sev, vms, paths, refs, vcs, ev string
	var confirmed, dormant int
	var first, last, resolved, aOpen, aRes, absent sql.NullInt64
	err := sc.Scan(&f.ID, &f.Key, &f.Kind, &sev, &f.NodeID, &vms, &paths, &refs, &vcs, &f.Original, &ev, &f.Remedy,
		&confirmed, &dormant, &first, &last, &resolved, &f.SeenRuns, &aOpen, &aRes, &f.AbsentRuns, &absent, &f.ResolvedBy)
	if err != nil {
		return f, err
	}
	f.Severity = reconcile.Severity(sev)
	f.Confirmed, f.Dormant = confirmed == 1, dormant == 1
	for _, p := range []struct {
		s string
		d *[]string
	}{{vms, &f.VMs}, {paths, &f.VMPaths}, {refs, &f.VMRefs}, {vcs, &f.VMVCenters}, {ev, &f.Evidence}} {
		if err := json.Unmarshal([]byte(p.s), p.d); err != nil {
			return f, fmt.Errorf("finding %d: %w", f.ID, err)
		}
	}
	f.FirstSeen, f.LastSeen, f.ResolvedAt = i2t(first), i2t(last), i2t(resolved)
	f.AlertedOpen, f.AlertedResolved = i2t(aOpen), i2t(aRes)
	f.AbsentSince = i2t(absent)
	return f, nil
}

// sortFindings orders most severe first, then by kind, node ID, key.
func sortFindings(fs []StoredFinding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if ra, rb := a.Severity.Rank(), b.Severity.Rank(); ra != rb {
			return ra > rb
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.NodeID != b.NodeID {
			return a.NodeID < b.NodeID
		}
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		return a.ID < b.ID
	})
}

func (s *Store) queryFindings(ctx context.Context, where string, args ...any) ([]StoredFinding, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+findingCols+` FROM findings WHERE `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []StoredFinding
	for rows.Next() {
		f, err := scanFinding(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// OpenFindings returns the open findings, most severe first.
func (s *Store) OpenFindings(ctx context.Context) ([]StoredFinding, error) {
	fs, err := s.queryFindings(ctx, `resolved_at IS NULL`)
	if err != nil {
		return nil, fmt.Errorf("store: open findings: %w", err)
	}
	sortFindings(fs)
	return fs, nil
}

// FindingEpisodes returns every episode of a finding key, oldest first.
func (s *Store) FindingEpisodes(ctx context.Context, key string) ([]StoredFinding, error) {
	fs, err := s.queryFindings(ctx, `key = ? ORDER BY id`, key)
	if err != nil {
		return nil, fmt.Errorf("store: finding %s: %w", key, err)
	}
	return fs, nil
}

// PendingAlerts returns the alerts not yet sent: open are findings (open or
// already resolved) whose opening was never alerted; resolved are resolved
// findings whose opening was alerted and whose resolution was not. A finding
// that opened and resolved before any alert went out appears in open only
// (the sink then tells it opened; its resolution follows on the next call
// after MarkAlerted(key, false)). Both are most severe first.
func (s *Store) PendingAlerts(ctx context.Context) (open, resolved []StoredFinding, err error) {
	open, err = s.queryFindings(ctx, `alerted_open IS NULL`)
	if err != nil {
		return nil, nil, fmt.Errorf("store: pending alerts: %w", err)
	}
	resolved, err = s.queryFindings(ctx, `resolved_at IS NOT NULL AND alerted_open IS NOT NULL AND alerted_resolved IS NULL`)
	if err != nil {
		return nil, nil, fmt.Errorf("store: pending alerts: %w", err)
	}
	sortFindings(open)
	sortFindings(resolved)
	return open, resolved, nil
}

// MarkAlerted records that the alert for key went out: its opening when
// resolved is false, its resolution when true. Marking is idempotent; a key
// the store never saw is ErrNotFound.
//
// It marks every episode of key that is pending the same alert. A sender
// with several episodes of one key pending (the webhook was down while the
// finding resolved and came back) must use MarkAlertedID, or the later
// episode's alert is recorded as sent when only the earlier one was.
func (s *Store) MarkAlerted(ctx context.Context, key string, resolved bool) error {
	return s.markAlerted(ctx, "key", key, fmt.Sprintf("finding %q", key), resolved)
}

// MarkAlertedID is MarkAlerted for one episode (StoredFinding.ID): its
// opening when resolved is false, its resolution when true. Idempotent; an
// unknown id is ErrNotFound.
func (s *Store) MarkAlertedID(ctx context.Context, id int64, resolved bool) error {
	return s.markAlerted(ctx, "id", id, fmt.Sprintf("finding id %d", id), resolved)
}

// markAlerted marks the pending alert of the findings whose column (key or
// id, never user input) equals value.
func (s *Store) markAlerted(ctx context.Context, column string, value any, what string, resolved bool) error {
	err := s.withTx(ctx, func(tx *sql.Tx) error { return s.markAlertedTx(ctx, tx, column, value, what, resolved) })
	if err != nil {
		return fmt.Errorf("store: mark alerted: %w", err)
	}
	return nil
}

func (s *Store) markAlertedTx(ctx context.Context, tx *sql.Tx, column string, value any, what string, resolved bool) error {
	now := s.now().UnixNano()
	var r sql.Result
	var err error
	if resolved {
		r, err = tx.ExecContext(ctx, `UPDATE findings SET alerted_resolved = ?
			WHERE `+column+` = ? AND resolved_at IS NOT NULL AND alerted_resolved IS NULL`, now, value)
	} else {
		r, err = tx.ExecContext(ctx, `UPDATE findings SET alerted_open = ? WHERE `+column+` = ? AND alerted_open IS NULL`, now, value)
	}
	if err != nil {
		return err
	}
	if n, _ := r.RowsAffected(); n > 0 {
		return nil
	}
	var exists int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM findings WHERE `+column+` = ?`, value).Scan(&exists); err != nil {
		return err
	}
	if exists == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

// Delivery statuses: what a sink finally did with an alert.
const (
	// DeliveryDelivered: the sink accepted it.
	DeliveryDelivered = "delivered"
	// DeliveryFailed: given up on (the sink refused it after every retry,
	// e.g. HTTP 4xx); it is never sent to that sink again.
	DeliveryFailed = "failed"
)

// Delivery is what one alert sink did with one alert: the opening or the
// resolution of one finding episode.
type Delivery struct {
	FindingID int64  `json:"finding_id"`
	Resolved  bool   `json:"resolved"` // the resolution; false: the opening
	Sink      string `json:"sink"`     // a stable sink ID (never a URL: they carry tokens)
	Status    string `json:"status"`   // DeliveryDelivered, DeliveryFailed
	Attempts  int    `json:"attempts"`
	// Detail is the last error, e.g. "HTTP 404" (never a URL or a secret).
	Detail string    `json:"detail,omitempty"`
	Time   time.Time `json:"time"`
}

func eventOf(resolved bool) string {
	if resolved {
		return "resolved"
	}
	return "opened"
}

// RecordDelivery records that sink d.Sink is done with an alert, delivered
// or given up (a sink that will retry records nothing), and in the same
// transaction marks the alert sent (as MarkAlertedID) once every sink in
// sinks is done with it. It reports whether the alert is now marked. A
// second record for the same alert and sink replaces the first.
func (s *Store) RecordDelivery(ctx context.Context, d Delivery, sinks []string) (complete bool, err error) {
	if d.Status != DeliveryDelivered && d.Status != DeliveryFailed {
		return false, fmt.Errorf("store: record delivery: invalid status %q", d.Status)
	}
	t := d.Time
	if t.IsZero() {
		t = s.now()
	}
	err = s.withTx(ctx, func(tx *sql.Tx) error {
		complete = false
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO alert_deliveries(finding_id, event, sink, status, attempts, detail, time)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, d.FindingID, eventOf(d.Resolved), d.Sink, d.Status, d.Attempts, d.Detail, t.UnixNano()); err != nil {
			return err
		}
		for _, sink := range sinks {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM alert_deliveries WHERE finding_id = ? AND event = ? AND sink = ?`,
				d.FindingID, eventOf(d.Resolved), sink).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return nil
			}
		}
		complete = true
		return s.markAlertedTx(ctx, tx, "id", d.FindingID, fmt.Sprintf("finding id %d", d.FindingID), d.Resolved)
	})
	if err != nil {
		return false, fmt.Errorf("store: record delivery: %w", err)
	}
	return complete, nil
}

// DeliveryKey names one alert: a finding episode's opening or resolution.
type DeliveryKey struct {
	FindingID int64
	Resolved  bool
}

// SinkDone returns the alerts still pending (not yet marked sent) that sink
// is already done with, delivered or given up: a sink that took an alert
// while another sink was down must not get it again.
func (s *Store) SinkDone(ctx context.Context, sink string) (map[DeliveryKey]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT d.finding_id, d.event FROM alert_deliveries d JOIN findings f ON f.id = d.finding_id
		WHERE d.sink = ? AND ((d.event = 'opened' AND f.alerted_open IS NULL) OR (d.event = 'resolved' AND f.alerted_resolved IS NULL))`, sink)
	if err != nil {
		return nil, fmt.Errorf("store: sink deliveries: %w", err)
	}
	defer rows.Close()
	out := map[DeliveryKey]bool{}
	for rows.Next() {
		var k DeliveryKey
		var ev string
		if err := rows.Scan(&k.FindingID, &ev); err != nil {
			return nil, fmt.Errorf("store: sink deliveries: %w", err)
		}
		k.Resolved = ev == "resolved"
		out[k] = true
	}
	return out, rows.Err()
}

// Deliveries returns the delivery records of a finding episode, openings
// first, then by sink.
func (s *Store) Deliveries(ctx context.Context, findingID int64) ([]Delivery, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT finding_id, event, sink, status, attempts, detail, time FROM alert_deliveries
		WHERE finding_id = ? ORDER BY event = 'resolved', sink`, findingID)
	if err != nil {
		return nil, fmt.Errorf("store: deliveries: %w", err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		var d Delivery
		var ev string
		var t int64
		if err := rows.Scan(&d.FindingID, &ev, &d.Sink, &d.Status, &d.Attempts, &d.Detail, &t); err != nil {
			return nil, fmt.Errorf("store: deliveries: %w", err)
		}
		d.Resolved = ev == "resolved"
		d.Time = time.Unix(0, t).UTC()
		out = append(out, d)
	}
	return out, rows.Err()
}
