package remediate

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// A -max-percent of NaN compared false with every percentage, so the
// percentage cap never blocked anything.
func TestSafetyMaxPercentNaNRefused(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		s := Settings{MaxPercent: v}
		if err := s.Normalize(); err == nil {
			t.Errorf("max-percent %v accepted", v)
		}
	}
	// And the cap does block with a sane value (11 of 12 VMs qualifying).
	snap := world(10)
	res := reconcile.Reconcile(snap, reconcile.History{})
	if _, err := Compute(snap, res, Options{Settings: Settings{MaxActions: 100, MaxPercent: math.NaN()}, Now: t0}); err == nil {
		t.Error("Compute accepted max-percent NaN")
	}
}

// Several vCenters hand out the same morefs. A finding names its VMs by ref
// (plus path and name); a VM of another vCenter that happens to carry the
// impostor's ref must never be acted on in its place, and one carrying the
// original's ref is not the original.
func TestSafetyMultiVCenterRefCollision(t *testing.T) {
	snap := world(10)
	// The finding, as reconcile makes it from vc1's VMs alone (this test is
	// about the planner).
	res := reconcile.Reconcile(snap, reconcile.History{})
	// vc2 reuses the refs of wk1 and wk1-clone for unrelated VMs; they sort
	// after vc1's VMs, as collect sorts them.
	db := vm("db-prod", t0)
	db.VCenter, db.Ref, db.Path = "vc2", "vm-wk1-clone", "/DC1/vm/db-prod"
	web := vm("web-prod", t0)
	web.VCenter, web.Ref, web.Path = "vc2", "vm-wk1", "/DC1/vm/web-prod"
	snap.VMs = append(snap.VMs, db, web)
	computed := func(o Options) Plan {
		t.Helper()
		o.Now = t0
		p, err := Compute(snap, res, o)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := computed(Options{Settings: Settings{MaxPercent: 100}})
	var f *reconcile.Finding
	for i := range res.Findings {
		if res.Findings[i].Kind == reconcile.KindSharedNodeID {
			f = &res.Findings[i]
		}
	}
	if f == nil || f.Original != "wk1" {
		t.Fatalf("findings: %+v", res.Findings)
	}
	if len(p.Entries) != 1 {
		t.Fatalf("entries: %+v", p.Entries)
	}
	e := p.Entries[0].VM
	if e.Name != "wk1-clone" || e.VCenter != "vc1" || e.Path != "/DC0/vm/wk1-clone" {
		t.Errorf("acts on %+v, want wk1-clone of vc1 (never db-prod of vc2)", e)
	}
	for _, fv := range p.Fingerprint.VMs {
		if fv.Name == "db-prod" || fv.Name == "web-prod" {
			t.Errorf("fingerprint involves an unrelated VM of another vCenter: %+v", fv)
		}
	}
	// Selecting the other vCenter's VM explicitly works on that VM only, and
	// it is not the finding's impostor (no finding reason).
	p = computed(Options{Settings: Settings{Select: []string{"/DC1/vm/db-prod"}, MaxPercent: 100}})
	if len(p.Entries) != 1 || p.Entries[0].VM.VCenter != "vc2" || p.Entries[0].FindingKey != "" {
		t.Errorf("explicit selection: %+v", p.Entries)
	}
	// -vm VCENTER/REF names that VM alone.
	p = computed(Options{Settings: Settings{Select: []string{"vc2/vm-wk1-clone"}, MaxPercent: 100}})
	if len(p.Entries) != 1 || p.Entries[0].VM.Name != "db-prod" {
		t.Errorf("-vm vc2/vm-wk1-clone: %+v", p.Entries)
	}
	// Same ref, path and name in two vCenters: the finding names its VMs'
	// vCenter, so it is vc1's wk1-clone and never vc3's twin.
	twin := snap.VMs[1]
	twin.VCenter = "vc3"
	snap.VMs = append(snap.VMs, twin)
	p = computed(Options{Settings: Settings{MaxPercent: 100}})
	if len(p.Entries) != 1 || p.Entries[0].VM.VCenter != "vc1" {
		t.Errorf("entries with a twin in vc3: %+v", p.Entries)
	}
	// A finding that does not name vCenters (older JSON or store rows)
	// cannot tell them apart: refuse.
	for i := range res.Findings {
		res.Findings[i].VMVCenters = nil
	}
	p = computed(Options{Settings: Settings{MaxPercent: 100}})
	if len(p.Entries) != 0 {
		t.Errorf("ambiguous ref acted on: %+v", p.Entries)
	}
}

// The original is protected even when the finding lists it elsewhere than
// first.
func TestSafetyOriginalProtectedByName(t *testing.T) {
	snap := world(10)
	res := reconcile.Reconcile(snap, reconcile.History{})
	for i := range res.Findings {
		f := &res.Findings[i]
		if f.Kind == reconcile.KindSharedNodeID {
			f.VMs[0], f.VMs[1] = f.VMs[1], f.VMs[0]
			f.VMRefs[0], f.VMRefs[1] = f.VMRefs[1], f.VMRefs[0]
			f.VMPaths[0], f.VMPaths[1] = f.VMPaths[1], f.VMPaths[0]
		}
	}
	p, err := Compute(snap, res, Options{Settings: Settings{MaxPercent: 100, Select: []string{"wk1", "wk1-clone"}, MaxActions: 5}, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range p.Entries {
		if e.VM.Name == "wk1" {
			t.Errorf("the original wk1 is planned: %+v", p.Entries)
		}
	}
}

// A finding without VMs must not crash the planner (the daemon runs it
// unattended).
func TestSafetyFindingWithoutVMs(t *testing.T) {
	snap := world(10)
	res := reconcile.Reconcile(snap, reconcile.History{})
	res.Findings = append(res.Findings,
		reconcile.Finding{Kind: reconcile.KindTemplateCarriesSwarm, NodeID: "n9"},
		reconcile.Finding{Kind: reconcile.KindCloneOfSwarmNode, NodeID: "n9", Original: "x"},
		reconcile.Finding{Kind: reconcile.KindSharedNodeID, NodeID: "n9", Original: "x"})
	if _, err := Compute(snap, res, Options{Now: t0}); err != nil {
		t.Fatal(err)
	}
}

// A saved plan is JSON: an entry added to it by hand (here: the original)
// must make it stale, not ride on the unchanged fingerprint.
func TestSafetyStaleTamperedPlan(t *testing.T) {
	saved, _ := plan(t, world(10), Options{Settings: Settings{MaxActions: 2, MaxPercent: 100}})
	fresh, _ := plan(t, world(10), Options{Settings: Settings{MaxActions: 2, MaxPercent: 100}})
	if s := Stale(saved, fresh, nil); s != "" {
		t.Fatalf("untouched plan stale: %q", s)
	}
	// Round-trip through JSON as a plan file does.
	b, _ := json.Marshal(saved)
	var edited Plan
	if err := json.Unmarshal(b, &edited); err != nil {
		t.Fatal(err)
	}
	if s := Stale(edited, fresh, nil); s != "" {
		t.Fatalf("JSON round trip stale: %q", s)
	}
	orig := edited.Entries[0]
	orig.VM = VMInfo{Name: "wk1", Path: "/DC0/vm/wk1", Ref: "vm-wk1", VCenter: "vc1", PowerState: "poweredOn"}
	edited.Entries = append(edited.Entries, orig)
	if s := Stale(edited, fresh, nil); s == "" {
		t.Errorf("a plan with an added entry for the original is not stale")
	}
	// Same ref, another vCenter: not the VM the fresh plan would act on.
	json.Unmarshal(b, &edited)
	edited.Entries[0].VM.VCenter = "vc2"
	if s := Stale(edited, fresh, nil); s == "" {
		t.Errorf("a plan retargeted to another vCenter is not stale")
	}
	// Entry made forget-identity by hand.
	json.Unmarshal(b, &edited)
	edited.Entries[0].ForgetIdentity = true
	if s := Stale(edited, fresh, nil); s == "" {
		t.Errorf("a plan whose entry was changed is not stale")
	}
	// Fingerprint edited to match the added entry, digest not recomputed.
	json.Unmarshal(b, &edited)
	edited.Entries = append(edited.Entries, orig)
	edited.Fingerprint.Actions = append(edited.Fingerprint.Actions, "vm-wk1 disable-docker")
	if s := Stale(edited, fresh, nil); !strings.Contains(s, "edited or corrupted") {
		t.Errorf("edited fingerprint: %q", s)
	}
	// ... and with the digest recomputed: the fresh plan decides.
	edited.Fingerprint.Digest = edited.Fingerprint.digest()
	if s := Stale(edited, fresh, nil); s == "" {
		t.Errorf("edited fingerprint with a recomputed digest is not stale")
	}
}
