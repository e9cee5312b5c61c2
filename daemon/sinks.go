package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

// defaultSinkTimeout bounds one delivery attempt when the sink sets none.
const defaultSinkTimeout = 10 * time.Second

// sinkID is a sink's stable ID in the store: its type and a hash of its URL
// (never the URL: tokens live there).
func sinkID(kind, rawURL string) string {
	h := sha256.Sum256([]byte(rawURL))
	return kind + ":" + hex.EncodeToString(h[:8])
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

// postJSON POSTs body to rawURL within timeout with the given headers. A
// 2xx answer is success; a 4xx other than 408 and 429 is errPermanent; the
// error names the sink by name, never by URL.
func postJSON(ctx context.Context, client *http.Client, name, rawURL string, timeout time.Duration, body []byte, hdr http.Header) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return errPermanent{fmt.Errorf("%s: bad request", name)}
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "vmreconcile")
	resp, err := client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error quotes the full URL, tokens included
		}
		return fmt.Errorf("%s: %v", name, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 408 && resp.StatusCode != 429:
		return errPermanent{fmt.Errorf("%s: HTTP %d", name, resp.StatusCode)}
	}
	return fmt.Errorf("%s: HTTP %d", name, resp.StatusCode)
}

// webhook is a signed JSON webhook (alerts.webhooks[]).
type webhook struct {
	label, url string
	secret     config.Secret
	tries      int
	timeout    time.Duration
	client     *http.Client
	now        func() time.Time
}

func newWebhook(c config.Webhook, client *http.Client) *webhook {
	w := &webhook{label: "webhook " + safeURL(c.URL), url: c.URL, secret: c.Secret, tries: c.Retries, timeout: c.Timeout, client: client, now: time.Now}
	if w.timeout <= 0 {
		w.timeout = defaultSinkTimeout
	}
	return w
}

func (w *webhook) kind() string { return SinkWebhook }
func (w *webhook) id() string   { return sinkID(SinkWebhook, w.url) }
func (w *webhook) name() string { return w.label }
func (w *webhook) retries() int { return w.tries }

func (w *webhook) post(ctx context.Context, a Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return errPermanent{err}
	}
	ts := w.now().Unix()
	h := http.Header{}
	h.Set(EventHeader, a.Event)
	h.Set(DeliveryHeader, a.DeliveryID)
	h.Set(WebhookIDHeader, a.DeliveryID)
	h.Set(WebhookTimestampHeader, strconv.FormatInt(ts, 10))
	if w.secret != "" {
		h.Set(SignatureHeader, Sign(w.secret.Reveal(), body))
		h.Set(WebhookSignatureHeader, SignStandard(w.secret.Reveal(), a.DeliveryID, ts, body))
	}
	return postJSON(ctx, w.client, w.label, w.url, w.timeout, body, h)
}

// slackSink posts Slack-compatible messages (text plus blocks) to an
// incoming webhook (alerts.slack[]). Its URL is a credential.
type slackSink struct {
	label   string
	url     config.Secret
	tries   int
	timeout time.Duration
	client  *http.Client
}

func newSlackSink(i int, c config.Slack, client *http.Client) *slackSink {
	host := "(unparsable URL)"
	if u, err := url.Parse(c.URL.Reveal()); err == nil {
		host = u.Host
	}
	s := &slackSink{label: fmt.Sprintf("slack[%d] %s", i, host), url: c.URL, tries: c.Retries, timeout: c.Timeout, client: client}
	if s.timeout <= 0 {
		s.timeout = defaultSinkTimeout
	}
	return s
}

func (s *slackSink) kind() string { return SinkSlack }
func (s *slackSink) id() string   { return sinkID(SinkSlack, s.url.Reveal()) }
func (s *slackSink) name() string { return s.label }
func (s *slackSink) retries() int { return s.tries }

func (s *slackSink) post(ctx context.Context, a Alert) error {
	body, err := json.Marshal(SlackMessage(a))
	if err != nil {
		return errPermanent{err}
	}
	return postJSON(ctx, s.client, s.label, s.url.Reveal(), s.timeout, body, nil)
}

// SlackText is a Slack text object.
type SlackText struct {
	Type string `json:"type"` // mrkdwn, plain_text
	Text string `json:"text"`
}

// SlackBlock is a Slack layout block (section, context).
type SlackBlock struct {
	Type     string      `json:"type"`
	Text     *SlackText  `json:"text,omitempty"`
	Elements []SlackText `json:"elements,omitempty"`
}

// SlackPayload is the body posted to a Slack-compatible incoming webhook:
// text (the notification and fallback) plus blocks.
type SlackPayload struct {
	Text   string       `json:"text"`
	Blocks []SlackBlock `json:"blocks"`
}

// SlackMessage renders an alert for Slack: the summary as text, and blocks
// with the summary, the evidence and the remedy. Everything that came from
// vCenter or a node is escaped for mrkdwn (&, <, >) and stripped of control
// characters, so that a VM name cannot inject links, mentions or markup.
func SlackMessage(a Alert) SlackPayload {
	f := a.Finding
	icon := map[reconcile.Severity]string{reconcile.Critical: ":red_circle:", reconcile.Warning: ":warning:", reconcile.Info: ":information_source:"}[f.Severity]
	verb := "opened"
	if a.Event == EventResolved {
		icon, verb = ":white_check_mark:", "resolved"
		if a.SupersededBy != "" {
			verb = "superseded by " + slackEscape(a.SupersededBy)
		}
	}
	summary := slackEscape(Summary(f))
	text := fmt.Sprintf("%s vmreconcile: %s %s", icon, verb, summary)
	blocks := []SlackBlock{{Type: "section", Text: &SlackText{Type: "mrkdwn", Text: fmt.Sprintf("%s *%s* %s", icon, verb, summary)}}}
	var detail []string
	for _, e := range f.Evidence {
		detail = append(detail, "• "+slackEscape(e))
	}
	if a.Event == EventOpened && f.Remedy != "" {
		detail = append(detail, "*Remedy:* "+slackEscape(f.Remedy))
	}
	if len(detail) > 0 {
		blocks = append(blocks, SlackBlock{Type: "section", Text: &SlackText{Type: "mrkdwn", Text: truncate(strings.Join(detail, "\n"), 2900)}})
	}
	ctxText := fmt.Sprintf("first seen %s · daemon %s · delivery %s", a.FirstSeen.UTC().Format(time.RFC3339), slackEscape(a.Daemon), a.DeliveryID)
	blocks = append(blocks, SlackBlock{Type: "context", Elements: []SlackText{{Type: "mrkdwn", Text: ctxText}}})
	return SlackPayload{Text: truncate(text, 3000), Blocks: blocks}
}

// Summary is a finding in one line: kind, severity, node, VMs, original.
func Summary(f reconcile.Finding) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s)", f.Kind, f.Severity)
	if f.NodeID != "" {
		fmt.Fprintf(&b, " node %s", f.NodeID)
	}
	if len(f.VMs) > 0 {
		fmt.Fprintf(&b, " VMs %s", strings.Join(f.VMs, ", "))
	}
	if f.Original != "" {
		fmt.Fprintf(&b, "; original %s", f.Original)
	}
	return cleanText(b.String())
}

// cleanText drops control characters (terminal escapes, newlines) from text
// that came from vCenter or a node.
func cleanText(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(cleanText(s))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// sortedVMs is the VM names in a stable order (Alertmanager labels).
func sortedVMs(f reconcile.Finding) string {
	vms := slices.Clone(f.VMs)
	slices.Sort(vms)
	return cleanText(strings.Join(vms, ","))
}
