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

// ---- builders for the Kubernetes side ----

// Two BIOS UUIDs and the byte-swapped form of the first (what Linux shows as
// product_uuid on older VM hardware).
const (
	uuidWk      = "4231a5c3-1d2e-3f40-8899-aabbccddeeff"
	uuidWkSwap  = "c3a53142-2e1d-403f-8899-aabbccddeeff"
	uuidClone   = "42317788-99aa-bbcc-0011-223344556677"
	uuidForeign = "11111111-2222-3333-4444-555555555555"
)

// kid is an identity: boot ID, systemUUID, hostname, InternalIP, CPUs,
// memory in MiB.
func kid(boot, uuid, hostname, ip string, cpus, memMiB int64) KubeIdentity {
	return KubeIdentity{BootID: boot, SystemUUID: uuid, MachineID: "mid-" + hostname, Hostname: hostname, InternalIP: ip,
		CPUs: cpus, MemoryBytes: memMiB << 20, KubeletVersion: "v1.31.2", KernelVersion: "6.1.0-25-amd64"}
}

// knode builds a Node whose timeline visits the identities in seq (default
// each once), one sighting every 10 s (kubelet's status period).
func knode(name string, ids []KubeIdentity, seq ...int) KubeNode {
	if len(seq) == 0 {
		for i := range ids {
			seq = append(seq, i)
		}
	}
	n := KubeNode{Name: name, UID: "uid-" + name, Ready: "True", Identities: slices.Clone(ids)}
	for k, i := range seq {
		tm := t0.Add(time.Duration(k) * 10 * time.Second)
		if len(n.Timeline) == 0 || n.Timeline[len(n.Timeline)-1].Description != i {
			n.Timeline = append(n.Timeline, Sighting{Time: tm, Description: i, Source: "watch"})
		}
		id := &n.Identities[i]
		if id.FirstSeen.IsZero() {
			id.FirstSeen = tm
		}
		id.LastSeen = tm
		id.Seen++
	}
	return n
}

func rebooted(node, boot string, count int, first, last time.Time) KubeEvent {
	return KubeEvent{Reason: "Rebooted", Type: "Warning", Message: "Node " + node + " has been rebooted, boot id: " + boot,
		First: first, Last: last, Count: count, Source: "kubelet, " + node}
}

func withEvents(n KubeNode, evs ...KubeEvent) KubeNode { n.Events = evs; return n }
func controlPlane(n KubeNode) KubeNode                 { n.ControlPlane = true; return n }

func kcluster(nodes ...KubeNode) KubeCluster {
	return KubeCluster{Name: "prod", Server: "10.0.0.100:6443", ObservedFrom: t0, ObservedTo: t0.Add(10 * time.Minute), Samples: 60, Nodes: nodes}
}

// ksnap is a snapshot with VMs and one Kubernetes cluster (no swarm).
func ksnap(vms []VM, nodes ...KubeNode) Snapshot {
	return Snapshot{CollectedAt: t0.Add(time.Hour), VCenters: []string{"vc1"}, VMs: vms, Kubernetes: []KubeCluster{kcluster(nodes...)}}
}

// The Kubernetes seed story: kwk-01 is a worker (4 vCPU); kwk-01-clone a
// powered-on copy that kept the hostname, the address-less identity and the
// kubelet certificate, with 8 vCPU. Both kubelets write Node kwk-01.
var (
	kWorker = mkVM("kwk-01", bios(uuidWk), ip("10.0.1.5"), res(4, 8192))
	kClone  = mkVM("kwk-01-clone", bios(uuidClone), host("kwk-01"), ip("10.0.1.9"), res(8, 16384), copyOf(kWorker))
	idWk    = kid("boot-aaaa-1111", uuidWk, "kwk-01", "10.0.1.5", 4, 7900)
	idClone = kid("boot-bbbb-2222", uuidClone, "kwk-01", "10.0.1.9", 8, 16000)
	kFight  = []int{0, 1, 0, 1, 0, 1, 0}
)

func fightEvents() []KubeEvent {
	return []KubeEvent{
		rebooted("kwk-01", idWk.BootID, 4, t0.Add(20*time.Second), t0.Add(60*time.Second)),
		rebooted("kwk-01", idClone.BootID, 3, t0.Add(10*time.Second), t0.Add(50*time.Second)),
	}
}

func findKind(fs []Finding, kind string) *Finding {
	for i := range fs {
		if fs[i].Kind == kind {
			return &fs[i]
		}
	}
	return nil
}

// ---- systemUUID ----

