// Package daemon is `vmreconcile daemon`: scheduled and event-driven audits
// with a history store, webhook alerts, Prometheus metrics and health
// endpoints.
//
// One Daemon runs:
//   - cron jobs (robfig/cron, config.CronParser): audit, lineage refresh and
//     store pruning. A job that fires while its previous run is still going
//     is skipped and counted (vmreconcile_runs_skipped_total), never queued.
//   - event-driven detection: each swarm manager's node event stream (with
//     reconnect, backoff and failover to the next manager) and each vCenter's
//     VM changes (property collector WaitForUpdatesEx). A node whose name
//     flips, a new VM or a power-on triggers an audit within about a second.
//   - after every successful audit: store.RecordRun, pending alerts to the
//     webhooks (each finding alerts once when it opens and once when it
//     resolves, across restarts), remediation when the policy allows it.
//   - an HTTP server: /metrics, /livez, /readyz.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/vmreconcile/vmreconcile/audit"
	"github.com/vmreconcile/vmreconcile/collect"
	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/guest"
	"github.com/vmreconcile/vmreconcile/kube"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/remediate"
	"github.com/vmreconcile/vmreconcile/store"
)

// Job names, as they appear in logs and metric labels.
const (
	JobAudit   = "audit"
	JobLineage = "lineage"
	JobPrune   = "prune"
)

// Options configure a Daemon. Config and Store are required.
type Options struct {
	Config config.Config
	// Store is the history store, opened writable (Exclusive, so that a second
	// daemon cannot share it). The caller closes it after Run returns.
	Store *store.Store
	// Logger defaults to NewLogger(Config.Log, os.Stderr).
	Logger *slog.Logger
	// HTTPClient posts the webhooks; default: a client with no global timeout
	// (each webhook has its own).
	HTTPClient *http.Client
	// Listener serves /metrics, /livez and /readyz; when nil, Run listens on
	// Config.Listen (nothing when that is empty).
	Listener net.Listener

	// Debounce is how long a detected change waits for more changes before
	// the audit it triggers starts. Default 1s.
	Debounce time.Duration
	// DetectInterval is the minimum time between two detection-triggered
	// audits; changes meanwhile are coalesced into the next one, never lost.
	// Default 2s.
	DetectInterval time.Duration
	// AuditTimeout bounds one audit. Default 5m.
	AuditTimeout time.Duration
	// ShutdownTimeout is how long a running job may take to finish after
	// Run's context is canceled before it is canceled too. Default 10s.
	ShutdownTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the event streams' exponential
	// reconnect backoff. Defaults 500ms and 30s.
	ReconnectMin, ReconnectMax time.Duration
	// AlertBackoff is the first webhook retry delay (doubling). Default 1s.
	AlertBackoff time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Daemon is a running vmreconcile daemon. Create it with New, then Run.
type Daemon struct {
	opts   Options
	cfg    config.Config
	st     *store.Store
	log    *slog.Logger
	m      *metrics
	alerts *alerter
	now    func() time.Time

	src *audit.Sources
	// logins are the guest logins (policy remediation and its probes).
	logins *guest.Logins
	// runner remediates per policy.remediate; nil when it is off.
	runner *remediate.Runner

	// auditSem serialises audits (scheduled, detection-triggered, -once).
	auditSem chan struct{}
	jobSems  map[string]chan struct{}

	detect chan trigger

	mu         sync.Mutex
	sourceOK   map[string]time.Time // label -> last successful collection
	sourceErr  map[string]string    // label -> last error, "" after a success
	lineage    map[string]reconcile.Lineage
	openByNode map[string]bool // node IDs with an open finding: flips of these don't re-trigger
	// kubeSeen holds, per Kubernetes cluster, the Node sightings its watcher
	// made within the lookback: each audit builds on them.
	kubeSeen    map[string][]kube.Observation
	lastAuditOK time.Time
	// vmCount is each vCenter's VM count in the last recorded run (see checkVanished).
	vmCount map[string]int
	addr    string
	// restarts: when each swarm's event stream came back (resolve.go).
	restarts sourceRestarts
}

// New validates the options and prepares a Daemon; nothing is contacted yet.
func New(opts Options) (*Daemon, error) {
	if opts.Store == nil {
		return nil, errors.New("daemon: no store")
	}
	if opts.Store.ReadOnly() {
		return nil, errors.New("daemon: the store is open read-only")
	}
	cfg := opts.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = NewLogger(cfg.Log, nil)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.Debounce, time.Second)
	def(&opts.DetectInterval, 2*time.Second)
	def(&opts.AuditTimeout, 5*time.Minute)
	def(&opts.ShutdownTimeout, 10*time.Second)
	def(&opts.ReconnectMin, 500*time.Millisecond)
	def(&opts.ReconnectMax, 30*time.Second)
	def(&opts.AlertBackoff, time.Second)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	d := &Daemon{
		opts: opts, cfg: cfg, st: opts.Store, log: opts.Logger, m: newMetrics(), now: opts.Now,
		auditSem:   make(chan struct{}, 1),
		jobSems:    map[string]chan struct{}{JobLineage: make(chan struct{}, 1), JobPrune: make(chan struct{}, 1)},
		detect:     make(chan trigger, 64),
		sourceOK:   map[string]time.Time{},
		sourceErr:  map[string]string{},
		lineage:    map[string]reconcile.Lineage{},
		openByNode: map[string]bool{},
		kubeSeen:   map[string][]kube.Observation{},
	}
	d.jobSems[JobAudit] = d.auditSem
	d.src = audit.NewSources(cfg)
	logins, err := guest.NewLogins(cfg.Guest, "guest.login")
	if err != nil {
		return nil, err
	}
	d.logins = logins
	if cfg.Policy.Remediate != "off" {
		if d.runner, err = NewRunner(cfg, d.src, logins, opts.Store); err != nil {
			return nil, err
		}
	}
	d.alerts = newAlerter(cfg.Alerts, opts.HTTPClient, opts.AlertBackoff, d.st, d.m, d.log, d.now)
	d.m.initSources(d.Sources())
	return d, nil
}

