// Package store is vmreconcile's history store: an embedded SQLite file
// (modernc.org/sqlite, pure Go) holding every piece of state that must
// survive a run: the runs, what each run saw of the swarm nodes, VM lineage
// that vCenter's event retention will drop, the findings and whether they
// were alerted, the last guest probe of each VM, and the action journal.
//
// # Opening
//
// Open creates the file and applies the migrations (ordered SQL steps, some
// with a Go data rewrite, recorded in schema_version; each in its own BEGIN IMMEDIATE transaction,
// so concurrent openers never apply one twice). Connections use WAL,
// synchronous=FULL, foreign keys and a busy timeout; write transactions
// begin IMMEDIATE. A process killed at any point (SIGKILL included) leaves
// the file consistent: an uncommitted transaction is simply absent when the
// store is next opened.
//
// Options.Exclusive (the daemon) holds flock(LOCK_EX|LOCK_NB) on PATH+".lock"
// for the Store's lifetime, with the holder's pid written in the file; a
// second exclusive Open fails with a *LockedError (errors.Is ErrLocked):
// "store PATH is in use by another vmreconcile process (pid N)". The kernel
// releases the lock when the holder dies, however it dies. Options.ReadOnly
// (the history command, audit reading history) takes no lock, never
// migrates, and works while the daemon writes (WAL readers do not block).
//
// Nothing in the process may open and close the database file itself (to
// hash or copy it): closing any descriptor of it drops SQLite's POSIX locks.
//
// # Schema (version 2)
//
// Times are INTEGER Unix nanoseconds (UTC); NULL is the zero time. Lists are
// JSON arrays in TEXT columns.
//
//	schema_version     version PK, applied_at — one row per applied migration.
//	runs               id PK, started, finished, collected_at, ok, error, vcenters (json),
//	                   counts: vms, templates, powered_on, swarms, nodes, matched_nodes,
//	                   findings, critical, warning, info, opened, resolved, partial (why a
//	                   successful run could resolve nothing; "" for a complete run).
//	                   Failed runs (RecordFailure) have ok=0 and no other rows.
//	node_observations  id PK, run_id → runs ON DELETE CASCADE, cluster_id, node_id, role,
//	                   state, availability, hostname, nano_cpus, memory_bytes, addr,
//	                   engine_version, events_only, first_seen, last_seen, seen, vm_refs (json:
//	                   the VMs the description matched). One row per distinct description
//	                   per node per run (descriptions merged across managers), never per sample.
//	                   Indexed by (node_id, run_id), run_id, hostname.
//	node_vms           (node_id, vm_ref) PK, first_seen, last_seen — which VMs each node
//	                   ID was matched to, for VM timelines.
//	vms                (vcenter, ref) PK, name, path, bios_uuid, instance_uuid, template,
//	                   first_seen, last_seen, first_run, last_run — every VM seen, its
//	                   current name; for name lookups and lineage retention.
//	lineage            (vcenter, vm_ref) PK, source_ref, source_name, kind, time,
//	                   first_recorded, last_reported. Upserted when vCenter reports it,
//	                   never deleted because vCenter stopped reporting it (event retention);
//	                   Prune drops it only once its VM has not been seen for the retention.
//	findings           id PK, key (Finding.Key()), kind, severity, node_id, vms, vm_paths,
//	                   vm_refs, vm_vcenters, evidence (json), original, remedy, confirmed, dormant,
//	                   first_seen, last_seen, resolved_at, first_run, last_run, resolved_run,
//	                   seen_runs, alerted_open, alerted_resolved, absent_runs, absent_since,
//	                   resolved_by ('absence'|'remediation'). One row per episode:
//	                   at most one open row per key (partial unique index); a key that
//	                   resolves and returns opens a new row, alerted anew.
//	alert_deliveries   (finding_id → findings ON DELETE CASCADE, event, sink) PK, status
//	                   ('delivered'|'failed': given up), attempts, detail, time — what
//	                   each alert sink did with each alert (sink: a stable ID, never a URL).
//	guest_probes       (vcenter, vm_ref) PK, probed_at, node_id, identity (json
//	                   GuestIdentity) — the last probe of each VM. Indexed by node_id, vm_ref.
//	journal            id PK AUTOINCREMENT, intent_id → journal ON DELETE CASCADE
//	                   (outcome rows), plan_id, vcenter, vm_ref, vm_name, action, reason,
//	                   finding_key, phase ('intent'|'outcome'), status ('pending' on
//	                   intents), detail, time. Append-only (an UPDATE trigger aborts); at
//	                   most one outcome per intent (partial unique index). An intent
//	                   without outcome is unfinished: the process died or gave up between
//	                   announcing an action and reporting it.
//
// VMs are named by vCenter and ref (reconcile.VMKey) in findings (vm_vcenters,
// and the key), guest_probes and the journal; an empty vcenter is an unknown or unnamed
// vCenter. Schema 2 (migrate2.go) added those columns to a schema-1 file in
// place and derived the vCenter of older rows from the vms table.
//
// # Findings and alerts
//
// RecordRun updates the findings in the run's transaction: a key not open
// opens, an open key present again is refreshed, an open key absent counts
// one more absence and resolves only as ResolvePolicy says (consecutive
// complete runs spanning enough time, or a remediation outcome; failed and
// partial runs never count). PendingAlerts lists the openings not yet alerted
// and the resolutions of alerted findings not yet alerted; RecordDelivery
// records what each sink did with each and marks an alert sent (as
// MarkAlertedID) once every sink is done with it. Since both live in the
// file, a restarted daemon loses no alert and repeats at most the deliveries
// that were in flight when it died (at-least-once).
//
// # Retention
//
// Prune(olderThan) drops old runs (keeping the latest successful one),
// findings resolved before olderThan whose resolution was alerted or whose
// opening never could be (a webhook down for the whole retention: an alert
// that old is no longer news, and keeping it would let a dead webhook grow
// the store forever), lineage and VM rows of VMs not seen since, old probes
// and finished journal pairs; never open findings or unfinished intents.
package store
