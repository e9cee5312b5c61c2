package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestDaemonOnceThenHistory runs `daemon -once` against vcsim and the Engine
// API simulator holding a flapping node, then prints the node's and the
// clone's timelines with `history`, all through the built binary.
func TestDaemonOnceThenHistory(t *testing.T) {
	u, sim, id := flappingWorld(t)

	dir := t.TempDir()
	pass, _ := u.User.Password()
	cfg := writeCfg(t, dir, "c.yaml", vcenterYAML(u)+fmt.Sprintf(`swarms:
  - hosts: [%q]
listen: ""
`, sim.Host()))
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
