package reconcile

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// snapNoVC is a snapshot without a vCenter: the swarm alone.
func snapNoVC(nodes ...Node) Snapshot {
	s := snap(nil, nodes...)
	s.VCenters = nil
	return s
}

// at is one sighting for nodeAt: description k, at t0+off, from source src.
type at struct {
	k   int
	off time.Duration
	src string
}

// nodeAt builds a node from explicit sightings (in time order) and fills the
// descriptions' FirstSeen, LastSeen and Seen from them.
func nodeAt(id string, descs []Description, ss ...at) Node {
	n := Node{ID: id, Role: "worker", State: "ready", Availability: "active", Descriptions: descs}
	for _, s := range ss {
		tm := t0.Add(s.off)
		if len(n.Timeline) == 0 || n.Timeline[len(n.Timeline)-1].Description != s.k {
			n.Timeline = append(n.Timeline, Sighting{Time: tm, Description: s.k, Source: cmpOr(s.src, "list")})
		}
		dd := &n.Descriptions[s.k]
		if dd.FirstSeen.IsZero() {
			dd.FirstSeen = tm
		}
		dd.LastSeen = tm
		dd.Seen++
	}
	return n
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// alternate returns sightings that start with description 0 alone from t0
// for lead, then take turns 0/1 every 5 s, n turns in all.
func alternate(lead time.Duration, n int) []at {
	ss := []at{{0, 0, ""}}
	for i := range n {
		ss = append(ss, at{(i + 1) % 2, lead + time.Duration(i)*5*time.Second, ""})
	}
	return ss
}

func version(v string, d Description) Description { d.EngineVersion = v; return d }
func eventsOnly(h string) Description             { return Description{Hostname: h, EventsOnly: true} }

type machineWant struct {
	kind     string
	node     string
	machines []string // labels, original first
	original string   // OriginalMachine
}

func machineWants(fs []Finding) []machineWant {
	var out []machineWant
	for _, f := range fs {
		var ls []string
		for _, m := range f.Machines {
			ls = append(ls, m.Label)
		}
		out = append(out, machineWant{f.Kind, f.NodeID, ls, f.OriginalMachine})
	}
	return out
}

func equalMachineWants(a, b []machineWant) bool {
	return slices.EqualFunc(a, b, func(x, y machineWant) bool {
		return x.kind == y.kind && x.node == y.node && x.original == y.original && slices.Equal(x.machines, y.machines)
	})
}

var (
	nvA = d("wk-07", 2, 3900, "10.0.0.7")
	nvB = d("wk-09", 4, 7900, "10.0.0.9")
)

// TestNoVCenterMachines: without a vCenter a node ID answered by two machines
// in turn (A, B, A, B) is shared-node-id over machines, and the changes one
// machine goes through are not.
func TestNoVCenterMachines(t *testing.T) {
	flips := []int{0, 1, 0, 1, 0, 1}
	cases := []struct {
		name     string
		snap     Snapshot
		hist     History
		want     []machineWant
		machines int // Result.Machines
	}{
		// ---- the signal ----
		{
			name:     "clone with its own hostname and address flips with the node",
			snap:     snapNoVC(node("n1", ds(nvA, nvB), flips...)),
			want:     []machineWant{{KindSharedNodeID, "n1", []string{"wk-07 (10.0.0.7)", "wk-09 (10.0.0.9)"}, ""}},
			machines: 2,
		},
		{
			name:     "clone kept the hostname: told apart by address alone",
			snap:     snapNoVC(node("n1", ds(nvA, d("wk-07", 2, 3900, "10.0.0.9")), flips...)),
			want:     []machineWant{{KindSharedNodeID, "n1", []string{"wk-07 (10.0.0.7)", "wk-07 (10.0.0.9)"}, ""}},
			machines: 2,
		},
		{
			name:     "clone kept the hostname, both behind one address (loopback): told apart by CPUs",
			snap:     snapNoVC(node("n1", ds(d("wk", 2, 24105, "127.0.0.1"), d("wk", 1, 24105, "127.0.0.1")), flips...)),
			want:     []machineWant{{KindSharedNodeID, "n1", []string{"wk (2 CPUs)", "wk (1 CPU)"}, ""}},
			machines: 2,
		},
		{
			name: "one sample and the event replay (the default audit): the clone known from events only",
			snap: snapNoVC(nodeAt("n1", ds(eventsOnly("wk-09"), nvA),
				at{0, 0, "event"}, at{1, 5 * time.Second, "event"}, at{0, 10 * time.Second, "event"}, at{1, 15 * time.Second, "event"}, at{0, 20 * time.Second, "event"}, at{1, 25 * time.Second, "list"})),
			want:     []machineWant{{KindSharedNodeID, "n1", []string{"wk-09", "wk-07 (10.0.0.7)"}, ""}},
			machines: 2,
		},
		{
			name: "hot-add on the original while the clone flips (A, B, A', B)",
			snap: snapNoVC(node("n1", ds(nvA, nvB, d("wk-07", 4, 3900, "10.0.0.7")), 0, 1, 2, 1, 2, 1)),
			want: []machineWant{{KindSharedNodeID, "n1", []string{"wk-07 (10.0.0.7)", "wk-09 (10.0.0.9)"}, ""}},
			// wk-07 before and after the hot-add is one machine
			machines: 2,
		},
		{
			name: "hot-add on the original while a clone that kept its hostname flips",
			snap: snapNoVC(node("n1", ds(nvA, d("wk-07", 2, 3900, "10.0.0.9"), d("wk-07", 4, 3900, "10.0.0.7")), 0, 1, 2, 1, 2, 1)),
			// merged as a rename first, wk-07 at .7 and at .9 would be one machine
			want:     []machineWant{{KindSharedNodeID, "n1", []string{"wk-07 (10.0.0.7)", "wk-07 (10.0.0.9)"}, ""}},
			machines: 2,
		},
		{
			name:     "engines of two versions take turns at one hostname and address",
			snap:     snapNoVC(node("n1", ds(nvA, version("27.0.1", nvA)), flips...)),
			want:     []machineWant{{KindSharedNodeID, "n1", []string{"wk-07 (10.0.0.7, engine 28.5.2)", "wk-07 (10.0.0.7, engine 27.0.1)"}, ""}},
			machines: 2,
		},
		{
			name:     "the smallest alternation: A, B, A, B",
			snap:     snapNoVC(node("n1", ds(nvA, nvB), 0, 1, 0, 1)),
			want:     []machineWant{{KindSharedNodeID, "n1", []string{"wk-07 (10.0.0.7)", "wk-09 (10.0.0.9)"}, ""}},
			machines: 2,
		},
		{
			name:     "a single return (A, B, A) is a flap, not yet two machines",
			snap:     snapNoVC(node("n1", ds(nvA, nvB), 0, 1, 0)),
			want:     []machineWant{{KindNodeFlapping, "n1", []string{"wk-07 (10.0.0.7)", "wk-09 (10.0.0.9)"}, ""}},
			machines: 2,
		},
		// ---- no false positives ----
		{
			name:     "renamed once",
			snap:     snapNoVC(node("n1", ds(d("wk-old", 2, 3900, "10.0.0.5"), d("wk-new", 2, 3900, "10.0.0.5")), 0, 0, 1, 1)),
			machines: 1,
		},
		{
			name:     "renamed, and renamed back",
			snap:     snapNoVC(node("n1", ds(d("wk-old", 2, 3900, "10.0.0.5"), d("wk-new", 2, 3900, "10.0.0.5")), 0, 0, 1, 1, 0, 0)),
			want:     []machineWant{{KindNodeFlapping, "n1", []string{"wk-old (10.0.0.5)", "wk-new (10.0.0.5)"}, ""}},
			machines: 2,
		},
		{
			name:     "CPU hot-add 2 → 4",
			snap:     snapNoVC(node("n1", ds(d("wk-01", 2, 3900, "10.0.0.5"), d("wk-01", 4, 3900, "10.0.0.5")))),
			machines: 1,
		},
		{
			name:     "memory hot-add 4 → 8 GiB",
			snap:     snapNoVC(node("n1", ds(d("wk-01", 2, 3900, "10.0.0.5"), d("wk-01", 2, 7950, "10.0.0.5")))),
			machines: 1,
		},
		{
			name:     "rebooted and came back with a new engine version",
			snap:     snapNoVC(node("n1", ds(nvA, version("29.0.0", nvA)), 0, 0, 1, 1)),
			machines: 1,
		},
		{
			name:     "new address once (DHCP)",
			snap:     snapNoVC(node("n1", ds(d("wk-01", 2, 3900, "10.0.0.5"), d("wk-01", 2, 3900, "10.0.0.50")))),
			machines: 1,
		},
		{
			name: "DHCP gave a node's old address to another node",
			snap: snapNoVC(node("n1", ds(d("wk-01", 2, 3900, "10.0.0.5"), d("wk-01", 2, 3900, "10.0.0.50"))),
				node("n2", ds(d("db-01", 2, 3900, "10.0.0.8"), d("db-01", 2, 3900, "10.0.0.5")))),
			machines: 2,
		},
		{
			name: "nodes behind one NAT address",
			snap: snapNoVC(node("n1", ds(d("wk-01", 2, 3900, "192.168.1.1"))), node("n2", ds(d("wk-02", 2, 3900, "192.168.1.1"))),
				node("n3", ds(d("wk-03", 2, 3900, "192.168.1.1")))),
			machines: 3,
		},
		{
			name: "a node behind a NAT pool reconnects from one pool address, then another, and back",
			snap: snapNoVC(node("n1", ds(d("wk-01", 2, 3900, "198.51.100.1"), d("wk-01", 2, 3900, "198.51.100.2")), flips...),
				node("n2", ds(d("wk-02", 2, 3900, "198.51.100.1"))), node("n3", ds(d("wk-03", 2, 3900, "198.51.100.2")))),
			machines: 3,
		},
		{
			name:     "a manager whose address reads 0.0.0.0 now and then",
			snap:     snapNoVC(node("n1", ds(d("mgr", 2, 3900, "10.0.0.2"), d("mgr", 2, 3900, "0.0.0.0")), flips...)),
			machines: 1,
		},
		{
			name: "every node named ubuntu (moby/swarmkit#1075), each its own node ID",
			snap: snapNoVC(node("n1", ds(d("ubuntu", 2, 3900, "10.0.0.11"))), node("n2", ds(d("ubuntu", 2, 3900, "10.0.0.12"))),
				node("n3", ds(d("ubuntu", 2, 3900, "10.0.0.13")))),
			machines: 3,
		},
		{
			name:     "rebooted: down then ready, same description",
			snap:     snapNoVC(nodeIn("down", "n1", ds(nvA), 0, 0, 0)),
			machines: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Reconcile(tc.snap, tc.hist)
			if g := machineWants(r.Findings); !equalMachineWants(g, tc.want) {
				t.Errorf("findings:\n got  %+v\n want %+v", g, tc.want)
				dump(t, r)
			}
			if len(r.Machines) != tc.machines || r.Summary.Machines != tc.machines {
				t.Errorf("%d machines (summary %d), want %d: %+v", len(r.Machines), r.Summary.Machines, tc.machines, r.Machines)
			}
			checkRemedies(t, r)
			for _, f := range r.Findings {
				if len(f.VMs)+len(f.VMRefs)+len(f.VMPaths) != 0 || f.Original != "" {
					t.Errorf("%s names VMs without a vCenter: %v %v %q", f.Kind, f.VMs, f.VMRefs, f.Original)
				}
				if f.Kind == KindSharedNodeID && (f.Severity != Critical || len(f.Machines) != 2) {
					t.Errorf("shared-node-id %s over %d machines", f.Severity, len(f.Machines))
				}
			}
			for _, n := range r.Nodes {
				for _, md := range n.Descriptions {
					if len(md.Evidence) != 0 || len(md.VMRefs) != 0 {
						t.Errorf("node %s: VM matching evidence without a vCenter: %v", n.ID, md.Evidence)
					}
				}
			}
		})
	}
}

