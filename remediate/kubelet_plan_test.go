package remediate

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// kubeWorld: Kubernetes worker kwk1 and its copy kwk1-clone (lineage) both
// write Node kwk1, plus n bystanders. With mke, the same two VMs are also a
// swarm node whose ID they share (guest probes).
func kubeWorld(n int, mke bool) reconcile.Snapshot {
	snap := world(n)
	wk, cl := &snap.VMs[0], &snap.VMs[1]
	wk.BIOSUUID = "4231a5c3-1d2e-3f40-8899-aabbccddeeff"
	cl.BIOSUUID = "42317788-99aa-bbcc-0011-223344556677"
	cl.Lineage = &reconcile.Lineage{SourceRef: wk.Ref, SourceName: wk.Name, Kind: "clone", Time: t0.Add(-time.Hour)}
	if !mke {
		snap.Guests = nil
	}
	id := func(boot, uuid string, at time.Time) reconcile.KubeIdentity {
		return reconcile.KubeIdentity{BootID: boot, SystemUUID: uuid, Hostname: "kwk1", FirstSeen: at, LastSeen: at.Add(time.Minute), Seen: 3}
	}
	node := reconcile.KubeNode{Name: "kwk1", Ready: "True", Identities: []reconcile.KubeIdentity{id("a", wk.BIOSUUID, t0), id("b", cl.BIOSUUID, t0.Add(10*time.Second))}}
	for k, d := range []int{0, 1, 0, 1} {
		node.Timeline = append(node.Timeline, reconcile.Sighting{Time: t0.Add(time.Duration(k) * 10 * time.Second), Description: d})
	}
	snap.Kubernetes = []reconcile.KubeCluster{{Name: "prod", Server: "10.0.0.100:6443", Nodes: []reconcile.KubeNode{node}}}
	return snap
}

func actions(es []Entry) string {
	var s []string
	for _, e := range es {
		s = append(s, e.VM.Name+":"+e.JournalAction())
	}
	return strings.Join(s, ",")
}

func TestPlanActionByKind(t *testing.T) {
	cases := []struct {
		name     string
		snap     reconcile.Snapshot
		settings Settings
		want     string
	}{
		{"shared-k8s-node: disable-kubelet on the copy", kubeWorld(10, false), Settings{}, "wk1-clone:disable-kubelet"},
		{"MKE: both, Docker first, one VM for the caps", kubeWorld(10, true), Settings{}, "wk1-clone:disable-docker,wk1-clone:disable-kubelet"},
		{"forget-identity goes with disable-docker only", kubeWorld(10, true), Settings{ForgetIdentity: true}, "wk1-clone:disable-docker+forget-identity,wk1-clone:disable-kubelet"},
		{"explicit disable-kubelet on a swarm finding", world(10), Settings{Action: ActionDisableKubelet}, "wk1-clone:disable-kubelet"},
		{"power-off", kubeWorld(10, true), Settings{Action: ActionPowerOff}, "wk1-clone:power-off"},
		{"swarm only: disable-docker as before", world(10), Settings{}, "wk1-clone:disable-docker"},
		{"selected with -vm, no finding: disable-docker", world(10), Settings{Select: []string{"other-01"}}, "other-01:disable-docker"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, res := plan(t, c.snap, Options{Settings: c.settings})
			if got := actions(p.Entries); got != c.want || p.Blocked != "" {
				t.Errorf("entries %s blocked %q, want %s; findings %v", got, p.Blocked, c.want, kinds(res))
			}
			for _, e := range p.Entries {
				if e.Action == ActionDisableKubelet && c.settings.Action == "" {
					if e.FindingKind != reconcile.KindSharedK8sNode || e.NodeID != "kwk1" || e.Original != "wk1" ||
						!strings.Contains(e.Reason, "writes kwk1 (cluster prod) of wk1 (the original, left alone)") {
						t.Errorf("kubelet entry: %+v", e)
					}
				}
			}
		})
	}
}

func kinds(res reconcile.Result) []string {
	var out []string
	for _, f := range res.Findings {
		out = append(out, f.Kind)
	}
	return out
}