// Sources returns the labels of the configured sources ("vcenter HOST",
// "swarm NAME"), as /readyz and the metrics name them.
func (d *Daemon) Sources() []string { return d.src.Labels() }

// Run runs the daemon until ctx is canceled: an audit at once, then the
// schedules and the change streams. On cancellation it stops scheduling,
// lets a running job finish within ShutdownTimeout, then cancels it, and
// returns nil. It returns an error only when it cannot start (listen).
func (d *Daemon) Run(ctx context.Context) error {
	srv, err := d.serve()
	if err != nil {
		return err
	}
	d.log.Info("daemon starting", "vcenters", len(d.src.VCenters()), "swarms", len(d.src.Swarms()), "alert_sinks", len(d.alerts.sinks),
		"audit", d.cfg.Schedules.Audit, "lineage", d.cfg.Schedules.Lineage, "prune", d.cfg.Schedules.Prune,
		"store", d.st.Path(), "listen", d.listenAddr(srv), "remediate", d.cfg.Policy.Remediate)

	// Jobs get their own context: cancellation of ctx first lets them finish.
	jobCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()
	var wg sync.WaitGroup

	d.refreshOpen(jobCtx)
	// Alert delivery runs in the background, never in an audit. Alerts left
	// pending by a previous process (crash between recording and delivery)
	// go out at once; those recorded as delivered are not repeated.
	d.alerts.start(jobCtx)

	c := cron.New(cron.WithParser(config.CronParser), cron.WithLogger(cronLogger{d.log}),
		cron.WithChain(cron.Recover(cronLogger{d.log})))
	for _, j := range []struct {
		name, spec string
		fn         func(context.Context) error
	}{
		{JobAudit, d.cfg.Schedules.Audit, func(ctx context.Context) error { return d.audit(ctx, "schedule", time.Time{}) }},
		{JobLineage, d.cfg.Schedules.Lineage, d.refreshLineage},
		{JobPrune, d.cfg.Schedules.Prune, d.prune},
	} {
		job := d.scheduled(jobCtx, &wg, j.name, j.fn)
		if _, err := c.AddJob(j.spec, job); err != nil {
			return &config.Error{Key: "schedules." + j.name, Msg: err.Error()} // validated before; cannot happen
		}
	}

	// The first audit: ready as soon as possible, and the baseline that the
	// first detected flip is compared with.
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.runLocked(jobCtx, JobAudit, d.auditSem, func(ctx context.Context) error { return d.audit(ctx, "startup", time.Time{}) }, true)
	}()
	c.Start()

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var wwg sync.WaitGroup
	for _, s := range d.src.Swarms() {
		wwg.Add(1)
		go func() { defer wwg.Done(); d.watchSwarm(watchCtx, s) }()
	}
	for _, k := range d.src.Kubernetes() {
		wwg.Add(1)
		go func() { defer wwg.Done(); d.watchKube(watchCtx, k) }()
	}
	for _, v := range d.src.VCenters() {
		wwg.Add(1)
		go func() { defer wwg.Done(); d.watchVCenter(watchCtx, v) }()
	}
	wwg.Add(1)
	go func() { defer wwg.Done(); d.detector(watchCtx, jobCtx, &wg) }()

	<-ctx.Done()
	d.log.Info("daemon stopping", "grace", d.opts.ShutdownTimeout)
	stopWatch()
	cronDone := c.Stop() // no new runs; its context ends when running ones return

	// The watchers are waited for inside the grace period, not before it: the
	// detector runs its audits (or waits for the audit lock) in its own
	// goroutine, so waiting for it first would let a detection-triggered
	// audit run for up to AuditTimeout after SIGTERM, never canceled. wwg is
	// waited for before wg so that the detector's wg.Add cannot race wg.Wait.
	done := make(chan struct{})
	go func() { wwg.Wait(); wg.Wait(); <-cronDone.Done(); close(done) }()
	select {
	case <-done:
	case <-time.After(d.opts.ShutdownTimeout):
		d.log.Warn("running job did not finish in time; canceling it", "grace", d.opts.ShutdownTimeout)
		cancelJobs()
		select {
		case <-done:
		case <-time.After(d.opts.ShutdownTimeout):
			d.log.Error("running job ignored cancellation; exiting anyway")
		}
	}
	cancelJobs()
	d.alerts.stop()
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	d.closeSources()
	d.log.Info("daemon stopped")
	return nil
}