// TestNoVCenterEvidence checks what the admin reads: the two machines by
// hostname and address, where to log in and what to compare, what tells them
// apart, which one to fix and how.
func TestNoVCenterEvidence(t *testing.T) {
	r := Reconcile(snapNoVC(node("n1", ds(nvA, nvB), 0, 1, 0, 1, 0, 1)), History{})
	if len(r.Findings) != 1 {
		t.Fatalf("findings %+v", machineWants(r.Findings))
	}
	f := r.Findings[0]
	ev := strings.Join(f.Evidence, "\n")
	for _, s := range []string{
		"machine 1/2, wk-07 (10.0.0.7): hostname wk-07 (addr 10.0.0.7, 2 CPUs / 3900 MiB, engine 28.5.2), answered as node n1 3 times",
		"machine 2/2, wk-09 (10.0.0.9): hostname wk-09 (addr 10.0.0.9, 4 CPUs / 7900 MiB, engine 28.5.2)",
		"moved between these machines 5 times, 4 times back to a machine seen before",
		"differ in hostname (wk-07 ≠ wk-09), address (10.0.0.7 ≠ 10.0.0.9), CPUs (2 ≠ 4), memory (3900 MiB ≠ 7900 MiB)",
		"log in to 10.0.0.7 and 10.0.0.9 and compare /var/lib/docker/swarm/certificates/swarm-node.crt",
		"shows CN=n1",
		"the evidence cannot tell which machine is the original",
	} {
		if !strings.Contains(ev, s) {
			t.Errorf("evidence lacks %q:\n%s", s, ev)
		}
	}
	for _, s := range []string{"First decide which machine is the original", "machine created first", "Do NOT remove node n1",
		"On every other machine of wk-07 (10.0.0.7) and wk-09 (10.0.0.9):", "systemctl disable --now docker.service docker.socket",
		"mv /var/lib/docker/swarm /var/lib/docker/swarm.copied", "docker swarm join --token"} {
		if !strings.Contains(f.Remedy, s) {
			t.Errorf("remedy lacks %q: %s", s, f.Remedy)
		}
	}
	if strings.Contains(f.Remedy+ev, "VM ") {
		t.Errorf("machine finding speaks of VMs:\n%s\n%s", ev, f.Remedy)
	}
	if r.Summary.Critical != 1 || r.Summary.Highest != Critical || r.Summary.Nodes != 1 || r.Summary.VMs != 0 {
		t.Errorf("summary %+v", r.Summary)
	}
	m := r.Machines
	if len(m) != 2 || m[0].Source != "swarm" || m[0].Cluster != "cl-1" || m[0].Node != "n1" || !slices.Equal(m[0].Hostnames, []string{"wk-07"}) ||
		!slices.Equal(m[1].Addrs, []string{"10.0.0.9"}) || !slices.Equal(m[1].CPUs, []int{4}) || !slices.Equal(m[0].Descriptions, []int{0}) || m[0].Seen != 3 {
		t.Errorf("machines %+v", m)
	}
	b := string(mustJSON(t, r))
	for _, s := range []string{`"machines":[{"source":"swarm","cluster":"cl-1","node":"n1","label":"wk-07 (10.0.0.7)"`, `"summary":{`, `"machines":2`} {
		if !strings.Contains(b, s) {
			t.Errorf("JSON lacks %s: %s", s, b)
		}
	}

	// Loopback addresses (swarmtest) and a clone known from events only:
	// log in by hostname, and say why.
	r = Reconcile(snapNoVC(nodeAt("n1", ds(d("wk", 2, 24105, "127.0.0.1"), eventsOnly("clone")),
		at{0, 0, ""}, at{1, 3 * time.Second, "event"}, at{0, 6 * time.Second, ""}, at{1, 9 * time.Second, "event"}, at{0, 12 * time.Second, ""})), History{})
	ev = strings.Join(r.Findings[0].Evidence, "\n")
	for _, s := range []string{
		"log in to the machine named wk and the machine named clone",
		"wk: the address the manager saw, 127.0.0.1, identifies no machine (loopback, unspecified or link-local)",
		"clone: its address is unknown (seen in node events only)",
		"hostname clone (address unknown, known from node events only)",
	} {
		if !strings.Contains(ev, s) {
			t.Errorf("evidence lacks %q:\n%s", s, ev)
		}
	}
}

