package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// SaveProbe keeps g as the last guest probe of g.VMRef, unless a later probe
// is already stored. A zero ProbedAt is stamped with now. RecordRun also
// saves the snapshot's Guests.
func (s *Store) SaveProbe(ctx context.Context, g reconcile.GuestIdentity) error {
	if g.VMRef == "" {
		return errors.New("store: save probe: empty VM ref")
	}
	if g.ProbedAt.IsZero() {
		g.ProbedAt = s.now()
	}
	if err := s.withTx(ctx, func(tx *sql.Tx) error { return saveProbe(ctx, tx, g) }); err != nil {
		return fmt.Errorf("store: save probe: %w", err)
	}
	return nil
}

func saveProbe(ctx context.Context, tx *sql.Tx, g reconcile.GuestIdentity) error {
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO guest_probes(vm_ref, probed_at, node_id, identity) VALUES (?, ?, ?, ?)
		ON CONFLICT(vm_ref) DO UPDATE SET probed_at = excluded.probed_at, node_id = excluded.node_id, identity = excluded.identity
		WHERE excluded.probed_at >= guest_probes.probed_at`, g.VMRef, g.ProbedAt.UnixNano(), g.NodeID, string(b))
	return err
}

// LastProbe returns the last guest probe of vmRef; ok is false when there is none.
func (s *Store) LastProbe(ctx context.Context, vmRef string) (g reconcile.GuestIdentity, ok bool, err error) {
	var js string
	err = s.db.QueryRowContext(ctx, `SELECT identity FROM guest_probes WHERE vm_ref = ?`, vmRef).Scan(&js)
	if errors.Is(err, sql.ErrNoRows) {
		return g, false, nil
	}
	if err == nil {
		err = json.Unmarshal([]byte(js), &g)
	}
	if err != nil {
		return reconcile.GuestIdentity{}, false, fmt.Errorf("store: last probe %s: %w", vmRef, err)
	}
	return g, true, nil
}
