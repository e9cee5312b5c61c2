package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"
)

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadGood(t *testing.T) {
	dir := t.TempDir()
	pw := write(t, dir, "vc.pw", "s3cret-value\n")
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
schedules:
  audit: "CRON_TZ=Europe/Berlin */5 * * * *"
observe:
  lookback: 15m
policy:
  remediate: dry-run
`, pw))
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
	if len(cfg.Swarms[0].Hosts) != 2 || cfg.Policy.Remediate != "dry-run" || cfg.Policy.Action != "disable-docker" {
		t.Errorf("swarms/policy = %+v %+v", cfg.Swarms, cfg.Policy)
	}
}

// TestLoadBad is the bad-config table: each case must fail with one line that
// names the key (or file) and carries a fix.
func TestLoadBad(t *testing.T) {
	dir := t.TempDir()
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
		// robfig/cron panics on these (found by FuzzLoad).
		{"time zone alone", "schedules:\n  audit: 'TZ='\n", []string{"schedules.audit", `"TZ="`, "time zone prefix needs a space"}},
		{"time zone no space", "schedules:\n  lineage: 'CRON_TZ=UTC'\n", []string{"schedules.lineage", "time zone prefix"}},
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

// TestEveryScalarKeyIsEnvOverridable: the package promises VMRECONCILE_<KEY>
// for every scalar key, which holds only for keys setDefaults registers.
func TestEveryScalarKeyIsEnvOverridable(t *testing.T) {
	v := viper.New()
	setDefaults(v, Default())
	keys := strings.Join(v.AllKeys(), " ")
	for _, k := range []string{"store.path", "store.retention", "schedules.audit", "policy.max_actions", "policy.max_percent",
		"observe.lookback", "guest.timeout", "guest.concurrency", "listen", "log.level", "fail_on"} {
		if !strings.Contains(" "+keys+" ", " "+k+" ") {
			t.Errorf("%s is not registered for the environment: %s", k, keys)
		}
	}
	t.Setenv("VMRECONCILE_POLICY_MAX_ACTIONS", "3")
	t.Setenv("VMRECONCILE_OBSERVE_LOOKBACK", "20m")
	t.Setenv("VMRECONCILE_GUEST_CONCURRENCY", "7")
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Policy.MaxActions != 3 || cfg.Observe.Lookback != 20*time.Minute || cfg.Guest.Concurrency != 7 {
		t.Errorf("env overrides not applied: max_actions=%d lookback=%v concurrency=%d", cfg.Policy.MaxActions, cfg.Observe.Lookback, cfg.Guest.Concurrency)
	}
}

// TestInFileWhateverTheErrorType: Load used to set the file with an unchecked
// err.(*Error), which panics on a wrapped *Error or on any other error type.
func TestInFileWhateverTheErrorType(t *testing.T) {
	wrapped := fmt.Errorf("while checking: %w", &Error{Key: "store.path", Msg: "empty"})
	err := inFile("/etc/vmr.yaml", wrapped)
	var ce *Error
	if !errors.As(err, &ce) || ce.File != "/etc/vmr.yaml" || ce.Key != "store.path" {
		t.Errorf("wrapped *Error: %#v", err)
	}
	if got := err.Error(); got != "/etc/vmr.yaml: store.path: empty" {
		t.Errorf("wrapped *Error message: %q", got)
	}
	err = inFile("/etc/vmr.yaml", errors.New("a foreign\nerror"))
	if !errors.As(err, &ce) || err.Error() != "/etc/vmr.yaml: a foreign error" {
		t.Errorf("foreign error: %T %q", err, err)
	}
	err = inFile("/etc/vmr.yaml", &Error{Key: "listen", Msg: "bad"})
	if got := err.Error(); got != "/etc/vmr.yaml: listen: bad" {
		t.Errorf("*Error: %q", got)
	}
}

// TestDuplicateVCenterHost: two entries on one host (another port, a
// proxy) would share VM keys; refused with one line.
func TestDuplicateVCenterHost(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	body := "vcenters:\n  - url: https://vc1.example.com/sdk\n    username: a\n  - url: https://VC1.example.com:8443/sdk\n    username: b\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), "vcenters[1].url") || !strings.Contains(err.Error(), "vcenters[0]") {
		t.Fatalf("duplicate vCenter host: %v", err)
	}
}
