package remediate

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func vm(name string, created time.Time) reconcile.VM {
	return reconcile.VM{VCenter: "vc1", Name: name, Path: "/DC0/vm/" + name, Ref: "vm-" + name,
		BIOSUUID: "bios-" + name, NumCPU: 2, MemoryMB: 4096, PowerState: "poweredOn", ToolsRunning: true,
		GuestHostname: name, Created: created}
}

func probe(v reconcile.VM, nodeID string) reconcile.GuestIdentity {
	return reconcile.GuestIdentity{VMRef: v.Ref, ProbedAt: t0, NodeID: nodeID, Role: "swarm-worker", ClusterID: "c1",
		DockerEnabled: "yes", DockerActive: "yes"}
}

// world: worker wk1 and its impostor wk1-clone (same node ID in the guest,
// created later), plus n bystanders.
func world(n int) reconcile.Snapshot {
	wk := vm("wk1", t0.Add(-90*24*time.Hour))
	cl := vm("wk1-clone", t0.Add(-time.Hour))
	snap := reconcile.Snapshot{CollectedAt: t0, VMs: []reconcile.VM{wk, cl}}
	for i := range n {
		snap.VMs = append(snap.VMs, vm(fmt.Sprintf("other-%02d", i), t0.Add(-48*time.Hour)))
	}
	snap.Guests = []reconcile.GuestIdentity{probe(wk, "node1"), probe(cl, "node1")}
	return snap
}

func plan(t *testing.T, snap reconcile.Snapshot, o Options) (Plan, reconcile.Result) {
	t.Helper()
	res := reconcile.Reconcile(snap, reconcile.History{})
	if o.Now.IsZero() {
		o.Now = t0
	}
	p, err := Compute(snap, res, o)
	if err != nil {
		t.Fatal(err)
	}
	return p, res
}

func names(es []Entry) string {
	var s []string
	for _, e := range es {
		s = append(s, e.VM.Name)
	}
	return strings.Join(s, ",")
}

func refusedNames(rs []Refusal) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.VM.Name)
	}
	return strings.Join(s, ",")
}

func TestPlanNamesOnlyTheImpostor(t *testing.T) {
	p, res := plan(t, world(10), Options{})
	if len(res.Findings) == 0 || res.Findings[0].Kind != reconcile.KindSharedNodeID || res.Findings[0].Original != "wk1" || !res.Findings[0].Confirmed {
		t.Fatalf("findings: %+v", res.Findings)
	}
	if names(p.Entries) != "wk1-clone" || p.Blocked != "" || !p.Actionable() {
		t.Fatalf("plan: %+v", p)
	}
	e := p.Entries[0]
	if e.Action != ActionDisableDocker || e.Original != "wk1" || e.NodeID != "node1" || e.FindingKey != res.Findings[0].Key() ||
		!strings.Contains(e.Reason, "confirmed in the guest") || e.VM.Path != "/DC0/vm/wk1-clone" || e.VM.Ref != "vm-wk1-clone" {
		t.Errorf("entry: %+v", e)
	}
	if p.InventoryVMs != 12 || !strings.HasPrefix(p.ID, "plan-20261129T120000Z-") {
		t.Errorf("inventory %d id %s", p.InventoryVMs, p.ID)
	}
	// The same input gives the same plan.
	q, _ := plan(t, world(10), Options{})
	a, _ := json.Marshal(p)
	b, _ := json.Marshal(q)
	if string(a) != string(b) {
		t.Errorf("not deterministic:\n%s\n%s", a, b)
	}
}

func TestPlanNeverTheOriginal(t *testing.T) {
	// Selecting everything by glob still leaves the original alone.
	p, _ := plan(t, world(10), Options{Settings: Settings{Select: []string{"wk1*"}}})
	if names(p.Entries) != "wk1-clone" {
		t.Errorf("entries %s", names(p.Entries))
	}
	if refusedNames(p.Refused) != "wk1" || !strings.Contains(p.Refused[0].Why, "original") {
		t.Errorf("refused %+v", p.Refused)
	}
	// A selector matching nothing is an error.
	res := reconcile.Reconcile(world(1), reconcile.History{})
	if _, err := Compute(world(1), res, Options{Settings: Settings{Select: []string{"nope-*"}}}); !IsSelectError(err) {
		t.Errorf("unmatched selector: %v", err)
	}
}

