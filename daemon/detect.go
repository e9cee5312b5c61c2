package daemon

import (
	"context"
	"errors"
	"runtime/debug"
	"sync"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	dswarm "github.com/docker/docker/api/types/swarm"
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

// lineageOverlap is how far before the newest clone or deploy event the
// store holds the daemon's mirror starts reading events again: the events
// of a vCenter whose clock moved back, or that were posted while the last
// run was being recorded. Events read twice are de-duplicated by key.
const lineageOverlap = 10 * time.Minute

// watchVCenter keeps one vCenter's live mirror in sync (vsphere.Mirror: one
// private property collector and WaitForUpdatesEx filter over the VM
// hierarchy and the clone/deploy events), which audits read instead of
// collecting, and turns its changes into audits: a new VM (clone, deploy), a
// power-on or a new guest hostname. The first sync is the baseline and
// triggers nothing; after a lost stream the mirror re-syncs and reports what
// changed meanwhile, so that a clone or power-on while the stream was down
// still triggers (as the swarm watcher re-lists nodes).
func (d *Daemon) watchVCenter(ctx context.Context, v *audit.VCenterSource) {
	bo := backoff{min: d.opts.ReconnectMin, max: d.opts.ReconnectMax}
	connected := false
	for ctx.Err() == nil {
		if connected {
			d.m.streamReconnects.WithLabelValues(v.Label()).Inc()
		}
		start := time.Now()
		err := d.followVCenter(ctx, v, &connected)
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

// followVCenter runs the vCenter's mirror over its current session until
// the stream fails. The mirror is made on the first connection, seeded with
// the lineage the store holds so that only newer events are read.
func (d *Daemon) followVCenter(ctx context.Context, v *audit.VCenterSource, connected *bool) error {
	vc, err := v.Get(ctx, d.src.Timeout())
	if err != nil {
		return err
	}
	m := v.Mirror()
	if m == nil {
		known, newest, err := d.st.Lineage(ctx, vc.Name)
		if err != nil {
			return err
		}
		opts := vsphere.MirrorOptions{
			Include: vc.Include, Exclude: vc.Exclude, KnownLineage: known,
			// Wait at most half the per-call deadline each time: a wait
			// longer than the session's request timeout would be cut as a
			// failure.
			MaxWait:     time.Duration(max(1, min(60, d.src.Timeout().Seconds()/2))) * time.Second,
			CallTimeout: d.src.Timeout(),
			OnUpdate:    func(u vsphere.MirrorUpdate) { d.mirrorUpdate(v, u) },
		}
		if !newest.IsZero() {
			opts.LineageSince = newest.Add(-lineageOverlap)
		}
		if m, err = vsphere.NewMirror(vc.Roots, opts); err != nil {
			return err
		}
		v.SetMirror(m)
	}
	*connected = true
	d.log.Info("following vCenter changes", "vcenter", v.Host())
	return m.Run(ctx, vc.Client)
}

// mirrorUpdate turns what one update set (or a re-sync) changed into audits.
func (d *Daemon) mirrorUpdate(v *audit.VCenterSource, u vsphere.MirrorUpdate) {
	switch {
	case u.Initial:
		d.log.Info("vCenter mirror in sync", "vcenter", v.Host(), "lineage_events", u.NewLineage)
	case u.Resync:
		d.log.Info("vCenter mirror re-synced after a lost stream", "vcenter", v.Host(), "changes", len(u.Changes))
	}
	if u.Initial || u.Resync {
		// A sync decodes the whole inventory once; hand its garbage back to
		// the OS now rather than keep the daemon's RSS at its peak.
		debug.FreeOSMemory()
	}
	for _, c := range u.Changes {
		if reason := vmChangeReason(c); reason != "" {
			d.log.Info("vCenter change", "vcenter", v.Host(), "change", reason)
			d.requestAudit(trigger{source: "vsphere", reason: reason, at: time.Now()})
		}
	}
}

// vmChangeReason says why a VM's change calls for an audit, or "".
func vmChangeReason(c vsphere.VMChange) string {
	on := string(types.VirtualMachinePowerStatePoweredOn)
	switch {
	case c.New == nil:
		return ""
	case c.Old == nil:
		return "new VM " + c.Ref
	case c.New.PowerState == on && c.Old.PowerState != on:
		return "VM " + c.Ref + " powered on"
	case c.New.GuestHostname != "" && c.New.GuestHostname != c.Old.GuestHostname:
		return "VM " + c.Ref + " reports guest hostname " + c.New.GuestHostname
	}
	return ""
}

// vsphereLineage reads lineage under one root (a seam for tests).
var vsphereLineage = func(ctx context.Context, vc collect.VCenter, root types.ManagedObjectReference) (map[string]reconcile.Lineage, error) {
	return vsphere.Lineage(ctx, vc.Client, root, vsphere.LineageOptions{})
}
