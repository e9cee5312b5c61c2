package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/config"
)

// alertmanagerBin is Debian's prometheus-alertmanager (0.25); upstream
// tarballs name it alertmanager.
func alertmanagerBin(t *testing.T) string {
	t.Helper()
	for _, b := range []string{"prometheus-alertmanager", "alertmanager"} {
		if p, err := exec.LookPath(b); err == nil {
			return p
		}
	}
	msg := "prometheus-alertmanager not installed (apt-get install -y prometheus-alertmanager): skipping the real Alertmanager test"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true: the runner must install it")
	}
	t.Skip(msg)
	return ""
}

// amTestPassword is the basic-auth password of the test Alertmanager; its
// web config holds amTestHash, a bcrypt hash of it (cost 4).
const (
	amTestUser     = "vmreconcile"
	amTestPassword = "am-test-password"
	amTestHash     = "$2a$04$f73//m3FkEtamh3Z5zvhfe17cAyia2QkEKrKKe0ZIiRztLrq7WaA."
)

// startAlertmanager runs a real Alertmanager on 127.0.0.1 with a null
// receiver, no clustering, a temporary storage path and basic auth, and
// returns its base URL.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	bin := alertmanagerBin(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "alertmanager.yml", "route:\n  receiver: 'null'\n  group_wait: 1s\nreceivers:\n  - name: 'null'\n")
	web := writeFile(t, dir, "web.yml", fmt.Sprintf("basic_auth_users:\n  %s: '%s'\n", amTestUser, amTestHash))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	log, err := os.Create(filepath.Join(dir, "alertmanager.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr,
		"--web.config.file="+web, "--cluster.listen-address=")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("alertmanager log:\n%s", tail(string(b), 30))
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _ := amGet(t, base+"/-/ready")
		if code == 200 {
			return base
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager not ready on %s within 30 s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func amGet(t *testing.T, url string) (int, []byte) {
	req, _ := http.NewRequest("GET", url, nil)
	req.SetBasicAuth(amTestUser, amTestPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// gettableAlert is the part of Alertmanager's GET /api/v2/alerts answer the
// test reads.
type gettableAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

func amAlerts(t *testing.T, base string) []gettableAlert {
	t.Helper()
	code, body := amGet(t, base+"/api/v2/alerts")
	if code != 200 {
		t.Fatalf("GET /api/v2/alerts: %d %s", code, body)
	}
	var as []gettableAlert
	if err := json.Unmarshal(body, &as); err != nil {
		t.Fatalf("alerts %s: %v", body, err)
	}
	return as
}

// TestAlertmanagerReal pushes a finding to a real Alertmanager (Debian's
// prometheus-alertmanager, basic auth on): it shows up in /api/v2/alerts
// with the labels alertname, kind, severity, node_id, vm and original and
// the annotations summary and remedy; it is re-sent on the resend interval
// (its endsAt moves on); and when the finding resolves it is sent with
// endsAt and Alertmanager no longer lists it as active.
func TestAlertmanagerReal(t *testing.T) {
	t.Parallel()
	base := startAlertmanager(t)
	st := alertWorld(t)
	f := sharedFinding("node-abc")
	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	recordFindings(t, st, t0, f)

	// A wrong password is a 401: permanent, given up, recorded.
	other := alertWorld(t)
	recordFindings(t, other, t0, f)
	bad := newAlerter(config.Alerts{Alertmanager: []config.Alertmanager{{URL: base, Username: amTestUser, Password: "wrong"}}},
		&http.Client{}, 10*time.Millisecond, other, newMetrics(), NewLogger(config.Log{Level: "error"}, nil), time.Now)
	if err := bad.flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(amAlerts(t, base)) != 0 {
		t.Fatal("an alert got in with a wrong password")
	}
	if v := testutilValue(t, bad.m, `vmreconcile_alerts_dropped_total{event="opened",sink="alertmanager"}`); v != 1 {
		t.Fatalf("dropped = %v after a 401, want 1", v)
	}
	a := newAlerter(config.Alerts{Alertmanager: []config.Alertmanager{{URL: base, Username: amTestUser, Password: amTestPassword,
		ResendInterval: time.Second, Timeout: 5 * time.Second}}},
		&http.Client{}, 10*time.Millisecond, st, newMetrics(), NewLogger(config.Log{Level: "error"}, nil), time.Now)
	ctx, cancel := context.WithCancel(t.Context())
	a.start(ctx)
	t.Cleanup(func() { cancel(); a.stop() })

	var got gettableAlert
	waitFor(t, 15*time.Second, "the alert in Alertmanager", func() bool {
		as := amAlerts(t, base)
		if len(as) == 1 {
			got = as[0]
		}
		return len(as) == 1
	})
	want := map[string]string{"alertname": AlertmanagerAlertName, "kind": "shared-node-id", "severity": "critical",
		"node_id": "node-abc", "vm": "clone,wk", "original": "wk"}
	for k, v := range want {
		if got.Labels[k] != v {
			t.Errorf("label %s = %q, want %q (labels %v)", k, got.Labels[k], v, got.Labels)
		}
	}
	if !strings.Contains(got.Annotations["summary"], "shared-node-id (critical) node node-abc") || got.Annotations["remedy"] != f.Remedy {
		t.Errorf("annotations %v", got.Annotations)
	}
	if got.Status.State != "active" || !got.StartsAt.Equal(t0) {
		t.Errorf("state %q, startsAt %s (want active, %s)", got.Status.State, got.StartsAt, t0)
	}
	firstEnd := got.EndsAt
	waitFor(t, 10*time.Second, "a resend moving endsAt on", func() bool {
		as := amAlerts(t, base)
		return len(as) == 1 && as[0].EndsAt.After(firstEnd)
	})

	// The finding resolves (first absence: the policy is the store's
	// business, tested there).
	recordFindings(t, st, time.Now())
	a.notify()
	waitFor(t, 15*time.Second, "the alert to resolve in Alertmanager", func() bool {
		for _, x := range amAlerts(t, base) {
			if x.Status.State == "active" && x.EndsAt.After(time.Now()) {
				return false
			}
		}
		return true
	})
	if v := testutilValue(t, a.m, `vmreconcile_alerts_sent_total{event="resolved",sink="alertmanager"}`); v != 1 {
		t.Errorf("resolved sent = %v, want 1", v)
	}
	if open, res, _ := st.PendingAlerts(t.Context()); len(open)+len(res) != 0 {
		t.Errorf("alerts still pending: %d/%d", len(open), len(res))
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