func TestPlanKubeletSafety(t *testing.T) {
	// The original is never touched, even when selected.
	p, _ := plan(t, kubeWorld(10, false), Options{Settings: Settings{Select: []string{"wk1*"}}})
	if actions(p.Entries) != "wk1-clone:disable-kubelet" || refusedNames(p.Refused) != "wk1" || !strings.Contains(p.Refused[0].Why, "original of the shared-k8s-node finding") {
		t.Errorf("entries %s refused %+v", actions(p.Entries), p.Refused)
	}
	// A probe saying kubelet is off and its credentials are gone: done.
	snap := kubeWorld(10, false)
	snap.Guests = []reconcile.GuestIdentity{{VMRef: "vm-wk1-clone", ProbedAt: t0, KubeletEnabled: "no", KubeletActive: "no"}}
	p, _ = plan(t, snap, Options{})
	if len(p.Entries) != 0 || len(p.AlreadyDone) != 1 || !strings.Contains(p.AlreadyDone[0].Reason, "kubelet already disabled") {
		t.Errorf("already done: %+v", p)
	}
	// Disabled but the credentials are still there: not done.
	snap.Guests[0].KubeletCreds = true
	if p, _ = plan(t, snap, Options{}); actions(p.Entries) != "wk1-clone:disable-kubelet" {
		t.Errorf("credentials left: %+v", p)
	}
	// A powered-off copy: refused, with the manual fix.
	snap = kubeWorld(10, false)
	snap.VMs[1].PowerState = "poweredOff"
	p, res := plan(t, snap, Options{})
	if len(p.Entries) != 0 || refusedNames(p.Refused) != "wk1-clone" || !strings.Contains(p.Refused[0].Fix, "disable kubelet in the guest") {
		t.Errorf("powered off: %+v %v", p, kinds(res))
	}
	// No original: refused, name it with -vm.
	snap = kubeWorld(10, false)
	snap.VMs[1].Lineage = nil
	snap.VMs[0].Created, snap.VMs[1].Created = t0, t0
	// the writers' systemUUIDs are unknown to the inventory: only the
	// guests' certificates tie the Node to the two VMs
	snap.Kubernetes[0].Nodes[0].Identities[0].SystemUUID = "11111111-0000-0000-0000-000000000001"
	snap.Kubernetes[0].Nodes[0].Identities[1].SystemUUID = "11111111-0000-0000-0000-000000000002"
	for _, v := range snap.VMs[:2] {
		snap.Guests = append(snap.Guests, reconcile.GuestIdentity{VMRef: v.Ref, ProbedAt: t0, KubeletCreds: true, KubeletNode: "kwk1",
			KubeletServer: "https://10.0.0.100:6443", KubeletEnabled: "yes", KubeletActive: "yes"})
	}
	p, res = plan(t, snap, Options{})
	if len(p.Entries) != 0 || refusedNames(p.Refused) != "wk1,wk1-clone" || !strings.Contains(p.Refused[0].Why, "shares Kubernetes Node kwk1 (cluster prod) but the evidence cannot tell") {
		t.Errorf("no original: %+v %v", p.Refused, kinds(res))
	}
	// The caps count VMs: the MKE copy's two actions are one VM; two VMs
	// with max-actions 1 block the plan.
	snap = kubeWorld(10, true)
	snap.VMs = append(snap.VMs, func() reconcile.VM {
		v := vm("wk1-clone-2", t0)
		v.BIOSUUID = "42310000-0000-0000-0000-000000000002"
		v.PowerState = "poweredOn"
		v.Lineage = &reconcile.Lineage{SourceRef: "vm-wk1", SourceName: "wk1", Kind: "clone"}
		return v
	}())
	p, res = plan(t, snap, Options{})
	if !strings.HasPrefix(p.Blocked, "2 VMs qualify but -max-actions allows 1") {
		t.Errorf("blocked %q entries %s findings %v", p.Blocked, actions(p.Entries), kinds(res))
	}
	// Templates carrying the kubelet identity: refused with the finding's remedy.
	snap = kubeWorld(10, false)
	tpl := vm("tpl-kwk", t0)
	tpl.Template, tpl.PowerState, tpl.BIOSUUID = true, "poweredOff", "42310000-0000-0000-0000-0000000000aa"
	tpl.Lineage = &reconcile.Lineage{SourceRef: "vm-wk1", SourceName: "wk1", Kind: "clone"}
	snap.VMs = append(snap.VMs, tpl)
	p, _ = plan(t, snap, Options{Settings: Settings{MaxActions: 5}})
	found := false
	for _, r := range p.Refused {
		if r.VM.Name == "tpl-kwk" && strings.Contains(r.Fix, "Do not deploy from tpl-kwk") && strings.Contains(r.Fix, "kubelet") {
			found = true
		}
	}
	if !found {
		t.Errorf("template refusal: %+v", p.Refused)
	}
}

