package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestLoadAlertSinks: Alertmanager and Slack sinks load with their secrets
// from files, the resolution policy has its defaults, and nothing secret is
// printed by %v.
func TestLoadAlertSinks(t *testing.T) {
	dir := t.TempDir()
	pw := write(t, dir, "am.pw", "am-password-value\n")
	slackURL := write(t, dir, "slack.url", "https://hooks.slack.example/services/T0/B0/slack-token-value\n")
	p := write(t, dir, "c.yaml", fmt.Sprintf(`
alerts:
  alertmanager:
    - url: http://127.0.0.1:9093
      username: vmr
      password_file: %s
      resend_interval: 30s
      timeout: 5s
  slack:
    - url_file: %s
      retries: 2
findings:
  resolve_after: 15m
`, pw, slackURL))
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	am := cfg.Alerts.Alertmanager
	if len(am) != 1 || am[0].Password.Reveal() != "am-password-value" || am[0].Username != "vmr" || am[0].ResendInterval != 30*time.Second || am[0].Timeout != 5*time.Second {
		t.Errorf("alertmanager = %+v", am)
	}
	if sl := cfg.Alerts.Slack; len(sl) != 1 || !strings.HasSuffix(sl[0].URL.Reveal(), "/slack-token-value") || sl[0].Retries != 2 {
		t.Errorf("slack = %+v", sl)
	}
	if cfg.Findings.ResolveRuns != 3 || cfg.Findings.ResolveAfter != 15*time.Minute {
		t.Errorf("findings = %+v, want the default 3 runs and the configured 15m", cfg.Findings)
	}
	if s := fmt.Sprintf("%v %+v", cfg, cfg); strings.Contains(s, "am-password-value") || strings.Contains(s, "slack-token-value") {
		t.Errorf("a secret prints: %s", s)
	}
	if d := Default().Findings; d.ResolveRuns != 3 || d.ResolveAfter != 10*time.Minute {
		t.Errorf("default findings = %+v", d)
	}
	keys := strings.Join(Keys(), " ")
	for _, k := range []string{"findings.resolve_runs", "findings.resolve_after", "alerts.alertmanager", "alerts.slack"} {
		if !strings.Contains(keys, k) {
			t.Errorf("Keys() lacks %s", k)
		}
	}
}

// TestLoadBadAlerts: each bad alert or resolution setting is one line naming
// the key with a fix, and never echoes a credential.
func TestLoadBadAlerts(t *testing.T) {
	dir := t.TempDir()
	badSlack := write(t, dir, "slack.url", "hooks.slack.example/services/T0/B0/hunter2\n")
	cases := []struct {
		name, body string
		want       []string
	}{
		{"am url", "alerts:\n  alertmanager:\n    - url: 'am:9093'\n", []string{"alerts.alertmanager[0].url", "fix:"}},
		{"am credentials in url", "alerts:\n  alertmanager:\n    - url: 'http://u:hunter2@am:9093'\n", []string{"alerts.alertmanager[0].url", "password_file"}},
		{"am token in query", "alerts:\n  alertmanager:\n    - url: 'http://am:9093/?token=hunter2'\n", []string{"alerts.alertmanager[0].url", "REDACTED"}},
		{"am user without password", "alerts:\n  alertmanager:\n    - url: http://am:9093\n      username: u\n", []string{"alerts.alertmanager[0].password_file"}},
		{"am basic and bearer", "alerts:\n  alertmanager:\n    - url: http://am:9093\n      username: u\n      password: hunter2\n      bearer_token: hunter2\n", []string{"alerts.alertmanager[0]", "keep one"}},
		{"am resend too short", "alerts:\n  alertmanager:\n    - url: http://am:9093\n      resend_interval: 10ms\n", []string{"alerts.alertmanager[0].resend_interval", "1m"}},
		{"am missing password file", "alerts:\n  alertmanager:\n    - url: http://am:9093\n      username: u\n      password_file: /nonexistent/pw\n", []string{"alerts.alertmanager[0].password_file", "no such file"}},
		{"slack no url", "alerts:\n  slack:\n    - retries: 1\n", []string{"alerts.slack[0].url", "url_file"}},
		{"slack bad url", "alerts:\n  slack:\n    - url_file: " + badSlack + "\n", []string{"alerts.slack[0].url", "not shown"}},
		{"slack bad inline url", "alerts:\n  slack:\n    - url: 'ftp://hooks/hunter2'\n", []string{"alerts.slack[0].url", "not shown"}},
		{"webhook retries", "alerts:\n  webhooks:\n    - url: https://h/x\n      retries: -1\n", []string{"alerts.webhooks[0].retries"}},
		{"webhook timeout", "alerts:\n  webhooks:\n    - url: https://h/x\n      timeout: -1s\n", []string{"alerts.webhooks[0].timeout"}},
		{"resolve in one run", "findings:\n  resolve_runs: 1\n", []string{"findings.resolve_runs", "not evidence"}},
		{"negative resolve_after", "findings:\n  resolve_after: -5m\n", []string{"findings.resolve_after"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := write(t, dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml", tc.body)
			_, err := Load(p)
			var ce *Error
			if err == nil || !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *config.Error", err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, p+": ") {
				t.Errorf("not one line naming the file: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error leaks a secret: %q", msg)
			}
		})
	}
}
