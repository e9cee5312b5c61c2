package daemon

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	dswarm "github.com/docker/docker/api/types/swarm"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/audit"
	"github.com/vmreconcile/vmreconcile/collect"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/vsphere"
)

// trigger is one detected change that calls for an audit.
type trigger struct {
	source string // "swarm", "vsphere"
	reason string
	nodeID string // for node flips
	at     time.Time
}

// requestAudit hands a change to the detector (never blocks: when the queue
// is full an audit is already due, which covers this change too).
func (d *Daemon) requestAudit(t trigger) {
	if t.nodeID != "" {
		d.mu.Lock()
		known := d.openByNode[t.nodeID]
		d.mu.Unlock()
		if known {
			d.log.Debug("change on a node with an open finding; no extra audit", "node_id", t.nodeID, "reason", t.reason)
			return
		}
	}
	select {
	case d.detect <- t:
	default:
	}
}

// detector turns changes into audits: the first change arms a Debounce
// timer (no earlier than DetectInterval after the previous detection run);
// changes until it fires join the same audit. If an audit is running, the
// triggered one waits for it rather than being skipped: the running one may
// have collected before the change.
func (d *Daemon) detector(ctx, jobCtx context.Context, wg *sync.WaitGroup) {
	var (
		pending []trigger
		timer   *time.Timer
		fire    <-chan time.Time
		lastRun time.Time
	)
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case t := <-d.detect:
			pending = append(pending, t)
			if timer == nil {
				wait := d.opts.Debounce
				if !lastRun.IsZero() {
					wait = max(wait, d.opts.DetectInterval-time.Since(lastRun))
				}
				timer = time.NewTimer(wait)
				fire = timer.C
			}
		case <-fire:
			timer, fire = nil, nil
			if ctx.Err() != nil {
				// Stopping: select picks at random among ready cases; do not
				// start a new audit during the shutdown grace.
				return
			}
			batch := pending
			pending = nil
			since := batch[0].at
			sources := map[string]bool{}
			for _, t := range batch {
				if t.at.Before(since) {
					since = t.at
				}
				sources[t.source] = true
			}
			for s := range sources {
				d.m.detectionRuns.WithLabelValues(s).Inc()
			}
			d.log.Info("change detected; auditing now", "reason", batch[0].reason, "changes", len(batch))
			wg.Add(1)
			func() {
				defer wg.Done()
				_ = d.runLocked(jobCtx, JobAudit, d.auditSem, func(ctx context.Context) error {
					return d.audit(ctx, "detect:"+batch[0].source, since)
				}, true)
			}()
			lastRun = time.Now()
		}
	}
}

// backoff is an exponential reconnect delay.
type backoff struct{ min, max, cur time.Duration }