// TestNoVCenterSameHostnameBehindNAT: two machines with one hostname behind
// one address are named by what tells them apart, and the admin is told why
// the address does not help.
func TestNoVCenterSameHostnameBehindNAT(t *testing.T) {
	r := Reconcile(snapNoVC(node("n1", ds(d("ubuntu", 2, 3900, "203.0.113.5"), d("ubuntu", 4, 3900, "203.0.113.5")), 0, 1, 0, 1),
		node("n2", ds(d("db", 2, 3900, "203.0.113.5")))), History{})
	if len(r.Findings) != 1 {
		t.Fatalf("findings %+v", machineWants(r.Findings))
	}
	ev := strings.Join(r.Findings[0].Evidence, "\n")
	for _, s := range []string{
		"log in to the machine ubuntu (203.0.113.5, 2 CPUs) and the machine ubuntu (203.0.113.5, 4 CPUs)",
		"ubuntu (203.0.113.5, 2 CPUs): the address the manager saw, 203.0.113.5, is presented by 2 nodes (NAT or proxy)",
		"differ in CPUs (2 ≠ 4)",
	} {
		if !strings.Contains(ev, s) {
			t.Errorf("evidence lacks %q:\n%s", s, ev)
		}
	}
	r = Reconcile(snapNoVC(node("n1", ds(d("ubuntu", 2, 3900, "203.0.113.5"), d("ubuntu", 4, 3900, "203.0.113.5")), 0, 1, 0, 1)), History{})
	if ev := strings.Join(r.Findings[0].Evidence, "\n"); !strings.Contains(ev, "the address the manager saw, 203.0.113.5, is the other machine's too") {
		t.Errorf("evidence:\n%s", ev)
	}
}

