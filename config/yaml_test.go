package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestYAML: the effective configuration as YAML says every key with its
// default, the file's values and the environment's overrides; secrets and
// URL credentials are redacted; loading it back gives the same config.
func TestYAML(t *testing.T) {
	dir := t.TempDir()
	pw := write(t, dir, "vc.pw", "Vc-Secret-1\n")
	hook := write(t, dir, "hook.secret", "Hook-Secret-2\n")
	p := write(t, dir, "c.yaml", fmt.Sprintf(`
vcenters:
  - url: https://vc1.example.com/sdk
    username: svc@vsphere.local
    password_file: %s
    datacenters: [DC0, DC1]
swarms:
  - name: prod
    hosts: ["tcp://mgr-1:2376", "tcp://mgr-2:2376"]
guest:
  login: root:Guest-Secret-3
alerts:
  webhooks:
    - url: https://hooks.example.com/x?token=Url-Secret-4
      secret_file: %s
observe:
  lookback: 15m
`, pw, hook))
	t.Setenv("VMRECONCILE_LOG_LEVEL", "debug")
	t.Setenv("VMRECONCILE_STORE_PATH", filepath.Join(dir, "state.db"))
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	for _, secret := range []string{"Vc-Secret-1", "Hook-Secret-2", "Guest-Secret-3", "Url-Secret-4"} {
		if strings.Contains(out, secret) {
			t.Errorf("secret %s in the output:\n%s", secret, out)
		}
	}
	for _, want := range []string{
		"password: <redacted>", "password_file: " + pw, "login: <redacted>", "secret: <redacted>",
		"url: https://hooks.example.com/x?REDACTED", "datacenters: [DC0, DC1]",
		"hosts: ['tcp://mgr-1:2376', 'tcp://mgr-2:2376']", // the file
		"lookback: 15m\n", "level: debug", "path: " + filepath.Join(dir, "state.db"), // file and environment
		"audit: '@every 10m'", "retention: 720h\n", "max_percent: 10\n", "interval: 1s\n", "timeout: 1m\n", "listen: 127.0.0.1:9477", // defaults
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "context:") || strings.Contains(out, "loginoverrides") {
		t.Errorf("keys that are not in the file format:\n%s", out)
	}
	for _, k := range Keys() {
		last := k[strings.LastIndex(k, ".")+1:]
		if !strings.Contains(out, last+":") {
			t.Errorf("key %s missing from the output", k)
		}
	}

	// Read back (without the inline guest login and the URL's query token, which print redacted):
	// the same configuration.
	cfg.Guest.Login = ""
	cfg.Alerts.Webhooks[0].URL = "https://hooks.example.com/x"
	b, _ = cfg.YAML()
	back, err := Load(write(t, dir, "back.yaml", string(b)))
	if err != nil {
		t.Fatalf("loading the output: %v\n%s", err, b)
	}
	again, _ := back.YAML()
	if string(again) != string(b) {
		t.Errorf("round trip differs:\n%s\nwant:\n%s", again, b)
	}
	if back.VCenters[0].Password.Reveal() != "Vc-Secret-1" || back.Alerts.Webhooks[0].Secret.Reveal() != "Hook-Secret-2" {
		t.Errorf("secrets from *_file keys not read back")
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		10 * time.Minute: "10m", 720 * time.Hour: "720h", 90 * time.Minute: "1h30m",
		time.Second: "1s", 500 * time.Millisecond: "500ms", 0: "0s", time.Hour + time.Second: "1h0m1s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
