package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// Migration 2 keys VMs by vCenter and ref (reconcile.VMKey): morefs repeat
// across vCenters. Rows written before carry a ref alone; their vCenter is
// derived from the vms table, which has kept (vcenter, ref, name, path) of
// every VM seen since schema 1:
//
//   - a ref that only one vCenter has: that vCenter;
//   - a ref several vCenters have: the one whose VM has the row's name and
//     path (findings: vm_paths and vms; journal: vm_name); guest probes
//     carry no VM name, so only their own "vcenter" field (kept since
//     probes had one) decides;
//   - otherwise (ambiguous, or the VM was pruned from vms): ” (unknown).
//
// An open finding whose vCenters were all derived keeps its episode: its key
// is rewritten to the key this binary computes. One left with an unknown
// vCenter keeps its old key and resolves on the next run, when the new key
// opens in its place (one resolved and one opened alert, once). The journal's
// finding_key values follow the rewritten keys, and its vcenter is filled in
// the same way; the append-only trigger is dropped for that and recreated.
const migration2 = `
ALTER TABLE findings ADD COLUMN vm_vcenters TEXT NOT NULL DEFAULT '[]';

CREATE TABLE guest_probes_v2 (
	vcenter   TEXT    NOT NULL DEFAULT '',
	vm_ref    TEXT    NOT NULL,
	probed_at INTEGER NOT NULL,
	node_id   TEXT    NOT NULL DEFAULT '',
	identity  TEXT    NOT NULL,
	PRIMARY KEY (vcenter, vm_ref)
);
INSERT INTO guest_probes_v2(vcenter, vm_ref, probed_at, node_id, identity)
	SELECT vc, vm_ref, probed_at, node_id, CASE WHEN vc = '' THEN identity ELSE json_set(identity, '$.vcenter', vc) END
	FROM (SELECT p.vm_ref, p.probed_at, p.node_id, p.identity,
		coalesce(nullif(json_extract(p.identity, '$.vcenter'), ''),
			(SELECT CASE WHEN count(*) = 1 THEN min(v.vcenter) END FROM vms v WHERE v.ref = p.vm_ref), '') AS vc
		FROM guest_probes p);
DROP TABLE guest_probes;
ALTER TABLE guest_probes_v2 RENAME TO guest_probes;
CREATE INDEX guest_probes_node ON guest_probes(node_id);
CREATE INDEX guest_probes_ref  ON guest_probes(vm_ref);

ALTER TABLE journal ADD COLUMN vcenter TEXT NOT NULL DEFAULT '';
DROP TRIGGER journal_append_only;
UPDATE journal SET vcenter = coalesce(
	(SELECT CASE WHEN count(*) = 1 THEN min(v.vcenter) END FROM vms v WHERE v.ref = journal.vm_ref AND v.name = journal.vm_name),
	(SELECT CASE WHEN count(*) = 1 THEN min(v.vcenter) END FROM vms v WHERE v.ref = journal.vm_ref), '')
	WHERE vm_ref <> '';
CREATE INDEX journal_vm_key ON journal(vcenter, vm_ref);
`

// journalTrigger is migration 1's trigger, recreated by migration 2 once
// the journal's rows are rekeyed.
const journalTrigger = `CREATE TRIGGER journal_append_only BEFORE UPDATE ON journal
BEGIN
	SELECT RAISE(ABORT, 'journal is append-only');
END`

type knownVM struct{ vcenter, name, path string }

// rekeyFindings fills findings.vm_vcenters, rewrites the findings' keys
// (every episode, so that FindingEpisodes finds the old ones under the new
// key) and the journal's finding keys, then recreates the journal trigger.
func rekeyFindings(ctx context.Context, tx *sql.Tx) error {
	known, err := knownVMs(ctx, tx)
	if err != nil {
		return err
	}
	type row struct {
		id                      int64
		key, kind, node         string
		names, paths, refs, vcs []string
	}
	rs, err := tx.QueryContext(ctx, `SELECT id, key, kind, node_id, vms, vm_paths, vm_refs FROM findings ORDER BY id`)
	if err != nil {
		return err
	}
	var rows []row
	for rs.Next() {
		var r row
		var names, paths, refs string
		if err := rs.Scan(&r.id, &r.key, &r.kind, &r.node, &names, &paths, &refs); err != nil {
			rs.Close()
			return err
		}
		for _, p := range []struct {
			s string
			d *[]string
		}{{names, &r.names}, {paths, &r.paths}, {refs, &r.refs}} {
			if err := json.Unmarshal([]byte(p.s), p.d); err != nil {
				rs.Close()
				return fmt.Errorf("finding %d: %w", r.id, err)
			}
		}
		rows = append(rows, r)
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return err
	}
	renamed := map[string]string{} // old key → new key of its latest episode
	for _, r := range rows {
		r.vcs = make([]string, len(r.refs))
		for j, ref := range r.refs {
			r.vcs[j] = vcenterOf(known[ref], nth(r.names, j), nth(r.paths, j))
		}
		f := reconcile.Finding{Kind: r.kind, NodeID: r.node, VMRefs: r.refs, VMVCenters: r.vcs}
		key := f.Key()
		if _, err := tx.ExecContext(ctx, `UPDATE findings SET vm_vcenters = ?, key = ? WHERE id = ?`, jsonList(r.vcs), key, r.id); err != nil {
			return fmt.Errorf("finding %d: %w", r.id, err)
		}
		renamed[r.key] = key
	}
	for old, key := range renamed {
		if old == key {
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE journal SET finding_key = ? WHERE finding_key = ?`, key, old); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, journalTrigger)
	return err
}

func knownVMs(ctx context.Context, tx *sql.Tx) (map[string][]knownVM, error) {
	rows, err := tx.QueryContext(ctx, `SELECT vcenter, ref, name, path FROM vms`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]knownVM{}
	for rows.Next() {
		var v knownVM
		var ref string
		if err := rows.Scan(&v.vcenter, &ref, &v.name, &v.path); err != nil {
			return nil, err
		}
		out[ref] = append(out[ref], v)
	}
	return out, rows.Err()
}

// vcenterOf picks the vCenter of a ref among the VMs known with it: the
// only one, else the only one with the given name and path, else "".
func vcenterOf(cands []knownVM, name, path string) string {
	if len(cands) == 1 {
		return cands[0].vcenter
	}
	found := ""
	n := 0
	for _, c := range cands {
		if (name == "" || c.name == name) && (path == "" || c.path == path) {
			found = c.vcenter
			n++
		}
	}
	if n == 1 {
		return found
	}
	return ""
}

func nth(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return ""
}
