package reconcile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// want is the part of a finding a case asserts.
type want struct {
	kind, node string
	vms        []string
	original   string
}

func (w want) String() string {
	return w.kind + " node=" + w.node + " vms=" + strings.Join(w.vms, ",") + " original=" + w.original
}

func got(fs []Finding) []want {
	var out []want
	for _, f := range fs {
		out = append(out, want{f.Kind, f.NodeID, f.VMs, f.Original})
	}
	return out
}

// Shared fixtures: the seed story. wk-01 is a swarm worker; wk-01-clone is a
// powered-on copy of it (guest customization gave it its own hostname and
// address) whose engine answers as the same node ID.
var (
	worker   = mkVM("wk-01", ip("10.0.0.5", "172.17.0.1"))
	clone    = mkVM("wk-01-clone", ip("10.0.0.9", "172.17.0.1"), res(4, 8192), copyOf(worker))
	dWorker  = d("wk-01", 2, 3900, "10.0.0.5")
	dClone   = d("wk-01-clone", 4, 7900, "10.0.0.9")
	flipping = []int{0, 1, 0, 1, 0, 1, 0}
)

func TestReconcile(t *testing.T) {
	noLineage := func(v VM) VM { v.Lineage = nil; return v }
	keptHost := mkVM("wk-01-copy", host("wk-01"), ip("10.0.0.9"), res(4, 8192), copyOf(worker))
	chain1 := mkVM("c1", off(), copyOf(worker))
	chain2 := mkVM("c2", ip("10.0.0.12"), copyOf(chain1))
	tpl := mkVM("tpl-worker", template(), copyOf(worker))
	deployed := mkVM("app-01", ip("10.0.0.20"), copyOf(tpl))

	cases := []struct {
		name string
		snap Snapshot
		hist History
		want []want
	}{
		// ---- the seed story and its variants ----
		{
			name: "seed story: clone flips with the worker, original by lineage",
			snap: snap(vms(worker, clone), node("n1", ds(dWorker, dClone), flipping...)),
			want: []want{{KindSharedNodeID, "n1", []string{"wk-01", "wk-01-clone"}, "wk-01"}},
		},
		{
			name: "seed story without lineage: original is the VM seen first",
			snap: snap(vms(worker, noLineage(clone)), node("n1", ds(dClone, dWorker), 0, 1, 0, 1)),
			want: []want{{KindSharedNodeID, "n1", []string{"wk-01-clone", "wk-01"}, "wk-01-clone"}},
		},
		{
			name: "seed story with lineage only in history: lineage beats first sighting",
			snap: snap(vms(worker, noLineage(clone)), node("n1", ds(dClone, dWorker), 0, 1, 0, 1)),
			hist: History{Lineage: map[string]Lineage{clone.Ref: *lin(worker)}},
			want: []want{{KindSharedNodeID, "n1", []string{"wk-01", "wk-01-clone"}, "wk-01"}},
		},
		{
			name: "clone kept the hostname: told apart by address and resources",
			snap: snap(vms(worker, keptHost), node("n1", ds(dWorker, d("wk-01", 4, 7900, "10.0.0.9")), flipping...)),
			want: []want{
				{KindSharedNodeID, "n1", []string{"wk-01", "wk-01-copy"}, "wk-01"},
				{KindDuplicateHostname, "", []string{"wk-01", "wk-01-copy"}, "wk-01"},
			},
		},
		{
			name: "transitive clone chain flips: original found through a powered-off middle VM, which is a dormant copy",
			snap: snap(vms(worker, chain1, chain2), node("n1", ds(dWorker, d("c2", 2, 3900, "10.0.0.12")), flipping...)),
			want: []want{
				{KindSharedNodeID, "n1", []string{"wk-01", "c2"}, "wk-01"},
				{KindCloneOfSwarmNode, "n1", []string{"wk-01", "c1"}, "wk-01"},
			},
		},
		{
			name: "single hand-over to a clone is still a shared ID",
			snap: snap(vms(worker, clone), node("n1", ds(dWorker, dClone))),
			want: []want{{KindSharedNodeID, "n1", []string{"wk-01", "wk-01-clone"}, "wk-01"}},
		},
		{
			name: "powered-on clone the manager has not seen (Docker off)",
			snap: snap(vms(worker, clone), node("n1", ds(dWorker))),
			want: []want{{KindCloneOfSwarmNode, "n1", []string{"wk-01", "wk-01-clone"}, "wk-01"}},
		},
		{
			name: "powered-off clone: a dormant clone-of-swarm-node",
			snap: snap(vms(worker, mkVM("wk-01-clone", off(), noTools(), copyOf(worker))), node("n1", ds(dWorker))),
			want: []want{{KindCloneOfSwarmNode, "n1", []string{"wk-01", "wk-01-clone"}, "wk-01"}},
		},
		{
			name: "clone that rejoined as a new node: no finding",
			snap: snap(vms(worker, clone), node("n1", ds(dWorker)), node("n2", ds(dClone))),
		},
		{
			name: "template cloned from a worker, and a VM deployed from it",
			snap: snap(vms(worker, tpl, deployed), node("n1", ds(dWorker))),
			want: []want{
				{KindCloneOfSwarmNode, "n1", []string{"wk-01", "app-01"}, "wk-01"},
				{KindTemplateCarriesSwarm, "n1", []string{"wk-01", "tpl-worker"}, "wk-01"},
			},
		},
		{
			name: "template that kept the worker's guest hostname",
			snap: snap(vms(worker, mkVM("tpl-2", template(), host("wk-01"))), node("n1", ds(dWorker))),
			want: []want{{KindTemplateCarriesSwarm, "n1", []string{"wk-01", "tpl-2"}, "wk-01"}},
		},
		{
			name: "transitive chain, nobody flips: clone-of-swarm-node for both copies, the powered-off one dormant",
			snap: snap(vms(worker, chain1, chain2), node("n1", ds(dWorker))),
			want: []want{
				{KindCloneOfSwarmNode, "n1", []string{"wk-01", "c1"}, "wk-01"},
				{KindCloneOfSwarmNode, "n1", []string{"wk-01", "c2"}, "wk-01"},
			},
		},
		// ---- node and VM state ----
		{
			name: "node with no VM",
			snap: snap(vms(worker), node("n1", ds(dWorker)), node("n9", ds(d("baremetal-7", 16, 64000, "10.9.0.7")))),
			want: []want{{KindNodeWithoutVM, "n9", []string{}, ""}},
		},
		{
			name: "node ready but its VM is off",
			snap: snap(vms(mkVM("wk-01", off())), node("n1", ds(dWorker))),
			want: []want{{KindNodeReadyVMOff, "n1", []string{"wk-01"}, "wk-01"}},
		},
		{
			name: "node down and its VM off: nothing to say",
			snap: snap(vms(mkVM("wk-01", off())), nodeIn("down", "n1", ds(dWorker))),
		},
		// ---- flapping ----
		{
			name: "flapping against an unknown machine",
			snap: snap(vms(worker), node("n1", ds(dWorker, d("ghost", 2, 3900, "10.7.7.7")), 0, 1, 0)),
			want: []want{{KindNodeFlapping, "n1", []string{"wk-01"}, ""}},
		},
		{
			name: "an address alone never merges two hostnames: flapping, not shared",
			snap: snap(vms(worker), node("n1", ds(dWorker, d("stranger", 2, 3900, "10.0.0.5")), 0, 1, 0)),
			want: []want{{KindNodeFlapping, "n1", []string{"wk-01"}, ""}},
		},
		{
			name: "flapping across runs: back to a hostname that was not the latest",
			snap: snap(vms(worker), node("n1", ds(dWorker))),
			hist: History{Nodes: map[string][]Description{"n1": {
				{Hostname: "wk-01", FirstSeen: t0.Add(-48 * time.Hour), LastSeen: t0.Add(-47 * time.Hour)},
				{Hostname: "other", FirstSeen: t0.Add(-24 * time.Hour), LastSeen: t0.Add(-23 * time.Hour)},
			}}},
			want: []want{{KindNodeFlapping, "n1", []string{"wk-01"}, ""}},
		},
		// ---- duplicates ----
		{
			name: "duplicate BIOS UUID of a hand-copied VM, duplicate MAC of a vcsim clone",
			snap: snap(vms(
				mkVM("db-01"), mkVM("db-01-copy", bios("bios-db-01")),
				mkVM("web-01", mac("00:50:56:aa:bb:01")), mkVM("web-01-clone", mac("00:50:56:AA:BB:01"), copyOf(mkVM("web-01"))),
			)),
			want: []want{
				{KindDuplicateBIOSUUID, "", []string{"db-01", "db-01-copy"}, ""},
				{KindDuplicateMAC, "", []string{"web-01", "web-01-clone"}, "web-01"},
			},
		},
		{
			name: "guest probes: same swarm cert in two VMs (one engine stopped), same engine and machine ID",
			snap: func() Snapshot {
				s := snap(vms(worker, mkVM("wk-01-old", ip("10.0.0.30"))), node("n1", ds(dWorker)))
				s.Guests = []GuestIdentity{
					{VMRef: "vm-wk-01", NodeID: "n1", EngineID: "E1", MachineID: "M1", DockerEnabled: "yes", DockerActive: "yes"},
					{VMRef: "vm-wk-01-old", NodeID: "n1", EngineID: "E1", MachineID: "M1", DockerEnabled: "yes", DockerActive: "no"},
				}
				return s
			}(),
			want: []want{
				{KindSharedNodeID, "n1", []string{"wk-01", "wk-01-old"}, "wk-01"},
				{KindSharedEngineID, "", []string{"wk-01", "wk-01-old"}, ""},
				{KindSharedMachineID, "", []string{"wk-01", "wk-01-old"}, ""},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Reconcile(tc.snap, tc.hist)
			g := got(r.Findings)
			if !equalWants(g, tc.want) {
				t.Errorf("findings:\n got  %v\n want %v", g, tc.want)
				dump(t, r)
			}
			checkRemedies(t, r)
		})
	}
}

