package daemon

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
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

// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the body>" when the
// webhook has a secret.
const SignatureHeader = "X-Vmreconcile-Signature"

// Alert is the JSON body POSTed to each webhook.
type Alert struct {
	// Event is "opened" (first run that found it) or "resolved" (first run
	// that no longer found it). Each is sent once per finding episode.
	Event   string            `json:"event"`
	Key     string            `json:"key"` // reconcile.Finding.Key(): same problem, same key
	Finding reconcile.Finding `json:"finding"`
	// FirstSeen is when the finding was first found; LastSeen the last run that
	// still found it; ResolvedAt, for "resolved", the first run that did not.
	FirstSeen  time.Time  `json:"first_seen"`
	LastSeen   time.Time  `json:"last_seen"`
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
	SeenRuns   int        `json:"seen_runs"`
	// SupersededBy, on "resolved", is the key of an open finding that now
	// covers the same VMs more severely: a clone-of-swarm-node "resolves"
	// because its clone booted and now shares the node ID. Nothing was fixed;
	// receivers may fold the two.
	SupersededBy string    `json:"superseded_by,omitempty"`
	SentAt       time.Time `json:"sent_at"`
	// Daemon is the host name of the machine running vmreconcile.
	Daemon string `json:"daemon"`
}

// Sign returns the signature header value for body: "sha256=" and the hex
// HMAC-SHA256 of body keyed with secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks a received signature header against body, in
// constant time. Receivers can use it (or its five lines) as they are.
func VerifySignature(secret string, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

func newAlert(event string, f store.StoredFinding, now time.Time, host string) Alert {
	a := Alert{Event: event, Key: f.Key, Finding: f.Finding, FirstSeen: f.FirstSeen, LastSeen: f.LastSeen,
		SeenRuns: f.SeenRuns, SentAt: now.UTC(), Daemon: host}
	if event == EventResolved && !f.ResolvedAt.IsZero() {
		t := f.ResolvedAt
		a.ResolvedAt = &t
	}
	if a.Key == "" {
		a.Key = f.Finding.Key()
	}
	return a
}

// webhook is one configured sink.
type webhook struct {
	name    string // the URL without user info or query, safe to log
	url     string
	secret  config.Secret
	retries int
	timeout time.Duration
	client  *http.Client
	backoff time.Duration // first retry delay; doubles
}

func newWebhook(c config.Webhook, client *http.Client, backoff time.Duration) *webhook {
	w := &webhook{name: safeURL(c.URL), url: c.URL, secret: c.Secret, retries: c.Retries, timeout: c.Timeout, client: client, backoff: backoff}
	if w.timeout <= 0 {
		w.timeout = 10 * time.Second
	}
	if w.backoff <= 0 {
		w.backoff = time.Second
	}
	return w
}

// safeURL drops user info, query and fragment (tokens often live there).
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}

// errPermanent marks a response that retrying will not fix (4xx other than
// 408/429).
type errPermanent struct{ error }

// send POSTs body, retrying with exponential backoff (1s, 2s, 4s... capped at
// 1m) up to w.retries times after the first attempt.
func (w *webhook) send(ctx context.Context, event, delivery string, body []byte) error {
	delay := w.backoff
	var last error
	for attempt := 0; attempt <= w.retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return errors.Join(last, ctx.Err())
			case <-time.After(delay):
			}
			delay = min(2*delay, time.Minute)
		}
		last = w.post(ctx, event, delivery, body)
		if last == nil {
			return nil
		}
		var perm errPermanent
		if errors.As(last, &perm) {
			return last
		}
	}
	return last
}

