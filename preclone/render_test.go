package preclone

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/internal/textsafe/textsafetest"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

// hostileInput: a copy whose name, path, hostname and certificate subject
// carry escape sequences, seen by a manager under a hostile hostname.
func hostileInput() Input {
	vm := reconcile.VM{Name: textsafetest.Bidi, Path: "/DC0/vm/" + textsafetest.CSI, Ref: "vm-2", PowerState: "poweredOn",
		GuestHostname: textsafetest.CSI, Lineage: &reconcile.Lineage{SourceRef: "vm-1", SourceName: textsafetest.OSC, Kind: "clone", Time: now.Add(-time.Hour)}}
	g := &reconcile.GuestIdentity{VMRef: "vm-2", ProbedAt: now, NodeID: textsafetest.CSI, Role: "swarm-worker" + textsafetest.OSC,
		ClusterID: textsafetest.C1, MachineID: textsafetest.Bidi, DockerEnabled: "yes", DockerActive: "yes"}
	sw := []reconcile.Swarm{{Endpoint: "tcp://mgr:2376", ClusterID: textsafetest.C1, Nodes: []reconcile.Node{{ID: textsafetest.CSI, Role: "worker",
		State: "ready", Descriptions: []reconcile.Description{{Hostname: textsafetest.CSI, Addr: "10.0.0.5"}}}}}}
	return Input{VM: vm, Guest: g, GuestSource: SourceLive, Swarms: sw, SourceGuest: &reconcile.GuestIdentity{NodeID: textsafetest.CSI},
		SwarmErrors: []string{"tcp://mgr2:2376: " + textsafetest.OSC}, Now: now}
}

// TestWriteTextEscapesHostileText: the preclone report prints what vCenter,
// the guest and the managers said escaped (issue 9, item 7); -json keeps it.
func TestWriteTextEscapesHostileText(t *testing.T) {
	r := Evaluate(hostileInput())
	o := Output{CheckedAt: now, Verdict: r.Verdict, VMs: []Report{r, r}}
	var b bytes.Buffer
	WriteText(&b, o, 100)
	out := b.String()
	textsafetest.Check(t, "preclone report", out)
	for _, want := range []string{`VM wk-1\u202eenolc\u202c\u2066x\u2069 (/DC0/vm/wk\x1b[31mRED\x1b[0m-clone, vm-2, powered on)`,
		`node wk\x1b[31mRED\x1b[0m-clone`, `swarm-workerwk\x1b]0;owned\x07`} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}

	j, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var back Output
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatal(err)
	}
	got := back.VMs[0]
	if got.Name != textsafetest.Bidi || got.Path != "/DC0/vm/"+textsafetest.CSI || got.Guest.NodeID != textsafetest.CSI ||
		got.Guest.Role != "swarm-worker"+textsafetest.OSC || got.Guest.ClusterID != textsafetest.C1 {
		t.Errorf("JSON does not keep the exact values: %+v", got)
	}
	if !bytes.Contains(j, []byte(`\u001b[31mRED`)) {
		t.Errorf("JSON lacks the escaped ESC of the hostname: %s", j)
	}
}

// TestWritePlanEscapesHostileText: the generalization plan names the copy and
// its source; both come from vCenter.
func TestWritePlanEscapesHostileText(t *testing.T) {
	p := GeneralizePlan(reconcile.VM{Name: textsafetest.CSI, Path: "/DC0/vm/" + textsafetest.Bidi, Ref: "vm-2"},
		reconcile.VM{Name: textsafetest.OSC + textsafetest.C1, Ref: "vm-1"}, now)
	var b bytes.Buffer
	WritePlan(&b, p, 100)
	out := b.String()
	textsafetest.Check(t, "generalization plan", out)
	for _, want := range []string{`COPY wk\x1b[31mRED\x1b[0m-clone`, `(/DC0/vm/wk-1\u202eenolc\u202c\u2066x\u2069,`, `\x1b]52;c;`} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	j, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back Plan
	if err := json.Unmarshal(j, &back); err != nil || back.Target != textsafetest.CSI || back.Source != textsafetest.OSC+textsafetest.C1 {
		t.Errorf("JSON does not keep the exact names: %v %q %q", err, back.Target, back.Source)
	}
}

// TestScriptNamesCannotAddCommands: the script's first line is a comment
// naming the copy and its source. A VM name with a newline used to end the
// comment and put its second line into the script the guest runs as root.
func TestScriptNamesCannotAddCommands(t *testing.T) {
	benign := GeneralizePlan(reconcile.VM{Name: "cp", Ref: "vm-2"}, reconcile.VM{Name: "src", Ref: "vm-1"}, now)
	p := GeneralizePlan(reconcile.VM{Name: "cp\nreboot -f\n#", Ref: "vm-2"}, reconcile.VM{Name: "src\r\ntouch /pwned", Ref: "vm-1\nid"}, now)
	lines := strings.Split(p.Script, "\n")
	if n, want := len(lines), len(strings.Split(benign.Script, "\n")); n != want {
		t.Errorf("script has %d lines, %d with plain names:\n%s", n, want, p.Script)
	}
	if !strings.HasPrefix(lines[0], "# vmreconcile generalize: copy cp\\nreboot -f\\n# (vm-2) of src\\r\\ntouch /pwned (vm-1\\nid)") {
		t.Errorf("first line: %q", lines[0])
	}
	for _, l := range lines[1:] {
		if strings.Contains(l, "reboot") || strings.Contains(l, "pwned") || strings.TrimSpace(l) == "id" {
			t.Errorf("a name reached the script as a command: %q", l)
		}
	}
}