func TestPlanSkipExcludeTemplateOff(t *testing.T) {
	snap := world(10)
	p, _ := plan(t, snap, Options{Skip: map[reconcile.VMKey]string{{VCenter: "vc1", Ref: "vm-wk1-clone"}: "custom attribute vmreconcile.skip = \"ticket 42\""}})
	if len(p.Entries) != 0 || refusedNames(p.Refused) != "wk1-clone" || !strings.Contains(p.Refused[0].Why, "ticket 42") {
		t.Errorf("skip marker: %+v", p)
	}
	p, _ = plan(t, snap, Options{Settings: Settings{Exclude: []string{"/DC0/vm/wk1-*"}}})
	if len(p.Entries) != 0 || !strings.Contains(p.Refused[0].Why, "exclude") {
		t.Errorf("exclude: %+v", p)
	}
	// A powered-off impostor cannot be reached by guest operations.
	off := world(10)
	off.VMs[1].PowerState = "poweredOff"
	p, _ = plan(t, off, Options{Settings: Settings{Select: []string{"wk1-clone"}}})
	if len(p.Entries) != 0 || !strings.Contains(p.Refused[0].Why, "poweredOff") {
		t.Errorf("off: %+v", p)
	}
	// ... and for power-off it is already done.
	p, _ = plan(t, off, Options{Settings: Settings{Select: []string{"wk1-clone"}, Action: ActionPowerOff}})
	if len(p.Entries) != 0 || names(p.AlreadyDone) != "wk1-clone" {
		t.Errorf("power-off of an off VM: %+v", p)
	}
	// A template is never acted on; the manual fix is given.
	tpl := world(10)
	tpl.VMs[1].Template, tpl.VMs[1].PowerState = true, "poweredOff"
	p, _ = plan(t, tpl, Options{Settings: Settings{Select: []string{"wk1-clone"}}})
	if len(p.Entries) != 0 || !strings.Contains(p.Refused[0].Why, "template") || !strings.Contains(p.Refused[0].Fix, "convert") {
		t.Errorf("template: %+v", p)
	}
}

func TestPlanAlreadyDone(t *testing.T) {
	snap := world(10)
	snap.Guests[1].DockerEnabled, snap.Guests[1].DockerActive = "no", "no"
	p, _ := plan(t, snap, Options{})
	if len(p.Entries) != 0 || names(p.AlreadyDone) != "wk1-clone" || p.Blocked != "" {
		t.Errorf("%+v", p)
	}
	// forget-identity still has work to do while the certificate is there.
	p, _ = plan(t, snap, Options{Settings: Settings{ForgetIdentity: true}})
	if names(p.Entries) != "wk1-clone" || p.Entries[0].JournalAction() != "disable-docker+forget-identity" {
		t.Errorf("%+v", p)
	}
}

func TestPlanCaps(t *testing.T) {
	// Two impostors of one worker.
	snap := world(20)
	c2 := vm("wk1-clone2", t0.Add(-time.Minute))
	snap.VMs = append(snap.VMs, c2)
	snap.Guests = append(snap.Guests, probe(c2, "node1"))
	p, _ := plan(t, snap, Options{})
	if names(p.Entries) != "wk1-clone,wk1-clone2" || !strings.Contains(p.Blocked, "-max-actions allows 1") || p.Actionable() {
		t.Errorf("max-actions: %+v", p)
	}
	p, _ = plan(t, snap, Options{Settings: Settings{MaxActions: 2}})
	if p.Blocked != "" {
		t.Errorf("2 of 23 = 8.7%% < 10%%: %q", p.Blocked)
	}
	p, _ = plan(t, snap, Options{Settings: Settings{MaxActions: 2, MaxPercent: 5}})
	if !strings.Contains(p.Blocked, "8.7% of the 23 VMs") {
		t.Errorf("max-percent: %q", p.Blocked)
	}
}

func TestPlanUndeterminedOriginal(t *testing.T) {
	snap := world(10)
	snap.VMs[0].Created = snap.VMs[1].Created // no lineage, no sighting, same creation time
	p, res := plan(t, snap, Options{})
	if res.Findings[0].Original != "" {
		t.Fatalf("original %q", res.Findings[0].Original)
	}
	if len(p.Entries) != 0 || refusedNames(p.Refused) != "wk1,wk1-clone" || !strings.Contains(p.Refused[0].Fix, "-vm") {
		t.Errorf("%+v", p)
	}
	p, _ = plan(t, snap, Options{Settings: Settings{Select: []string{"wk1-clone"}}})
	if names(p.Entries) != "wk1-clone" {
		t.Errorf("explicit selection: %+v", p)
	}
}

