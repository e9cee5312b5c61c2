package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// recordKubeObservations stores every identity each Kubernetes Node was
// written with in this run.
func recordKubeObservations(ctx context.Context, tx *sql.Tx, clusters []reconcile.KubeCluster, runID int64) error {
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO kube_node_observations(run_id, cluster, node, boot_id, machine_id,
		system_uuid, kernel, kubelet, cpus, memory_bytes, internal_ip, hostname, events_only, first_seen, last_seen, seen)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, c := range clusters {
		for _, n := range c.Nodes {
			for _, id := range n.Identities {
				if _, err := stmt.ExecContext(ctx, runID, c.Name, n.Name, id.BootID, id.MachineID, id.SystemUUID,
					id.KernelVersion, id.KubeletVersion, id.CPUs, id.MemoryBytes, id.InternalIP, id.Hostname,
					b2i(id.EventsOnly), t2i(id.FirstSeen), t2i(id.LastSeen), id.Seen); err != nil {
					return fmt.Errorf("insert observation of Node %s/%s: %w", c.Name, n.Name, err)
				}
			}
		}
	}
	return nil
}

// kubeHistory is what successful runs since then saw of each Kubernetes
// Node, by reconcile.KubeNodeKey: each distinct identity with its first and
// last sighting.
func (s *Store) kubeHistory(ctx context.Context, since time.Time) (map[string][]reconcile.KubeIdentity, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT o.cluster, o.node, o.boot_id, o.machine_id, o.system_uuid, o.kernel, o.kubelet,
			o.cpus, o.memory_bytes, o.internal_ip, o.hostname, min(o.events_only), min(o.first_seen), max(o.last_seen), sum(o.seen)
		FROM kube_node_observations o JOIN runs r ON r.id = o.run_id
		WHERE r.ok = 1 AND r.started >= ?
		GROUP BY o.cluster, o.node, o.boot_id, o.machine_id, o.system_uuid, o.kernel, o.kubelet, o.cpus, o.memory_bytes, o.internal_ip, o.hostname
		ORDER BY o.cluster, o.node, min(o.first_seen), o.boot_id`, since2i(since))
	if err != nil {
		return nil, fmt.Errorf("store: history: %w", err)
	}
	defer rows.Close()
	out := map[string][]reconcile.KubeIdentity{}
	for rows.Next() {
		var cluster, node string
		var id reconcile.KubeIdentity
		var eventsOnly int
		var first, last sql.NullInt64
		if err := rows.Scan(&cluster, &node, &id.BootID, &id.MachineID, &id.SystemUUID, &id.KernelVersion, &id.KubeletVersion,
			&id.CPUs, &id.MemoryBytes, &id.InternalIP, &id.Hostname, &eventsOnly, &first, &last, &id.Seen); err != nil {
			return nil, fmt.Errorf("store: history: %w", err)
		}
		id.EventsOnly = eventsOnly == 1
		id.FirstSeen, id.LastSeen = i2t(first), i2t(last)
		k := reconcile.KubeNodeKey(cluster, node)
		out[k] = append(out[k], id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: history: %w", err)
	}
	return out, nil
}
