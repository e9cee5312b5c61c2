package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/store"
)

// TestStandardWebhookTestVector: SignStandard with a whsec_ secret gives
// the Standard Webhooks reference signature (the spec libraries' test
// vector), so off-the-shelf verifiers accept our deliveries.
func TestStandardWebhookTestVector(t *testing.T) {
	got := SignStandard("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("SignStandard = %s, want %s", got, want)
	}
}

// hookRecorder records every POST it gets (headers and body) and answers
// with the status code answer returns for the n-th request (1-based).
type hookRecorder struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []recordedReq
	answer func(n int) int
}

type recordedReq struct {
	header http.Header
	body   []byte
	at     time.Time
}

func newHookRecorder(t *testing.T, answer func(n int) int) *hookRecorder {
	h := &hookRecorder{answer: answer}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.reqs = append(h.reqs, recordedReq{header: r.Header.Clone(), body: body, at: time.Now()})
		n := len(h.reqs)
		h.mu.Unlock()
		w.WriteHeader(h.answer(n))
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookRecorder) requests() []recordedReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]recordedReq(nil), h.reqs...)
}

func sharedFinding(node string) reconcile.Finding {
	return reconcile.Finding{Kind: reconcile.KindSharedNodeID, Severity: reconcile.Critical, NodeID: node, VMs: []string{"wk", "clone"},
		VMRefs: []string{"vm-1", "vm-2"}, Original: "wk", Evidence: []string{"node flipped between wk and clone"}, Remedy: "disable docker on clone"}
}

// TestWebhook4xxGivesUp is issue 9 item 10: a webhook that answers 4xx was
// re-posted on every run forever. Now it is tried 1+retries times, given up,
// recorded in the store (alert_deliveries: failed, with the status), counted
// in vmreconcile_alerts_dropped_total, and never posted again.
func TestWebhook4xxGivesUp(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := alertWorld(t)
	recordFindings(t, st, time.Now(), sharedFinding("n1"))
	hook := newHookRecorder(t, func(int) int { return http.StatusNotFound })
	a := testAlerter(st, hook.URL, 2, time.Second)
	if err := a.flush(ctx); err != nil {
		t.Fatalf("flush: %v (a given-up alert is not a retryable failure)", err)
	}
	if n := len(hook.requests()); n != 3 {
		t.Fatalf("%d POSTs for a 404, want 3 (1 + 2 retries)", n)
	}
	for range 3 { // later runs: nothing is re-posted
		if err := a.flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(hook.requests()); n != 3 {
		t.Fatalf("%d POSTs after more flushes, want still 3: a refused alert must not be re-posted", n)
	}
	if open, res, _ := st.PendingAlerts(ctx); len(open)+len(res) != 0 {
		t.Fatalf("still pending: %d/%d", len(open), len(res))
	}
	eps, _ := st.FindingEpisodes(ctx, sharedFinding("n1").Key())
	ds, err := st.Deliveries(ctx, eps[0].ID)
	if err != nil || len(ds) != 1 || ds[0].Status != store.DeliveryFailed || ds[0].Attempts != 3 || !strings.Contains(ds[0].Detail, "HTTP 404") {
		t.Fatalf("delivery record %+v, %v; want failed after 3 attempts with HTTP 404", ds, err)
	}
	if strings.Contains(ds[0].Detail, hook.URL) || strings.Contains(ds[0].Sink, "127.0.0.1") {
		t.Errorf("the store holds the URL: %+v", ds[0])
	}
	if v := testutilValue(t, a.m, `vmreconcile_alerts_dropped_total{event="opened",sink="webhook"}`); v != 1 {
		t.Errorf("dropped = %v, want 1", v)
	}
	if v := testutilValue(t, a.m, `vmreconcile_alerts_failed_total{event="opened",sink="webhook"}`); v != 1 {
		t.Errorf("failed = %v, want 1", v)
	}
}

// TestWebhookHeaders: every delivery carries the event, a delivery ID
// (X-Vmreconcile-Delivery = webhook-id) that stays the same across retries,
// a timestamp, the Standard Webhooks signature over id.timestamp.body and
// the legacy body signature. A receiver checking VerifyStandard rejects a
// replay (an old timestamp) and a tampered body.
func TestWebhookHeaders(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := alertWorld(t)
	recordFindings(t, st, time.Now(), sharedFinding("n1"))
	hook := newHookRecorder(t, func(n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable // the first attempt fails: retried
		}
		return http.StatusOK
	})
	a := newAlerter(config.Alerts{Webhooks: []config.Webhook{{URL: hook.URL, Secret: hookSecret, Retries: 2, Timeout: time.Second}}},
		&http.Client{}, 1100*time.Millisecond, st, newMetrics(), NewLogger(config.Log{Level: "error"}, nil), time.Now)
	if err := a.flush(ctx); err != nil {
		t.Fatal(err)
	}
	reqs := hook.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2 (a 503, then the retry)", len(reqs))
	}
	first, second := reqs[0].header, reqs[1].header
	id := second.Get(WebhookIDHeader)
	if id == "" || id != first.Get(WebhookIDHeader) || id != second.Get(DeliveryHeader) {
		t.Fatalf("delivery IDs %q / %q / %q: want one stable ID", first.Get(WebhookIDHeader), id, second.Get(DeliveryHeader))
	}
	if first.Get(WebhookTimestampHeader) == second.Get(WebhookTimestampHeader) {
		t.Errorf("the retry (1.1 s later) has the same timestamp %s: each attempt is stamped", first.Get(WebhookTimestampHeader))
	}
	var al Alert
	if err := json.Unmarshal(reqs[1].body, &al); err != nil || al.DeliveryID != id || al.Event != EventOpened || second.Get(EventHeader) != EventOpened {
		t.Fatalf("body %s, %v", reqs[1].body, err)
	}
	if err := VerifyStandard(hookSecret, second, reqs[1].body, time.Now(), 5*time.Minute); err != nil {
		t.Fatalf("VerifyStandard: %v", err)
	}
	if !VerifySignature(hookSecret, reqs[1].body, second.Get(SignatureHeader)) {
		t.Errorf("legacy %s does not verify", SignatureHeader)
	}
	// A replay an hour later is stale; a changed body or ID does not verify.
	if err := VerifyStandard(hookSecret, second, reqs[1].body, time.Now().Add(time.Hour), 5*time.Minute); !errors.Is(err, ErrStale) {
		t.Errorf("replay an hour later: %v, want ErrStale", err)
	}
	tampered := []byte(strings.Replace(string(reqs[1].body), `"critical"`, `"info"`, 1))
	if err := VerifyStandard(hookSecret, second, tampered, time.Now(), 5*time.Minute); !errors.Is(err, ErrBadSignature) {
		t.Errorf("tampered body: %v, want ErrBadSignature", err)
	}
	h := second.Clone()
	h.Set(WebhookIDHeader, "another-id")
	if err := VerifyStandard(hookSecret, h, reqs[1].body, time.Now(), 5*time.Minute); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other ID: %v, want ErrBadSignature", err)
	}
}

