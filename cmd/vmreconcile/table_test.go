package main

import (
	"bytes"
	"strings"
	"testing"

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
	writeTable(&b, res, tableLayout{width: 100})
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
