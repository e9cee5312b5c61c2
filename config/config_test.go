package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// kubeconfigBody is a kubeconfig with contexts a and b, current-context a.
const kubeconfigBody = `apiVersion: v1
kind: Config
current-context: a
clusters:
- {name: c, cluster: {server: "https://10.0.0.1:6443"}}
users:
- {name: u, user: {token: hunter2}}
contexts:
- {name: a, context: {cluster: c, user: u}}
- {name: b, context: {cluster: c, user: u}}
`

func TestLoadGood(t *testing.T) {
	dir := t.TempDir()
	pw := write(t, dir, "vc.pw", "s3cret-value\n")
	kc := write(t, dir, "kubeconfig", kubeconfigBody)
	p := write(t, dir, "c.yaml", fmt.Sprintf(`
vcenters:
  - name: vc1
    url: https://vc1.example.com/sdk
    username: admin@vsphere.local
    password_file: %s
    datacenters: [DC0]
    exclude: ["/DC0/vm/lab/*"]
swarms:
  - name: prod
    hosts: ["tcp://mgr-1:2376", "tcp://mgr-2:2376"]
kubernetes:
  - name: k8s-prod
    kubeconfig: %s
    context: b
  - name: here
    in_cluster: true
  - {}
schedules:
  audit: "CRON_TZ=Europe/Berlin */5 * * * *"
observe:
  lookback: 15m
policy:
  remediate: dry-run
`, pw, kc))
	t.Setenv("VMRECONCILE_STORE_PATH", "/tmp/x.db")
	t.Setenv("VMRECONCILE_SCHEDULES_PRUNE", "@every 2h")
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.VCenters[0].Password.Reveal(); got != "s3cret-value" {
		t.Errorf("password from file = %q", got)
	}
	if s := fmt.Sprintf("%v %+v %#v", cfg.VCenters[0].Password, cfg.VCenters[0], cfg); strings.Contains(s, "s3cret") {
		t.Errorf("secret printed: %s", s)
	}
	if cfg.Observe.Lookback != 15*time.Minute || cfg.Observe.Interval != time.Second {
		t.Errorf("observe = %+v", cfg.Observe)
	}
	if cfg.Store.Path != "/tmp/x.db" || cfg.Schedules.Prune != "@every 2h" || cfg.Schedules.Lineage != "@every 1h" {
		t.Errorf("env overrides/defaults: store=%q prune=%q lineage=%q", cfg.Store.Path, cfg.Schedules.Prune, cfg.Schedules.Lineage)
	}
	wantK8s := []Kubernetes{{Name: "k8s-prod", Kubeconfig: kc, Context: "b"}, {Name: "here", InCluster: true}, {}}
	if fmt.Sprint(cfg.Kubernetes) != fmt.Sprint(wantK8s) {
		t.Errorf("kubernetes = %+v, want %+v", cfg.Kubernetes, wantK8s)
	}
	if len(cfg.Swarms[0].Hosts) != 2 || cfg.Policy.Remediate != "dry-run" || cfg.Policy.Action != "disable-docker" {
		t.Errorf("swarms/policy = %+v %+v", cfg.Swarms, cfg.Policy)
	}
}

