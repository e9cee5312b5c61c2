package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vmreconcile/vmreconcile/internal/contexttest"
	"github.com/vmreconcile/vmreconcile/internal/dockersim"
)

// hookCounter is a webhook receiver that counts what it is sent.
func hookCounter(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1) }))
	t.Cleanup(srv.Close)
	return srv.URL, &n
}

// TestConfigValidate: config validate makes the daemon's checks and, with
// -connect, logs in to each source; it never sends a webhook, never creates
// the store, never touches a VM; each source's result is reported.
func TestConfigValidate(t *testing.T) {
	u, sim, _ := flappingWorld(t)
	hook, sent := hookCounter(t)
	dir := t.TempDir()
	st := filepath.Join(dir, "state", "state.db")
	base := vcenterYAML(u) + fmt.Sprintf("store:\n  path: %s\nalerts:\n  webhooks:\n    - url: %s\npolicy:\n  remediate: \"on\"\n  action: power-off\n", st, hook)
	good := writeCfg(t, dir, "good.yaml", base+fmt.Sprintf("swarms:\n  - name: prod\n    hosts: [%q]\n", sim.Host()))

	r := runBin(t, nil, "config", "validate", "-config", good)
	if r.code != ExitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{good + ": valid", "vcenters[0]  127.0.0.1 as administrator@vsphere.local, every datacenter",
		"swarms[0]    prod: " + sim.Host() + " (no TLS)", "store       " + st, "remediate on (power-off, at most 1 VM(s)", "alerts      1 webhook"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "Connecting") {
		t.Errorf("connected without -connect:\n%s", r.stdout)
	}

	r = runBin(t, nil, "config", "validate", "-config", good, "-connect")
	if r.code != ExitOK {
		t.Fatalf("-connect: exit %d: %s\n%s", r.code, r.stderr, r.stdout)
	}
	for _, want := range []string{"ok    vcenter 127.0.0.1: logged in as administrator@vsphere.local to VMware vCenter Server",
		"ok    swarm prod: " + sim.Host() + " is a manager (mgr-1, engine", "of cluster " + sim.ClusterID()} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("-connect: stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if _, err := os.Stat(filepath.Dir(st)); !os.IsNotExist(err) {
		t.Errorf("the store's directory was created: %v", err)
	}
	if n := sent.Load(); n != 0 {
		t.Errorf("%d webhook(s) sent", n)
	}
	if strings.Contains(r.stdout+r.stderr, "Sim-Pass-1") {
		t.Error("the vCenter password was printed")
	}

	// Each source reported: a wrong password (exit 2, the config's keys in
	// the fix), a manager that is down (exit 1), a worker (exit 2).
	worker := dockersim.New(dockersim.Options{Mode: dockersim.ModeWorker})
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(worker.Close)
	badPass := strings.Replace(vcenterYAML(u), "Sim-Pass-1", "Wrong-Pass-9", 1)
	for _, tc := range []struct {
		name, body string
		code       int
		want       []string
	}{
		{"manager down", vcenterYAML(u) + fmt.Sprintf("swarms:\n  - name: prod\n    hosts: [%q, \"tcp://127.0.0.1:1\"]\n", sim.Host()), ExitRuntime,
			[]string{"ok    vcenter 127.0.0.1", "ok    swarm prod: " + sim.Host(), "FAIL  swarm prod: cannot connect to docker host tcp://127.0.0.1:1"}},
		{"wrong password", badPass + fmt.Sprintf("swarms:\n  - hosts: [%q]\n", sim.Host()), ExitUsage,
			[]string{"FAIL  vcenter 127.0.0.1: login failed", "vcenters[0].username and vcenters[0].password", "ok    swarm " + sim.Host()}},
		{"worker", fmt.Sprintf("swarms:\n  - hosts: [%q]\n", worker.Host()), ExitUsage, []string{"FAIL  swarm", "not a swarm manager"}},
	} {
		r := runBin(t, nil, "config", "validate", "-connect", "-config", writeCfg(t, dir, "c.yaml", tc.body))
		if r.code != tc.code {
			t.Errorf("%s: exit %d, want %d: %s\n%s", tc.name, r.code, tc.code, r.stderr, r.stdout)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%s: stdout lacks %q:\n%s", tc.name, w, r.stdout)
			}
		}
		if !strings.Contains(r.stderr, "failed (see above)") || strings.Contains(r.stdout+r.stderr, "Wrong-Pass-9") {
			t.Errorf("%s: stderr %q", tc.name, r.stderr)
		}
	}
}