// TestNoVCenterOriginal: the original is the machine that answered alone for
// a while before the other appeared, in this run or an earlier one; when the
// observation began mid-flapping nobody is named, least of all the machine
// that happened to be seen first.
func TestNoVCenterOriginal(t *testing.T) {
	cases := []struct {
		name string
		node Node
		hist History
		want string
		why  string
	}{
		{
			name: "the original answered alone for 10 minutes before the clone appeared",
			node: nodeAt("n1", ds(nvA, nvB), alternate(10*time.Minute, 6)...),
			want: "wk-07 (10.0.0.7)",
			why:  "original wk-07 (10.0.0.7): it answered as node n1 from 2025-03-01T10:00:00Z, 10m0s before wk-09 (10.0.0.9) first did",
		},
		{
			name: "alone for 8 s, then turns of 5 s: too short a lead to tell",
			node: nodeAt("n1", ds(nvA, nvB), alternate(8*time.Second, 6)...),
			why:  "the evidence cannot tell which machine is the original: wk-07 (10.0.0.7) answered alone for only 8s before wk-09 (10.0.0.9) first did, not more than twice the longest turn the machines took afterwards (5s)",
		},
		{
			name: "alone for 11 s, then turns of 5 s",
			node: nodeAt("n1", ds(nvA, nvB), alternate(11*time.Second, 6)...),
			want: "wk-07 (10.0.0.7)",
			why:  "11s before wk-09 (10.0.0.9) first did (2025-03-01T10:00:11Z); once they alternated, a machine held the node for 5s at most",
		},
		{
			name: "observation began mid-flapping: the first seen is luck",
			node: nodeAt("n1", ds(nvB, nvA), alternate(5*time.Second, 6)...),
			why:  "the evidence cannot tell which machine is the original",
		},
		{
			name: "mid-flapping, but an earlier run saw the original alone two days ago",
			node: nodeAt("n1", ds(nvB, nvA), alternate(5*time.Second, 6)...),
			hist: History{Nodes: map[string][]Description{"n1": {func() Description {
				h := nvA
				h.FirstSeen, h.LastSeen = t0.Add(-48*time.Hour), t0.Add(-47*time.Hour)
				return h
			}()}}},
			want: "wk-07 (10.0.0.7)",
			why:  "from 2025-02-27T10:00:00Z (an earlier run), 2d0s before wk-09 (10.0.0.9)",
		},
		{
			name: "history with a hostname only that fits both machines decides nothing",
			node: nodeAt("n1", ds(nvA, d("wk-07", 2, 3900, "10.0.0.9")), alternate(5*time.Second, 6)...),
			hist: History{Nodes: map[string][]Description{"n1": {{Hostname: "wk-07", EventsOnly: true, FirstSeen: t0.Add(-48 * time.Hour)}}}},
			why:  "the evidence cannot tell",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Reconcile(snapNoVC(tc.node), tc.hist)
			if len(r.Findings) != 1 || r.Findings[0].Kind != KindSharedNodeID {
				t.Fatalf("findings %+v", machineWants(r.Findings))
			}
			f := r.Findings[0]
			if f.OriginalMachine != tc.want {
				t.Errorf("original %q, want %q", f.OriginalMachine, tc.want)
			}
			if ev := strings.Join(f.Evidence, "\n"); !strings.Contains(ev, tc.why) {
				t.Errorf("evidence lacks %q:\n%s", tc.why, ev)
			}
			if tc.want != "" {
				if f.Machines[0].Label != tc.want || !strings.HasPrefix(f.Remedy, "Leave "+tc.want+", the original, alone.") || !strings.Contains(f.Remedy, "On wk-") {
					t.Errorf("original not first or remedy wrong: %+v\n%s", machineWants(r.Findings), f.Remedy)
				}
			} else if !strings.HasPrefix(f.Remedy, "First decide which machine is the original") {
				t.Errorf("remedy: %s", f.Remedy)
			}
		})
	}
}