func TestSettingsKubelet(t *testing.T) {
	s := Settings{Action: ActionDisableKubelet}
	if err := s.Normalize(); err != nil {
		t.Errorf("disable-kubelet refused: %v", err)
	}
	s = Settings{Action: ActionDisableKubelet, ForgetIdentity: true}
	if err := s.Normalize(); err == nil || !strings.Contains(err.Error(), "forget-identity goes with disable-docker") {
		t.Errorf("forget-identity with disable-kubelet: %v", err)
	}
	s = Settings{Action: "kubectl-delete"}
	if err := s.Normalize(); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%s, %s or %s", ActionDisableDocker, ActionDisableKubelet, ActionPowerOff)) {
		t.Errorf("unknown action: %v", err)
	}
	if ks := Kinds(); len(ks) != 6 {
		t.Errorf("kinds %v", ks)
	}
}

func TestParseKubeletReport(t *testing.T) {
	r, err := ParseGuestReport([]byte("remediate=vmreconcile/1\nuid=0\nagent=kubelet\nbefore.kubelet.service=enabled/active\ndisable=done kubelet\n" +
		"moved=/var/lib/kubelet/pki /var/backups/vmreconcile-kubelet-X/kubelet-pki\nmoved=/etc/kubernetes/kubelet.conf /var/backups/vmreconcile-kubelet-X/kubelet.conf\n" +
		"identity=moved\nbackup=/var/backups/vmreconcile-kubelet-X\nend=ok\n"))
	if err != nil || !r.Complete || !r.Changed() {
		t.Fatalf("%+v %v", r, err)
	}
	if got := r.Summary(); got != "systemctl disable --now kubelet; moved kubelet-pki, kubelet.conf to /var/backups/vmreconcile-kubelet-X" {
		t.Errorf("summary %q", got)
	}
	r, _ = ParseGuestReport([]byte("remediate=vmreconcile/1\nagent=kubelet\ndisable=already\nidentity=already\nbackup=/var/backups/vmreconcile-kubelet-X\nend=ok\n"))
	if r.Changed() || r.Summary() != "kubelet already disabled and inactive; identity files already moved (/var/backups/vmreconcile-kubelet-X)" {
		t.Errorf("rerun: %q", r.Summary())
	}
}