// TestConfigValidateRejects: what stops the daemon at start stops config
// validate, with the same one line and exit 2, and nothing is written.
func TestConfigValidateRejects(t *testing.T) {
	dir := t.TempDir()
	file := writeCfg(t, dir, "a-file", "x")
	sw := "swarms:\n  - hosts: [\"tcp://127.0.0.1:1\"]\n"
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"no swarm", "", []string{"swarms: no cluster to watch", "fix:"}},
		{"disable-docker without a login", sw + "policy:\n  remediate: \"on\"\n", []string{"guest.login", "no guest login is configured"}},
		{"bad guest login", sw + "guest:\n  logins:\n    - pattern: 'x*'\n      login: nocolon\n", []string{"guest.logins[0].login", "user:password"}},
		{"bad policy cap", sw + "policy:\n  max_percent: 120\n", []string{"policy", "max_percent"}},
		{"store under a file", sw + "store:\n  path: " + filepath.Join(file, "state.db") + "\n", []string{"store.path", "a-file is not a directory", "fix:"}},
		{"unknown key", sw + "polcy:\n  remediate: off\n", []string{"polcy", "unknown key"}},
		{"missing context", "swarms:\n  - context: nosuch\n", []string{"swarms[0].context", `docker context "nosuch" not found`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeCfg(t, t.TempDir(), "c.yaml", tc.body)
			st := filepath.Join(t.TempDir(), "state.db")
			env := []string{"DOCKER_CONFIG=" + dir}
			if !strings.Contains(tc.body, "store:") {
				env = append(env, "VMRECONCILE_STORE_PATH="+st)
			}
			v := runBin(t, env, "config", "validate", "-config", cfg)
			d := runBin(t, env, "daemon", "-once", "-config", cfg)
			for _, r := range []result{v, d} {
				if r.code != ExitUsage || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, cfg) {
					t.Errorf("exit %d, want 2 with one line naming the file: %q", r.code, r.stderr)
				}
				for _, w := range tc.want {
					if !strings.Contains(r.stderr, w) {
						t.Errorf("%q lacks %q", r.stderr, w)
					}
				}
			}
			if msg := strings.TrimPrefix(v.stderr, "vmreconcile config validate: "); msg != strings.TrimPrefix(d.stderr, "vmreconcile daemon: ") {
				t.Errorf("config validate and the daemon disagree:\n%s%s", v.stderr, d.stderr)
			}
			if _, err := os.Stat(st); !os.IsNotExist(err) {
				t.Errorf("a store was created: %v", err)
			}
		})
	}
}

// TestExampleConfigValidates: the shipped example config, with its paths
// pointed at files that exist here, passes config validate.
func TestExampleConfigValidates(t *testing.T) {
	b, err := os.ReadFile("../../contrib/vmreconcile.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	creds, bundle := filepath.Join(dir, "creds"), filepath.Join(dir, "bundle")
	os.Mkdir(creds, 0o700)
	os.Mkdir(bundle, 0o700)
	writeCfg(t, creds, "vcenter-password", "pw-1")
	writeCfg(t, creds, "webhook-secret", "hook-1")
	cert, key := contexttest.SelfSigned(t, "admin")
	writeCfg(t, bundle, "ca.pem", string(cert))
	writeCfg(t, bundle, "cert.pem", string(cert))
	writeCfg(t, bundle, "key.pem", string(key))
	body := strings.NewReplacer("/run/credentials/vmreconcile.service", creds, "/etc/vmreconcile/mke-bundle", bundle,
		"/var/lib/vmreconcile/state.db", filepath.Join(dir, "state.db")).Replace(string(b))
	r := runBin(t, nil, "config", "validate", "-config", writeCfg(t, dir, "example.yaml", body))
	if r.code != ExitOK || !strings.Contains(r.stdout, "prod: tcp://manager-1.example.com:2376, tcp://manager-2.example.com:2376") {
		t.Errorf("exit %d: %s\n%s", r.code, r.stderr, r.stdout)
	}
	if strings.Contains(string(b), "-once -store /tmp/test.db") || !strings.Contains(string(b), "vmreconcile config validate") {
		t.Error("the example config still points at daemon -once as the check")
	}
	unit, err := os.ReadFile("../../contrib/systemd/vmreconcile.service")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(unit), "-once -store /tmp/test.db") || !strings.Contains(string(unit), "vmreconcile config validate") {
		t.Error("the systemd unit still points at daemon -once as the check")
	}
}

// TestConfigDefaults: the effective configuration (defaults, file,
// environment) with secrets redacted, which config validate reads back.
func TestConfigDefaults(t *testing.T) {
	dir := t.TempDir()
	pw := writeCfg(t, dir, "pw", "Vc-Pass-77\n")
	cfg := writeCfg(t, dir, "c.yaml", "vcenters:\n  - url: https://vc.example.com/sdk\n    username: svc\n    password_file: "+pw+
		"\nguest:\n  login: root:Guest-Pass-78\nswarms:\n  - hosts: [\"tcp://mgr:2376\"]\n")
	r := runBin(t, []string{"VMRECONCILE_SCHEDULES_AUDIT=@every 5m", "VMRECONCILE_STORE_PATH=" + filepath.Join(dir, "s.db")}, "config", "defaults", "-config", cfg)
	if r.code != ExitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"# vmreconcile effective configuration (defaults, " + cfg, "username: svc", "password: <redacted>",
		"login: <redacted>", "audit: '@every 5m'", "lineage: '@every 1h'", "path: " + filepath.Join(dir, "s.db"), "fail_on: warning"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "Vc-Pass-77") || strings.Contains(r.stdout, "Guest-Pass-78") {
		t.Errorf("a secret was printed:\n%s", r.stdout)
	}
	// No file: the defaults alone, and a swarm-less config is still printable.
	if r := runBin(t, nil, "config", "defaults"); r.code != ExitOK || !strings.Contains(r.stdout, "swarms: []") {
		t.Errorf("defaults alone: exit %d: %s\n%s", r.code, r.stderr, r.stdout)
	}
	if r := runBin(t, nil, "config", "defaults", "-config", writeCfg(t, dir, "bad.yaml", "listen: nope\n")); r.code != ExitUsage || !strings.Contains(r.stderr, "listen") {
		t.Errorf("invalid config: exit %d: %s", r.code, r.stderr)
	}
}
