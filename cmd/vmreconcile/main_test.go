package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"

	"github.com/vmreconcile/vmreconcile/internal/dockersim"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

// binPath is the vmreconcile binary the tests run, built once by TestMain:
// the tests exercise the real command line, exit codes and output streams.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vmreconcile-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "vmreconcile")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building vmreconcile:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one run of the binary.
type result struct {
	code           int
	stdout, stderr string
}

// runBin runs the binary with a clean environment (no GOVC_*/DOCKER_* from
// the machine) plus env.
func runBin(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	// A private state directory: no test writes the machine's default store.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "XDG_STATE_HOME=" + t.TempDir()}, env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := result{stdout: so.String(), stderr: se.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("running %v: %v", args, err)
	}
	return r
}

// decode parses audit -json output.
func decode(t *testing.T, r result) reconcile.Result {
	t.Helper()
	var res reconcile.Result
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\nstdout: %s\nstderr: %s", err, r.stdout, r.stderr)
	}
	return res
}

func findingsOf(res reconcile.Result, kind string) []reconcile.Finding {
	var fs []reconcile.Finding
	for _, f := range res.Findings {
		if f.Kind == kind {
			fs = append(fs, f)
		}
	}
	return fs
}

// vcsim starts an in-process vCenter simulator with an empty datacenter and
// returns its URL (with the simulator's credentials) and a client.
func startVCSim(t *testing.T) (*url.URL, *vim25.Client) {
	t.Helper()
	m := simulator.VPX()
	m.Machine = 0
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	// HTTPS with a self-signed certificate, and one valid login, as a vCenter.
	m.Service.TLS = new(tls.Config)
	m.Service.Listen = &url.URL{User: url.UserPassword("administrator@vsphere.local", "Sim-Pass-1")}
	s := m.Service.NewServer()
	t.Cleanup(func() { s.Close(); m.Remove() })
	c, err := govmomi.NewClient(context.Background(), s.URL, true)
	if err != nil {
		t.Fatal(err)
	}
	return s.URL, c.Client
}

func TestDemoJSONSchema(t *testing.T) {
	r := runBin(t, nil, "demo", "-json", "-observe", "2s")
	if r.code != 0 {
		t.Fatalf("demo exit %d: %s", r.code, r.stderr)
	}
	// The documented top-level keys, exactly.
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &top); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range top {
		keys = append(keys, k)
	}
	// (kube_nodes: the demo has a Kubernetes cluster; machines appear only
	// without a vCenter.)
	if got := strings.Join(slices.Sorted(slices.Values(keys)), ","); got != "findings,kube_nodes,nodes,summary,vms" {
		t.Errorf("top-level keys = %s", got)
	}
	res := decode(t, r)
	if k8s := findingsOf(res, reconcile.KindSharedK8sNode); len(k8s) != 1 || k8s[0].Original != "swarm-wk-03" || !slices.Contains(k8s[0].VMs, "k8s-new-01") {
		t.Errorf("the demo's Kubernetes side: shared-k8s-node %+v", k8s)
	}
	// Its clones got new MACs, as on vSphere; only the VM copied as files
	// shares one.
	if mac := findingsOf(res, reconcile.KindDuplicateMAC); len(mac) != 1 || !slices.Equal(mac[0].VMs, []string{"db-01", "db-01-restore"}) {
		t.Errorf("duplicate-mac: %+v, want only db-01 and its file copy db-01-restore", mac)
	}
	shared := findingsOf(res, reconcile.KindSharedNodeID)
	if len(shared) != 1 {
		t.Fatalf("shared-node-id findings = %d, want 1: %+v", len(shared), res.Findings)
	}
	f := shared[0]
	if f.NodeID != "hfe0vnnxhrgndripv7nv5khmd" || f.Original != "swarm-wk-03" || f.Severity != reconcile.Critical ||
		strings.Join(f.VMs, ",") != "swarm-wk-03,k8s-new-01" || len(f.VMPaths) != 2 || !strings.HasPrefix(f.VMPaths[1], "/DC0/vm/") {
		t.Errorf("finding = %+v", f)
	}
	if strings.Contains(f.Remedy, "docker node rm") && !strings.Contains(f.Remedy, "Do NOT") {
		t.Errorf("remedy suggests docker node rm: %s", f.Remedy)
	}
	if res.Summary.VMs != 10 || res.Summary.Templates != 1 || res.Summary.Nodes != 5 || res.Summary.Highest != reconcile.Critical {
		t.Errorf("summary = %+v", res.Summary)
	}
	if len(findingsOf(res, reconcile.KindTemplateCarriesSwarm)) != 1 || len(findingsOf(res, reconcile.KindNodeWithoutVM)) != 1 {
		t.Errorf("findings = %+v", res.Findings)
	}
}