// TestNoFalsePositives: ordinary life of a swarm must raise no shared-node-id
// and no node-flapping.
func TestNoFalsePositives(t *testing.T) {
	cases := []struct {
		name string
		snap Snapshot
		hist History
		want []want // other findings expected, if any
	}{
		{
			name: "renamed once, old hostname matches no VM",
			snap: snap(vms(mkVM("wk-01", host("wk-new"), ip("10.0.0.5"))), node("n1", ds(d("wk-old", 2, 3900, "10.0.0.5"), d("wk-new", 2, 3900, "10.0.0.5")))),
		},
		{
			name: "renamed once, the VM kept the old name in the inventory",
			snap: snap(vms(mkVM("wk-old", host("wk-new"), ip("10.0.0.5"))), node("n1", ds(d("wk-old", 2, 3900, "10.0.0.5"), d("wk-new", 2, 3900, "10.0.0.5")))),
		},
		{
			name: "renamed once, tools not reporting: old name matches the VM by its name",
			snap: snap(vms(mkVM("wk-old", noTools())), node("n1", ds(d("wk-old", 2, 3900, "10.0.0.5"), d("wk-new", 2, 3900, "10.0.0.5")))),
		},
		{
			name: "renamed once and reported in an earlier run",
			snap: snap(vms(mkVM("wk-01", host("wk-new"), ip("10.0.0.5"))), node("n1", ds(d("wk-new", 2, 3900, "10.0.0.5")))),
			hist: History{Nodes: map[string][]Description{"n1": {
				{Hostname: "wk-old", LastSeen: t0.Add(-48 * time.Hour)},
				{Hostname: "wk-new", LastSeen: t0.Add(-24 * time.Hour)},
			}}},
		},
		{
			name: "CPU hot-add 2 → 4",
			snap: snap(vms(mkVM("wk-01", ip("10.0.0.5"), res(4, 4096))), node("n1", ds(d("wk-01", 2, 3900, "10.0.0.5"), d("wk-01", 4, 3900, "10.0.0.5")))),
		},
		{
			name: "CPU hot-add with a late event sighting of the old identity",
			snap: func() Snapshot {
				n := node("n1", ds(d("wk-01", 2, 3900, "10.0.0.5"), d("wk-01", 4, 3900, "10.0.0.5")))
				n.Timeline = append(n.Timeline, Sighting{Time: t0.Add(time.Minute), Description: 0, Source: "event"}, Sighting{Time: t0.Add(2 * time.Minute), Description: 1, Source: "list"})
				return snap(vms(mkVM("wk-01", ip("10.0.0.5"), res(4, 4096))), n)
			}(),
		},
		{
			name: "memory hot-add 4 → 8 GiB",
			snap: snap(vms(mkVM("wk-01", ip("10.0.0.5"), res(2, 8192))), node("n1", ds(d("wk-01", 2, 3900, "10.0.0.5"), d("wk-01", 2, 7950, "10.0.0.5")))),
		},
		{
			name: "rebooted: down then ready, same description",
			snap: snap(vms(worker), node("n1", ds(dWorker), 0, 0, 0)),
		},
		{
			name: "two VMs share a hostname but hold different node IDs",
			snap: snap(vms(mkVM("web-a", host("web"), ip("10.0.1.1")), mkVM("web-b", host("web"), ip("10.0.1.2"))),
				node("n1", ds(d("web", 2, 3900, "10.0.1.1"))), node("n2", ds(d("web", 2, 3900, "10.0.1.2")))),
			want: []want{{KindDuplicateHostname, "", []string{"web-a", "web-b"}, ""}},
		},
		{
			name: "two nodes swapped hostnames: address contradicts hostname, no shared ID",
			snap: snap(vms(mkVM("vm-a", host("wk-02"), ip("10.0.0.5")), mkVM("vm-b", host("wk-01"), ip("10.0.0.6"))),
				node("n1", ds(d("wk-01", 2, 3900, "10.0.0.5"), d("wk-02", 2, 3900, "10.0.0.5"))),
				node("n2", ds(d("wk-02", 2, 3900, "10.0.0.6"), d("wk-01", 2, 3900, "10.0.0.6")))),
		},
		{
			name: "DHCP gave a node's old address to another VM",
			snap: snap(vms(mkVM("wk-01", ip("10.0.0.50")), mkVM("db-01", ip("10.0.0.5"))),
				node("n1", ds(d("wk-01", 2, 3900, "10.0.0.5"), d("wk-01", 2, 3900, "10.0.0.50")))),
		},
		{
			name: "nodes behind one NAT address do not match the VM holding it",
			snap: snap(vms(mkVM("nat-gw", ip("192.168.1.1")), mkVM("wk-01", ip("10.0.0.5")), mkVM("wk-02", ip("10.0.0.6"))),
				node("n1", ds(d("wk-01", 2, 3900, "192.168.1.1"))), node("n2", ds(d("wk-02", 2, 3900, "192.168.1.1")))),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Reconcile(tc.snap, tc.hist)
			for _, f := range r.Findings {
				if f.Kind == KindSharedNodeID || f.Kind == KindNodeFlapping {
					t.Errorf("false positive %s on node %s: %v", f.Kind, f.NodeID, f.VMs)
				}
			}
			if g := got(r.Findings); !equalWants(g, tc.want) {
				t.Errorf("findings:\n got  %v\n want %v", g, tc.want)
				dump(t, r)
			}
			checkRemedies(t, r)
			if r.Summary.MatchedNodes != r.Summary.Nodes {
				t.Errorf("matched %d of %d nodes", r.Summary.MatchedNodes, r.Summary.Nodes)
				dump(t, r)
			}
		})
	}
}

