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

// flush sends every pending alert: openings first, then resolutions (a
// finding that opened and resolved between two flushes gets both, in order).
// An alert is marked sent in the store only when every webhook took it, so a
// failure is retried at the next flush and a restart never repeats a
// delivered alert.
func (a *alerter) flush(ctx context.Context) error {
	var errs []error
	for pass := 0; pass < 2; pass++ {
		open, resolved, err := a.st.PendingAlerts(ctx)
		if err != nil {
			return err
		}
		var (
			batch   []store.StoredFinding
			openNow []store.StoredFinding
		)
		event := EventOpened
		if pass == 0 {
			batch = open
		} else {
			batch, event = resolved, EventResolved
			if len(batch) > 0 {
				if openNow, err = a.st.OpenFindings(ctx); err != nil {
					return err
				}
			}
		}
		for _, f := range batch {
			if err := a.deliver(ctx, event, f, supersededBy(f, openNow)); err != nil {
				errs = append(errs, err)
				if ctx.Err() != nil {
					return errors.Join(errs...)
				}
			}
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

func (a *alerter) deliver(ctx context.Context, event string, f store.StoredFinding, superseded string) error {
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
		if err := h.send(ctx, event, id, body); err != nil {
			a.m.alertsFailed.WithLabelValues(event).Inc()
			a.log.Error("alert not delivered", "event", event, "kind", f.Kind, "node_id", f.NodeID, "key", al.Key, "webhook", h.name, "err", err)
			errs = append(errs, err)
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
	if err := a.st.MarkAlerted(ctx, al.Key, event == EventResolved); err != nil {
		return err
	}
	if len(a.hooks) == 0 {
		a.log.Info("finding "+event, "kind", f.Kind, "severity", f.Severity, "node_id", f.NodeID, "vms", f.VMs)
	}
	return nil
}