// TestNoVCenterDeterminism: the same swarm in any order gives the same JSON;
// a swarm observed through two managers gives each machine once.
func TestNoVCenterDeterminism(t *testing.T) {
	nodes := []Node{
		node("n1", ds(nvA, nvB), 0, 1, 0, 1, 0),
		node("n2", ds(d("wk-02", 2, 3900, "10.0.0.2"))),
		node("n3", ds(d("wk-03", 2, 3900, "10.0.0.3"), d("wk-03", 4, 3900, "10.0.0.3"))),
	}
	s := snapNoVC(nodes...)
	s.Swarms = append(s.Swarms, Swarm{Endpoint: "tcp://mgr-02:2376", ClusterID: "cl-1", Nodes: slices.Clone(nodes)})
	want := mustJSON(t, Reconcile(s, History{}))
	r := rand.New(rand.NewPCG(3, 4))
	for range 5 {
		sh := s
		sh.Swarms = slices.Clone(s.Swarms)
		r.Shuffle(len(sh.Swarms), func(i, j int) { sh.Swarms[i], sh.Swarms[j] = sh.Swarms[j], sh.Swarms[i] })
		for k := range sh.Swarms {
			sh.Swarms[k].Nodes = slices.Clone(sh.Swarms[k].Nodes)
			ns := sh.Swarms[k].Nodes
			r.Shuffle(len(ns), func(i, j int) { ns[i], ns[j] = ns[j], ns[i] })
		}
		if g := mustJSON(t, Reconcile(sh, History{})); !bytes.Equal(want, g) {
			t.Fatal("shuffled input gives different JSON")
		}
	}
	res := Reconcile(s, History{})
	if len(res.Machines) != 4 || len(res.Findings) != 1 {
		t.Errorf("%d machines, findings %+v; want 4 machines and one finding", len(res.Machines), machineWants(res.Findings))
	}
}