func (b *backoff) next() time.Duration {
	if b.cur < b.min {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// watchSwarm follows one swarm's node events through its current manager.
// A node ID whose name changes (a clone and its original taking turns)
// triggers an audit. After any stream error it reconnects with backoff,
// fails over to the next manager when the current one does not answer, re-lists
// the nodes (changes missed while disconnected show up as name changes) and
// replays the events it missed.
func (d *Daemon) watchSwarm(ctx context.Context, s *audit.SwarmSource) {
	names := map[string]string{}
	bo := backoff{min: d.opts.ReconnectMin, max: d.opts.ReconnectMax}
	var since time.Time
	connected := false
	for ctx.Err() == nil {
		host, cli, err := s.Current(ctx, d.src.Timeout())
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.m.apiErrors.WithLabelValues(s.Label()).Inc()
			delay := bo.next()
			d.log.Warn("swarm event stream: no manager reachable", "swarm", s.Label(), "retry_in", delay, "err", oneLine(err.Error()))
			sleep(ctx, delay)
			continue
		}
		if connected {
			d.m.streamReconnects.WithLabelValues(s.Label()).Inc()
			d.restarts.note(s.Label(), d.now())
		}
		connected = true
		nodes, err := cli.NodeList(ctx, dswarm.NodeListOptions{})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.m.apiErrors.WithLabelValues(s.Label()).Inc()
			s.Next()
			delay := bo.next()
			d.log.Warn("swarm event stream: node list failed", "swarm", s.Label(), "host", host, "retry_in", delay, "err", oneLine(err.Error()))
			sleep(ctx, delay)
			continue
		}
		for _, n := range nodes {
			d.nodeName(names, n.ID, n.Description.Hostname, "list", time.Now())
		}
		opts := events.ListOptions{Filters: filters.NewArgs(filters.Arg("type", string(events.NodeEventType)))}
		if !since.IsZero() {
			opts.Since = since.Add(-time.Second).Format(time.RFC3339Nano)
		}
		sctx, cancel := context.WithCancel(ctx)
		msgs, errs := cli.Events(sctx, opts)
		d.log.Info("following swarm node events", "swarm", s.Label(), "host", host, "nodes", len(nodes))
		start := time.Now()
		err = func() error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case err := <-errs:
					return err
				case m := <-msgs:
					if m.Type != events.NodeEventType {
						continue
					}
					at := time.Unix(0, m.TimeNano)
					if m.TimeNano == 0 {
						at = time.Unix(m.Time, 0)
					}
					if at.After(since) {
						since = at
					}
					switch m.Action {
					case events.ActionRemove:
						delete(names, m.Actor.ID)
					default:
						d.nodeName(names, m.Actor.ID, m.Actor.Attributes["name"], "event", at)
					}
				}
			}
		}()
		cancel()
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 30*time.Second {
			bo.reset()
		} else {
			s.Next() // a stream that dies at once: try the next manager first
		}
		d.m.apiErrors.WithLabelValues(s.Label()).Inc()
		delay := bo.next()
		d.log.Warn("swarm event stream lost; reconnecting", "swarm", s.Label(), "host", host, "retry_in", delay, "err", errString(err))
		sleep(ctx, delay)
	}
}

// nodeName records a node's current name and requests an audit when it
// differs from the name seen before.
func (d *Daemon) nodeName(names map[string]string, id, name, how string, at time.Time) {
	if id == "" || name == "" {
		return
	}
	old, ok := names[id]
	names[id] = name
	if ok && old != name {
		d.log.Info("swarm node changed name", "node_id", id, "from", old, "to", name, "seen_by", how)
		d.requestAudit(trigger{source: "swarm", reason: "node " + id + " changed name from " + old + " to " + name, nodeID: id, at: at})
	}
}

func errString(err error) string {
	if err == nil {
		return "stream closed"
	}
	return oneLine(err.Error())
}

// vmWatchProps are the VM properties whose changes call for an audit.
var vmWatchProps = []string{"runtime.powerState", "guest.hostName"}

// watchVCenter follows VM changes in one vCenter through a private property
// collector (WaitForUpdatesEx on a container view of every VM under the
// configured roots): a new VM (clone, deploy), a power-on or a new guest
// hostname triggers an audit. The first update set ever is the current state
// and triggers nothing; after a reconnect the first update set is compared
// with the state known before, so that a clone or power-on that happened while
// the stream was down still triggers (as the swarm watcher re-lists nodes).
func (d *Daemon) watchVCenter(ctx context.Context, v *audit.VCenterSource) {
	bo := backoff{min: d.opts.ReconnectMin, max: d.opts.ReconnectMax}
	connected := false
	st := &vmWatchState{known: map[string]vmState{}}
	for ctx.Err() == nil {
		if connected {
			d.m.streamReconnects.WithLabelValues(v.Label()).Inc()
		}
		start := time.Now()
		err := d.waitVMUpdates(ctx, v, &connected, st)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 30*time.Second {
			bo.reset()
		}
		d.m.apiErrors.WithLabelValues(v.Label()).Inc()
		var se *collect.SourceError
		if !errors.As(err, &se) {
			v.Reset() // the session may be what broke
		}
		delay := bo.next()
		d.log.Warn("vCenter change stream lost; reconnecting", "vcenter", v.Host(), "retry_in", delay, "err", errString(err))
		sleep(ctx, delay)
	}
}

