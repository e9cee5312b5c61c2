package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migration is one schema step: its SQL, then, when set, fn in the same
// transaction (data rewrites SQL cannot express).
type migration struct {
	sql string
	fn  func(ctx context.Context, tx *sql.Tx) error
}

// migrations are applied in order; migrations[i] brings the schema to version
// i+1. Never edit a released migration: append a new one.
var migrations = []migration{
	// 1: initial schema (see doc.go).
	{sql: `
CREATE TABLE runs (
	id            INTEGER PRIMARY KEY,
	started       INTEGER NOT NULL,
	finished      INTEGER NOT NULL,
	collected_at  INTEGER,
	ok            INTEGER NOT NULL,
	error         TEXT    NOT NULL DEFAULT '',
	vcenters      TEXT    NOT NULL DEFAULT '[]',
	vms           INTEGER NOT NULL DEFAULT 0,
	templates     INTEGER NOT NULL DEFAULT 0,
	powered_on    INTEGER NOT NULL DEFAULT 0,
	swarms        INTEGER NOT NULL DEFAULT 0,
	nodes         INTEGER NOT NULL DEFAULT 0,
	matched_nodes INTEGER NOT NULL DEFAULT 0,
	findings      INTEGER NOT NULL DEFAULT 0,
	critical      INTEGER NOT NULL DEFAULT 0,
	warning       INTEGER NOT NULL DEFAULT 0,
	info          INTEGER NOT NULL DEFAULT 0,
	opened        INTEGER NOT NULL DEFAULT 0,
	resolved      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_started ON runs(started);

CREATE TABLE node_observations (
	id             INTEGER PRIMARY KEY,
	run_id         INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	cluster_id     TEXT    NOT NULL,
	node_id        TEXT    NOT NULL,
	role           TEXT    NOT NULL DEFAULT '',
	state          TEXT    NOT NULL DEFAULT '',
	availability   TEXT    NOT NULL DEFAULT '',
	hostname       TEXT    NOT NULL,
	nano_cpus      INTEGER NOT NULL DEFAULT 0,
	memory_bytes   INTEGER NOT NULL DEFAULT 0,
	addr           TEXT    NOT NULL DEFAULT '',
	engine_version TEXT    NOT NULL DEFAULT '',
	events_only    INTEGER NOT NULL DEFAULT 0,
	first_seen     INTEGER,
	last_seen      INTEGER,
	seen           INTEGER NOT NULL DEFAULT 0,
	vm_refs        TEXT    NOT NULL DEFAULT '[]'
);
CREATE INDEX node_observations_run      ON node_observations(run_id);
CREATE INDEX node_observations_node     ON node_observations(node_id, run_id);
CREATE INDEX node_observations_hostname ON node_observations(hostname);

CREATE TABLE node_vms (
	node_id    TEXT    NOT NULL,
	vm_ref     TEXT    NOT NULL,
	first_seen INTEGER NOT NULL,
	last_seen  INTEGER NOT NULL,
	PRIMARY KEY (node_id, vm_ref)
) WITHOUT ROWID;
CREATE INDEX node_vms_vm ON node_vms(vm_ref);

CREATE TABLE vms (
	vcenter       TEXT    NOT NULL,
	ref           TEXT    NOT NULL,
	name          TEXT    NOT NULL,
	path          TEXT    NOT NULL DEFAULT '',
	bios_uuid     TEXT    NOT NULL DEFAULT '',
	instance_uuid TEXT    NOT NULL DEFAULT '',
	template      INTEGER NOT NULL DEFAULT 0,
	first_seen    INTEGER NOT NULL,
	last_seen     INTEGER NOT NULL,
	first_run     INTEGER NOT NULL,
	last_run      INTEGER NOT NULL,
	PRIMARY KEY (vcenter, ref)
);
CREATE INDEX vms_ref  ON vms(ref);
CREATE INDEX vms_name ON vms(name);

CREATE TABLE lineage (
	vcenter        TEXT    NOT NULL,
	vm_ref         TEXT    NOT NULL,
	source_ref     TEXT    NOT NULL,
	source_name    TEXT    NOT NULL DEFAULT '',
	kind           TEXT    NOT NULL DEFAULT '',
	time           INTEGER,
	first_recorded INTEGER NOT NULL,
	last_reported  INTEGER NOT NULL,
	PRIMARY KEY (vcenter, vm_ref)
);
CREATE INDEX lineage_vm     ON lineage(vm_ref);
CREATE INDEX lineage_source ON lineage(source_ref);

CREATE TABLE findings (
	id               INTEGER PRIMARY KEY,
	key              TEXT    NOT NULL,
	kind             TEXT    NOT NULL,
	severity         TEXT    NOT NULL,
	node_id          TEXT    NOT NULL DEFAULT '',
	vms              TEXT    NOT NULL DEFAULT '[]',
	vm_paths         TEXT    NOT NULL DEFAULT '[]',
	vm_refs          TEXT    NOT NULL DEFAULT '[]',
	original         TEXT    NOT NULL DEFAULT '',
	evidence         TEXT    NOT NULL DEFAULT '[]',
	remedy           TEXT    NOT NULL DEFAULT '',
	confirmed        INTEGER NOT NULL DEFAULT 0,
	dormant          INTEGER NOT NULL DEFAULT 0,
	first_seen       INTEGER NOT NULL,
	last_seen        INTEGER NOT NULL,
	resolved_at      INTEGER,
	first_run        INTEGER NOT NULL,
	last_run         INTEGER NOT NULL,
	resolved_run     INTEGER,
	seen_runs        INTEGER NOT NULL DEFAULT 1,
	alerted_open     INTEGER,
	alerted_resolved INTEGER
);
CREATE UNIQUE INDEX findings_open_key ON findings(key) WHERE resolved_at IS NULL;
CREATE INDEX findings_key  ON findings(key);
CREATE INDEX findings_node ON findings(node_id);

CREATE TABLE guest_probes (
	vm_ref    TEXT    PRIMARY KEY,
	probed_at INTEGER NOT NULL,
	node_id   TEXT    NOT NULL DEFAULT '',
	identity  TEXT    NOT NULL
);
CREATE INDEX guest_probes_node ON guest_probes(node_id);

CREATE TABLE journal (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	intent_id   INTEGER REFERENCES journal(id) ON DELETE CASCADE,
	plan_id     TEXT    NOT NULL,
	vm_ref      TEXT    NOT NULL DEFAULT '',
	vm_name     TEXT    NOT NULL DEFAULT '',
	action      TEXT    NOT NULL,
	reason      TEXT    NOT NULL DEFAULT '',
	finding_key TEXT    NOT NULL DEFAULT '',
	phase       TEXT    NOT NULL CHECK (phase IN ('intent', 'outcome')),
	status      TEXT    NOT NULL,
	detail      TEXT    NOT NULL DEFAULT '',
	time        INTEGER NOT NULL,
	CHECK ((phase = 'intent') = (intent_id IS NULL))
);
CREATE UNIQUE INDEX journal_outcome ON journal(intent_id) WHERE phase = 'outcome';
CREATE INDEX journal_plan ON journal(plan_id, id);
CREATE INDEX journal_vm   ON journal(vm_ref);
CREATE INDEX journal_time ON journal(time);
CREATE TRIGGER journal_append_only BEFORE UPDATE ON journal
BEGIN
	SELECT RAISE(ABORT, 'journal is append-only');
END;
`},
	// 2: VMs are keyed by vCenter and ref (see migrate2.go).
	{sql: migration2, fn: rekeyFindings},
	// 3: confirmed resolution (absence streaks, how a finding resolved,
	// partial runs) and per-sink alert delivery records.
	{sql: `
ALTER TABLE findings ADD COLUMN absent_runs  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE findings ADD COLUMN absent_since INTEGER;
ALTER TABLE findings ADD COLUMN resolved_by  TEXT    NOT NULL DEFAULT '';
ALTER TABLE runs     ADD COLUMN partial      TEXT    NOT NULL DEFAULT '';

CREATE TABLE alert_deliveries (
	finding_id INTEGER NOT NULL REFERENCES findings(id) ON DELETE CASCADE,
	event      TEXT    NOT NULL,
	sink       TEXT    NOT NULL,
	status     TEXT    NOT NULL,
	attempts   INTEGER NOT NULL DEFAULT 0,
	detail     TEXT    NOT NULL DEFAULT '',
	time       INTEGER NOT NULL,
	PRIMARY KEY (finding_id, event, sink)
) WITHOUT ROWID;
CREATE INDEX alert_deliveries_sink ON alert_deliveries(sink, status);
`},
	// 4: what each Kubernetes Node was written with, per run (the history
	// that names a shared Node's original).
	{sql: `
CREATE TABLE kube_node_observations (
	id             INTEGER PRIMARY KEY,
	run_id         INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	cluster        TEXT    NOT NULL,
	node           TEXT    NOT NULL,
	boot_id        TEXT    NOT NULL DEFAULT '',
	machine_id     TEXT    NOT NULL DEFAULT '',
	system_uuid    TEXT    NOT NULL DEFAULT '',
	kernel         TEXT    NOT NULL DEFAULT '',
	kubelet        TEXT    NOT NULL DEFAULT '',
	cpus           INTEGER NOT NULL DEFAULT 0,
	memory_bytes   INTEGER NOT NULL DEFAULT 0,
	internal_ip    TEXT    NOT NULL DEFAULT '',
	hostname       TEXT    NOT NULL DEFAULT '',
	events_only    INTEGER NOT NULL DEFAULT 0,
	first_seen     INTEGER,
	last_seen      INTEGER,
	seen           INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX kube_node_observations_run  ON kube_node_observations(run_id);
CREATE INDEX kube_node_observations_node ON kube_node_observations(cluster, node, run_id);
`},
}

