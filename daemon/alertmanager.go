package daemon

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/vmreconcile/vmreconcile/config"
)

// AlertmanagerAlertName is the alertname label of every alert vmreconcile
// pushes to Alertmanager; the kind label tells findings apart.
const AlertmanagerAlertName = "VmreconcileFinding"

// defaultResendInterval is alerts.alertmanager[].resend_interval's default.
const defaultResendInterval = time.Minute

// AlertmanagerAlert is one alert as Alertmanager's POST /api/v2/alerts
// takes it.
type AlertmanagerAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// AlertmanagerAlerts renders alerts for Alertmanager. Labels: alertname,
// kind, severity, node_id, vm (the VM names, sorted, comma-separated),
// original (empty ones are left out, as Alertmanager treats them as
// absent). Annotations: summary, remedy, evidence, key, and superseded_by
// on a resolution. An open finding ends at now + 4 × resend (Alertmanager
// resolves it by itself only if vmreconcile stops re-sending it, as with
// Prometheus); a resolved one ends at its resolution.
func AlertmanagerAlerts(as []Alert, now time.Time, resend time.Duration) []AlertmanagerAlert {
	out := make([]AlertmanagerAlert, 0, len(as))
	for _, a := range as {
		f := a.Finding
		labels := map[string]string{"alertname": AlertmanagerAlertName}
		for k, v := range map[string]string{"kind": f.Kind, "severity": string(f.Severity), "node_id": f.NodeID,
			"vm": sortedVMs(f), "original": cleanText(f.Original)} {
			if v != "" {
				labels[k] = v
			}
		}
		ann := map[string]string{"summary": Summary(f), "key": a.Key}
		if f.Remedy != "" {
			ann["remedy"] = f.Remedy
		}
		if len(f.Evidence) > 0 {
			ann["evidence"] = strings.Join(f.Evidence, "\n")
		}
		am := AlertmanagerAlert{Labels: labels, Annotations: ann, StartsAt: a.FirstSeen.UTC(), EndsAt: now.Add(4 * resend).UTC()}
		if a.Event == EventResolved && a.ResolvedAt != nil {
			am.EndsAt = a.ResolvedAt.UTC()
			if a.SupersededBy != "" {
				ann["superseded_by"] = a.SupersededBy
			}
		}
		out = append(out, am)
	}
	return out
}

// alertmanagerSink pushes to one Alertmanager (alerts.alertmanager[]).
type alertmanagerSink struct {
	label, url, base string
	auth             string // Authorization header value, "" for none
	tries            int
	timeout, every   time.Duration
	client           *http.Client
	now              func() time.Time
}

func newAlertmanagerSink(c config.Alertmanager, client *http.Client, now func() time.Time) *alertmanagerSink {
	s := &alertmanagerSink{label: "alertmanager " + safeURL(c.URL), base: c.URL, tries: c.Retries, timeout: c.Timeout,
		every: c.ResendInterval, client: client, now: now}
	s.url, _ = url.JoinPath(c.URL, "api/v2/alerts")
	if s.timeout <= 0 {
		s.timeout = defaultSinkTimeout
	}
	if s.every <= 0 {
		s.every = defaultResendInterval
	}
	switch {
	case c.BearerToken != "":
		s.auth = "Bearer " + c.BearerToken.Reveal()
	case c.Username != "":
		s.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(c.Username+":"+c.Password.Reveal()))
	}
	return s
}

func (s *alertmanagerSink) kind() string                  { return SinkAlertmanager }
func (s *alertmanagerSink) id() string                    { return sinkID(SinkAlertmanager, s.base) }
func (s *alertmanagerSink) name() string                  { return s.label }
func (s *alertmanagerSink) retries() int                  { return s.tries }
func (s *alertmanagerSink) resendInterval() time.Duration { return s.every }

func (s *alertmanagerSink) post(ctx context.Context, a Alert) error {
	return s.push(ctx, []Alert{a})
}

// resend re-sends the open findings (one attempt: the next interval is the
// retry).
func (s *alertmanagerSink) resend(ctx context.Context, open []Alert) error {
	return s.push(ctx, open)
}

func (s *alertmanagerSink) push(ctx context.Context, as []Alert) error {
	body, err := json.Marshal(AlertmanagerAlerts(as, s.now(), s.every))
	if err != nil {
		return errPermanent{err}
	}
	var h http.Header
	if s.auth != "" {
		h = http.Header{"Authorization": []string{s.auth}}
	}
	return postJSON(ctx, s.client, s.label, s.url, s.timeout, body, h)
}