// RunOnce runs one audit (with alerts and remediation, as a scheduled run)
// and returns its error: `vmreconcile daemon -once`.
func (d *Daemon) RunOnce(ctx context.Context) error {
	defer d.closeSources()
	d.refreshOpen(ctx)
	err := d.runLocked(ctx, JobAudit, d.auditSem, func(ctx context.Context) error { return d.audit(ctx, "once", time.Time{}) }, true)
	// No background workers here: deliver now, each sink within its deadlines.
	if ferr := d.alerts.flush(ctx); ferr != nil {
		d.log.Warn("some alerts not delivered; they stay pending for the next run", "err", oneLine(ferr.Error()))
	}
	return err
}

// AuditNow runs one audit now, waiting for a running one to finish first,
// and returns its error. Safe to call while Run runs (tests, a future
// "audit now" endpoint).
func (d *Daemon) AuditNow(ctx context.Context) error {
	return d.runLocked(ctx, JobAudit, d.auditSem, func(ctx context.Context) error { return d.audit(ctx, "manual", time.Time{}) }, true)
}

func (d *Daemon) closeSources() { d.src.Close() }

// scheduled wraps a job for cron: skip (and count) when the previous run of
// the same job is still going.
func (d *Daemon) scheduled(ctx context.Context, wg *sync.WaitGroup, name string, fn func(context.Context) error) cron.Job {
	sem := d.jobSems[name]
	return cron.FuncJob(func() {
		if ctx.Err() != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		d.runLocked(ctx, name, sem, fn, false)
	})
}

// runLocked runs fn as job name holding sem. With wait false a busy sem
// means skip: counted and logged. With wait true it waits for sem.
func (d *Daemon) runLocked(ctx context.Context, name string, sem chan struct{}, fn func(context.Context) error, wait bool) error {
	if wait {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	} else {
		select {
		case sem <- struct{}{}:
		default:
			d.m.skipped.WithLabelValues(name).Inc()
			d.log.Warn("scheduled run skipped: the previous run is still running", "job", name)
			return nil
		}
	}
	defer func() { <-sem }()
	return d.runJob(ctx, name, fn)
}

