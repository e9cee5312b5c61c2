package main

// Issue 9, item 7: text from guests, nodes and vCenter is escaped before it
// reaches a terminal; JSON keeps the exact values.

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/internal/textsafe/textsafetest"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/remediate"
	"github.com/vmreconcile/vmreconcile/store"
)

// hostileSnapshot is issue 9's reproduction: wk-1's clone reports the
// hostname wk\e[31mRED\e[0m-clone and connects as wk-1's node; the guest
// probe of the clone reads a certificate whose CN, OU and O carry OSC, C1
// and bidi sequences, and a probe of a third VM failed with a control-laden
// message.
func hostileSnapshot() reconcile.Snapshot {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	wk1 := reconcile.VM{Name: "wk-1", Path: "/DC0/vm/wk-1", Ref: "vm-1", BIOSUUID: "4203a1b2-0000-0000-0000-000000000001",
		NumCPU: 2, MemoryMB: 4096, PowerState: "poweredOn", ToolsRunning: true, GuestHostname: "wk-1", IPs: []string{"10.0.0.11"}}
	clone := reconcile.VM{Name: textsafetest.Bidi, Path: "/DC0/vm/" + textsafetest.Bidi, Ref: "vm-2", BIOSUUID: "4203a1b2-0000-0000-0000-000000000002",
		NumCPU: 2, MemoryMB: 4096, PowerState: "poweredOn", ToolsRunning: true, GuestHostname: textsafetest.CSI, IPs: []string{"10.0.0.12"},
		Lineage: &reconcile.Lineage{SourceRef: "vm-1", SourceName: "wk-1", Kind: "clone", Time: t0.Add(-time.Hour)}}
	web := reconcile.VM{Name: "web-1", Path: "/DC0/vm/web-1", Ref: "vm-3", PowerState: "poweredOn", ToolsRunning: true}
	desc := func(host string, at time.Duration) reconcile.Description {
		return reconcile.Description{Hostname: host, NanoCPUs: 2e9, MemoryBytes: 4 << 30, FirstSeen: t0.Add(at), LastSeen: t0.Add(at + time.Minute), Seen: 2}
	}
	node := reconcile.Node{ID: "nodeid1abc", Role: "worker", State: "ready", Availability: "active",
		Descriptions: []reconcile.Description{desc("wk-1", -10*time.Minute), desc(textsafetest.CSI, -8*time.Minute)},
		Timeline: []reconcile.Sighting{{Time: t0.Add(-10 * time.Minute), Description: 0, Source: "list"},
			{Time: t0.Add(-8 * time.Minute), Description: 1, Source: "list"}, {Time: t0.Add(-6 * time.Minute), Description: 0, Source: "list"}}}
	return reconcile.Snapshot{CollectedAt: t0, VCenters: []string{"vc1"}, VMs: []reconcile.VM{wk1, clone, web},
		Swarms: []reconcile.Swarm{{Endpoint: "tcp://mgr:2376", ClusterID: "clu1", ObservedFrom: t0.Add(-11 * time.Minute), ObservedTo: t0, Samples: 3, Nodes: []reconcile.Node{node}}},
		Guests: []reconcile.GuestIdentity{
			{VMRef: "vm-2", ProbedAt: t0, NodeID: "nodeid1abc", Role: "swarm-worker" + textsafetest.OSC, ClusterID: "clu1" + textsafetest.C1,
				EngineID: textsafetest.Bidi, DockerEnabled: "yes", DockerActive: "yes"},
			{VMRef: "vm-3", ProbedAt: t0, Error: "guest said: " + textsafetest.Controls + textsafetest.OSC},
		}}
}

