package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSecretSentinels runs every command with sentinel secrets — the vCenter
// password, a guest login, a webhook secret and a token in its URL, the
// contents of a TLS key — and asserts that none appears in stdout, stderr,
// the daemon's log, the store, the journal, a saved plan or the metrics.
func TestSecretSentinels(t *testing.T) {
	u, sim, _ := flappingWorld(t) // the vCenter password is Sim-Pass-1
	vcPass, _ := u.User.Password()
	const (
		guestPass = "GuestS3ntinel-2"
		hookKey   = "HookS3ntinel-3"
		urlToken  = "UrlS3ntinel-4"
		tlsKey    = "KeyS3ntinel-5"
	)
	sentinels := []string{vcPass, guestPass, hookKey, urlToken, tlsKey}

	var mu sync.Mutex
	var bodies bytes.Buffer
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies.Write(b)
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)

	dir := t.TempDir()
	store := filepath.Join(dir, "state.db")
	bundle := filepath.Join(dir, "bundle")
	if err := os.Mkdir(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.pem", "cert.pem", "key.pem"} {
		writeCfg(t, bundle, f, "-----BEGIN PRIVATE KEY-----\n"+tlsKey+"\n-----END PRIVATE KEY-----\n")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := l.Addr().String()
	l.Close()
	cfg := writeCfg(t, dir, "c.yaml", vcenterYAML(u)+fmt.Sprintf(`swarms:
  - hosts: [%q]
guest:
  login: "root:%s"
alerts:
  webhooks:
    - url: "%s/hook?token=%s"
      secret: %q
store:
  path: %s
listen: %q
schedules:
  audit: "@every 1h"
`, sim.Host(), guestPass, hook.URL, urlToken, hookKey, store, listen))
	plan := filepath.Join(dir, "plan.json")

	var seen bytes.Buffer
	run := func(env []string, args ...string) {
		t.Helper()
		r := runBin(t, env, args...)
		// What the program printed (never the arguments themselves).
		fmt.Fprintf(&seen, "$ %s (exit %d)\n%s%s", args[0], r.code, r.stdout, r.stderr)
		if strings.Contains(r.stderr, "panic") {
			t.Errorf("%v panicked: %s", args, r.stderr)
		}
	}
	run(nil, "audit", "-config", cfg)
	run(nil, "audit", "-config", cfg, "-json", "-verify")
	run(nil, "remediate", "-config", cfg, "-max-percent", "100", "-out", plan)
	run(nil, "remediate", "-config", cfg, "-json", "-apply", plan)
	run(nil, "preclone", "-config", cfg, "wk-1-clone")
	run(nil, "daemon", "-config", cfg, "-once")
	run(nil, "history", "-config", cfg, "wk-1")
	run(nil, "config", "defaults", "-config", cfg)
	run(nil, "config", "validate", "-config", cfg)
	// TLS files whose key is garbage: the error names files, never content.
	run([]string{"DOCKER_HOST=tcp://127.0.0.1:1", "DOCKER_CERT_PATH=" + bundle, "DOCKER_TLS_VERIFY=1"}, "audit", "-u", u.String(), "-k")
	run(nil, "audit", "-u", "://::"+vcPass)
	run(nil, "audit", "-H", "tcp://127.0.0.1:1/x?token="+urlToken)

	// The daemon's metrics and log, while it runs.
	cmd := exec.Command(binPath, "daemon", "-config", cfg)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var metrics []byte
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get("http://" + listen + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				if mr, err := http.Get("http://" + listen + "/metrics"); err == nil {
					metrics, _ = io.ReadAll(mr.Body)
					mr.Body.Close()
				}
				break
			}
		}
	}
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()
	if len(metrics) == 0 {
		t.Errorf("no /metrics from the daemon: %s", logs.String())
	}

	files := map[string][]byte{"commands": seen.Bytes(), "daemon log": logs.Bytes(), "metrics": metrics}
	for _, f := range []string{store, store + "-wal", plan} {
		if b, err := os.ReadFile(f); err == nil {
			files[filepath.Base(f)] = b
		}
	}
	mu.Lock()
	files["webhook bodies"] = bodies.Bytes()
	mu.Unlock()
	if len(files["state.db"]) == 0 || len(files["plan.json"]) == 0 {
		t.Errorf("the store or the plan was not written: %v", len(files))
	}
	for name, b := range files {
		for _, s := range sentinels {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s contains the secret %q", name, s)
			}
		}
	}
	t.Logf("reliability: %d secret sentinels absent from %d outputs of every command (stdout, stderr, daemon log, metrics, store, plan, webhooks)", len(sentinels), len(files))
}