func (w *webhook) post(ctx context.Context, event, delivery string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return errPermanent{fmt.Errorf("webhook %s: %s", w.name, "bad request")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "vmreconcile")
	req.Header.Set("X-Vmreconcile-Event", event)
	req.Header.Set("X-Vmreconcile-Delivery", delivery)
	if w.secret != "" {
		req.Header.Set(SignatureHeader, Sign(w.secret.Reveal(), body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error quotes the full URL, tokens included
		}
		return fmt.Errorf("webhook %s: %v", w.name, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 408 && resp.StatusCode != 429:
		return errPermanent{fmt.Errorf("webhook %s: HTTP %d", w.name, resp.StatusCode)}
	}
	return fmt.Errorf("webhook %s: HTTP %d", w.name, resp.StatusCode)
}

// alerter delivers the store's pending alerts to every webhook.
type alerter struct {
	hooks []*webhook
	st    *store.Store
	m     *metrics
	log   *slog.Logger
	now   func() time.Time
	host  string
	// delivered remembers, within this process, which sinks already took an
	// alert that is still pending because another sink failed, so a retry
	// does not repeat it to them.
	delivered map[string]map[int]bool
}

func newAlerter(hooks []config.Webhook, client *http.Client, backoff time.Duration, st *store.Store, m *metrics, log *slog.Logger, now func() time.Time) *alerter {
	a := &alerter{st: st, m: m, log: log, now: now, delivered: map[string]map[int]bool{}}
	a.host, _ = os.Hostname()
	for _, h := range hooks {
		a.hooks = append(a.hooks, newWebhook(h, client, backoff))
	}
	return a
}

// pendingAlert is one alert to deliver in a flush.
type pendingAlert struct {
	f     store.StoredFinding
	event string
	at    time.Time // when it happened: first_seen or resolved_at
	// afterOpen: a resolution whose opening is pending in the same flush;
	// it goes out only once the opening did.
	afterOpen bool
}

// flush sends every pending alert in the order things happened (an opening
// before a resolution of the same run, so that a superseding finding is
// announced before the one it supersedes resolves). Chronological order
// matters when the webhook was down while a finding resolved and came back:
// episode 1's resolution must reach the receiver before episode 2's opening,
// or a receiver folding alerts by key ends up believing the open finding is
// resolved. A finding that opened and resolved between two flushes gets both,
// in order.
//
// An alert is marked sent in the store (per episode) only when every webhook
// took it, so a failure is retried at the next flush and a restart never
// repeats a delivered alert. A webhook that fails with a retryable error is
// not tried again in this flush: its remaining alerts stay pending for the
// next one. Otherwise a receiver that is down or hangs holds the audit (and
// the audit lock) for pending x (retries+1) x timeout, and its alerts would
// reach it out of order.
func (a *alerter) flush(ctx context.Context) error {
	open, resolved, err := a.st.PendingAlerts(ctx)
	if err != nil {
		return err
	}
	var list []pendingAlert
	for _, f := range open {
		list = append(list, pendingAlert{f: f, event: EventOpened, at: f.FirstSeen})
		if !f.Open() {
			list = append(list, pendingAlert{f: f, event: EventResolved, at: f.ResolvedAt, afterOpen: true})
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
			return err
		}
	}
	var errs []error
	opened := map[int64]bool{} // episodes whose opening went out in this flush
	down := map[int]bool{}     // webhooks that failed in this flush
	for _, p := range list {
		if p.afterOpen && !opened[p.f.ID] {
			continue // its opening did not go out: next flush, in order
		}
		if err := a.deliver(ctx, p.event, p.f, supersededBy(p.f, openNow), down); err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				return errors.Join(errs...)
			}
			continue
		}
		if p.event == EventOpened {
			opened[p.f.ID] = true
		}
	}
	return errors.Join(errs...)
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

// deliver sends one alert to every webhook that has not taken it yet and is
// not in down, and marks it sent when all took it. A webhook that fails with
// a retryable error is added to down.
func (a *alerter) deliver(ctx context.Context, event string, f store.StoredFinding, superseded string, down map[int]bool) error {
	al := newAlert(event, f, a.now(), a.host)
	al.SupersededBy = superseded
	body, err := json.Marshal(al)
	if err != nil {
		return err
	}
	id := fmt.Sprintf("%d-%s", f.ID, event)
	done := a.delivered[id]
	if done == nil {
		done = map[int]bool{}
		a.delivered[id] = done
	}
	var errs []error
	for i, h := range a.hooks {
		if done[i] {
			continue
		}
		if down[i] {
			errs = append(errs, fmt.Errorf("webhook %s: not tried: it failed earlier in this flush", h.name))
			continue
		}
		if err := h.send(ctx, event, id, body); err != nil {
			a.m.alertsFailed.WithLabelValues(event).Inc()
			a.log.Error("alert not delivered", "event", event, "kind", f.Kind, "node_id", f.NodeID, "key", al.Key, "webhook", h.name, "err", err)
			errs = append(errs, err)
			// A permanent refusal (4xx) is about this alert; anything else
			// (timeout, 5xx, connection refused) is about the webhook.
			var perm errPermanent
			if !errors.As(err, &perm) {
				down[i] = true
			}
			continue
		}
		done[i] = true
		a.m.alertsSent.WithLabelValues(event).Inc()
		a.log.Info("alert delivered", "event", event, "kind", f.Kind, "severity", f.Severity, "node_id", f.NodeID, "vms", f.VMs, "webhook", h.name)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	delete(a.delivered, id)
	// By episode id, not key: another episode of the same key may still be
	// pending this alert (MarkAlerted would mark it too, and it would be lost).
	if err := a.st.MarkAlertedID(ctx, f.ID, event == EventResolved); err != nil {
		return err
	}
	if len(a.hooks) == 0 {
		a.log.Info("finding "+event, "kind", f.Kind, "severity", f.Severity, "node_id", f.NodeID, "vms", f.VMs)
	}
	return nil
}