func TestUUIDMatches(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{uuidWk, uuidWk, true},
		{uuidWk, strings.ToUpper(uuidWk), true},
		{uuidWk, uuidWkSwap, true},                              // older VM hardware: first three fields byte-swapped
		{uuidWkSwap, uuidWk, true},                              // either side
		{uuidWk, strings.ReplaceAll(uuidWk, "-", ""), true},     // hyphens ignored
		{uuidWk, "{" + uuidWk + "}", true},                      // braces ignored
		{uuidWk, uuidClone, false},                              // another VM
		{uuidWk, "c3a53142-2e1d-403f-8899-aabbccddeef0", false}, // swapped, but the tail differs
		{uuidWk, "3142c3a5-1d2e-3f40-8899-aabbccddeeff", false}, // a wrong swap (16-bit words)
		{"00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000", false},
		{"", "", false},
		{"bios-wk-01", "bios-wk-01", false}, // not a UUID
		{uuidWk, uuidWk + "00", false},
	}
	for _, c := range cases {
		if got := UUIDMatches(c.a, c.b); got != c.want {
			t.Errorf("UUIDMatches(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

// matchedVMs returns, per identity of the first Node, the names of the VMs
// it matched and the evidence.
func matchedVMs(r Result) ([][]string, []string) {
	var out [][]string
	var ev []string
	byRef := map[string]string{}
	for _, v := range r.VMs {
		byRef[v.Ref] = v.Name
	}
	for _, id := range r.KubeNodes[0].Identities {
		var names []string
		for _, ref := range id.VMRefs {
			names = append(names, byRef[ref])
		}
		out = append(out, names)
		ev = append(ev, strings.Join(id.Evidence, "; "))
	}
	return out, ev
}

func TestKubeMatching(t *testing.T) {
	twinA := mkVM("db-01", bios(uuidWk), ip("10.0.2.1"))
	twinB := mkVM("db-01-copy", bios(uuidWk), host("db-02"), ip("10.0.2.2")) // copied as files, "I moved it": same BIOS UUID
	cases := []struct {
		name   string
		vms    []VM
		id     KubeIdentity
		want   []string
		evHas  string
		ambig  bool
		noWant bool
	}{
		{name: "systemUUID = BIOS UUID", vms: vms(kWorker, kClone), id: idWk, want: []string{"kwk-01"}, evHas: "systemUUID " + uuidWk + " = BIOS UUID of VM kwk-01"},
		{name: "byte-swapped systemUUID (older VM hardware)", vms: vms(kWorker, kClone), id: kid("b", uuidWkSwap, "kwk-01", "10.0.1.5", 4, 7900),
			want: []string{"kwk-01"}, evHas: "with the first three fields byte-swapped"},
		{name: "a copy that kept the hostname is told apart by its systemUUID", vms: vms(kWorker, kClone), id: idClone,
			want: []string{"kwk-01-clone"}, evHas: "hostname kwk-01 also names kwk-01 (poweredOn), whose BIOS UUID differs"},
		{name: "a systemUUID no VM has never matches by hostname", vms: vms(kWorker), id: kid("b", uuidForeign, "kwk-01", "10.0.1.5", 4, 7900),
			noWant: true, evHas: "matches no VM's BIOS UUID"},
		{name: "no systemUUID: hostname", vms: vms(kWorker, mkVM("other")), id: kid("b", "", "kwk-01", "", 0, 0), want: []string{"kwk-01"}, evHas: "guest hostname of VM kwk-01"},
		{name: "no systemUUID: DHCP gave the address to another VM", vms: vms(kWorker, mkVM("web", ip("10.0.1.77"))),
			id: kid("b", "", "kwk-01", "10.0.1.77", 0, 0), noWant: true, evHas: "contradicting evidence"},
		{name: "no systemUUID: an address alone never merges two hostnames", vms: vms(kWorker),
			id: kid("b", "", "other-host", "10.0.1.5", 0, 0), noWant: true, evHas: "not matched on the address alone"},
		{name: "duplicate BIOS UUID told apart by hostname", vms: vms(twinA, twinB), id: kid("b", uuidWk, "db-02", "10.0.2.2", 2, 3900),
			want: []string{"db-01-copy"}, evHas: "also the BIOS UUID of db-01"},
		{name: "duplicate BIOS UUID, nothing tells them apart: ambiguous", vms: vms(twinA, mkVM("db-01-twin", bios(uuidWk), host("db-01"))),
			id: kid("b", uuidWk, "db-01", "", 0, 0), want: []string{"db-01", "db-01-twin"}, ambig: true, evHas: "ambiguous"},
		{name: "known from events only", vms: vms(kWorker), id: KubeIdentity{BootID: "b", EventsOnly: true}, noWant: true, evHas: "known from events only"},
		{name: "not a UUID: falls back to the hostname", vms: vms(kWorker), id: kid("b", "not-a-uuid", "kwk-01", "", 0, 0), want: []string{"kwk-01"}, evHas: "is not a UUID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Reconcile(ksnap(c.vms, knode("n", []KubeIdentity{c.id})), History{})
			got, ev := matchedVMs(r)
			if c.noWant {
				if len(got[0]) != 0 {
					t.Errorf("matched %v, want none (%s)", got[0], ev[0])
				}
			} else if !slices.Equal(got[0], c.want) {
				t.Errorf("matched %v, want %v (%s)", got[0], c.want, ev[0])
			}
			if !strings.Contains(ev[0], c.evHas) {
				t.Errorf("evidence %q lacks %q", ev[0], c.evHas)
			}
			if c.ambig != strings.Contains(ev[0], "ambiguous") {
				t.Errorf("ambiguous: evidence %q", ev[0])
			}
		})
	}
}

// ---- findings ----

func TestKubeFindings(t *testing.T) {
	noLineage := func(v VM) VM { v.Lineage = nil; return v }
	upgraded := idWk
	upgraded.KubeletVersion = "v1.32.0"
	rebootedWk := idWk
	rebootedWk.BootID = "boot-cccc-3333"
	hotAdd := rebootedWk
	hotAdd.CPUs, hotAdd.MemoryBytes = 8, 16000<<20
	unknownMachine := kid("boot-dddd-4444", uuidForeign, "kwk-01", "10.0.1.66", 8, 16000)
	kOffClone := mkVM("kwk-01-copy", bios(uuidClone), off(), copyOf(kWorker))
	kTpl := mkVM("tpl-kwk", bios("42310000-0000-0000-0000-00000000abcd"), template(), copyOf(kWorker))
	kConverted := mkVM("tpl-converted", bios(uuidWk), template(), host("kwk-01"))
	kTplHost := mkVM("tpl-host", bios("42310000-0000-0000-0000-00000000beef"), template(), host("kwk-01"))
	kOwn := mkVM("kwk-02", bios(uuidClone), ip("10.0.1.9"), copyOf(kWorker))
	idOwn := kid("boot-eeee", uuidClone, "kwk-02", "10.0.1.9", 4, 7900)

	cases := []struct {
		name string
		snap Snapshot
		hist History
		want []want
	}{
		// the seed story
		{
			name: "seed story: two kubelets write one Node, original by lineage",
			snap: ksnap(vms(kWorker, kClone), withEvents(knode("kwk-01", []KubeIdentity{idWk, idClone}, kFight...), fightEvents()...)),
			want: []want{{KindSharedK8sNode, "kwk-01", []string{"kwk-01", "kwk-01-clone"}, "kwk-01"}},
		},
		{
			name: "seed story without lineage: original is the VM seen first",
			snap: ksnap(vms(kWorker, noLineage(kClone)), knode("kwk-01", []KubeIdentity{idClone, idWk}, kFight...)),
			want: []want{{KindSharedK8sNode, "kwk-01", []string{"kwk-01-clone", "kwk-01"}, "kwk-01-clone"}},
		},
		{
			name: "seed story without lineage: history decides over this run's first sighting",
			snap: ksnap(vms(kWorker, noLineage(kClone)), knode("kwk-01", []KubeIdentity{idClone, idWk}, kFight...)),
			hist: History{KubeNodes: map[string][]KubeIdentity{"prod/kwk-01": {func() KubeIdentity { i := idWk; i.FirstSeen = t0.Add(-30 * 24 * time.Hour); return i }()}}},
			want: []want{{KindSharedK8sNode, "kwk-01", []string{"kwk-01", "kwk-01-clone"}, "kwk-01"}},
		},
		{
			name: "byte-swapped systemUUID on the original's side",
			snap: ksnap(vms(kWorker, kClone), knode("kwk-01", []KubeIdentity{kid("boot-aaaa-1111", uuidWkSwap, "kwk-01", "10.0.1.5", 4, 7900), idClone}, kFight...)),
			want: []want{{KindSharedK8sNode, "kwk-01", []string{"kwk-01", "kwk-01-clone"}, "kwk-01"}},
		},
		// no false positives
		{
			name: "healthy cluster: one identity per Node",
			snap: ksnap(vms(kWorker, mkVM("kwk-02", bios(uuidClone))), knode("kwk-01", []KubeIdentity{idWk}), knode("kwk-02", []KubeIdentity{kid("b2", uuidClone, "kwk-02", "", 2, 3900)})),
		},
		{
			name: "kubelet upgraded: one flip, not alternation",
			snap: ksnap(vms(kWorker), knode("kwk-01", []KubeIdentity{idWk, upgraded})),
		},
		{
			name: "kubelet upgraded and rolled back on the same boot",
			snap: ksnap(vms(kWorker), knode("kwk-01", []KubeIdentity{idWk, upgraded}, 0, 1, 0)),
		},
		{
			name: "rebooted once: a new boot ID and one Rebooted event",
			snap: ksnap(vms(kWorker), withEvents(knode("kwk-01", []KubeIdentity{idWk, rebootedWk}), rebooted("kwk-01", rebootedWk.BootID, 1, t0.Add(10*time.Second), t0.Add(10*time.Second)))),
		},
		{
			name: "rebooted with a CPU and memory hot-add",
			snap: ksnap(vms(kWorker), knode("kwk-01", []KubeIdentity{idWk, hotAdd})),
		},
		{
			name: "reverted to a memory snapshot: the boot ID comes back once on the same VM",
			snap: ksnap(vms(kWorker), knode("kwk-01", []KubeIdentity{idWk, rebootedWk}, 0, 1, 0)),
		},
		{
			name: "Rebooted recorded twice for one boot, then a later reboot",
			snap: ksnap(vms(kWorker), withEvents(knode("kwk-01", []KubeIdentity{idWk}),
				rebooted("kwk-01", idWk.BootID, 2, t0, t0.Add(10*time.Second)), rebooted("kwk-01", "boot-later", 1, t0.Add(time.Hour), t0.Add(time.Hour)))),
		},
		// flapping
		{
			name: "alternates with a machine outside the inventory: flapping",
			snap: ksnap(vms(kWorker), knode("kwk-01", []KubeIdentity{idWk, unknownMachine}, kFight...)),
			want: []want{{KindK8sNodeFlapping, "kwk-01", []string{"kwk-01"}, ""}},
		},
		{
			name: "only the Rebooted events alternate (the other writer was never sampled): flapping",
			snap: ksnap(vms(kWorker), withEvents(knode("kwk-01", []KubeIdentity{idWk, {BootID: "boot-bbbb-2222", EventsOnly: true}}, 0, 1, 0, 1), fightEvents()...)),
			want: []want{{KindK8sNodeFlapping, "kwk-01", []string{"kwk-01"}, ""}},
		},
		// copies
		{
			name: "powered-on copy not seen writing: clone-of-k8s-node",
			snap: ksnap(vms(kWorker, kClone), knode("kwk-01", []KubeIdentity{idWk})),
			want: []want{{KindCloneOfK8sNode, "kwk-01", []string{"kwk-01", "kwk-01-clone"}, "kwk-01"}},
		},
		{
			name: "powered-off copy: dormant clone-of-k8s-node",
			snap: ksnap(vms(kWorker, kOffClone), knode("kwk-01", []KubeIdentity{idWk})),
			want: []want{{KindCloneOfK8sNode, "kwk-01", []string{"kwk-01", "kwk-01-copy"}, "kwk-01"}},
		},
		{
			name: "copy that joined under its own name: no finding",
			snap: ksnap(vms(kWorker, kOwn), knode("kwk-01", []KubeIdentity{idWk}), knode("kwk-02", []KubeIdentity{idOwn})),
		},
		{
			name: "copy that took the Node over once (the original is off now): clone-of-k8s-node, not shared",
			snap: ksnap(vms(mkVM("kwk-01", bios(uuidWk), off()), kClone), knode("kwk-01", []KubeIdentity{idWk, idClone})),
			want: []want{{KindCloneOfK8sNode, "kwk-01", []string{"kwk-01", "kwk-01-clone"}, "kwk-01"}},
		},
		{
			name: "template copied from a node VM, and a template converted from one",
			snap: ksnap(vms(kWorker, kTpl, kConverted), knode("kwk-01", []KubeIdentity{idWk})),
			want: []want{
				{KindTemplateCarriesKubelet, "kwk-01", []string{"kwk-01", "tpl-converted"}, "kwk-01"},
				{KindTemplateCarriesKubelet, "kwk-01", []string{"kwk-01", "tpl-kwk"}, "kwk-01"},
			},
		},
		{
			name: "template that kept the node's hostname (no lineage)",
			snap: ksnap(vms(kWorker, kTplHost), knode("kwk-01", []KubeIdentity{idWk})),
			want: []want{{KindTemplateCarriesKubelet, "kwk-01", []string{"kwk-01", "tpl-host"}, "kwk-01"}},
		},
		{
			name: "copy of a control-plane node: critical",
			snap: ksnap(vms(kWorker, kOffClone), controlPlane(knode("kwk-01", []KubeIdentity{idWk}))),
			want: []want{{KindCloneOfK8sNode, "kwk-01", []string{"kwk-01", "kwk-01-copy"}, "kwk-01"}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Reconcile(c.snap, c.hist)
			var kube []Finding
			for _, f := range r.Findings {
				if f.Kind != KindDuplicateMAC && f.Kind != KindDuplicateHostname && f.Kind != KindDuplicateBIOSUUID {
					kube = append(kube, f)
				}
			}
			if g := got(kube); !equalWants(g, c.want) {
				t.Errorf("got  %v\nwant %v", g, c.want)
				dump(t, r)
			}
			checkRemedies(t, r)
			checkKubeRemedies(t, r)
		})
	}
}

// checkKubeRemedies: a shared Node is never to be deleted; the remedy says
// what to do instead.
func checkKubeRemedies(t *testing.T, r Result) {
	t.Helper()
	for _, f := range r.Findings {
		if !slices.Contains([]string{KindSharedK8sNode, KindK8sNodeFlapping, KindCloneOfK8sNode, KindTemplateCarriesKubelet}, f.Kind) {
			continue
		}
		if strings.Contains(f.Remedy, "kubectl delete") || strings.Contains(f.Remedy, "kubectl drain") {
			t.Errorf("%s remedy suggests deleting or draining the Node: %s", f.Kind, f.Remedy)
		}
		for _, s := range []string{"Do NOT delete Node " + f.NodeID, "labels, taints"} {
			if !strings.Contains(f.Remedy, s) {
				t.Errorf("%s remedy lacks %q: %s", f.Kind, s, f.Remedy)
			}
		}
		if f.Kind != KindTemplateCarriesKubelet && !strings.Contains(f.Remedy, "`systemctl disable --now kubelet`") {
			t.Errorf("%s remedy does not disable kubelet: %s", f.Kind, f.Remedy)
		}
		if f.Kind != KindTemplateCarriesKubelet && !strings.Contains(f.Remedy, "its own name with its own certificate") {
			t.Errorf("%s remedy does not say how to re-register: %s", f.Kind, f.Remedy)
		}
		if f.Cluster != "prod" {
			t.Errorf("%s: cluster %q", f.Kind, f.Cluster)
		}
	}
}

func TestSharedK8sNodeEvidence(t *testing.T) {
	s := ksnap(vms(kWorker, kClone), withEvents(knode("kwk-01", []KubeIdentity{idWk, idClone}, kFight...), fightEvents()...))
	r := Reconcile(s, History{})
	f := findKind(r.Findings, KindSharedK8sNode)
	if f == nil || f.Severity != Critical || f.Cluster != "prod" || f.Key() != "shared-k8s-node|prod/kwk-01|vc1/vm-kwk-01,vc1/vm-kwk-01-clone" {
		t.Fatalf("finding %+v", f)
	}
	ev := strings.Join(f.Evidence, "\n")
	for _, want := range []string{
		"capacity cpu 4 -> 8 -> 4 -> 8 -> 4 -> 8 -> 4",
		"capacity memory 7900 MiB -> 16000 MiB -> 7900 MiB",
		"boot ID boot-aaa -> boot-bbb -> boot-aaa",
		"2 Rebooted events (7 occurrences)",
		"boot-aaaa-1111 (VM kwk-01)", "boot-bbbb-2222 (VM kwk-01-clone)",
		`"Node kwk-01 has been rebooted, boot id: boot-bbbb-2222"`,
		"systemUUID " + uuidClone + " = BIOS UUID of VM kwk-01-clone",
		"hostname kwk-01 also names kwk-01 (poweredOn), whose BIOS UUID differs",
		"lineage: VM kwk-01-clone was copied from kwk-01",
		"original kwk-01: by lineage",
		"its writer moved between VMs 6 times (5 returns to a VM seen before)",
	} {
		if !strings.Contains(ev, want) {
			t.Errorf("evidence lacks %q:\n%s", want, ev)
		}
	}
	if !strings.HasPrefix(f.Remedy, "Leave kwk-01 (the original) alone.") || !strings.Contains(f.Remedy, "On kwk-01-clone: 1) `systemctl disable --now kubelet`") {
		t.Errorf("remedy: %s", f.Remedy)
	}
	if f.Confirmed || f.Dormant {
		t.Errorf("confirmed %v dormant %v without probes", f.Confirmed, f.Dormant)
	}
	// the VM statuses and the Node status carry the matches
	if r.Summary.KubeClusters != 1 || r.Summary.KubeNodes != 1 || r.Summary.MatchedKubeNodes != 1 {
		t.Errorf("summary %+v", r.Summary)
	}
	for _, v := range r.VMs {
		if !slices.Equal(v.KubeNodes, []string{"prod/kwk-01"}) {
			t.Errorf("VM %s kube nodes %v", v.Name, v.KubeNodes)
		}
	}
	if n := r.KubeNodes[0]; n.Cluster != "prod" || n.Flips != 6 || !slices.Equal(n.VMs, []string{"kwk-01", "kwk-01-clone"}) {
		t.Errorf("node status %+v", n)
	}
}

// TestSharedK8sNodeConfirmed: guest probes read the same kubelet client
// certificate in both VMs; a certificate alone (no alternation seen) makes
// a confirmed clone-of-k8s-node, never a shared Node.
func TestSharedK8sNodeConfirmed(t *testing.T) {
	cert := func(vm VM, active string) GuestIdentity {
		return GuestIdentity{VCenter: "vc1", VMRef: vm.Ref, ProbedAt: t0, KubeletCreds: true, KubeletNode: "kwk-01", KubeletOrg: "system:nodes",
			KubeletServer: "https://10.0.0.100:6443", KubeletEnabled: "yes", KubeletActive: active}
	}
	s := ksnap(vms(kWorker, kClone), knode("kwk-01", []KubeIdentity{idWk, idClone}, kFight...))
	s.Guests = []GuestIdentity{cert(kWorker, "yes"), cert(kClone, "yes")}
	f := findKind(Reconcile(s, History{}).Findings, KindSharedK8sNode)
	if f == nil || !f.Confirmed || f.Dormant || !strings.Contains(strings.Join(f.Evidence, "\n"), "guest probe of VM kwk-01-clone") {
		t.Fatalf("finding %+v", f)
	}
	s.Guests[1].KubeletActive = "no"
	if f := findKind(Reconcile(s, History{}).Findings, KindSharedK8sNode); f == nil || !f.Dormant {
		t.Errorf("kubelet stopped in the copy: not dormant: %+v", f)
	}

	// No lineage, no alternation: the copy's probe holds the certificate.
	other := mkVM("stray", bios("42319999-0000-0000-0000-000000000001"), host("stray"))
	s = ksnap(vms(kWorker, other), knode("kwk-01", []KubeIdentity{idWk}))
	s.Guests = []GuestIdentity{cert(other, "no")}
	r := Reconcile(s, History{})
	if len(r.Findings) != 1 || r.Findings[0].Kind != KindCloneOfK8sNode || !r.Findings[0].Confirmed || !r.Findings[0].Dormant || r.Findings[0].Original != "kwk-01" {
		t.Fatalf("findings %v %+v", got(r.Findings), r.Findings)
	}
	// Another cluster's API server: not this Node's certificate.
	s.Guests[0].KubeletServer = "https://10.9.9.9:6443"
	if r := Reconcile(s, History{}); len(r.Findings) != 0 {
		t.Errorf("a certificate for another cluster's kwk-01 was taken for this one: %v", got(r.Findings))
	}
	// A probe showing the copy clean resolves the lineage finding.
	s = ksnap(vms(kWorker, kClone), knode("kwk-01", []KubeIdentity{idWk}))
	s.Guests = []GuestIdentity{{VCenter: "vc1", VMRef: kClone.Ref, ProbedAt: t0, KubeletEnabled: "no", KubeletActive: "no"}}
	if r := Reconcile(s, History{}); findKind(r.Findings, KindCloneOfK8sNode) != nil {
		t.Errorf("a probed clean copy still reported: %v", got(r.Findings))
	}
	// A probe showing a certificate for another Node: re-registered under
	// its own name.
	s.Guests[0].KubeletCreds, s.Guests[0].KubeletNode = true, "kwk-01-clone"
	if r := Reconcile(s, History{}); findKind(r.Findings, KindCloneOfK8sNode) != nil {
		t.Errorf("a copy re-registered under its own name still reported: %v", got(r.Findings))
	}
	// A failed probe is no evidence either way.
	s.Guests[0].Error = "VMware Tools not running"
	if r := Reconcile(s, History{}); findKind(r.Findings, KindCloneOfK8sNode) == nil {
		t.Errorf("a failed probe resolved the finding")
	}
}

func TestDormantCopies(t *testing.T) {
	mgr := mkVM("mgr-01", ip("10.0.0.2"))
	mgrOff := mkVM("mgr-01-copy", off(), copyOf(mgr))
	mnode := node("m1", ds(d("mgr-01", 2, 3900, "10.0.0.2")))
	mnode.Role = "manager"
	wkOff := mkVM("wk-01-copy", off(), copyOf(worker))
	susp := mkVM("wk-01-susp", copyOf(worker))
	susp.PowerState = "suspended"
	s := snap(vms(worker, wkOff, susp, mgr, mgrOff), node("n1", ds(dWorker)), mnode)
	r := Reconcile(s, History{})
	byVM := map[string]Finding{}
	for _, f := range r.Findings {
		if f.Kind == KindCloneOfSwarmNode {
			byVM[f.VMs[1]] = f
		}
	}
	if f := byVM["wk-01-copy"]; !f.Dormant || f.Severity != Warning || !strings.Contains(strings.Join(f.Evidence, "\n"), "it takes over node n1 when powered on") {
		t.Errorf("powered-off copy: %+v", f)
	}
	if f := byVM["wk-01-susp"]; !f.Dormant || !strings.Contains(strings.Join(f.Evidence, "\n"), "it takes over node n1 when resumed") {
		t.Errorf("suspended copy: %+v", f)
	}
	f := byVM["mgr-01-copy"]
	if f.Severity != Critical || !f.Dormant || f.Original != "mgr-01" {
		t.Fatalf("manager copy: %+v", f)
	}
	for _, want := range []string{"raft log", "root CA key", "break the quorum", "disconnect its network adapter", "docker swarm ca --rotate", "Do NOT remove node m1"} {
		if !strings.Contains(f.Remedy, want) {
			t.Errorf("manager copy remedy lacks %q: %s", want, f.Remedy)
		}
	}
	if !strings.Contains(strings.Join(f.Evidence, "\n"), "node m1 is a swarm MANAGER") {
		t.Errorf("evidence: %v", f.Evidence)
	}
	// A manager known only from the copy's certificate (its manager not observed).
	s = snap(vms(mgr, func() VM { v := mkVM("mgr-01-on", copyOf(mgr)); return v }()), node("m1", ds(d("mgr-01", 2, 3900, "10.0.0.2"))))
	s.Guests = []GuestIdentity{{VCenter: "vc1", VMRef: "vm-mgr-01-on", NodeID: "m1", Role: "swarm-manager", DockerActive: "no"}}
	if f := findKind(Reconcile(s, History{}).Findings, KindSharedNodeID); f == nil || !strings.HasPrefix(f.Remedy, "Node m1 is a swarm MANAGER") || !strings.Contains(f.Remedy, "Leave mgr-01 (the original) alone") {
		t.Errorf("guest-held manager ID: %+v", f)
	}
	// The Kubernetes counterpart.
	kcp := mkVM("kwk-01-copy", bios(uuidClone), off(), copyOf(kWorker))
	k := Reconcile(ksnap(vms(kWorker, kcp), knode("kwk-01", []KubeIdentity{idWk})), History{})
	if f := findKind(k.Findings, KindCloneOfK8sNode); f == nil || !f.Dormant || f.Severity != Warning || !strings.Contains(strings.Join(f.Evidence, "\n"), "it takes over Node kwk-01 when powered on") {
		t.Errorf("dormant Kubernetes copy: %+v", f)
	}
	k = Reconcile(ksnap(vms(kWorker, kcp), controlPlane(knode("kwk-01", []KubeIdentity{idWk}))), History{})
	if f := findKind(k.Findings, KindCloneOfK8sNode); f == nil || f.Severity != Critical || !strings.Contains(f.Remedy, "CONTROL-PLANE") || !strings.Contains(f.Remedy, "disconnect its network adapter") {
		t.Errorf("copy of a control-plane node: %+v", f)
	}
}

// TestMKECrossReference: on MKE the node VM is a swarm node and a Kubernetes
// Node; its copy flips both, and the two findings name each other.
func TestMKECrossReference(t *testing.T) {
	mke := mkVM("mke-wk-01", bios(uuidWk), ip("10.0.3.5"), res(4, 8192))
	cp := mkVM("mke-wk-01-clone", bios(uuidClone), ip("10.0.3.9"), res(8, 16384), copyOf(mke))
	s := ksnap(vms(mke, cp), knode("mke-wk-01", []KubeIdentity{
		kid("boot-1", uuidWk, "mke-wk-01", "10.0.3.5", 4, 7900), kid("boot-2", uuidClone, "mke-wk-01", "10.0.3.9", 8, 16000)}, kFight...))
	s.Swarms = snap(nil, node("sw1", ds(d("mke-wk-01", 4, 7900, "10.0.3.5"), d("mke-wk-01-clone", 8, 16000, "10.0.3.9")), flipping...)).Swarms
	r := Reconcile(s, History{})
	sw, k := findKind(r.Findings, KindSharedNodeID), findKind(r.Findings, KindSharedK8sNode)
	if sw == nil || k == nil {
		t.Fatalf("findings %v", got(r.Findings))
	}
	if ev := strings.Join(sw.Evidence, "\n"); !strings.Contains(ev, "the same copy, VM mke-wk-01-clone, also holds Kubernetes Node mke-wk-01 of cluster prod (shared-k8s-node)") {
		t.Errorf("swarm finding does not name the Kubernetes one:\n%s", ev)
	}
	if ev := strings.Join(k.Evidence, "\n"); !strings.Contains(ev, "the same copy, VM mke-wk-01-clone, also holds swarm node sw1 (shared-node-id)") {
		t.Errorf("Kubernetes finding does not name the swarm one:\n%s", ev)
	}
	// An address shared by a swarm node and a Kubernetes Node of one VM is
	// not a NAT address: both still match.
	if r.Summary.MatchedNodes != 1 || r.Summary.MatchedKubeNodes != 1 {
		t.Errorf("summary %+v", r.Summary)
	}
}

// TestMKEAddressNotNAT: a swarm node and a Kubernetes Node of one VM
// present the same address; that does not make it a NAT address for either
// side (the address alone still matches a VM whose guest hostname is
// unknown).
func TestMKEAddressNotNAT(t *testing.T) {
	v := mkVM("mke-1", host(""), ip("10.0.4.5"))
	s := ksnap(vms(v), knode("ip-10-0-4-5", []KubeIdentity{kid("b", "", "ip-10-0-4-5", "10.0.4.5", 0, 0)}))
	s.Swarms = snap(nil, node("sw1", ds(d("ip-10-0-4-5", 0, 0, "10.0.4.5")))).Swarms
	r := Reconcile(s, History{})
	if r.Summary.MatchedNodes != 1 || r.Summary.MatchedKubeNodes != 1 {
		t.Errorf("summary %+v; nodes %+v; kube %+v", r.Summary, r.Nodes, r.KubeNodes)
	}
	// Two Kubernetes Nodes presenting it are a NAT address: no match.
	s.Kubernetes[0].Nodes = append(s.Kubernetes[0].Nodes, knode("ip-10-0-4-5-b", []KubeIdentity{kid("c", "", "ip-10-0-4-5-b", "10.0.4.5", 0, 0)}))
	if r := Reconcile(s, History{}); r.Summary.MatchedKubeNodes != 0 || r.Summary.MatchedNodes != 1 {
		t.Errorf("NAT: summary %+v", r.Summary)
	}
}

func TestProbeCandidatesKube(t *testing.T) {
	cp := mkVM("kwk-01-copy", bios(uuidClone), copyOf(kWorker))
	s := ksnap(vms(kWorker, cp, mkVM("unrelated")), knode("kwk-01", []KubeIdentity{idWk}))
	var names []string
	for _, v := range ProbeCandidates(s, Reconcile(s, History{})) {
		names = append(names, v.Name)
	}
	if !slices.Equal(names, []string{"kwk-01", "kwk-01-copy"}) {
		t.Errorf("candidates %v", names)
	}
}

func TestKubeDeterminism(t *testing.T) {
	s := ksnap(vms(kWorker, kClone, mkVM("kwk-01-copy", bios(uuidForeign), off(), copyOf(kWorker)), mkVM("tpl", template(), copyOf(kWorker))),
		withEvents(knode("kwk-01", []KubeIdentity{idWk, idClone}, kFight...), fightEvents()...),
		knode("kwk-09", []KubeIdentity{kid("x", "", "kwk-09", "", 0, 0)}))
	s.Kubernetes = append(s.Kubernetes, KubeCluster{Name: "dev", Nodes: []KubeNode{knode("kwk-01", []KubeIdentity{kid("y", "", "nothing", "", 0, 0)})}})
	want := mustJSON(t, Reconcile(s, History{}))
	r := rand.New(rand.NewPCG(3, 4))
	for range 5 {
		sh := s
		sh.VMs = slices.Clone(s.VMs)
		r.Shuffle(len(sh.VMs), func(i, j int) { sh.VMs[i], sh.VMs[j] = sh.VMs[j], sh.VMs[i] })
		sh.Kubernetes = slices.Clone(s.Kubernetes)
		r.Shuffle(len(sh.Kubernetes), func(i, j int) { sh.Kubernetes[i], sh.Kubernetes[j] = sh.Kubernetes[j], sh.Kubernetes[i] })
		if g := mustJSON(t, Reconcile(sh, History{})); !bytes.Equal(want, g) {
			t.Fatal("shuffled input gives different JSON")
		}
	}
}

// BenchmarkReconcileKube: ~5,000 VMs and ~1,000 Kubernetes Nodes matched by
// systemUUID (every 50th Node written by a copy as well), and 4× that.
func BenchmarkReconcileKube(b *testing.B) {
	for _, size := range []struct{ vms, nodes int }{{5000, 1000}, {20000, 4000}} {
		s := genSnapshot(size.vms, 0, 11)
		s.Swarms = nil
		uuid := func(i int) string { return fmt.Sprintf("4231%04x-0000-0000-0000-%012x", i%65536, i) }
		for i := range s.VMs {
			s.VMs[i].BIOSUUID = uuid(i)
		}
		var nodes []KubeNode
		for i := range size.nodes {
			v := s.VMs[i]
			ids := []KubeIdentity{kid(fmt.Sprintf("boot-%d", i), v.BIOSUUID, v.GuestHostname, "", int64(v.NumCPU), int64(v.MemoryMB)-200)}
			seq := []int{0}
			if i%50 == 7 && i+size.nodes < len(s.VMs) {
				c := &s.VMs[i+size.nodes]
				c.Lineage, c.PowerState, c.Template = lin(v), "poweredOn", false
				ids = append(ids, kid(fmt.Sprintf("boot-c%d", i), c.BIOSUUID, v.GuestHostname, "", int64(c.NumCPU), int64(c.MemoryMB)-200))
				seq = []int{0, 1, 0, 1, 0}
			}
			nodes = append(nodes, knode(fmt.Sprintf("node-%05d", i), ids, seq...))
		}
		s.Kubernetes = []KubeCluster{kcluster(nodes...)}
		b.Run(fmt.Sprintf("vms=%d/nodes=%d", size.vms, size.nodes), func(b *testing.B) {
			for b.Loop() {
				Reconcile(s, History{})
			}
		})
	}
}