func TestDemoTable(t *testing.T) {
	r := runBin(t, nil, "demo", "-observe", "1s", "-fail-on", "critical")
	if r.code != ExitFindings {
		t.Fatalf("demo -fail-on critical: exit %d, want 3: %s", r.code, r.stderr)
	}
	for _, want := range []string{"SIMULATED", "CRITICAL shared-node-id  node hfe0vnnxhrgndripv7nv5khmd",
		"swarm-wk-03 (original), k8s-new-01", "Do NOT remove node", "NODES"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, r.stdout)
		}
	}
	for i, line := range strings.Split(r.stdout, "\n") {
		if n := len([]rune(line)); n > 100 {
			t.Errorf("line %d is %d columns wide (> 100): %q", i+1, n, line)
		}
	}
}

// TestBadInput: bad input gives one line on stderr naming the bad value and
// the fix, the usage exit code (2) or runtime (1), nothing on stdout, and no
// secret.
func TestBadInput(t *testing.T) {
	u, _ := startVCSim(t)
	good := u.String()
	badPass := *u
	badPass.User = url.UserPassword("administrator@vsphere.local", "WrongPassw0rd!")
	// A swarm manager and a worker (dockersim), for the swarm-side cases.
	mgr := dockersim.New(dockersim.Options{})
	wrk := dockersim.New(dockersim.Options{Mode: dockersim.ModeWorker})
	for _, e := range []*dockersim.Engine{mgr, wrk} {
		if err := e.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
	}
	// Config files whose vCenter login or TLS trust fails.
	cfgDir := t.TempDir()
	writeCfg := func(name, body string) string {
		p := filepath.Join(cfgDir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hostOnly := *u
	hostOnly.User = nil
	cfgBadPass := writeCfg("badpass.yaml", fmt.Sprintf("vcenters:\n  - url: %s\n    username: administrator@vsphere.local\n    password: WrongPassw0rd!\n    insecure: true\n", hostOnly.String()))
	cfgNoTrust := writeCfg("notrust.yaml", fmt.Sprintf("vcenters:\n  - url: %s\n    username: administrator@vsphere.local\n    password: Sim-Pass-1\n", hostOnly.String()))
	noPEM := writeCfg("garbage.pem", "S3cretPass is not a certificate\n")
	cases := []struct {
		name string
		env  []string
		args []string
		code int
		want []string
	}{
		{"no command", nil, nil, ExitUsage, []string{"Usage: vmreconcile COMMAND"}},
		{"unknown command", nil, []string{"audti"}, ExitUsage, []string{`unknown command "audti"`, "audit"}},
		{"unknown flag", nil, []string{"audit", "-observ", "3s"}, ExitUsage, []string{"-observ", "vmreconcile audit -h"}},
		{"bad fail-on", nil, []string{"audit", "-fail-on", "sometimes"}, ExitUsage, []string{`"sometimes"`, "critical"}},
		{"bad duration", nil, []string{"audit", "-observe", "3 seconds"}, ExitUsage, []string{"-observe"}},
		{"bad docker host", nil, []string{"audit", "-u", good, "-k", "-H", "mgr:2376"}, ExitUsage, []string{`"mgr:2376"`, "tcp://host:port"}},
		{"bad DOCKER_HOST", []string{"DOCKER_HOST=ftp://x"}, []string{"audit", "-u", good, "-k"}, ExitUsage, []string{"DOCKER_HOST", "ftp://x"}},
		{"missing config", nil, []string{"audit", "-config", "/nonexistent/c.yaml"}, ExitUsage, []string{"/nonexistent/c.yaml: no such file"}},
		// No vCenter: the swarm alone is audited (here: unreachable).
		{"no vcenter, unreachable manager", nil, []string{"audit", "-H", "unix:///nonexistent.sock"}, ExitRuntime, []string{"swarm unix:///nonexistent.sock", "no daemon answers"}},
		{"unreachable vcenter", nil, []string{"audit", "-u", "https://user:S3cretPass@127.0.0.1:1/sdk", "-H", "unix:///nonexistent.sock"}, ExitRuntime, []string{"vcenter 127.0.0.1", "unreachable"}},
		{"wrong password", nil, []string{"audit", "-u", badPass.String(), "-k", "-H", "unix:///nonexistent.sock"}, ExitUsage, []string{"login failed", "GOVC_PASSWORD"}},
		{"untrusted certificate", nil, []string{"audit", "-u", good, "-H", "unix:///nonexistent.sock"}, ExitUsage, []string{"certificate", "-k"}},
		{"unknown datacenter", nil, []string{"audit", "-u", good, "-k", "-dc", "DC9", "-H", "unix:///nonexistent.sock"}, ExitUsage, []string{`"DC9"`, "-dc"}},
		{"unreachable manager", nil, []string{"audit", "-u", good, "-k", "-H", "unix:///nonexistent.sock"}, ExitRuntime, []string{"unix:///nonexistent.sock"}},
		{"extra argument", nil, []string{"audit", "-u", good, "-k", "extra"}, ExitUsage, []string{`"extra"`}},
		// Review fixes: an unencoded password in -u or GOVC_URL is never echoed
		// (the flag package and url.Parse both quote the value).
		{"-u password with /", nil, []string{"audit", "-u", "https://user:S3cretPass/x@127.0.0.1:1/sdk"}, ExitUsage, []string{"-u:", "percent-encoded"}},
		{"-u password with %", nil, []string{"audit", "-u", "https://user:S3cretPass%zz@127.0.0.1:1/sdk"}, ExitUsage, []string{"-u:", "percent-encoded"}},
		{"-u password with #", nil, []string{"remediate", "-u", "https://user:S3cr#S3cretPass@127.0.0.1:1/sdk"}, ExitUsage, []string{"-u:", "GOVC_PASSWORD"}},
		{"-u after preclone's VM argument", nil, []string{"preclone", "wk-01", "-u", "https://user:S3cretPass/x@127.0.0.1:1/sdk"}, ExitUsage, []string{"-u:", "percent-encoded"}},
		{"GOVC_URL password with #", []string{"GOVC_URL=https://user:S3cretPass#x@127.0.0.1:1/sdk"}, []string{"audit", "-H", "unix:///nonexistent.sock"}, ExitUsage, []string{"GOVC_URL:", "percent-encoded"}},
		{"GOVC_URL password with / under preclone", []string{"GOVC_URL=https://user:S3cretPass/x@127.0.0.1:1/sdk"}, []string{"preclone", "wk-01"}, ExitUsage, []string{"GOVC_URL:"}},
		// govc reports these late, as exit 1 or as an untrusted server.
		{"missing CA file", nil, []string{"audit", "-u", good, "-tls-ca-certs", "/nonexistent/ca.pem", "-H", "unix:///nonexistent.sock"}, ExitUsage, []string{"-tls-ca-certs", `"/nonexistent/ca.pem"`, "no such file"}},
		{"CA file without PEM", []string{"GOVC_TLS_CA_CERTS=" + noPEM}, []string{"audit", "-u", good, "-H", "unix:///nonexistent.sock"}, ExitUsage, []string{"GOVC_TLS_CA_CERTS", "no PEM certificate"}},
		{"missing known hosts", nil, []string{"audit", "-u", good, "-tls-known-hosts", "/nonexistent/kh", "-H", "unix:///nonexistent.sock"}, ExitUsage, []string{"-tls-known-hosts", `"/nonexistent/kh"`}},
		// govc's certificate login and request tracing are not offered (the
		// trace printed guest passwords unmasked).
		{"-cert is not offered", nil, []string{"audit", "-u", good, "-k", "-cert", "/nonexistent/c.pem", "-H", "unix:///nonexistent.sock"}, ExitUsage, []string{"-cert", "not defined"}},
		{"-trace is not offered", nil, []string{"audit", "-u", good, "-k", "-verify", "-l", "root:S3cretPass", "-trace", "-H", "unix:///nonexistent.sock"}, ExitUsage, []string{"-trace", "not defined"}},
		// A worker is not a manager: bad input, exit 2, naming it.
		{"worker as -H", nil, []string{"audit", "-u", good, "-k", "-H", wrk.Host()}, ExitUsage, []string{wrk.Host(), "not a swarm manager", "manager"}},
		{"worker as DOCKER_HOST with -json", []string{"DOCKER_HOST=" + wrk.Host()}, []string{"audit", "-json", "-u", good, "-k"}, ExitUsage, []string{"not a swarm manager", "DOCKER_HOST"}},
		// DOCKER_TLS_VERIFY without DOCKER_CERT_PATH: TLS from ~/.docker, as the
		// docker CLI, never a silent plain-TCP connection.
		{"DOCKER_TLS_VERIFY without cert path", []string{"DOCKER_HOST=" + mgr.Host(), "DOCKER_TLS_VERIFY=1"}, []string{"audit", "-u", good, "-k"}, ExitUsage, []string{".docker/ca.pem", "DOCKER_CERT_PATH"}},
		// Config vCenters: the fix names the config key, not -u/GOVC_*.
		{"config wrong password", nil, []string{"audit", "-config", cfgBadPass, "-H", mgr.Host()}, ExitUsage, []string{"login failed", "vcenters[0].password"}},
		{"config untrusted certificate", nil, []string{"preclone", "-config", cfgNoTrust, "wk-01"}, ExitUsage, []string{"certificate", "vcenters[0].insecure"}},
		// preclone's govc search flags alone select the VM (they were refused
		// as "no VM given"); one that matches nothing names its value.
		{"preclone -vm.uuid matching nothing", nil, []string{"preclone", "-u", good, "-k", "-vm.uuid", "00000000-0000-0000-0000-000000000000"}, ExitUsage, []string{`-vm.uuid "00000000-0000-0000-0000-000000000000"`, "matches no VM"}},
		{"preclone -vm.ipath matching nothing", nil, []string{"preclone", "-u", good, "-k", "-vm.ipath", "/DC0/vm/nothing"}, ExitUsage, []string{`-vm.ipath "/DC0/vm/nothing"`, "matches no VM"}},
		{"preclone two search flags", nil, []string{"preclone", "-u", good, "-k", "-vm.ipath", "/DC0/vm/x", "-vm.uuid", "y"}, ExitUsage, []string{"more than one search flag", "-vm.uuid"}},
	}
	t.Cleanup(func() {
		if !t.Failed() {
			t.Logf("reliability: %d bad inputs (flags, environment, config files): one line each, the documented exit code, no secret", len(cases))
		}
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runBin(t, tc.env, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d; stderr: %s", r.code, tc.code, r.stderr)
			}
			msg := strings.TrimSpace(r.stderr)
			if tc.name != "no command" {
				if strings.Count(msg, "\n") != 0 {
					t.Errorf("stderr is not one line: %q", msg)
				}
				if r.stdout != "" {
					t.Errorf("stdout not empty: %q", r.stdout)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("stderr %q lacks %q", msg, w)
				}
			}
			for _, secret := range []string{"S3cretPass", "WrongPassw0rd", "Sim-Pass-1", "goroutine ", "panic"} {
				if strings.Contains(r.stderr+r.stdout, secret) {
					t.Errorf("output contains %q: %s", secret, r.stderr)
				}
			}
		})
	}
}