func TestSharedNodeIDDetails(t *testing.T) {
	r := Reconcile(snap(vms(clone, worker), node("n1", ds(dWorker, dClone), flipping...)), History{})
	if len(r.Findings) != 1 {
		t.Fatalf("findings: %v", got(r.Findings))
	}
	f := r.Findings[0]
	if f.Severity != Critical || f.Confirmed || f.Dormant {
		t.Errorf("severity %s confirmed %v dormant %v", f.Severity, f.Confirmed, f.Dormant)
	}
	if !slices.Equal(f.VMPaths, []string{"/DC0/vm/wk-01", "/DC0/vm/wk-01-clone"}) || !slices.Equal(f.VMRefs, []string{"vm-wk-01", "vm-wk-01-clone"}) {
		t.Errorf("paths %v refs %v", f.VMPaths, f.VMRefs)
	}
	ev := strings.Join(f.Evidence, "\n")
	for _, s := range []string{
		"identity 1/2: hostname wk-01 (addr 10.0.0.5, 2 CPUs / 3900 MiB)",
		"→ VM wk-01-clone",
		"identity changed 6 times",
		"moved between VMs 6 times",
		"lineage: VM wk-01-clone was copied from wk-01 (clone,",
		"original wk-01: by lineage",
	} {
		if !strings.Contains(ev, s) {
			t.Errorf("evidence lacks %q:\n%s", s, ev)
		}
	}
	for _, s := range []string{"systemctl disable --now docker.service docker.socket", "docker swarm leave --force", "/var/lib/docker/swarm", "Leave wk-01 (the original) alone", "On wk-01-clone:"} {
		if !strings.Contains(f.Remedy, s) {
			t.Errorf("remedy lacks %q: %s", s, f.Remedy)
		}
	}
	if want := (Summary{CollectedAt: t0.Add(time.Hour), Sources: []string{"vcenter vc1", "swarm tcp://mgr-01:2376"}, VMs: 2, PoweredOn: 2, Swarms: 1, Nodes: 1, MatchedNodes: 1, Critical: 1, Highest: Critical}); !reflect.DeepEqual(r.Summary, want) || len(want.Sources) == 0 {
		t.Errorf("summary %+v", r.Summary)
	}
	// VMs carry their node IDs, nodes their VMs.
	for _, v := range r.VMs {
		if !slices.Equal(v.NodeIDs, []string{"n1"}) {
			t.Errorf("VM %s node IDs %v", v.Name, v.NodeIDs)
		}
	}
	if n := r.Nodes[0]; !slices.Equal(n.VMs, []string{"wk-01", "wk-01-clone"}) || n.Flips != 6 {
		t.Errorf("node %+v", n)
	}
}

