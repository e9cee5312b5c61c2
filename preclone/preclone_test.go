package preclone

import (
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func swarmWith(ids ...string) []reconcile.Swarm {
	s := reconcile.Swarm{Endpoint: "tcp://mgr:2376", ClusterID: "c1"}
	for _, id := range ids {
		s.Nodes = append(s.Nodes, reconcile.Node{ID: id, Role: "worker", State: "ready",
			Descriptions: []reconcile.Description{{Hostname: "wk-01", Addr: "10.0.0.5"}}})
	}
	return []reconcile.Swarm{s}
}

func status(r Report, id string) Status {
	for _, c := range r.Checks {
		if c.ID == id {
			return c.Status
		}
	}
	return ""
}

func TestVerdicts(t *testing.T) {
	vm := reconcile.VM{Name: "wk-01", Path: "/DC0/vm/wk-01", Ref: "vm-1", PowerState: "poweredOn"}
	clean := &reconcile.GuestIdentity{VMRef: "vm-1", ProbedAt: now, DockerEnabled: "no"}
	worker := &reconcile.GuestIdentity{VMRef: "vm-1", ProbedAt: now, NodeID: "n1", Role: "swarm-worker", ClusterID: "c1", DockerEnabled: "yes"}
	mgr := &reconcile.GuestIdentity{VMRef: "vm-1", ProbedAt: now, NodeID: "n1", Role: "swarm-manager", ClusterID: "c1", DockerEnabled: "no"}
	other := vm
	other.Name = "db-01"
	cases := []struct {
		name string
		in   Input
		want Verdict
		fail []string
	}{
		{"clean, no manager", Input{VM: vm, Guest: clean, GuestSource: SourceLive}, Safe, nil},
		{"clean, manager lists another node", Input{VM: other, Guest: clean, GuestSource: SourceLive, Swarms: swarmWith("n9")}, Safe, nil},
		{"worker live", Input{VM: vm, Guest: worker, GuestSource: SourceLive, Swarms: swarmWith("n1")}, Unsafe,
			[]string{CheckSwarmIdentity, CheckSwarmNode, CheckDockerAtBoot}},
		{"worker, no manager: docker at boot still fails", Input{VM: vm, Guest: worker, GuestSource: SourceLive}, Unsafe, []string{CheckDockerAtBoot}},
		{"manager, docker disabled, swarm unseen", Input{VM: other, Guest: mgr, GuestSource: SourceLive}, Unsafe, []string{CheckManagerRole}},
		{"no probe", Input{VM: other, ProbeError: "VM is off"}, Unverified, nil},
		{"no probe, but the managers list its hostname", Input{VM: vm, Swarms: swarmWith("n1")}, Unsafe, []string{CheckSwarmNode}},
		{"manager unreachable, cert present", Input{VM: other, Guest: &reconcile.GuestIdentity{NodeID: "n1", DockerEnabled: "no"}, SwarmErrors: []string{"tcp://mgr: refused"}}, Unverified, nil},
		{"uuid.action keep", Input{VM: other, Guest: clean, UUIDAction: "keep"}, Unsafe, []string{CheckUUIDAction}},
		{"running VM, stored probe only", Input{VM: other, Guest: clean, GuestSource: SourceStored, ProbeError: "invalid guest login"}, Unverified, nil},
		{"failed probe is no probe", Input{VM: other, Guest: &reconcile.GuestIdentity{Error: "timed out"}}, Unverified, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Now = now
			r := Evaluate(tc.in)
			if r.Verdict != tc.want {
				t.Errorf("verdict %s (%s), want %s", r.Verdict, r.Reason, tc.want)
			}
			for _, id := range tc.fail {
				if s := status(r, id); s != Fail {
					t.Errorf("%s = %s, want FAIL", id, s)
				}
			}
			if len(r.Checks) != len(CheckIDs) {
				t.Errorf("%d checks", len(r.Checks))
			}
			for _, c := range r.Checks {
				if c.Status != Pass && c.Fix == "" {
					t.Errorf("%s %s has no fix", c.ID, c.Status)
				}
			}
		})
	}
}

func TestLineageSharesSourceID(t *testing.T) {
	vm := reconcile.VM{Name: "wk-02", Ref: "vm-2", PowerState: "poweredOff",
		Lineage: &reconcile.Lineage{SourceRef: "vm-1", SourceName: "wk-01", Kind: "clone", Time: now.Add(-time.Hour)}}
	g := &reconcile.GuestIdentity{NodeID: "n1", DockerEnabled: "no", ProbedAt: now.Add(-time.Minute)}
	r := Evaluate(Input{VM: vm, Guest: g, GuestSource: SourceStored, SourceGuest: &reconcile.GuestIdentity{NodeID: "n1"}, Now: now})
	if status(r, CheckLineage) != Fail || r.Verdict != Unsafe {
		t.Errorf("%+v", r)
	}
}

func TestRefuseTarget(t *testing.T) {
	src := reconcile.VM{Name: "wk-01", Ref: "vm-1"}
	cp := reconcile.VM{Name: "wk-01-copy", Ref: "vm-2"}
	shared := &reconcile.GuestIdentity{NodeID: "n1"}
	sw := swarmWith("n1")
	if why := RefuseTarget(TargetInput{Target: src, Source: src}); !strings.Contains(why, "source itself") {
		t.Errorf("same VM: %q", why)
	}
	copied := src
	copied.Lineage = &reconcile.Lineage{SourceRef: "vm-2"}
	if why := RefuseTarget(TargetInput{Target: cp, Source: copied}); !strings.Contains(why, "original") {
		t.Errorf("reversed: %q", why)
	}
	if why := RefuseTarget(TargetInput{Target: cp, Source: src, TargetGuest: shared, SourceGuest: shared, Swarms: sw}); why != "" {
		t.Errorf("copy sharing the source's ID refused: %q", why)
	}
	if why := RefuseTarget(TargetInput{Target: cp, Source: src, TargetGuest: shared, Swarms: sw}); !strings.Contains(why, "live member itself") {
		t.Errorf("live member: %q", why)
	}
	cp.Lineage = &reconcile.Lineage{SourceRef: "vm-1"}
	if why := RefuseTarget(TargetInput{Target: cp, Source: src, TargetGuest: shared, Swarms: sw}); why != "" {
		t.Errorf("copy by lineage refused: %q", why)
	}
}

