package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/dockersim"
	"github.com/vmreconcile/vmreconcile/vsphere"
)

// TestDaemonOnceThenHistory runs `daemon -once` against vcsim and the Engine
// API simulator holding a flapping node, then prints the node's and the
// clone's timelines with `history`, all through the built binary.
func TestDaemonOnceThenHistory(t *testing.T) {
	u, c := vcsim(t)
	ctx := context.Background()
	wk, err := vsphere.CreateSimVM(ctx, c, vsphere.SimVM{Name: "wk-1", NumCPU: 4, MemoryMB: 8192, Hostname: "wk-1", IP: "10.1.0.11", PowerOn: true, ToolsRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vsphere.CloneSimVM(ctx, c, wk.Reference(), vsphere.SimClone{Name: "wk-1-clone", PowerOn: true, Hostname: "wk-1-clone", IP: "10.1.0.99"}); err != nil {
		t.Fatal(err)
	}
	sim := dockersim.New(dockersim.Options{Self: dockersim.NodeSpec{Hostname: "mgr-1"}})
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	id, err := sim.AddNode(dockersim.NodeSpec{Hostname: "wk-1", NanoCPUs: 4e9, MemoryBytes: 8 << 30, Addr: "10.1.0.11"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	fight := []dockersim.Identity{{Hostname: "wk-1-clone", Addr: "10.1.0.99"}, {Hostname: "wk-1", Addr: "10.1.0.11"}}
	if err := sim.Backfill(id, fight, now.Add(-2*time.Minute), now, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	pass, _ := u.User.Password()
	host := u.Host
	cfg := writeCfg(t, dir, "c.yaml", fmt.Sprintf(`
vcenters:
  - url: https://%s/sdk
    username: %s
    password: %s
    insecure: true
swarms:
  - hosts: [%q]
listen: ""
`, host, u.User.Username(), pass, sim.Host()))
	db := filepath.Join(dir, "state.db")

	r := runBin(t, nil, "daemon", "-config", cfg, "-store", db, "-once")
	if r.code != ExitOK && r.code != ExitFindings {
		t.Fatalf("daemon -once: exit %d: %s", r.code, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, pass) {
		t.Errorf("daemon output contains the vCenter password")
	}

	r = runBin(t, nil, "history", "-store", db, id)
	if r.code != ExitOK {
		t.Fatalf("history: exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"TIME", "observation", "wk-1-clone", "finding-opened", "shared-node-id"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("node timeline lacks %q:\n%s", want, r.stdout)
		}
	}
	t.Logf("history %s:\n%s", id, r.stdout)
	r = runBin(t, nil, "history", "-store", db, "wk-1-clone")
	if r.code != ExitOK || !strings.Contains(r.stdout, "lineage") || !strings.Contains(r.stdout, "wk-1") {
		t.Errorf("VM timeline: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runBin(t, nil, "history", "-store", db, "-json", id)
	if r.code != ExitOK || !strings.HasPrefix(strings.TrimSpace(r.stdout), "[") || !strings.Contains(r.stdout, `"kind": "finding-opened"`) {
		t.Errorf("history -json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
