package daemon

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/store"
)

// Alert events.
const (
	EventOpened   = "opened"
	EventResolved = "resolved"
)

// Webhook headers (docs/alerts.md, "Webhook headers").
const (
	// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the body>" when
	// the webhook has a secret (kept for receivers written before the
	// Standard Webhooks headers; it does not cover the timestamp).
	SignatureHeader = "X-Vmreconcile-Signature"
	EventHeader     = "X-Vmreconcile-Event"
	// DeliveryHeader is the delivery ID, as WebhookIDHeader.
	DeliveryHeader = "X-Vmreconcile-Delivery"
	// Standard Webhooks (standardwebhooks.com): the delivery ID, stable
	// across retries and restarts; the Unix time of this attempt; and
	// "v1,<base64 HMAC-SHA256 of id.timestamp.body>".
	WebhookIDHeader        = "webhook-id"
	WebhookTimestampHeader = "webhook-timestamp"
	WebhookSignatureHeader = "webhook-signature"
)

// Alert is the JSON body POSTed to each webhook.
type Alert struct {
	// Event is "opened" (first run that found it) or "resolved" (the run
	// that confirmed it gone: see ResolvedBy). Each is delivered at least
	// once per finding episode; DeliveryID tells repeats apart.
	Event      string            `json:"event"`
	DeliveryID string            `json:"delivery_id"`
	Key        string            `json:"key"` // reconcile.Finding.Key(): same problem, same key
	Finding    reconcile.Finding `json:"finding"`
	// FirstSeen is when the finding was first found; LastSeen the last run
	// that still found it; ResolvedAt, for "resolved", the run that resolved
	// it, and AbsentSince the first of the runs that no longer found it.
	FirstSeen   time.Time  `json:"first_seen"`
	LastSeen    time.Time  `json:"last_seen"`
	ResolvedAt  *time.Time `json:"resolved_at,omitempty"`
	AbsentSince *time.Time `json:"absent_since,omitempty"`
	// ResolvedBy, for "resolved": "absence" (enough consecutive complete
	// runs without it), "remediation" (a remediation outcome) or
	// "superseded" (a more severe finding on the same node covers it).
	ResolvedBy string `json:"resolved_by,omitempty"`
	SeenRuns   int    `json:"seen_runs"`
	// SupersededBy, on "resolved", is the key of an open finding that now
	// covers the same VMs more severely: a clone-of-swarm-node "resolves"
	// because its clone booted and now shares the node ID. Nothing was fixed;
	// receivers may fold the two.
	SupersededBy string    `json:"superseded_by,omitempty"`
	SentAt       time.Time `json:"sent_at"`
	// Daemon is the host name of the machine running vmreconcile.
	Daemon string `json:"daemon"`
}

