package daemon

import (
	"context"
	"slices"
	"time"

	"github.com/vmreconcile/vmreconcile/audit"
	"github.com/vmreconcile/vmreconcile/kube"
)

// watchKube follows one Kubernetes cluster's Nodes: a Node whose boot ID
// returns to one it had before, or whose systemUUID changes (two machines
// writing one Node: a clone's kubelet with the original's credentials),
// triggers an audit. After any stream error it reconnects with backoff and
// lists again.
func (d *Daemon) watchKube(ctx context.Context, k *audit.KubeSource) {
	bo := backoff{min: d.opts.ReconnectMin, max: d.opts.ReconnectMax}
	seen := map[string]*kubeNodeState{}
	connected := false
	for ctx.Err() == nil {
		c, err := k.Get(d.src.Timeout())
		if err == nil {
			if connected {
				d.m.streamReconnects.WithLabelValues(k.Label()).Inc()
			}
			connected = true
			d.log.Info("following Kubernetes Node changes", "cluster", k.Label())
			start := time.Now()
			err = kube.Follow(ctx, c, func(o kube.Observation) {
				d.keepKube(c.Name(), o)
				d.kubeNode(c.Name(), seen, o)
			})
			if time.Since(start) > 30*time.Second {
				bo.reset()
			}
		}
		if ctx.Err() != nil {
			return
		}
		d.m.apiErrors.WithLabelValues(k.Label()).Inc()
		delay := bo.next()
		d.log.Warn("Kubernetes Node stream lost; reconnecting", "cluster", k.Label(), "retry_in", delay, "err", errString(err))
		sleep(ctx, delay)
	}
}

// maxKubeSightings bounds the sightings kept per cluster between audits.
const maxKubeSightings = 200000

// keepKube keeps a Node sighting for the next audits: the writes between two
// audits, which one list would miss (audits take no window of their own).
// Sightings older than the observation lookback are dropped.
func (d *Daemon) keepKube(cluster string, o kube.Observation) {
	d.mu.Lock()
	defer d.mu.Unlock()
	obs := append(d.kubeSeen[cluster], o)
	cut := 0
	horizon := d.now().Add(-d.historyWindow())
	for cut < len(obs) && (obs[cut].Time.Before(horizon) || len(obs)-cut > maxKubeSightings) {
		cut++
	}
	d.kubeSeen[cluster] = obs[cut:]
}

// kubePrior is a copy of the sightings kept of a cluster.
func (d *Daemon) kubePrior(cluster string) []kube.Observation {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.kubeSeen[cluster])
}

// kubeNodeState is what the watcher knows of one Node.
type kubeNodeState struct {
	boot, uuid string
	boots      map[string]bool
}

// kubeNode records a Node sample and requests an audit when its boot ID
// comes back to an earlier one or its systemUUID changes. A reboot (a new
// boot ID, once) alone triggers nothing.
func (d *Daemon) kubeNode(cluster string, seen map[string]*kubeNodeState, o kube.Observation) {
	if o.Node == "" || o.BootID == "" {
		return
	}
	st, ok := seen[o.Node]
	if !ok {
		seen[o.Node] = &kubeNodeState{boot: o.BootID, uuid: o.SystemUUID, boots: map[string]bool{o.BootID: true}}
		return
	}
	reason := ""
	switch {
	case o.SystemUUID != "" && st.uuid != "" && o.SystemUUID != st.uuid:
		reason = "Node " + o.Node + " changed systemUUID from " + st.uuid + " to " + o.SystemUUID
	case o.BootID != st.boot && st.boots[o.BootID]:
		reason = "Node " + o.Node + " went back to boot ID " + o.BootID
	}
	st.boot, st.boots[o.BootID] = o.BootID, true
	if o.SystemUUID != "" {
		st.uuid = o.SystemUUID
	}
	if reason != "" {
		d.log.Info("Kubernetes Node flipped", "cluster", cluster, "node", o.Node, "change", reason)
		d.requestAudit(trigger{source: "kubernetes", reason: reason, nodeID: cluster + "/" + o.Node, at: o.Time})
	}
}