// TestNoVCenterOnlyWithoutVMs: a snapshot with a vCenter keeps the VM rules
// (node-without-vm for a node no VM matches, no machines).
func TestNoVCenterOnlyWithoutVMs(t *testing.T) {
	s := snapNoVC(node("n1", ds(nvA, nvB), 0, 1, 0, 1, 0))
	s.VCenters = []string{"vc1"}
	r := Reconcile(s, History{})
	if len(r.Machines) != 0 || len(r.Findings) != 2 || r.Findings[0].Kind != KindNodeFlapping || r.Findings[1].Kind != KindNodeWithoutVM {
		t.Errorf("with a vCenter: machines %+v findings %v", r.Machines, got(r.Findings))
	}
}

// TestGroupMachinesKube: the grouping takes Kubernetes identities too; a boot
// ID changes on every reboot, so alone it never makes two machines, but two
// boot IDs taking turns do.
func TestGroupMachinesKube(t *testing.T) {
	a := KubeIdentity{BootID: "b1", SystemUUID: "U1", MachineID: "m", Hostname: "k1", InternalIP: "10.1.0.1", CPUs: 2, MemoryBytes: 4 << 30, KubeletVersion: "v1.31.0"}
	rebooted := a
	rebooted.BootID = "b2"
	clone := a
	clone.BootID, clone.SystemUUID = "b3", "U2"
	ids := func(l ...KubeIdentity) []ident {
		out := make([]ident, len(l))
		for i, k := range l {
			out[i] = kubeIdent(k, nil)
		}
		return out
	}
	steps := func(seq ...int) []mstep {
		out := make([]mstep, len(seq))
		for i, k := range seq {
			out[i] = mstep{id: k, at: t0.Add(time.Duration(i) * time.Second)}
		}
		return out
	}
	if g := groupMachines(ids(a, rebooted), steps(0, 1)); g.n != 1 || len(g.alternating) != 0 {
		t.Errorf("reboot: %+v", g)
	}
	if g := groupMachines(ids(a, clone), steps(0, 1, 0, 1, 0)); g.n != 2 || len(g.alternating) != 1 {
		t.Errorf("clone with its own system UUID taking turns: %+v", g)
	}
	if g := groupMachines(ids(a, rebooted), steps(0, 1, 0, 1, 0)); g.n != 2 || len(g.alternating) != 1 {
		t.Errorf("two boot IDs taking turns: %+v", g)
	}
}