func TestGuestConfirmedDormant(t *testing.T) {
	s := snap(vms(worker, clone), node("n1", ds(dWorker, dClone), flipping...))
	s.Guests = []GuestIdentity{
		{VMRef: "vm-wk-01", NodeID: "n1", DockerActive: "yes"},
		{VMRef: "vm-wk-01-clone", NodeID: "n1", DockerActive: "no"},
		{VMRef: "vm-other", Error: "tools not running"},
	}
	r := Reconcile(s, History{})
	if len(r.Findings) != 1 || !r.Findings[0].Confirmed || !r.Findings[0].Dormant || r.Findings[0].Original != "wk-01" {
		t.Fatalf("findings %+v", r.Findings)
	}
	s.Guests[1].DockerActive = "yes"
	if f := Reconcile(s, History{}).Findings[0]; !f.Confirmed || f.Dormant {
		t.Errorf("confirmed %v dormant %v", f.Confirmed, f.Dormant)
	}
}

func TestDuplicateMACEvidenceNamesTheCopy(t *testing.T) {
	src := mkVM("web-01", mac("00:50:56:aa:bb:01"))
	r := Reconcile(snap(vms(src, mkVM("web-01-clone", mac("00:50:56:aa:bb:01"), copyOf(src)))), History{})
	ev := strings.Join(r.Findings[0].Evidence, "\n")
	if !strings.Contains(ev, "VM web-01-clone is a copy of web-01 and kept its MAC: vcsim clones keep the source's MACs") {
		t.Errorf("evidence: %s", ev)
	}
}

