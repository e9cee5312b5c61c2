package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vmreconcile/vmreconcile/internal/dockersim"
	"github.com/vmreconcile/vmreconcile/internal/vcsim"
	"github.com/vmreconcile/vmreconcile/preclone"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

// TestRemediateConfigPolicy: remediate reads the config file's policy
// section (exclude, action, caps) — it used to shadow the config and plan
// disable-docker on a VM the admin had excluded — and flags still win.
func TestRemediateConfigPolicy(t *testing.T) {
	u, sim, _ := flappingWorld(t)
	dir := t.TempDir()
	base := vcenterYAML(u) + fmt.Sprintf("swarms:\n  - hosts: [%q]\n", sim.Host())
	plan := func(policy string, args ...string) remediateReport {
		t.Helper()
		cfg := writeCfg(t, dir, fmt.Sprintf("c%d.yaml", len(policy)+len(args)), base+policy)
		r := runBin(t, nil, append([]string{"remediate", "-config", cfg, "-json", "-no-tags"}, args...)...)
		if r.code != ExitOK && r.code != ExitFindings {
			t.Fatalf("remediate %v with %q: exit %d: %s", args, policy, r.code, r.stderr)
		}
		return decodeRemediation(t, r)
	}

	// policy.exclude keeps wk-1-clone out of the plan, even with the caps open.
	p := plan("policy:\n  exclude: [\"wk-1-clone\"]\n  max_percent: 100\n").Plan
	if len(p.Entries) != 0 {
		t.Errorf("policy.exclude: the plan acts on %+v", p.Entries)
	}
	excluded := false
	for _, r := range p.Refused {
		excluded = excluded || r.VM.Name == "wk-1-clone" && strings.Contains(r.Why, "exclude")
	}
	if !excluded {
		t.Errorf("policy.exclude: wk-1-clone not refused as excluded: %+v", p.Refused)
	}
	// A -max-percent flag does not bring an excluded VM back.
	if p := plan("policy:\n  exclude: [\"wk-1-clone\"]\n", "-max-percent", "100").Plan; len(p.Entries) != 0 {
		t.Errorf("policy.exclude with -max-percent 100: the plan acts on %+v", p.Entries)
	}

	// policy.action and the caps come from the config...
	p = plan("policy:\n  action: power-off\n  max_percent: 100\n").Plan
	if len(p.Entries) != 1 || p.Entries[0].VM.Name != "wk-1-clone" || p.Entries[0].Action != "power-off" || p.Blocked != "" {
		t.Errorf("policy.action power-off, max_percent 100: %+v blocked=%q", p.Entries, p.Blocked)
	}
	if p.Settings.MaxPercent != 100 {
		t.Errorf("policy.max_percent not used: %+v", p.Settings)
	}
	// ...the default caps (10% of 2 VMs) block one action...
	if p := plan("policy:\n  action: power-off\n").Plan; p.Blocked == "" {
		t.Errorf("default caps: not blocked: %+v", p)
	}
	// ...and flags win over the config.
	p = plan("policy:\n  action: power-off\n  max_percent: 10\n", "-action", "disable-docker", "-max-percent", "100").Plan
	if len(p.Entries) != 1 || p.Entries[0].Action != "disable-docker" || p.Blocked != "" {
		t.Errorf("flags over the config: %+v blocked=%q", p.Entries, p.Blocked)
	}
	// policy.max_actions is read too.
	if p := plan("policy:\n  max_actions: 1\n  max_percent: 100\n").Plan; len(p.Entries) != 1 || p.Settings.MaxActions != 1 {
		t.Errorf("policy.max_actions: %+v %+v", p.Entries, p.Settings)
	}
}

// TestPrecloneTemplateOfNodeIsUnsafe: a template cloned from a live swarm
// worker's VM, never probed, is UNSAFE (exit 3), as the audit's
// template-carries-swarm-identity says — not UNVERIFIED — and the check names
// the node and the source.
func TestPrecloneTemplateOfNodeIsUnsafe(t *testing.T) {
	u, c := startVCSim(t)
	ctx := t.Context()
	wk, err := vcsim.CreateVM(ctx, c, vcsim.VM{Name: "worker-b", NumCPU: 4, MemoryMB: 8192, Hostname: "worker-b", IP: "10.1.0.21", PowerOn: true, ToolsRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vcsim.Clone(ctx, c, wk.Reference(), vcsim.CloneSpec{Name: "golden-tpl", Template: true}); err != nil {
		t.Fatal(err)
	}
	sim := dockersim.New(dockersim.Options{Self: dockersim.NodeSpec{Hostname: "mgr-1"}})
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	id, err := sim.AddNode(dockersim.NodeSpec{Hostname: "worker-b", NanoCPUs: 4e9, MemoryBytes: 8 << 30, Addr: "10.1.0.21"})
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"GOVC_URL=" + u.String(), "GOVC_INSECURE=1", "DOCKER_HOST=" + sim.Host()}

	a := runBin(t, env, "audit", "-json", "-fail-on", "never")
	if tpl := findingsOf(decode(t, a), reconcile.KindTemplateCarriesSwarm); len(tpl) != 1 {
		t.Fatalf("audit: want template-carries-swarm-identity: %s", a.stdout)
	}
	r := runBin(t, env, "preclone", "-json", "golden-tpl")
	if r.code != ExitFindings {
		t.Fatalf("preclone golden-tpl: exit %d, want 3 (UNSAFE): %s %s", r.code, r.stdout, r.stderr)
	}
	o := decodePreclone(t, r)
	if o.Verdict != preclone.Unsafe {
		t.Errorf("verdict %s, want UNSAFE", o.Verdict)
	}
	lin := checkOf(t, o.VMs[0], preclone.CheckLineage)
	if lin.Status != preclone.Fail || !strings.Contains(lin.Summary, id) || !strings.Contains(lin.Summary, "worker-b") {
		t.Errorf("lineage check %+v: want FAIL naming node %s and worker-b", lin, id)
	}
}

// TestDemoNoVCenter: the demo's second scene, the swarm alone.
func TestDemoNoVCenter(t *testing.T) {
	r := runBin(t, nil, "demo", "-no-vcenter", "-json")
	if r.code != ExitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	res := decode(t, r)
	shared := findingsOf(res, reconcile.KindSharedNodeID)
	if len(shared) != 1 || len(shared[0].VMs) != 0 || len(shared[0].Machines) != 2 || res.Summary.VMs != 0 ||
		len(res.Summary.Sources) != 2 || !strings.HasPrefix(res.Summary.Sources[0], "swarm ") || res.Summary.Sources[1] != "kubernetes mke" {
		t.Fatalf("demo -no-vcenter: summary %+v, shared %+v", res.Summary, shared)
	}
	if r := runBin(t, nil, "demo", "-no-vcenter"); !strings.Contains(r.stdout, "SIMULATED") || !strings.Contains(r.stdout, "machines: ") {
		t.Errorf("demo -no-vcenter table: %s", r.stdout)
	}
}