// vmState is what the vCenter watcher knows of one VM.
type vmState struct {
	on   bool
	host string
}

// vmWatchState is the vCenter watcher's memory across reconnects.
type vmWatchState struct {
	known  map[string]vmState // VM ref -> last known state
	synced bool               // a complete initial update set was received once
}

func (d *Daemon) waitVMUpdates(ctx context.Context, v *audit.VCenterSource, connected *bool, st *vmWatchState) error {
	vc, err := v.Get(ctx, d.src.Timeout())
	if err != nil {
		return err
	}
	cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	pc, err := property.DefaultCollector(vc.Client).Create(ctx)
	if err != nil {
		return err
	}
	defer pc.Destroy(cleanup)
	filter := new(property.WaitFilter)
	for _, root := range vc.Roots {
		cv, err := view.NewManager(vc.Client).CreateContainerView(ctx, root, []string{"VirtualMachine"}, true)
		if err != nil {
			return err
		}
		defer cv.Destroy(cleanup)
		filter.Add(cv.Reference(), "VirtualMachine", vmWatchProps, &types.TraversalSpec{Type: "ContainerView", Path: "view"})
	}
	if len(filter.Spec.ObjectSet) == 0 {
		return errors.New("no datacenter to watch")
	}
	for i := range filter.Spec.ObjectSet {
		filter.Spec.ObjectSet[i].Skip = types.NewBool(true)
	}
	// Wait at most half the per-call deadline each time: a wait longer than
	// the session's request timeout would be cut as a failure.
	filter.Options = &types.WaitOptions{MaxWaitSeconds: types.NewInt32(int32(max(1, min(60, d.src.Timeout().Seconds()/2))))}
	filter.Spec.PropSet = filter.Spec.PropSet[:1]
	*connected = true
	d.log.Info("following vCenter VM changes", "vcenter", v.Host())
	// The initial update set is the current state; it lasts until an update
	// set that is not truncated (a large inventory may come in several).
	initial := true
	seen := map[string]bool{}
	return property.WaitForUpdatesEx(ctx, pc, filter, func(updates []types.ObjectUpdate) bool {
		for _, u := range updates {
			ref := u.Obj.Value
			if u.Kind == types.ObjectUpdateKindLeave {
				delete(st.known, ref)
				continue
			}
			prev, had := st.known[ref]
			cur := prev
			for _, c := range u.ChangeSet {
				switch c.Name {
				case "runtime.powerState":
					ps, _ := c.Val.(types.VirtualMachinePowerState)
					cur.on = ps == types.VirtualMachinePowerStatePoweredOn
				case "guest.hostName":
					cur.host, _ = c.Val.(string)
				}
			}
			st.known[ref] = cur
			if initial {
				seen[ref] = true
				if !st.synced {
					continue // the first state ever: the baseline
				}
			}
			reason := ""
			switch {
			case !had:
				reason = "new VM " + ref
			case cur.on && !prev.on:
				reason = "VM " + ref + " powered on"
			case cur.host != "" && cur.host != prev.host:
				reason = "VM " + ref + " reports guest hostname " + cur.host
			}
			if reason != "" {
				d.log.Info("vCenter change", "vcenter", v.Host(), "change", reason)
				d.requestAudit(trigger{source: "vsphere", reason: reason, at: time.Now()})
			}
		}
		if initial && !filter.Truncated {
			initial = false
			for ref := range st.known {
				if !seen[ref] {
					delete(st.known, ref) // went away while disconnected
				}
			}
			st.synced = true
		}
		return false
	})
}

// vsphereLineage reads lineage under one root (a seam for tests).
var vsphereLineage = func(ctx context.Context, vc collect.VCenter, root types.ManagedObjectReference) (map[string]reconcile.Lineage, error) {
	return vsphere.Lineage(ctx, vc.Client, root, vsphere.LineageOptions{})
}
