package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/internal/textsafe/textsafetest"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

// TestTableGuestProbes: with -verify, the table lists each probed VM with
// the identity it holds, Docker's state, or why it could not be probed, and
// every line fits a 100-column terminal.
func TestTableGuestProbes(t *testing.T) {
	res := reconcile.Result{
		Summary: reconcile.Summary{VMs: 3, PoweredOn: 3, Swarms: 1, Nodes: 1, MatchedNodes: 1, Critical: 1, Highest: reconcile.Critical},
		VMs: []reconcile.VMStatus{
			{VM: reconcile.VM{Name: "wk1"}, Guest: &reconcile.GuestIdentity{NodeID: "x1kq7bq9vbyt0sbxbivvv1i5o", Role: "swarm-worker",
				DockerEnabled: "yes", DockerActive: "yes", EngineID: "0b1f6c1e-3c1a-4f5e-9a55-0e3b0e8d1c22"}},
			{VM: reconcile.VM{Name: "wk1-clone-with-a-very-long-name"}, Guest: &reconcile.GuestIdentity{NodeID: "x1kq7bq9vbyt0sbxbivvv1i5o",
				Role: "swarm-worker", DockerEnabled: "yes", DockerActive: "no"}},
			{VM: reconcile.VM{Name: "web-01"}, Guest: &reconcile.GuestIdentity{Error: "invalid guest login: user name or password rejected by the guest"}},
			{VM: reconcile.VM{Name: "db-01"}},
		},
		Findings: []reconcile.Finding{{Kind: reconcile.KindSharedNodeID, Severity: reconcile.Critical, NodeID: "x1kq7bq9vbyt0sbxbivvv1i5o",
			VMs: []string{"wk1", "wk1-clone-with-a-very-long-name"}, Original: "wk1", Confirmed: true, Dormant: true,
			Evidence: []string{strings.Repeat("a long line of evidence ", 12)}, Remedy: "Leave wk1 alone."}},
	}
	var b bytes.Buffer
	writeTable(&b, res, 100)
	out := b.String()
	for _, want := range []string{
		"CRITICAL shared-node-id  node x1kq7bq9vbyt0sbxbivvv1i5o  [confirmed in guest, dormant]",
		"vms:      wk1 (original), wk1-clone-with-a-very-long-name",
		"GUEST PROBES",
		"wk1                       x1kq7bq9vbyt0sbxbivvv1i5o  worker  yes/yes          0b1f6c1e-3c1…",
		"wk1-clone-with-a-very-l…  x1kq7bq9vbyt0sbxbivvv1i5o  worker  yes/no",
		"  not probed: web-01: invalid guest login: user name or password rejected by the guest",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "db-01") {
		t.Errorf("a VM that was not probed is listed:\n%s", out)
	}
	for i, line := range strings.Split(out, "\n") {
		if n := len([]rune(line)); n > 100 {
			t.Errorf("line %d is %d columns: %q", i+1, n, line)
		}
	}
}

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
	writeTable(&b, res, 100)
	out := b.String()
	textsafetest.Check(t, "audit table", out)
	for _, want := range []string{`wk\x1b[31mRED\x1b[0m-clone`, `wk-1\u202eenolc\u202c\u2066x\u2069`, `\x1b]0;owned\x07`} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks the escaped %q:\n%s", want, out)
		}
	}

	b.Reset()
	if err := (&auditRun{json: true}).render(&b, res); err != nil {
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