func TestPlan(t *testing.T) {
	p := GeneralizePlan(reconcile.VM{Name: "cp", Ref: "vm-2"}, reconcile.VM{Name: "src", Ref: "vm-1"}, now)
	if p.BackupDir != "/var/backups/vmreconcile-generalize-20260301T120000Z" || len(p.Steps) != 7 {
		t.Errorf("%+v", p)
	}
	for _, want := range []string{"set -eu", "disable --now docker.socket docker.service", `"data-root"`, ": > /etc/machine-id",
		"rm -f /etc/ssh/ssh_host_*", "cloud-init clean", p.BackupDir,
		"systemctl disable --now kubelet", "/var/lib/kubelet/pki /etc/kubernetes/kubelet.conf", `d="$b/kubelet-pki"`} {
		if !strings.Contains(p.Script, want) {
			t.Errorf("script lacks %q", want)
		}
	}
	// Docker is stopped before kubelet (MKE runs its kubelet under Docker).
	if strings.Index(p.Script, "docker.service") > strings.Index(p.Script, "disable --now kubelet") {
		t.Errorf("kubelet is stopped before Docker")
	}
	for _, bad := range []string{"docker node rm", "swarm leave", "rm /etc/machine-id", "rm -f /etc/machine-id", "kubectl", "rm -rf /var/lib/kubelet", "kubeadm reset"} {
		if strings.Contains(p.Script, bad) {
			t.Errorf("script contains %q", bad)
		}
	}
}

// TestKubeletIdentityUnsafe: a kubelet identity makes a VM UNSAFE to copy.
func TestKubeletIdentityUnsafe(t *testing.T) {
	vm := reconcile.VM{Name: "kwk-01", Path: "/DC0/vm/kwk-01", Ref: "vm-1", PowerState: "poweredOn"}
	node := &reconcile.GuestIdentity{VMRef: "vm-1", ProbedAt: now, DockerEnabled: "no", KubeletCreds: true, KubeletNode: "kwk-01",
		KubeletOrg: "system:nodes", KubeletServer: "https://10.0.0.100:6443", KubeletEnabled: "yes", KubeletActive: "yes"}
	confOnly := &reconcile.GuestIdentity{VMRef: "vm-1", ProbedAt: now, DockerEnabled: "no", KubeletCreds: true, KubeletEnabled: "no", KubeletActive: "no"}
	none := &reconcile.GuestIdentity{VMRef: "vm-1", ProbedAt: now, DockerEnabled: "no", KubeletEnabled: "unknown", KubeletActive: "no"}
	r := Evaluate(Input{VM: vm, Guest: node, GuestSource: SourceLive, Now: now})
	if r.Verdict != Unsafe || status(r, CheckKubelet) != Fail || r.Reason != "FAIL: "+CheckKubelet {
		t.Fatalf("kubelet node: %s %s", r.Verdict, r.Reason)
	}
	for _, c := range r.Checks {
		if c.ID != CheckKubelet {
			continue
		}
		ev := strings.Join(c.Evidence, "\n")
		for _, want := range []string{"CN system:node:kwk-01, O system:nodes", "API server https://10.0.0.100:6443", "kubelet.service enabled: yes, running: yes"} {
			if !strings.Contains(ev, want) {
				t.Errorf("evidence lacks %q: %s", want, ev)
			}
		}
		if !strings.Contains(c.Fix, "-generalize-plan") || strings.Contains(c.Fix, "kubectl delete") || strings.Contains(c.Fix, "kubeadm reset") {
			t.Errorf("fix: %s", c.Fix)
		}
	}
	if r.Guest.KubeletNode != "kwk-01" {
		t.Errorf("guest info %+v", r.Guest)
	}
	if r := Evaluate(Input{VM: vm, Guest: confOnly, GuestSource: SourceLive, Now: now}); r.Verdict != Unsafe || status(r, CheckKubelet) != Fail {
		t.Errorf("kubelet.conf only: %s %s", r.Verdict, r.Reason)
	}
	if r := Evaluate(Input{VM: vm, Guest: none, GuestSource: SourceLive, Now: now}); r.Verdict != Safe || status(r, CheckKubelet) != Pass {
		t.Errorf("no kubelet: %s %s", r.Verdict, r.Reason)
	}
	// A copy sharing its source's kubelet identity: the lineage check fails too.
	cp := vm
	cp.Name, cp.Ref = "kwk-01-copy", "vm-2"
	cp.Lineage = &reconcile.Lineage{SourceRef: "vm-1", SourceName: "kwk-01", Kind: "clone", Time: now.Add(-time.Hour)}
	r = Evaluate(Input{VM: cp, Guest: node, GuestSource: SourceLive, SourceGuest: node, Now: now})
	if status(r, CheckLineage) != Fail {
		t.Errorf("lineage: %+v", r.Checks)
	}
	// Without a probe the kubelet is not verified: never SAFE.
	if r := Evaluate(Input{VM: vm, ProbeError: "VM is off", Now: now}); r.Verdict != Unverified || status(r, CheckKubelet) != Unknown {
		t.Errorf("no probe: %s", r.Verdict)
	}
}
