package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// Lineage returns the lineage kept for one vCenter's VMs, by VM ref, and the
// time of the newest clone or deploy event among it (zero when none): what
// an incremental read of that vCenter's events may start from.
func (s *Store) Lineage(ctx context.Context, vcenter string) (map[string]reconcile.Lineage, time.Time, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT vm_ref, source_ref, source_name, kind, time FROM lineage WHERE vcenter = ?`, vcenter)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("store: lineage: %w", err)
	}
	defer rows.Close()
	out := map[string]reconcile.Lineage{}
	var newest time.Time
	for rows.Next() {
		var ref string
		var l reconcile.Lineage
		var t sql.NullInt64
		if err := rows.Scan(&ref, &l.SourceRef, &l.SourceName, &l.Kind, &t); err != nil {
			return nil, time.Time{}, fmt.Errorf("store: lineage: %w", err)
		}
		l.Time = i2t(t)
		out[ref] = l
		if (l.Kind == "clone" || l.Kind == "deploy") && l.Time.After(newest) {
			newest = l.Time
		}
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, fmt.Errorf("store: lineage: %w", err)
	}
	return out, newest, nil
}