func TestDeterminism(t *testing.T) {
	s := genSnapshot(600, 150, 7)
	s.Swarms = append(s.Swarms, Swarm{ClusterID: "cl-0", Endpoint: "tcp://b", Nodes: []Node{node("x1", ds(dWorker, dClone), flipping...)}})
	s.Guests = []GuestIdentity{{VMRef: "vm-vm-00001", EngineID: "E"}, {VMRef: "vm-vm-00002", EngineID: "E"}, {VMRef: "vm-vm-00003", MachineID: "M"}, {VMRef: "vm-vm-00004", MachineID: "M"}}
	hist := History{Lineage: map[string]Lineage{"vm-vm-00100": *lin(s.VMs[3])}}
	want := mustJSON(t, Reconcile(s, hist))
	if again := mustJSON(t, Reconcile(s, hist)); !bytes.Equal(want, again) {
		t.Fatal("two runs differ")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 5 {
		sh := s
		sh.VMs = slices.Clone(s.VMs)
		r.Shuffle(len(sh.VMs), func(i, j int) { sh.VMs[i], sh.VMs[j] = sh.VMs[j], sh.VMs[i] })
		sh.Swarms = slices.Clone(s.Swarms)
		r.Shuffle(len(sh.Swarms), func(i, j int) { sh.Swarms[i], sh.Swarms[j] = sh.Swarms[j], sh.Swarms[i] })
		for k := range sh.Swarms {
			sh.Swarms[k].Nodes = slices.Clone(sh.Swarms[k].Nodes)
			ns := sh.Swarms[k].Nodes
			r.Shuffle(len(ns), func(i, j int) { ns[i], ns[j] = ns[j], ns[i] })
		}
		sh.Guests = slices.Clone(s.Guests)
		r.Shuffle(len(sh.Guests), func(i, j int) { sh.Guests[i], sh.Guests[j] = sh.Guests[j], sh.Guests[i] })
		if g := mustJSON(t, Reconcile(sh, hist)); !bytes.Equal(want, g) {
			t.Fatal("shuffled input gives different JSON")
		}
	}
	// Sanity: the generated world has findings of several kinds.
	res := Reconcile(s, hist)
	kinds := map[string]int{}
	for _, f := range res.Findings {
		kinds[f.Kind]++
	}
	for _, k := range []string{KindSharedNodeID, KindCloneOfSwarmNode, KindNodeWithoutVM, KindDuplicateHostname, KindSharedEngineID, KindSharedMachineID} {
		if kinds[k] == 0 {
			t.Errorf("generated world has no %s finding: %v", k, kinds)
		}
	}
	checkRemedies(t, res)
	// Sorted: severity, kind, node.
	for i := 1; i < len(res.Findings); i++ {
		a, b := res.Findings[i-1], res.Findings[i]
		if a.Severity.Rank() < b.Severity.Rank() || (a.Severity == b.Severity && (a.Kind > b.Kind || a.Kind == b.Kind && a.NodeID > b.NodeID)) {
			t.Fatalf("findings out of order at %d: %v / %v", i, got([]Finding{a}), got([]Finding{b}))
		}
	}
}

func TestReconcileEmpty(t *testing.T) {
	r := Reconcile(Snapshot{}, History{})
	b := mustJSON(t, r)
	if !strings.Contains(string(b), `"findings":[]`) || r.Summary.Highest != "" {
		t.Errorf("empty result: %s", b)
	}
}

// BenchmarkReconcile: ~5,000 VMs and ~1,000 nodes, and 4× that to show the
// cost grows linearly (matching goes through indexes, never VM × node).
func BenchmarkReconcile(b *testing.B) {
	for _, sz := range []struct{ vms, nodes int }{{5000, 1000}, {20000, 4000}} {
		s := genSnapshot(sz.vms, sz.nodes, 42)
		b.Run(fmt.Sprintf("vms=%d/nodes=%d", sz.vms, sz.nodes), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Reconcile(s, History{})
			}
		})
	}
}