// runJob runs fn, recording duration, result and last success, and turns a
// panic into an error (cron.Recover covers the scheduled path; detection and
// startup runs come through here too).
func (d *Daemon) runJob(ctx context.Context, name string, fn func(context.Context) error) (err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
			d.log.Error("job panicked", "job", name, "panic", r)
		}
		dur := time.Since(start)
		d.m.jobLastDuration.WithLabelValues(name).Set(dur.Seconds())
		d.m.jobFinished(name, err == nil, d.now())
		if err != nil {
			d.m.runs.WithLabelValues(name, "error").Inc()
			d.log.Error("job failed", "job", name, "duration", dur.Round(time.Millisecond), "err", oneLine(err.Error()))
			return
		}
		d.m.runs.WithLabelValues(name, "ok").Inc()
		d.m.jobLastSuccess.WithLabelValues(name).Set(float64(d.now().Unix()))
	}()
	return fn(ctx)
}

// audit is one audit run: the pipeline (collect, reconcile with the store's
// history, guest probes when remediation may act), then record, alert,
// remediate. since, when set, is the first detected change the event replay
// must cover.
func (d *Daemon) audit(ctx context.Context, trigger string, since time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.AuditTimeout)
	defer cancel()
	started := d.now()

	out, err := d.collect(ctx, started, since)
	if err == nil {
		err = d.checkVanished(ctx, out.Snapshot)
	}
	if err == nil {
		return d.record(ctx, trigger, started, out)
	}
	d.sourceFailed(err)
	if _, ferr := d.st.RecordFailure(context.WithoutCancel(ctx), started, d.now(), err); ferr != nil {
		d.log.Error("cannot record the failed run", "err", ferr)
	}
	return err
}

// collect runs the pipeline once.
func (d *Daemon) collect(ctx context.Context, started, since time.Time) (audit.Outcome, error) {
	hist, err := d.st.History(ctx, started.Add(-d.historyWindow()))
	if err != nil {
		return audit.Outcome{}, err
	}
	obs := audit.Observe(d.cfg.Observe)
	obs.Lookback = detectionLookback(obs.Lookback, started, since)
	opts := audit.Options{Observe: obs, History: hist, Lineage: d.knownLineage(), KubePrior: d.kubePrior}
	if d.runner != nil && d.logins.Any() {
		// Remediation may act on this run: confirm identities inside the
		// guests first, so that what is recorded and alerted is exactly what
		// remediation plans from.
		opts.Probe = &audit.Probe{Logins: d.logins, Concurrency: d.cfg.Guest.Concurrency, Timeout: d.cfg.Guest.Timeout,
			Keep: func(g reconcile.GuestIdentity) {
				if g.Error == "" {
					_ = d.st.SaveProbe(context.WithoutCancel(ctx), g)
				}
			}}
	}
	return audit.Run(ctx, d.src, opts)
}

// checkVanished refuses a collection in which a vCenter that had VMs in the
// last recorded run suddenly reports none: that is a lost permission or a bad
// include pattern, not an empty datacenter, and recording it would resolve
// every open finding (and alert so). After a restart the baseline is the last
// successful run in the store, when there is a single vCenter.
func (d *Daemon) checkVanished(ctx context.Context, snap reconcile.Snapshot) error {
	now := map[string]int{}
	for _, vc := range snap.VCenters {
		now[vc] = 0
	}
	for _, vm := range snap.VMs {
		now[vm.VCenter]++
	}
	d.mu.Lock()
	prev := d.vmCount
	d.mu.Unlock()
	if prev == nil && len(snap.VCenters) == 1 {
		if run, ok, err := d.st.LastRun(ctx); err == nil && ok && run.OK {
			prev = map[string]int{snap.VCenters[0]: run.VMs}
		}
	}
	for vc, n := range now {
		if n == 0 && prev[vc] > 0 {
			return fmt.Errorf("vcenter %s returned no VMs, %d in the last recorded run: not recording a run that would resolve every finding (fix: check the vCenter user's permissions and the include/exclude patterns)", vc, prev[vc])
		}
	}
	d.mu.Lock()
	d.vmCount = now
	d.mu.Unlock()
	return nil
}