// TestHangingWebhookDoesNotHoldAudits is issue 9 item 10: a receiver that
// hangs made the daemon skip half its scheduled runs, because delivery ran
// inside the audit. With an audit every second and a receiver that never
// answers (timeout 3 s, 3 retries: 15 s per alert), audits keep running on
// schedule: none is skipped and each is short.
func TestHangingWebhookDoesNotHoldAudits(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(hang); srv.Close() })
	_, vcCfg := startVCSim(t, 0)
	cfg := baseConfig(t)
	cfg.VCenters = []config.VCenter{vcCfg}
	cfg.Schedules.Audit = "@every 1s"
	cfg.Alerts.Webhooks = []config.Webhook{{URL: srv.URL, Retries: 3, Timeout: 3 * time.Second}}
	// Pending alerts exist before the daemon starts: a finding in the store.
	st, err := store.Open(cfg.Store.Path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	recordFindings(t, st, time.Now().Add(-time.Hour), sharedFinding("n1"), sharedFinding("n2"))
	st.Close()

	r := startDaemon(t, cfg, cfg.Store.Path, nil)
	ok := `vmreconcile_runs_total{result="ok",task="audit"}`
	skipped := `vmreconcile_runs_skipped_total{task="audit"}`
	deadline := time.Now().Add(30 * time.Second)
	// The startup audit may still run (its vCenter mirror syncing) when the
	// first tick of the schedule fires, a few ms after start: count skips
	// from the second audit on.
	for r.metric(t, ok) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	skipped0 := r.metric(t, skipped)
	for r.metric(t, ok) < 6 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if v := r.metric(t, ok); v < 6 {
		t.Fatalf("%v successful audits in 30 s with a 1 s schedule and a hanging webhook", v)
	}
	if v := r.metric(t, skipped) - skipped0; v != 0 {
		t.Errorf("%v scheduled audits skipped: delivery held the audit", v)
	}
	if v := r.metric(t, `vmreconcile_job_last_duration_seconds{task="audit"}`); v > 2 {
		t.Errorf("last audit took %vs: it waited for the webhook", v)
	}
	if v := r.metric(t, `vmreconcile_alerts_sent_total{event="opened",sink="webhook"}`); v != 0 {
		t.Errorf("sent = %v to a receiver that never answers", v)
	}
	if open, _, _ := r.st.PendingAlerts(t.Context()); len(open) == 0 {
		t.Errorf("the alerts are no longer pending, yet the receiver never answered")
	}
}

const redeliveryChildEnv = "VMRECONCILE_REDELIVERY_CHILD"

