package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Prune deletes what is older than olderThan and returns the number of rows
// deleted (all tables): runs started before it (with their node
// observations), except the most recent successful run, which History needs;
// resolved findings resolved before it whose resolution alert is not
// pending; lineage, VM and node-VM rows of VMs not seen since (lineage whose
// VM is still seen is kept however old); guest probes taken before it;
// finished journal intents whose outcome is older, with that outcome. Open
// findings and unfinished intents are never pruned.
func (s *Store) Prune(ctx context.Context, olderThan time.Time) (int, error) {
	if olderThan.IsZero() {
		return 0, nil
	}
	cut := olderThan.UnixNano()
	total := 0
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		total = 0
		keep := int64(0)
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM runs WHERE ok = 1`).Scan(&keep); err != nil {
			return err
		}
		stmts := []struct {
			sql  string
			args []any
		}{
			{`DELETE FROM node_observations WHERE run_id IN (SELECT id FROM runs WHERE started < ? AND id <> ?)`, []any{cut, keep}},
			{`DELETE FROM runs WHERE started < ? AND id <> ?`, []any{cut, keep}},
			{`DELETE FROM findings WHERE resolved_at IS NOT NULL AND resolved_at < ?
				AND (alerted_open IS NULL OR alerted_resolved IS NOT NULL)`, []any{cut}},
			{`DELETE FROM lineage WHERE last_reported < ? AND NOT EXISTS (
				SELECT 1 FROM vms v WHERE v.vcenter = lineage.vcenter AND v.ref = lineage.vm_ref AND v.last_seen >= ?)`, []any{cut, cut}},
			{`DELETE FROM vms WHERE last_seen < ?`, []any{cut}},
			{`DELETE FROM node_vms WHERE last_seen < ?`, []any{cut}},
			{`DELETE FROM guest_probes WHERE probed_at < ?`, []any{cut}},
		}
		for _, st := range stmts {
			r, err := tx.ExecContext(ctx, st.sql, st.args...)
			if err != nil {
				return err
			}
			n, _ := r.RowsAffected()
			total += int(n)
		}
		// A finished intent goes with its outcome once the outcome is old
		// (ON DELETE CASCADE removes the outcome row: one each).
		r, err := tx.ExecContext(ctx, `DELETE FROM journal WHERE phase = 'intent' AND id IN (
			SELECT intent_id FROM journal WHERE phase = 'outcome' AND time < ?)`, cut)
		if err != nil {
			return err
		}
		n, _ := r.RowsAffected()
		total += 2 * int(n)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune: %w", err)
	}
	return total, nil
}