// ---- helpers ----

func equalWants(a, b []want) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].kind != b[i].kind || a[i].node != b[i].node || a[i].original != b[i].original || !slices.Equal(a[i].vms, b[i].vms) {
			return false
		}
	}
	return true
}

func checkRemedies(t *testing.T, r Result) {
	t.Helper()
	for _, f := range r.Findings {
		if strings.Contains(f.Remedy, "docker node rm") {
			t.Errorf("%s remedy suggests docker node rm: %s", f.Kind, f.Remedy)
		}
		if f.Remedy == "" || len(f.Evidence) == 0 {
			t.Errorf("%s without remedy or evidence", f.Kind)
		}
		if len(f.VMs) != len(f.VMPaths) || len(f.VMs) != len(f.VMRefs) {
			t.Errorf("%s: VMs, paths and refs differ in length", f.Kind)
		}
		if f.Original != "" && (len(f.VMs) == 0 || f.VMs[0] != f.Original) {
			t.Errorf("%s: original %s is not first in %v", f.Kind, f.Original, f.VMs)
		}
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dump(t *testing.T, r Result) {
	t.Helper()
	b, _ := json.MarshalIndent(struct {
		Nodes    []NodeStatus
		Findings []Finding
	}{r.Nodes, r.Findings}, "", "  ")
	t.Logf("%s", b)
}