// TestRedeliveryAfterKill9 documents the delivery guarantee: at-least-once.
// A daemon killed (SIGKILL) after the receiver took a POST but before the
// store recorded it posts it again after the restart, with the same
// delivery ID (webhook-id), so the receiver can drop the repeat; once
// recorded, it is never posted again.
func TestRedeliveryAfterKill9(t *testing.T) {
	if p := os.Getenv(redeliveryChildEnv); p != "" {
		redeliveryChild(t, p)
		return
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	recordFindings(t, st, time.Now(), sharedFinding("n1"))
	st.Close()

	got := make(chan string, 10)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get(WebhookIDHeader)
		select { // the first POST is taken but never answered
		case <-release:
		case <-r.Context().Done():
			return
		}
	}))
	t.Cleanup(func() { srv.Close() })

	cmd := exec.Command(os.Args[0], "-test.run=^TestRedeliveryAfterKill9$", "-test.count=1")
	cmd.Env = append(os.Environ(), redeliveryChildEnv+"="+path+"|"+srv.URL)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { io.Copy(io.Discard, bufio.NewReader(out)) }()
	var firstID string
	select {
	case firstID = <-got:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("the child never posted")
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL, mid-delivery
		t.Fatal(err)
	}
	cmd.Wait()
	close(release)

	st, err = store.Open(path, store.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := newAlerter(config.Alerts{Webhooks: []config.Webhook{{URL: srv.URL, Timeout: 5 * time.Second}}}, &http.Client{}, 10*time.Millisecond,
		st, newMetrics(), NewLogger(config.Log{Level: "error"}, nil), time.Now)
	if err := a.flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	second := <-got
	if second != firstID || firstID == "" {
		t.Fatalf("redelivered with ID %q, first delivery %q: want the same ID", second, firstID)
	}
	if err := a.flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-got:
		t.Fatalf("posted a third time (%s) after the delivery was recorded", id)
	default:
	}
}

func redeliveryChild(t *testing.T, arg string) {
	path, url, _ := strings.Cut(arg, "|")
	st, err := store.Open(path, store.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	a := newAlerter(config.Alerts{Webhooks: []config.Webhook{{URL: url, Timeout: time.Minute}}}, &http.Client{}, time.Second,
		st, newMetrics(), NewLogger(config.Log{Level: "error"}, nil), time.Now)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = a.flush(ctx)
}

// TestSlackSink: a Slack-compatible message (text plus blocks) with the
// summary, evidence and remedy; a VM name cannot inject markup or control
// characters; the URL (a credential) is never logged.
func TestSlackSink(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := alertWorld(t)
	f := sharedFinding("n1")
	f.VMs = []string{"wk", "clone<!channel>\x1b[31m"}
	recordFindings(t, st, time.Now(), f)
	hook := newHookRecorder(t, func(int) int { return http.StatusOK })
	logs := &syncBuffer{}
	secretURL := hook.URL + "/services/T000/B000/slack-token-value"
	a := newAlerter(config.Alerts{Slack: []config.Slack{{URL: config.Secret(secretURL)}}}, &http.Client{}, 10*time.Millisecond,
		st, newMetrics(), NewLogger(config.Log{Level: "debug"}, logs), time.Now)
	if err := a.flush(ctx); err != nil {
		t.Fatal(err)
	}
	reqs := hook.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d posts", len(reqs))
	}
	var msg SlackPayload
	if err := json.Unmarshal(reqs[0].body, &msg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg.Text, "shared-node-id (critical) node n1") || len(msg.Blocks) != 3 ||
		msg.Blocks[0].Type != "section" || msg.Blocks[2].Type != "context" {
		t.Fatalf("message %+v", msg)
	}
	for _, text := range []string{msg.Text, msg.Blocks[0].Text.Text} {
		if strings.Contains(text, "<!channel>") || strings.ContainsRune(text, 0x1b) || !strings.Contains(text, "clone&lt;!channel&gt;[31m") {
			t.Errorf("the VM name was not escaped: %q", text)
		}
	}
	if !strings.Contains(msg.Blocks[1].Text.Text, "*Remedy:* disable docker on clone") || !strings.Contains(msg.Blocks[1].Text.Text, "node flipped") {
		t.Errorf("evidence/remedy block: %+v", msg.Blocks[1].Text)
	}
	if strings.Contains(logs.String(), "slack-token-value") || strings.Contains(logs.String(), "/services/") {
		t.Errorf("the Slack URL is in the log: %s", logs.String())
	}
}

// testutilValue reads one sample of the alerter's registry in text form.
func testutilValue(t *testing.T, m *metrics, sample string) float64 {
	t.Helper()
	body := gatherText(t, m)
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			var f float64
			if _, err := fmtSscan(v, &f); err == nil {
				return f
			}
		}
	}
	return -1
}