const createVersionTable = `CREATE TABLE IF NOT EXISTS schema_version (
	version    INTEGER PRIMARY KEY,
	applied_at INTEGER NOT NULL
)`

// migrate applies the missing migrations, each in its own BEGIN IMMEDIATE
// transaction, re-reading the version inside it so that concurrent openers
// cannot apply one twice.
func (s *Store) migrate(ctx context.Context) error {
	for {
		done := false
		err := s.withTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, createVersionTable); err != nil {
				return err
			}
			v, err := versionOf(ctx, tx)
			if err != nil {
				return err
			}
			if v > len(migrations) {
				return fmt.Errorf("%w: schema version %d is newer than this binary knows (%d): upgrade vmreconcile", ErrSchema, v, len(migrations))
			}
			if v == len(migrations) {
				done = true
				return nil
			}
			if _, err := tx.ExecContext(ctx, migrations[v].sql); err != nil {
				return fmt.Errorf("migration %d: %w", v+1, err)
			}
			if fn := migrations[v].fn; fn != nil {
				if err := fn(ctx, tx); err != nil {
					return fmt.Errorf("migration %d: %w", v+1, err)
				}
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_version(version, applied_at) VALUES (?, ?)`, v+1, s.now().UnixNano())
			return err
		})
		if err != nil || done {
			return err
		}
	}
}

func (s *Store) checkVersion(ctx context.Context) error {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'`).Scan(&n); err != nil {
		return err
	}
	v := 0
	if n > 0 {
		var err error
		if v, err = versionOf(ctx, s.db); err != nil {
			return err
		}
	}
	if v != len(migrations) {
		return fmt.Errorf("%w: schema version %d, this binary reads %d: open it once read-write (audit or the daemon) to migrate", ErrSchema, v, len(migrations))
	}
	return nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func versionOf(ctx context.Context, q queryer) (int, error) {
	var v sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT max(version) FROM schema_version`).Scan(&v); err != nil {
		return 0, err
	}
	return int(v.Int64), nil
}