// TestLoadBad is the bad-config table: each case must fail with one line that
// names the key (or file) and carries a fix.
func TestLoadBad(t *testing.T) {
	dir := t.TempDir()
	kc := write(t, dir, "kubeconfig", kubeconfigBody)
	noCurrent := write(t, dir, "kubeconfig-nocurrent", strings.Replace(kubeconfigBody, "current-context: a\n", "", 1))
	notKC := write(t, dir, "not-a-kubeconfig", "users: [token: hunter2\n")
	badBundle := filepath.Join(dir, "bundle")
	os.Mkdir(badBundle, 0o700)
	write(t, badBundle, "ca.pem", "x")
	write(t, badBundle, "cert.pem", "not a cert")
	write(t, badBundle, "key.pem", "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYMATERIAL\n-----END PRIVATE KEY-----\n")
	cases := []struct {
		name, body string
		want       []string
	}{
		{"typo key", "schedules:\n  audti: '@every 1m'\n", []string{"schedules.audti", "unknown key"}},
		{"typo top", "stor:\n  path: /x\n", []string{"stor", "unknown key"}},
		{"bad cron", "schedules:\n  audit: '61 * * * *'\n", []string{"schedules.audit", `"61 * * * *"`, "fix:"}},
		{"bad cron fields", "schedules:\n  prune: 'every day'\n", []string{"schedules.prune", "every day"}},
		{"missing secret file", "vcenters:\n  - url: vc1\n    password_file: /nonexistent/pw\n", []string{"vcenters[0].password_file", "/nonexistent/pw", "no such file"}},
		{"bad vcenter url", "vcenters:\n  - url: 'ftp://u:hunter2@vc1'\n", []string{"vcenters[0].url", "REDACTED"}},
		{"bad docker host", "swarms:\n  - hosts: ['mgr-1:2376']\n", []string{"swarms[0].hosts[0]", "mgr-1:2376", "tcp://"}},
		{"no docker host", "swarms:\n  - name: a\n", []string{"swarms[0].hosts"}},
		{"unreadable cert", "swarms:\n  - hosts: ['tcp://m:2376']\n    cert_path: " + badBundle + "\n", []string{"swarms[0].cert_path", "key pair"}},
		{"missing bundle", "swarms:\n  - hosts: ['tcp://m:2376']\n    cert_path: /nonexistent/bundle\n", []string{"swarms[0].cert_path", "ca.pem"}},
		{"bad policy", "policy:\n  remediate: yes-please\n", []string{"policy.remediate", "yes-please"}},
		{"bad duration", "observe:\n  lookback: ten minutes\n", []string{"lookback"}},
		{"bad listen", "listen: 9477\n", []string{"listen", "host:port"}},
		{"bad webhook", "alerts:\n  webhooks:\n    - url: 'hooks.example.com'\n", []string{"alerts.webhooks[0].url"}},
		{"webhook token in query", "alerts:\n  webhooks:\n    - url: 'ftp://hooks.example.com/x?token=hunter2'\n", []string{"alerts.webhooks[0].url", "REDACTED"}},
		{"credentials in vcenter url", "vcenters:\n  - url: 'https://admin:hunter2@vc1.example.com/sdk'\n", []string{"vcenters[0].url", "carries credentials", "password_file"}},
		{"bad pattern", "policy:\n  exclude: ['[abc']\n", []string{"policy.exclude", "[abc"}},
		{"bad fail_on", "fail_on: sometimes\n", []string{"fail_on", "sometimes"}},
		{"yaml syntax", "vcenters: [\n", []string{"cannot parse"}},
		{"kubeconfig missing", "kubernetes:\n  - kubeconfig: /nonexistent/kc\n", []string{"kubernetes[0].kubeconfig", "/nonexistent/kc", "fix:"}},
		{"kubeconfig malformed", "kubernetes:\n  - kubeconfig: " + notKC + "\n", []string{"kubernetes[0].kubeconfig", "not a kubeconfig", "kubectl config view"}},
		{"kubernetes unknown context", "kubernetes:\n  - kubeconfig: " + kc + "\n  - kubeconfig: " + kc + "\n    context: prod\n", []string{"kubernetes[1].context", `no context "prod"`, "get-contexts"}},
		{"kubernetes no current context", "kubernetes:\n  - kubeconfig: " + noCurrent + "\n", []string{"kubernetes[0].context", "no current-context"}},
		{"kubernetes in_cluster and kubeconfig", "kubernetes:\n  - in_cluster: true\n    context: a\n", []string{"kubernetes[0].in_cluster", "excludes"}},
		{"kubernetes duplicate name", "kubernetes:\n  - name: x\n  - name: x\n", []string{"kubernetes[1].name", `"x"`, "kubernetes[0]"}},
		{"kubernetes typo key", "kubernetes:\n  - kubeconfg: /x\n", []string{"kubeconfg", "unknown key"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := write(t, dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml", tc.body)
			_, err := Load(p)
			if err == nil {
				t.Fatal("no error")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("not a *config.Error: %T %v", err, err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("multi-line error: %q", msg)
			}
			if !strings.HasPrefix(msg, p+": ") {
				t.Errorf("error does not name the file: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			for _, secret := range []string{"hunter2", "TOPSECRET"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error leaks a secret: %q", msg)
				}
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load("/nonexistent/vmreconcile.yaml")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/vmreconcile.yaml: no such file") {
		t.Fatalf("err = %v", err)
	}
}

func TestKeysListsEnvOverridable(t *testing.T) {
	keys := strings.Join(Keys(), " ")
	for _, k := range []string{"store.path", "schedules.audit", "policy.max_actions", "observe.lookback", "vcenters", "kubernetes"} {
		if !strings.Contains(keys, k) {
			t.Errorf("Keys() lacks %s: %s", k, keys)
		}
	}
}

func TestValidateCronEvery(t *testing.T) {
	for spec, ok := range map[string]bool{"@every 10m": true, "@every 1s": true, "CRON_TZ=UTC @every 5m": true, "@every -5s": false, "@every 0s": false, "@every 500ms": false, "*/5 * * * *": true} {
		if err := ValidateCron("schedules.audit", spec); (err == nil) != ok {
			t.Errorf("ValidateCron(%q) = %v, want ok=%v", spec, err, ok)
		}
	}
}
