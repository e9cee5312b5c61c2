package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/internal/textsafe/textsafetest"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/store"
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

// TestHistoryEscapesHostileText: `history` prints the hostname, certificate
// subject, VM name and journal text a clone controls escaped (issue 9, item
// 7); `history -json` keeps them exact.
func TestHistoryEscapesHostileText(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "state.db")
	st, err := store.Open(db, store.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	snap := hostileSnapshot()
	for i := range 2 {
		snap.CollectedAt = snap.CollectedAt.Add(time.Duration(i) * time.Minute)
		res := reconcile.Reconcile(snap, reconcile.History{})
		if _, err := st.RecordRun(ctx, snap, res, snap.CollectedAt.Add(-time.Minute), snap.CollectedAt); err != nil {
			t.Fatal(err)
		}
	}
	// A certificate whose CN, OU and O carry escape sequences.
	if err := st.SaveProbe(ctx, reconcile.GuestIdentity{VMRef: "vm-3", ProbedAt: snap.CollectedAt, NodeID: textsafetest.CSI,
		Role: textsafetest.OSC, ClusterID: textsafetest.C1, MachineID: textsafetest.Bidi, DockerActive: "yes"}); err != nil {
		t.Fatal(err)
	}
	id, err := st.JournalIntent(ctx, store.JournalRecord{PlanID: "plan-1", VMRef: "vm-2", VMName: textsafetest.Bidi,
		Action: "power-off", Reason: "impersonates " + textsafetest.CSI, Time: snap.CollectedAt})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.JournalOutcome(ctx, id, "failed", "guest said "+textsafetest.OSC); err != nil {
		t.Fatal(err)
	}
	st.Close()

	all := []string{textsafetest.CSI, textsafetest.OSC, textsafetest.C1, textsafetest.Bidi}
	for _, tc := range []struct {
		subject, escaped string
		exact            []string // in the -json texts
	}{
		{"nodeid1abc", `node nodeid1abc as hostname wk\x1b[31mRED\x1b[0m-clone`, all},
		{"vm-2", `failed (guest said wk\x1b]0;owned\x07\x1b]52;c;cm0gLXJmIC8=\x07-2)`, all},
		{"vm-3", `node ID wk\x1b[31mRED\x1b[0m-clone, cluster wk\u009b2J -c1`, all},
	} {
		r := runBin(t, nil, "history", "-store", db, tc.subject)
		if r.code != ExitOK {
			t.Fatalf("history %s: exit %d: %s", tc.subject, r.code, r.stderr)
		}
		textsafetest.Check(t, "history "+tc.subject, r.stdout)
		if !strings.Contains(r.stdout, tc.escaped) {
			t.Errorf("history %s lacks %q:\n%s", tc.subject, tc.escaped, r.stdout)
		}

		r = runBin(t, nil, "history", "-store", db, "-json", tc.subject)
		var entries []store.TimelineEntry
		if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil {
			t.Fatalf("history -json %s: %v\n%s", tc.subject, err, r.stdout)
		}
		var texts strings.Builder
		for _, e := range entries {
			texts.WriteString(e.Text + "\n")
		}
		for _, v := range tc.exact {
			if !strings.Contains(texts.String(), v) {
				t.Errorf("history -json %s lost the exact %q:\n%q", tc.subject, v, texts.String())
			}
		}
	}
}