// maxDetectionLookback bounds the replay of a detection-triggered audit: the
// trigger's time comes from the manager's clock, and a manager hours behind
// would otherwise make every such audit replay hours of events.
const maxDetectionLookback = time.Hour

// detectionLookback is the event replay window of an audit: the configured
// one, widened (up to maxDetectionLookback) to cover the flips since the
// trigger's first event when the audit was triggered by a detection.
func detectionLookback(configured time.Duration, started, since time.Time) time.Duration {
	if since.IsZero() {
		return configured
	}
	return max(configured, min(started.Sub(since)+30*time.Second, maxDetectionLookback))
}

func (d *Daemon) record(ctx context.Context, trigger string, started time.Time, out audit.Outcome) error {
	snap, res := out.Snapshot, out.Result
	diff, err := d.st.RecordRunWith(ctx, snap, res, started, d.now(), d.recordOptions(started))
	if err != nil {
		return err
	}
	d.sourcesOK(snap.CollectedAt)
	d.mu.Lock()
	d.lastAuditOK = d.now()
	d.mu.Unlock()
	d.refreshOpen(ctx)
	d.log.Info("audit done", "trigger", trigger, "run", diff.RunID, "vms", res.Summary.VMs, "nodes", res.Summary.Nodes,
		"matched", res.Summary.MatchedNodes, "findings", len(res.Findings), "opened", len(diff.Opened),
		"resolved", len(diff.Resolved), "duration", d.now().Sub(started).Round(time.Millisecond))
	for _, f := range diff.Opened {
		d.log.Warn("finding opened", "kind", f.Kind, "severity", f.Severity, "node_id", f.NodeID, "vms", f.VMs, "original", f.Original)
	}
	for _, f := range diff.Resolved {
		d.log.Info("finding resolved", "kind", f.Kind, "node_id", f.NodeID, "vms", f.VMs, "by", f.ResolvedBy)
	}
	d.logAbsent(diff)
	d.alerts.notify() // delivery never holds the audit
	d.remediate(ctx, out)
	return nil
}

// historyWindow is how far back cross-run evidence counts: the observation
// lookback, so that a finding resolves once its evidence is that old.
func (d *Daemon) historyWindow() time.Duration {
	if d.cfg.Observe.Lookback > 0 {
		return d.cfg.Observe.Lookback
	}
	return 10 * time.Minute
}

// remediate plans (and with policy.remediate on, applies) the remediation
// of the run it is given: the same result that was recorded and alerted.
func (d *Daemon) remediate(ctx context.Context, out audit.Outcome) {
	if d.runner == nil || len(out.Result.Findings) == 0 {
		return
	}
	dry := d.cfg.Policy.Remediate == "dry-run"
	summary, err := d.applyPolicy(ctx, out, dry)
	var refused *remediate.Refused
	switch {
	case errors.As(err, &refused):
		d.m.actions.WithLabelValues("refused").Inc()
		d.log.Warn("remediation refused", "reason", oneLine(err.Error()))
	case err != nil:
		d.m.actions.WithLabelValues("failed").Inc()
		d.log.Error("remediation failed", "err", oneLine(err.Error()))
	case summary == "":
		// nothing to do
	case dry:
		d.m.actions.WithLabelValues("dry_run").Inc()
		d.log.Info("remediation (dry run)", "plan", summary)
	default:
		d.m.actions.WithLabelValues("taken").Inc()
		d.log.Warn("remediation taken", "action", summary)
	}
}

// sourceFailed counts the error against its source and makes the next run
// reconnect it.
func (d *Daemon) sourceFailed(err error) {
	var se *collect.SourceError
	if !errors.As(err, &se) {
		return
	}
	d.m.apiErrors.WithLabelValues(se.Source).Inc()
	d.mu.Lock()
	d.sourceErr[se.Source] = oneLine(se.Err.Error())
	d.mu.Unlock()
	d.src.Failed(err)
}

