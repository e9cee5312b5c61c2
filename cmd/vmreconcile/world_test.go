package main

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/internal/dockersim"
	"github.com/vmreconcile/vmreconcile/internal/vcsim"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

// flappingWorld is the seed story at its smallest, for fast tests of the
// command line: in vcsim, VM wk-1 and its powered-on clone wk-1-clone; in the
// Engine API simulator, node wk-1 whose identity flipped between the two for
// the last two minutes. It returns vcsim's URL (with credentials), the
// simulator and the shared node ID.
func flappingWorld(t *testing.T) (*url.URL, *dockersim.Engine, string) {
	t.Helper()
	u, c := startVCSim(t)
	ctx := context.Background()
	wk, err := vcsim.CreateVM(ctx, c, vcsim.VM{Name: "wk-1", NumCPU: 4, MemoryMB: 8192, Hostname: "wk-1", IP: "10.1.0.11", PowerOn: true, ToolsRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vcsim.Clone(ctx, c, wk.Reference(), vcsim.CloneSpec{Name: "wk-1-clone", PowerOn: true, Hostname: "wk-1-clone", IP: "10.1.0.99"}); err != nil {
		t.Fatal(err)
	}
	sim := dockersim.New(dockersim.Options{Self: dockersim.NodeSpec{Hostname: "mgr-1"}})
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	id, err := sim.AddNode(dockersim.NodeSpec{Hostname: "wk-1", NanoCPUs: 4e9, MemoryBytes: 8 << 30, Addr: "10.1.0.11"})
	if err != nil {
		t.Fatal(err)
	}
	fight := []dockersim.Identity{{Hostname: "wk-1-clone", Addr: "10.1.0.99"}, {Hostname: "wk-1", Addr: "10.1.0.11"}}
	if err := sim.Backfill(id, fight, time.Now().Add(-2*time.Minute), time.Now(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return u, sim, id
}

// vcenterYAML is a config file's vcenters section for vcsim at u.
func vcenterYAML(u *url.URL) string {
	pass, _ := u.User.Password()
	return fmt.Sprintf("vcenters:\n  - url: https://%s/sdk\n    username: %s\n    password: %s\n    insecure: true\n", u.Host, u.User.Username(), pass)
}

// TestAuditConfigFile: audit driven by the config file alone — its vCenter,
// its swarm with the first manager down (failover to the second), its
// fail_on — and -lookback 0 turning the event replay off.
func TestAuditConfigFile(t *testing.T) {
	u, sim, id := flappingWorld(t)
	dir := t.TempDir()
	swarms := fmt.Sprintf("swarms:\n  - hosts: [\"tcp://127.0.0.1:1\", %q]\n", sim.Host())
	cfg := writeCfg(t, dir, "c.yaml", vcenterYAML(u)+swarms)

	r := runBin(t, nil, "audit", "-config", cfg, "-json")
	if r.code != ExitFindings {
		t.Fatalf("exit %d, want 3: %s", r.code, r.stderr)
	}
	res := decode(t, r)
	if shared := findingsOf(res, reconcile.KindSharedNodeID); len(shared) != 1 || shared[0].NodeID != id || shared[0].Original != "wk-1" {
		t.Errorf("shared-node-id through the second manager: %+v", res.Findings)
	}

	never := writeCfg(t, dir, "never.yaml", vcenterYAML(u)+swarms+"fail_on: never\n")
	if r := runBin(t, nil, "audit", "-config", never, "-json"); r.code != ExitOK || len(decode(t, r).Findings) == 0 {
		t.Errorf("fail_on: never: exit %d: %s", r.code, r.stderr)
	}
	if r := runBin(t, nil, "audit", "-config", never, "-fail-on", "critical"); r.code != ExitFindings {
		t.Errorf("-fail-on critical over fail_on never: exit %d: %s", r.code, r.stderr)
	}

	// Without the replay, one sample sees one identity: no shared node ID.
	r = runBin(t, nil, "audit", "-config", never, "-json", "-lookback", "0")
	res = decode(t, r)
	if len(findingsOf(res, reconcile.KindSharedNodeID)) != 0 || res.Summary.Nodes != 2 {
		t.Errorf("-lookback 0: %+v %+v", res.Summary, res.Findings)
	}
}