// The Kubernetes actions keyed by vCenter and ref: vc2 reuses the refs of
// wk1 and wk1-clone for unrelated VMs. The finding names vc1's VMs, so the
// entry is vc1's copy; a probe of vc2's VM says nothing about it, vc1's own
// probe does.
func TestPlanKubeletVMKeys(t *testing.T) {
	twins := func() reconcile.Snapshot {
		snap := kubeWorld(10, false)
		for i, name := range []string{"db-a", "db-b"} {
			v := vm(name, t0.Add(-48*time.Hour))
			v.VCenter, v.Ref = "vc2", snap.VMs[i].Ref
			snap.VMs = append(snap.VMs, v)
		}
		return snap
	}
	off := func(vc string) reconcile.GuestIdentity {
		return reconcile.GuestIdentity{VCenter: vc, VMRef: "vm-wk1-clone", ProbedAt: t0, KubeletEnabled: "no", KubeletActive: "no"}
	}
	snap := twins()
	p, res := plan(t, snap, Options{})
	if actions(p.Entries) != "wk1-clone:disable-kubelet" || p.Entries[0].VM.VCenter != "vc1" || len(p.Refused) != 0 {
		t.Errorf("entries %+v refused %+v findings %v", p.Entries, p.Refused, kinds(res))
	}
	if !strings.Contains(strings.Join(p.Fingerprint.Actions, ","), "vc1/vm-wk1-clone disable-kubelet") {
		t.Errorf("fingerprint actions %v", p.Fingerprint.Actions)
	}
	snap.Guests = []reconcile.GuestIdentity{off("vc2")}
	if p, _ = plan(t, snap, Options{}); actions(p.Entries) != "wk1-clone:disable-kubelet" || len(p.AlreadyDone) != 0 {
		t.Errorf("vc2's probe taken for vc1's VM: entries %s done %+v", actions(p.Entries), p.AlreadyDone)
	}
	snap.Guests = []reconcile.GuestIdentity{off("vc1")}
	if p, _ = plan(t, snap, Options{}); len(p.Entries) != 0 || len(p.AlreadyDone) != 1 || p.AlreadyDone[0].VM.VCenter != "vc1" {
		t.Errorf("vc1's own probe: entries %s done %+v", actions(p.Entries), p.AlreadyDone)
	}
	// -vm VCENTER/REF: the finding still picks the action.
	p, _ = plan(t, twins(), Options{Settings: Settings{Select: []string{"vc1/vm-wk1-clone"}}})
	if actions(p.Entries) != "wk1-clone:disable-kubelet" || p.Entries[0].FindingKind != reconcile.KindSharedK8sNode ||
		!strings.HasSuffix(p.Entries[0].Reason, "; selected with -vm") {
		t.Errorf("-vm vc1/vm-wk1-clone: %+v", p.Entries)
	}
	// Skip markers are looked up per vCenter: vc2's marker on the same ref
	// leaves vc1's copy in the plan, vc1's keeps it out.
	p, _ = plan(t, twins(), Options{Skip: map[reconcile.VMKey]string{{VCenter: "vc2", Ref: "vm-wk1-clone"}: "x"}})
	if actions(p.Entries) != "wk1-clone:disable-kubelet" {
		t.Errorf("vc2's marker: %+v", p)
	}
	keys, err := Candidates(twins(), res, Settings{})
	if err != nil || len(keys) != 1 || keys[0] != (reconcile.VMKey{VCenter: "vc1", Ref: "vm-wk1-clone"}) {
		t.Errorf("candidates %v %v", keys, err)
	}
}

// An MKE copy gets two entries (disable-docker, disable-kubelet) on one
// VM: the caps count it once, when the plan is computed and again when the
// saved plan is rechecked at apply time.
func TestRecheckKubeletPlanCountsVMs(t *testing.T) {
	snap := kubeWorld(10, true)
	snap.VCenterUUIDs = map[string]string{"vc1": "uuid-vc1"}
	saved, _ := plan(t, snap, Options{})
	if actions(saved.Entries) != "wk1-clone:disable-docker,wk1-clone:disable-kubelet" || saved.Blocked != "" || saved.Settings.MaxActions != 1 {
		t.Fatalf("setup: %+v", saved)
	}
	saved = saveLoad(t, sealed(t, saved, testKey), nil)
	if err := Verify(saved, testKey); err != nil {
		t.Fatal(err)
	}
	fresh, _ := plan(t, snap, Options{Settings: ApplySettings(saved.Settings, Settings{MaxActions: 1, MaxPercent: 10})})
	if err := Recheck(saved, fresh, nil); err != nil {
		t.Errorf("recheck of a one-VM MKE plan: %v", err)
	}
	// Half applied (disable-docker done): the rest still applies.
	done := func(e Entry) bool { return e.Action == ActionDisableDocker }
	snap.Guests[1].DockerEnabled, snap.Guests[1].DockerActive = "no", "no"
	fresh, _ = plan(t, snap, Options{Settings: saved.Settings})
	if actions(fresh.Entries) != "wk1-clone:disable-kubelet" || len(fresh.AlreadyDone) != 1 {
		t.Fatalf("fresh after disable-docker: %+v", fresh)
	}
	if err := Recheck(saved, fresh, done); err != nil {
		t.Errorf("recheck after disable-docker: %v", err)
	}
}