func (d *Daemon) sourcesOK(at time.Time) {
	if at.IsZero() {
		at = d.now()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range d.Sources() {
		d.sourceOK[l] = at
		d.sourceErr[l] = ""
		d.m.sourceLastOK.WithLabelValues(l).Set(float64(at.Unix()))
	}
}

// refreshOpen updates the open-findings gauge and the set of node IDs whose
// flips are already explained by an open finding.
func (d *Daemon) refreshOpen(ctx context.Context) {
	open, err := d.st.OpenFindings(ctx)
	if err != nil {
		d.log.Error("cannot read open findings", "err", err)
		return
	}
	d.m.setOpenFindings(open)
	nodes := map[string]bool{}
	for _, f := range open {
		switch {
		case f.NodeID != "" && (f.Kind == reconcile.KindSharedNodeID || f.Kind == reconcile.KindNodeFlapping):
			nodes[f.NodeID] = true
		case f.Kind == reconcile.KindSharedK8sNode || f.Kind == reconcile.KindK8sNodeFlapping:
			// Kubernetes keys read KIND|CLUSTER/NODE|VMS: the watcher's node ID.
			if parts := strings.SplitN(f.Key, "|", 3); len(parts) == 3 {
				nodes[parts[1]] = true
			}
		}
	}
	d.mu.Lock()
	d.openByNode = nodes
	d.mu.Unlock()
}

// refreshLineage is the lineage job: it reads every clone and deploy event
// vCenter still keeps and remembers them, so that audits (and the store)
// keep the lineage of VMs whose events vCenter has since dropped. A vCenter
// with a live mirror is skipped: the mirror reads new events as they come,
// and the store keeps what it learned.
func (d *Daemon) refreshLineage(ctx context.Context) error {
	got := map[string]reconcile.Lineage{}
	for _, v := range d.src.VCenters() {
		if v.Mirror() != nil {
			continue // its live mirror follows the events as they come
		}
		vc, err := v.Get(ctx, d.src.Timeout())
		if err != nil {
			d.sourceFailed(err)
			return err
		}
		for _, root := range vc.Roots {
			lin, err := vsphereLineage(ctx, vc, root)
			if err != nil {
				err = &collect.SourceError{Source: v.Label(), Err: fmt.Errorf("clone events: %w", err)}
				d.sourceFailed(err)
				return err
			}
			for ref, l := range lin {
				got[vc.Name+"\x00"+ref] = l
			}
		}
	}
	d.mu.Lock()
	for k, l := range got {
		d.lineage[k] = l
	}
	n := len(d.lineage)
	d.mu.Unlock()
	d.log.Info("lineage refreshed", "copies", len(got), "known", n)
	return nil
}

// knownLineage is a copy of what the lineage job found.
func (d *Daemon) knownLineage() map[string]reconcile.Lineage {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.lineage)
}

// prune is the prune job: drop what is older than store.retention.
func (d *Daemon) prune(ctx context.Context) error {
	if d.cfg.Store.Retention <= 0 {
		return nil
	}
	n, err := d.st.Prune(ctx, d.now().Add(-d.cfg.Store.Retention))
	if err != nil {
		return err
	}
	d.log.Info("store pruned", "rows", n, "retention", d.cfg.Store.Retention)
	return nil
}

func (d *Daemon) listenAddr(srv *http.Server) string {
	if srv == nil {
		return ""
	}
	return srv.Addr
}

// cronLogger adapts slog to cron.Logger.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Debug("cron: "+msg, cronKV(kv)...) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("cron: "+msg, append(cronKV(kv), "err", err)...)
}

// cronKV keeps cron's key/value pairs but renders times readably.
func cronKV(kv []any) []any {
	out := make([]any, 0, len(kv))
	for i := 0; i+1 < len(kv); i += 2 {
		k, _ := kv[i].(string)
		v := kv[i+1]
		if t, ok := v.(time.Time); ok {
			v = t.Format(time.RFC3339)
		}
		out = append(out, strings.ReplaceAll(k, " ", "_"), v)
	}
	return out
}