// Sign returns the legacy signature header value for body: "sha256=" and
// the hex HMAC-SHA256 of body keyed with secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks a received legacy signature header against body,
// in constant time.
func VerifySignature(secret string, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

// standardKey is the HMAC key of the Standard Webhooks signature: a secret
// written as "whsec_<base64>" (as Standard Webhooks libraries generate them)
// is that base64's bytes, any other secret its own bytes.
func standardKey(secret string) []byte {
	if b64, ok := strings.CutPrefix(secret, "whsec_"); ok {
		if k, err := base64.StdEncoding.DecodeString(b64); err == nil {
			return k
		}
	}
	return []byte(secret)
}

// SignStandard returns the webhook-signature value: "v1," and the base64
// HMAC-SHA256 of id + "." + timestamp + "." + body.
func SignStandard(secret, id string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, standardKey(secret))
	m.Write([]byte(id + "." + strconv.FormatInt(timestamp, 10) + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Errors of VerifyStandard.
var (
	ErrBadSignature = errors.New("webhook signature does not match")
	ErrStale        = errors.New("webhook timestamp outside the tolerance (a replay, or a clock off)")
)

// VerifyStandard checks the Standard Webhooks headers of a received
// delivery: a v1 signature (of possibly several, space-separated) that
// matches, and a timestamp within tolerance of now. A receiver that also
// remembers the webhook-id of the deliveries it accepted within the
// tolerance rejects every replay.
func VerifyStandard(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id, tsText := h.Get(WebhookIDHeader), h.Get(WebhookTimestampHeader)
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if id == "" || err != nil {
		return ErrBadSignature
	}
	want := SignStandard(secret, id, ts, body)
	ok := false
	for _, sig := range strings.Fields(h.Get(WebhookSignatureHeader)) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			ok = true
		}
	}
	if !ok {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	return nil
}

// deliveryID is an alert's delivery ID: the same for every attempt and
// after a restart, different for every episode and event.
func deliveryID(f store.StoredFinding, event string) string {
	return fmt.Sprintf("%d-%s-%d", f.ID, event, f.FirstSeen.UnixNano())
}

func newAlert(event string, f store.StoredFinding, now time.Time, host string) Alert {
	a := Alert{Event: event, DeliveryID: deliveryID(f, event), Key: f.Key, Finding: f.Finding, FirstSeen: f.FirstSeen,
		LastSeen: f.LastSeen, SeenRuns: f.SeenRuns, SentAt: now.UTC(), Daemon: host}
	if event == EventResolved && !f.ResolvedAt.IsZero() {
		t, s := f.ResolvedAt, f.AbsentSince
		a.ResolvedAt, a.ResolvedBy = &t, f.ResolvedBy
		if !s.IsZero() {
			a.AbsentSince = &s
		}
	}
	if a.Key == "" {
		a.Key = f.Finding.Key()
	}
	return a
}

// errPermanent marks a response that retrying will not fix (4xx other than
// 408/429): after the retries the alert is given up for that sink.
type errPermanent struct{ error }

// sink is one configured alert destination.
type sink interface {
	kind() string // SinkWebhook, SinkAlertmanager, SinkSlack: the metric label
	id() string   // stable ID for the store: kind and a hash of the URL
	name() string // safe to log: no credentials, no query
	retries() int
	// post makes one delivery attempt, within its own deadline.
	post(ctx context.Context, a Alert) error
}

// resender is a sink that wants the open findings re-sent periodically
// (Alertmanager forgets an alert that is not re-sent).
type resender interface {
	resendInterval() time.Duration
	resend(ctx context.Context, open []Alert) error
}

// alerter delivers the store's pending alerts to every sink, in the
// background: one worker per sink, so that a sink that hangs or is down
// never holds an audit (nor another sink). Each worker sends the pending
// alerts in the order things happened, one at a time, and stops at the
// first alert it could not deliver (retryable): the next attempt is after a
// backoff, and nothing overtakes it. An alert a sink refused with HTTP 4xx
// after all retries is given up for that sink: recorded in the store
// (alert_deliveries), counted (vmreconcile_alerts_dropped_total), logged,
// never re-posted. An alert is marked sent once every sink is done with it.
//
// Delivery is at-least-once: a daemon killed (or a sink that timed out)
// after the receiver took a POST but before the store recorded it sends
// it again; the delivery ID (webhook-id) is the same, so receivers drop the
// repeat.
type alerter struct {
	sinks   []sink
	ids     []string
	locks   []sync.Mutex // one per sink: a worker round and a synchronous flush never interleave
	st      *store.Store
	m       *metrics
	log     *slog.Logger
	now     func() time.Time
	host    string
	backoff time.Duration // first retry delay within a delivery; doubles, capped at 1m

	wake   []chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// maxRoundDelay caps the wait between two rounds of a failing sink.
const maxRoundDelay = time.Minute

func newAlerter(cfg config.Alerts, client *http.Client, backoff time.Duration, st *store.Store, m *metrics, log *slog.Logger, now func() time.Time) *alerter {
	if backoff <= 0 {
		backoff = time.Second
	}
	a := &alerter{st: st, m: m, log: log, now: now, backoff: backoff}
	a.host, _ = os.Hostname()
	for _, w := range cfg.Webhooks {
		a.sinks = append(a.sinks, newWebhook(w, client))
	}
	for _, am := range cfg.Alertmanager {
		a.sinks = append(a.sinks, newAlertmanagerSink(am, client, now))
	}
	for i, s := range cfg.Slack {
		a.sinks = append(a.sinks, newSlackSink(i, s, client))
	}
	for _, s := range a.sinks {
		a.ids = append(a.ids, s.id())
	}
	a.locks = make([]sync.Mutex, len(a.sinks))
	return a
}

// start runs the workers until stop: each delivers what is pending at once,
// then whenever notify is called, retrying a failing sink with backoff.
func (a *alerter) start(ctx context.Context) {
	ctx, a.cancel = context.WithCancel(ctx)
	n := max(len(a.sinks), 1) // with no sink, one worker logs and marks
	a.wake = make([]chan struct{}, n)
	for i := range n {
		a.wake[i] = make(chan struct{}, 1)
		a.wg.Add(1)
		go func() { defer a.wg.Done(); a.work(ctx, i) }()
	}
}

// notify tells every worker that the store may hold new pending alerts. It
// never blocks.
func (a *alerter) notify() {
	for _, w := range a.wake {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// stop cancels the workers (an attempt in flight is abandoned: at-least-once)
// and waits for them.
func (a *alerter) stop() {
	if a.cancel != nil {
		a.cancel()
	}
	a.wg.Wait()
}

// work is worker i's loop.
func (a *alerter) work(ctx context.Context, i int) {
	var resend <-chan time.Time
	resendNow := false
	if len(a.sinks) > 0 {
		if r, ok := a.sinks[i].(resender); ok {
			t := time.NewTicker(r.resendInterval())
			defer t.Stop()
			resend, resendNow = t.C, true
		}
	}
	var retry <-chan time.Time
	delay := time.Duration(0)
	due := true
	for {
		if due && retry == nil {
			due = false
			err := a.flushSink(ctx, i)
			if ctx.Err() != nil {
				return
			}
			if resendNow {
				// At start, findings alerted by an earlier process: the
				// receiver may have let them expire while it was down.
				resendNow = false
				a.resendOpen(ctx, i)
			}
			if err != nil {
				delay = min(max(2*delay, 2*a.backoff), maxRoundDelay)
				retry = time.After(delay)
			} else {
				delay = 0
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-a.wake[i]:
			due = true
		case <-retry:
			retry, due = nil, true
		case <-resend:
			a.resendOpen(ctx, i)
		}
	}
}

// flush delivers what is pending to every sink now, in parallel, and
// returns when each sink is done or failed (RunOnce and tests).
func (a *alerter) flush(ctx context.Context) error {
	if len(a.sinks) == 0 {
		return a.flushSink(ctx, 0)
	}
	errs := make([]error, len(a.sinks))
	var wg sync.WaitGroup
	for i := range a.sinks {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = a.flushSink(ctx, i) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pendingAlert is one alert to deliver in a round.
type pendingAlert struct {
	f     store.StoredFinding
	event string
	at    time.Time // when it happened: first_seen or resolved_at
}

func (p pendingAlert) key() store.DeliveryKey {
	return store.DeliveryKey{FindingID: p.f.ID, Resolved: p.event == EventResolved}
}

// pending lists every pending alert in the order things happened (an
// opening before a resolution of the same run, so that a superseding
// finding is announced before the one it supersedes resolves), and the open
// findings (for superseded_by). Chronological order matters when a sink was
// down while a finding resolved and came back: episode 1's resolution must
// reach it before episode 2's opening, or a receiver folding alerts by key
// ends up believing the open finding is resolved. A finding that opened and
// resolved meanwhile gets both, in order.
func (a *alerter) pending(ctx context.Context) ([]pendingAlert, []store.StoredFinding, error) {
	open, resolved, err := a.st.PendingAlerts(ctx)
	if err != nil {
		return nil, nil, err
	}
	var list []pendingAlert
	for _, f := range open {
		list = append(list, pendingAlert{f: f, event: EventOpened, at: f.FirstSeen})
		if !f.Open() {
			list = append(list, pendingAlert{f: f, event: EventResolved, at: f.ResolvedAt})
		}
	}
	for _, f := range resolved {
		list = append(list, pendingAlert{f: f, event: EventResolved, at: f.ResolvedAt})
	}
	// Stable: within one time and event the store's order (most severe
	// first) stays.
	slices.SortStableFunc(list, func(x, y pendingAlert) int {
		if c := x.at.Compare(y.at); c != 0 {
			return c
		}
		if x.event != y.event {
			if x.event == EventOpened {
				return -1
			}
			return 1
		}
		return 0
	})
	var openNow []store.StoredFinding
	if slices.ContainsFunc(list, func(p pendingAlert) bool { return p.event == EventResolved }) {
		if openNow, err = a.st.OpenFindings(ctx); err != nil {
			return nil, nil, err
		}
	}
	return list, openNow, nil
}

// flushSink is one round of sink i: every pending alert it has not taken
// yet, in order, stopping at the first that fails with a retryable error.
func (a *alerter) flushSink(ctx context.Context, i int) error {
	if len(a.sinks) == 0 {
		return a.logOnly(ctx)
	}
	a.locks[i].Lock()
	defer a.locks[i].Unlock()
	s := a.sinks[i]
	list, openNow, err := a.pending(ctx)
	if err != nil {
		return err
	}
	done, err := a.st.SinkDone(ctx, s.id())
	if err != nil {
		return err
	}
	for _, p := range list {
		if done[p.key()] {
			continue
		}
		if p.event == EventResolved && p.f.AlertedOpen.IsZero() && !done[store.DeliveryKey{FindingID: p.f.ID}] {
			continue // its opening did not reach this sink: never a resolution first
		}
		al := newAlert(p.event, p.f, a.now(), a.host)
		if p.event == EventResolved {
			al.SupersededBy = supersededBy(p.f, openNow)
		}
		if err := a.deliver(ctx, i, p, al); err != nil {
			return err
		}
		done[p.key()] = true
	}
	return nil
}

// deliver sends one alert to sink i with retries, and records the outcome:
// delivered, or given up after a permanent refusal. It returns an error only
// when the sink should be tried again later (the alert stays pending).
func (a *alerter) deliver(ctx context.Context, i int, p pendingAlert, al Alert) error {
	s := a.sinks[i]
	attempts, err := a.send(ctx, s, al)
	var perm errPermanent
	d := store.Delivery{FindingID: p.f.ID, Resolved: p.event == EventResolved, Sink: s.id(), Attempts: attempts}
	switch {
	case err == nil:
		d.Status = store.DeliveryDelivered
		a.m.alertsSent.WithLabelValues(s.kind(), p.event).Inc()
		a.log.Info("alert delivered", "event", p.event, "kind", p.f.Kind, "severity", p.f.Severity, "node_id", p.f.NodeID,
			"vms", p.f.VMs, "sink", s.name(), "delivery", al.DeliveryID)
	case errors.As(err, &perm):
		// The detail names no URL: the store is not the place for them.
		d.Status, d.Detail = store.DeliveryFailed, strings.TrimPrefix(oneLine(err.Error()), s.name()+": ")
		a.m.alertsFailed.WithLabelValues(s.kind(), p.event).Inc()
		a.m.alertsDropped.WithLabelValues(s.kind(), p.event).Inc()
		a.log.Error("alert refused by the sink; giving up on it (recorded in the store)", "event", p.event, "kind", p.f.Kind,
			"node_id", p.f.NodeID, "sink", s.name(), "attempts", attempts, "delivery", al.DeliveryID, "err", oneLine(err.Error()))
	default:
		a.m.alertsFailed.WithLabelValues(s.kind(), p.event).Inc()
		a.log.Error("alert not delivered; retrying later", "event", p.event, "kind", p.f.Kind, "node_id", p.f.NodeID,
			"sink", s.name(), "attempts", attempts, "delivery", al.DeliveryID, "err", oneLine(err.Error()))
		return err
	}
	if _, err := a.st.RecordDelivery(context.WithoutCancel(ctx), d, a.ids); err != nil {
		return err
	}
	return nil
}

// send makes up to 1+retries attempts, with exponential backoff (backoff,
// 2×backoff... capped at 1m). It returns the attempts made and the last
// error.
func (a *alerter) send(ctx context.Context, s sink, al Alert) (int, error) {
	delay := a.backoff
	var last error
	attempts := 0
	for attempt := 0; attempt <= s.retries(); attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return attempts, errors.Join(last, ctx.Err())
			case <-time.After(delay):
			}
			delay = min(2*delay, time.Minute)
		}
		attempts++
		if last = s.post(ctx, al); last == nil {
			return attempts, nil
		}
	}
	return attempts, last
}

// logOnly marks every pending alert sent when no sink is configured: the
// log is the only destination.
func (a *alerter) logOnly(ctx context.Context) error {
	list, _, err := a.pending(ctx)
	if err != nil {
		return err
	}
	for _, p := range list {
		a.log.Info("finding "+p.event, "kind", p.f.Kind, "severity", p.f.Severity, "node_id", p.f.NodeID, "vms", p.f.VMs)
		if err := a.st.MarkAlertedID(ctx, p.f.ID, p.event == EventResolved); err != nil {
			return err
		}
	}
	return nil
}

// resendOpen re-sends every open finding to resender sink i.
func (a *alerter) resendOpen(ctx context.Context, i int) {
	r, ok := a.sinks[i].(resender)
	if !ok {
		return
	}
	a.locks[i].Lock()
	defer a.locks[i].Unlock()
	open, err := a.st.OpenFindings(ctx)
	if err != nil || len(open) == 0 {
		return
	}
	als := make([]Alert, 0, len(open))
	for _, f := range open {
		als = append(als, newAlert(EventOpened, f, a.now(), a.host))
	}
	if err := r.resend(ctx, als); err != nil && ctx.Err() == nil {
		a.log.Warn("open alerts not re-sent; trying again at the next interval", "sink", a.sinks[i].name(), "alerts", len(als), "err", oneLine(err.Error()))
	}
}

// supersededBy returns the key of an open finding, more severe than the
// resolved f, whose VMs include all of f's; "" when there is none.
func supersededBy(f store.StoredFinding, open []store.StoredFinding) string {
	for _, g := range open {
		if g.Severity.Rank() <= f.Severity.Rank() || len(f.VMRefs) == 0 {
			continue
		}
		covered := true
		for _, r := range f.VMRefs {
			if !slices.Contains(g.VMRefs, r) {
				covered = false
				break
			}
		}
		if covered {
			return g.Key
		}
	}
	return ""
}
