package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// SaveProbe keeps g as the last guest probe of its VM (g.Key(): vCenter and
// ref), unless a later probe is already stored. A zero ProbedAt is stamped
// with now. RecordRun also saves the snapshot's Guests.
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
	_, err = tx.ExecContext(ctx, `INSERT INTO guest_probes(vcenter, vm_ref, probed_at, node_id, identity) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(vcenter, vm_ref) DO UPDATE SET probed_at = excluded.probed_at, node_id = excluded.node_id, identity = excluded.identity
		WHERE excluded.probed_at >= guest_probes.probed_at`, g.VCenter, g.VMRef, g.ProbedAt.UnixNano(), g.NodeID, string(b))
	return err
}

// LastProbe returns the last guest probe of the VM key names; ok is false
// when there is none. A probe stored without a vCenter (before probes were
// keyed by vCenter, or of an unnamed vCenter) answers for a key with one,
// and a key without a vCenter is answered at all, only when the store
// knows the ref in at most one vCenter (VMs seen, probes kept): morefs
// repeat across vCenters, and a probe must never be taken for another
// vCenter's VM. The latest of the probes that qualify wins.
func (s *Store) LastProbe(ctx context.Context, key reconcile.VMKey) (g reconcile.GuestIdentity, ok bool, err error) {
	js, ok, err := s.lastProbe(ctx, key)
	if err == nil && ok {
		err = json.Unmarshal([]byte(js), &g)
	}
	if err != nil {
		return reconcile.GuestIdentity{}, false, fmt.Errorf("store: last probe %s: %w", key, err)
	}
	return g, ok, nil
}

func (s *Store) lastProbe(ctx context.Context, key reconcile.VMKey) (string, bool, error) {
	// The ref's vCenters the store knows (VMs seen, probes kept).
	vcs, err := s.strings(ctx, `SELECT vcenter FROM vms WHERE ref = ?1 AND vcenter <> ''
		UNION SELECT vcenter FROM guest_probes WHERE vm_ref = ?1 AND vcenter <> '' ORDER BY 1`, key.Ref)
	if err != nil {
		return "", false, err
	}
	// The rows that may be the VM's: its own, and across the gap between
	// "no vCenter" and a vCenter only when no other vCenter has the ref.
	// "\x00" names no vCenter.
	own, other := key.VCenter, "\x00"
	switch {
	case key.VCenter != "":
		if len(vcs) == 0 || len(vcs) == 1 && vcs[0] == key.VCenter {
			other = ""
		}
	case len(vcs) > 1:
		return "", false, nil
	case len(vcs) == 1:
		other = vcs[0]
	}
	var js string
	err = s.db.QueryRowContext(ctx, `SELECT identity FROM guest_probes WHERE vm_ref = ? AND vcenter IN (?, ?)
		ORDER BY probed_at DESC LIMIT 1`, key.Ref, own, other).Scan(&js)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	return js, err == nil, err
}
