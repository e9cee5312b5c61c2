package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// Journal phases, and the status of an intent row.
const (
	PhaseIntent   = "intent"
	PhaseOutcome  = "outcome"
	StatusPending = "pending"
)

// JournalRecord is an action about to be taken (the intent).
type JournalRecord struct {
	PlanID string
	// VCenter and VMRef name the VM (reconcile.VMKey); VCenter is "" for a
	// VM of an unnamed vCenter.
	VCenter    string
	VMRef      string
	VMName     string
	Action     string // e.g. "power-off", "disconnect-nic"
	Reason     string
	FindingKey string    // reconcile.Finding.Key() the action remedies, if any
	Time       time.Time // zero: now
}

// JournalEntry is one row of the append-only action journal. An outcome row
// repeats its intent's plan, VM, action and finding key and points at it by
// IntentID.
type JournalEntry struct {
	ID         int64     `json:"id"`
	IntentID   int64     `json:"intent_id,omitempty"` // outcome rows only
	PlanID     string    `json:"plan_id"`
	VCenter    string    `json:"vcenter,omitempty"`
	VMRef      string    `json:"vm_ref,omitempty"`
	VMName     string    `json:"vm_name,omitempty"`
	Action     string    `json:"action"`
	Reason     string    `json:"reason,omitempty"`
	FindingKey string    `json:"finding_key,omitempty"`
	Phase      string    `json:"phase"`
	Status     string    `json:"status"`
	Detail     string    `json:"detail,omitempty"`
	Time       time.Time `json:"time"`
}

// JournalIntent appends an intent (status "pending") and returns its id. It
// is committed (and synced) before it returns: take the action only after.
func (s *Store) JournalIntent(ctx context.Context, rec JournalRecord) (int64, error) {
	if rec.PlanID == "" || rec.Action == "" {
		return 0, errors.New("store: journal intent needs a plan id and an action")
	}
	t := rec.Time
	if t.IsZero() {
		t = s.now()
	}
	var id int64
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `INSERT INTO journal(plan_id, vcenter, vm_ref, vm_name, action, reason, finding_key, phase, status, time)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'intent', ?, ?)`,
			rec.PlanID, rec.VCenter, rec.VMRef, rec.VMName, rec.Action, rec.Reason, rec.FindingKey, StatusPending, t.UnixNano())
		if err != nil {
			return err
		}
		id, err = r.LastInsertId()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: journal intent: %w", err)
	}
	return id, nil
}

// JournalOutcome appends the outcome of intent id (status e.g. "done",
// "failed", "skipped"). An intent has at most one outcome; an unknown id is
// ErrNotFound.
func (s *Store) JournalOutcome(ctx context.Context, intentID int64, status, detail string) error {
	if status == "" || status == StatusPending {
		return fmt.Errorf("store: journal outcome: invalid status %q", status)
	}
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		var n, done int
		err := tx.QueryRowContext(ctx, `SELECT count(*), (SELECT count(*) FROM journal WHERE intent_id = ?)
			FROM journal WHERE id = ? AND phase = 'intent'`, intentID, intentID).Scan(&n, &done)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("intent %d: %w", intentID, ErrNotFound)
		}
		if done > 0 {
			return fmt.Errorf("intent %d already has an outcome", intentID)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO journal(intent_id, plan_id, vcenter, vm_ref, vm_name, action, reason, finding_key, phase, status, detail, time)
			SELECT id, plan_id, vcenter, vm_ref, vm_name, action, reason, finding_key, 'outcome', ?, ?, ? FROM journal WHERE id = ?`,
			status, detail, s.now().UnixNano(), intentID)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: journal outcome: %w", err)
	}
	return nil
}

const journalCols = `id, intent_id, plan_id, vcenter, vm_ref, vm_name, action, reason, finding_key, phase, status, detail, time`

func (s *Store) queryJournal(ctx context.Context, where string, args ...any) ([]JournalEntry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+journalCols+` FROM journal j WHERE `+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []JournalEntry
	for rows.Next() {
		var e JournalEntry
		var intent sql.NullInt64
		var t int64
		if err := rows.Scan(&e.ID, &intent, &e.PlanID, &e.VCenter, &e.VMRef, &e.VMName, &e.Action, &e.Reason, &e.FindingKey,
			&e.Phase, &e.Status, &e.Detail, &t); err != nil {
			return nil, err
		}
		e.IntentID = intent.Int64
		e.Time = time.Unix(0, t).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// JournalEntries returns a plan's journal rows (intents and outcomes) in order.
func (s *Store) JournalEntries(ctx context.Context, planID string) ([]JournalEntry, error) {
	es, err := s.queryJournal(ctx, `plan_id = ?`, planID)
	if err != nil {
		return nil, fmt.Errorf("store: journal: %w", err)
	}
	return es, nil
}

// Unfinished returns the intents that have no outcome: actions that were
// announced and never reported, e.g. because the process died in between.
func (s *Store) Unfinished(ctx context.Context) ([]JournalEntry, error) {
	es, err := s.queryJournal(ctx, `phase = 'intent' AND NOT EXISTS (SELECT 1 FROM journal o WHERE o.intent_id = j.id)`)
	if err != nil {
		return nil, fmt.Errorf("store: unfinished journal: %w", err)
	}
	return es, nil
}

// Key returns the key of the entry's VM.
func (e JournalEntry) Key() reconcile.VMKey { return reconcile.VMKey{VCenter: e.VCenter, Ref: e.VMRef} }