func TestFingerprintChanged(t *testing.T) {
	p, _ := plan(t, world(10), Options{})
	same, _ := plan(t, world(10), Options{Now: t0.Add(time.Hour)})
	if s := Changed(p.Fingerprint, same.Fingerprint); s != "" {
		t.Errorf("unchanged world: %q", s)
	}
	off := world(10)
	off.VMs[1].PowerState = "poweredOff"
	q, _ := plan(t, off, Options{})
	if s := Changed(p.Fingerprint, q.Fingerprint); !strings.Contains(s, "VM wk1-clone (vc1/vm-wk1-clone) power state poweredOn → poweredOff") {
		t.Errorf("power change: %q", s)
	}
	gone := world(10)
	gone.Guests = nil
	q, _ = plan(t, gone, Options{})
	if s := Changed(p.Fingerprint, q.Fingerprint); !strings.Contains(s, "finding shared-node-id|node1|") || !strings.Contains(s, "is gone") {
		t.Errorf("finding gone: %q", s)
	}
	q, _ = plan(t, world(10), Options{Skip: map[reconcile.VMKey]string{{VCenter: "vc1", Ref: "vm-wk1-clone"}: "x"}})
	if s := Changed(p.Fingerprint, q.Fingerprint); !strings.Contains(s, "would no longer be planned") {
		t.Errorf("skip marker added: %q", s)
	}
}

func TestParseGuestReport(t *testing.T) {
	r, err := ParseGuestReport([]byte("remediate=vmreconcile/1\nuid=0\ndocker_root=/var/lib/docker\nswarm_leave=skipped-no-cli\n" +
		"before.docker.service=enabled/active\nbefore.docker.socket=enabled/active\ndisable=done docker.service docker.socket\n" +
		"moved=/var/lib/docker/swarm /var/lib/docker/vmreconcile-backup-X/swarm\nmoved=/var/lib/docker/engine-id /var/lib/docker/vmreconcile-backup-X/engine-id\n" +
		"identity=moved\nbackup=/var/lib/docker/vmreconcile-backup-X\nend=ok\n"))
	if err != nil || !r.Complete || !r.Changed() || len(r.Disabled) != 2 {
		t.Fatalf("%+v %v", r, err)
	}
	want := "systemctl disable --now docker.service docker.socket; swarm leave skipped (no docker CLI); moved swarm, engine-id to /var/lib/docker/vmreconcile-backup-X"
	if r.Summary() != want {
		t.Errorf("summary %q", r.Summary())
	}
	r, _ = ParseGuestReport([]byte("remediate=vmreconcile/1\ndisable=already\nend=ok\n"))
	if r.Changed() || !r.Already {
		t.Errorf("%+v", r)
	}
	if _, err := ParseGuestReport([]byte("sh: syntax error\n")); err == nil {
		t.Error("garbage accepted")
	}
}

func TestStaleAfterPartialApply(t *testing.T) {
	saved, _ := plan(t, world(10), Options{})
	// After the apply, the guest probe says Docker is off: the fresh plan
	// lists the clone as already done. Not stale when the journal says this
	// plan did it; stale otherwise (someone else changed the world).
	after := world(10)
	after.Guests[1].DockerEnabled, after.Guests[1].DockerActive = "no", "no"
	fresh, _ := plan(t, after, Options{})
	if len(fresh.Entries) != 0 || len(fresh.AlreadyDone) != 1 {
		t.Fatalf("fresh: %+v", fresh)
	}
	if s := Stale(saved, fresh, func(Entry) bool { return true }); s != "" {
		t.Errorf("done by this plan: stale %q", s)
	}
	if s := Stale(saved, fresh, func(Entry) bool { return false }); !strings.Contains(s, "would no longer be planned") {
		t.Errorf("not done by this plan: %q", s)
	}
	// power-off: the VM is off afterwards.
	po := Options{Settings: Settings{Action: ActionPowerOff}}
	saved, _ = plan(t, world(10), po)
	off := world(10)
	off.VMs[1].PowerState = "poweredOff"
	fresh, _ = plan(t, off, po)
	if s := Stale(saved, fresh, func(Entry) bool { return true }); s != "" {
		t.Errorf("powered off by this plan: stale %q", s)
	}
}