// TestTableEscapesHostileText: nothing from a guest, node or vCenter reaches
// the terminal raw (issue 9, item 7), while -json keeps the exact values.
func TestTableEscapesHostileText(t *testing.T) {
	res := reconcile.Reconcile(hostileSnapshot(), reconcile.History{})
	if len(res.Findings) == 0 || len(res.Nodes) == 0 {
		t.Fatalf("the scenario gives no findings or nodes: %+v", res.Summary)
	}
	var b bytes.Buffer
	writeTable(&b, res, tableLayout{width: 100})
	out := b.String()
	textsafetest.Check(t, "audit table", out)
	for _, want := range []string{`wk\x1b[31mRED\x1b[0m-clone`, `wk-1\u202eenolc\u202c\u2066x\u2069`, `\x1b]0;owned\x07`} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks the escaped %q:\n%s", want, out)
		}
	}

	b.Reset()
	if err := render(&b, res, reportOptions{output: outputFlag{format: formatJSON}}); err != nil {
		t.Fatal(err)
	}
	var back reconcile.Result
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	raw := func(r reconcile.Result) string {
		var s []string
		for _, f := range r.Findings {
			s = append(s, f.VMs...)
			s = append(s, f.Evidence...)
		}
		for _, v := range r.VMs {
			s = append(s, v.Name, v.Path, v.GuestHostname)
			if v.Guest != nil {
				s = append(s, v.Guest.Role, v.Guest.ClusterID, v.Guest.EngineID, v.Guest.Error)
			}
		}
		return strings.Join(s, "|")
	}
	if got, want := raw(back), raw(res); got != want {
		t.Errorf("JSON does not keep the exact values:\n got %q\nwant %q", got, want)
	}
	for _, v := range []string{textsafetest.CSI, textsafetest.OSC, textsafetest.C1, textsafetest.Bidi} {
		if !strings.Contains(raw(back), v) {
			t.Errorf("JSON lost %q", v)
		}
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

// TestPlanTableEscapesHostileText: the remediate plan and its outcomes name
// VMs from vCenter and carry text from guests; a plan read with -apply FILE
// is a file anyone with write access could have edited.
func TestPlanTableEscapesHostileText(t *testing.T) {
	snap := hostileSnapshot()
	res := reconcile.Reconcile(snap, reconcile.History{})
	p, err := remediate.Compute(snap, res, remediate.Options{Settings: remediate.Settings{Action: remediate.ActionPowerOff, MaxActions: 5, MaxPercent: 100},
		Now: snap.CollectedAt})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) == 0 {
		t.Fatalf("the scenario plans nothing: %+v", p)
	}
	// What a plan file could carry besides.
	p.ID += textsafetest.CSI
	p.Blocked = "max_actions " + textsafetest.OSC
	p.AlreadyDone = []remediate.Entry{{VM: remediate.VMInfo{Name: textsafetest.C1, Path: textsafetest.Controls, Ref: "vm-9"}, Action: remediate.ActionPowerOff, Reason: textsafetest.Bidi}}
	p.Refused = []remediate.Refusal{{VM: remediate.VMInfo{Name: textsafetest.Invalid, Path: "/x", Ref: "vm-8"}, Why: textsafetest.CSI, Fix: textsafetest.OSC}}
	outs := []remediate.Outcome{{Entry: p.Entries[0], Status: "failed" + textsafetest.C1, Detail: "guest said " + textsafetest.OSC + textsafetest.Controls}}

	var b bytes.Buffer
	writePlanTable(&b, p)
	writeOutcomes(&b, p, outs)
	out := b.String()
	textsafetest.Check(t, "remediate plan", out)
	for _, want := range []string{`wk-1\u202eenolc\u202c\u2066x\u2069`, `REFUSED BY THE CAPS: max_actions wk\x1b]0;owned\x07`,
		`wk\u009b2J\u0085-c1 (a\x00b\x08c\td\ne\rf\x7fg\u2028h, vm-9)`, `wk\x9b2J\xff-raw (/x, vm-8): wk\x1b[31mRED\x1b[0m-clone`,
		`manual fix: wk\x1b]0;owned`, `failedwk\u009b2J\u0085-c1`} {
		if !strings.Contains(out, want) {
			t.Errorf("plan output lacks %q:\n%s", want, out)
		}
	}

	j, err := json.Marshal(remediateReport{Plan: p, Applied: true, Outcomes: outs})
	if err != nil {
		t.Fatal(err)
	}
	var back remediateReport
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatal(err)
	}
	if back.Plan.ID != p.ID || back.Plan.Blocked != p.Blocked || back.Plan.Entries[0].VM.Name != textsafetest.Bidi ||
		back.Plan.AlreadyDone[0].VM.Path != textsafetest.Controls || back.Outcomes[0].Detail != outs[0].Detail {
		t.Errorf("JSON does not keep the exact values: %+v", back)
	}
}