// BenchmarkReconcileNoVCenter: the generated swarm (every 50th node shared
// with a flipping clone) without its vCenter.
func BenchmarkReconcileNoVCenter(b *testing.B) {
	for _, nodes := range []int{1000, 4000} {
		s := genSnapshot(nodes*5, nodes, 42)
		s.VMs, s.VCenters = nil, nil
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Reconcile(s, History{})
			}
		})
	}
}

// TestNoVCenterFlapAcrossRuns: the cross-run rule holds without a vCenter,
// and its evidence does not speak of returns this run did not see.
func TestNoVCenterFlapAcrossRuns(t *testing.T) {
	hist := History{Nodes: map[string][]Description{"n1": {
		{Hostname: "wk-07", LastSeen: t0.Add(-48 * time.Hour)},
		{Hostname: "wk-09", LastSeen: t0.Add(-24 * time.Hour)},
	}}}
	r := Reconcile(snapNoVC(node("n1", ds(nvA))), hist)
	if g := machineWants(r.Findings); !equalMachineWants(g, []machineWant{{KindNodeFlapping, "n1", []string{"wk-07 (10.0.0.7)"}, ""}}) {
		t.Fatalf("findings %+v", g)
	}
	ev := strings.Join(r.Findings[0].Evidence, "\n")
	if !strings.Contains(ev, "across runs: earlier runs saw hostnames wk-07, wk-09") || strings.Contains(ev, "one return") || strings.Contains(ev, "VM") {
		t.Errorf("evidence:\n%s", ev)
	}
}
