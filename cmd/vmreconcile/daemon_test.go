package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmreconcile/vmreconcile/store"
)

// runCmd runs the CLI in-process and returns the exit code, stdout, stderr.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var o, e bytes.Buffer
	saved := out
	out = streams{stdout: &o, stderr: &e}
	defer func() { out = saved }()
	code := run(context.Background(), args)
	return code, o.String(), e.String()
}

func writeCfg(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDaemonBadConfig: every bad config stops the daemon before any work
// with exit 2 and one line naming the key.
func TestDaemonBadConfig(t *testing.T) {
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle")
	os.Mkdir(bundle, 0o700)
	for _, f := range []string{"ca.pem", "cert.pem", "key.pem"} {
		writeCfg(t, bundle, f, "garbage")
	}
	cases := []struct {
		name, body string
		flags      []string
		want       []string
	}{
		{"bad cron spec", "schedules:\n  audit: '61 * * * *'\n", nil, []string{"schedules.audit", "bad cron spec"}},
		{"bad cron tz", "schedules:\n  prune: 'CRON_TZ=Mars/Olympus 0 3 * * *'\n", nil, []string{"schedules.prune"}},
		{"unknown key", "schedules:\n  audti: '@every 1m'\n", nil, []string{"schedules.audti", "unknown key"}},
		{"missing secret file", "alerts:\n  webhooks:\n    - url: https://hooks.example.com/x\n      secret_file: /nonexistent/hook.secret\n", nil,
			[]string{"alerts.webhooks[0].secret_file", "/nonexistent/hook.secret", "no such file"}},
		{"unreadable certificate", "swarms:\n  - hosts: ['tcp://mgr:2376']\n    cert_path: " + bundle + "\n", nil, []string{"swarms[0].cert_path", "key pair"}},
		{"bad listen flag", "", []string{"-listen", "9477"}, []string{"-listen", "host:port"}},
		{"bad webhook url", "alerts:\n  webhooks:\n    - url: 'ftp://u:hunter2@x/'\n", nil, []string{"alerts.webhooks[0].url", "REDACTED"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := filepath.Join(t.TempDir(), "state.db")
			p := writeCfg(t, dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml", tc.body)
			args := append([]string{"daemon", "-config", p, "-store", st, "-once"}, tc.flags...)
			code, _, stderr := runCmd(t, args...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d; stderr: %s", code, ExitUsage, stderr)
			}
			if n := strings.Count(strings.TrimRight(stderr, "\n"), "\n"); n != 0 || stderr == "" {
				t.Errorf("want one line, got %q", stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			if strings.Contains(stderr, "hunter2") || strings.Contains(stderr, "garbage") {
				t.Errorf("stderr leaks a secret: %q", stderr)
			}
			if _, err := os.Stat(st); err == nil {
				t.Errorf("store created despite the bad config")
			}
		})
	}
}

// TestDaemonSecondInstance: a second daemon on the same store exits 1 with
// one line naming the store and the holder's pid.
func TestDaemonSecondInstance(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	st, err := store.Open(path, store.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p := writeCfg(t, dir, "c.yaml", "listen: ''\nswarms:\n  - hosts: ['tcp://127.0.0.1:1']\n")
	code, _, stderr := runCmd(t, "daemon", "-config", p, "-store", path)
	if code != ExitRuntime {
		t.Errorf("exit %d, want 1; stderr %q", code, stderr)
	}
	want := fmt.Sprintf("store %s is in use by another vmreconcile process (pid %d)", path, os.Getpid())
	if !strings.Contains(stderr, want) || strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr %q, want one line containing %q", stderr, want)
	}
}

// TestHistoryCommand: history reads a store read-only (also while it is held
// exclusively) and prints the timeline; unknown subjects are exit 2.
func TestHistoryCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	code, _, stderr := runCmd(t, "history", "-store", path, "wk")
	if code != ExitUsage || !strings.Contains(stderr, "does not exist") {
		t.Errorf("missing store: exit %d %q", code, stderr)
	}
	st, err := store.Open(path, store.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	code, _, stderr = runCmd(t, "history", "-store", path, "nosuchnode")
	if code != ExitUsage || !strings.Contains(stderr, `"nosuchnode"`) {
		t.Errorf("unknown subject: exit %d %q", code, stderr)
	}
	code, _, stderr = runCmd(t, "history", "-store", path)
	if code != ExitUsage {
		t.Errorf("no subject: exit %d %q", code, stderr)
	}
}
