package remediate_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/guest/guesttest"
	"github.com/vmreconcile/vmreconcile/internal/vcsim"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/remediate"
	"github.com/vmreconcile/vmreconcile/vsphere"
)

// twoVCenters is two vcsim instances, "vc-a" and "vc-b", each with a swarm
// worker and a clone of it answering as the same node (per the guest
// probes). Created in the same order, the VMs get the same morefs in both:
// vc-a's clone and vc-b's clone are both, say, vm-61.
type twoVCenters struct {
	ctx     context.Context
	clients map[string]*vim25.Client
	clones  map[string]*object.VirtualMachine // vCenter → its clone
	snap    reconcile.Snapshot
}

func newTwoVCenters(t *testing.T) *twoVCenters {
	t.Helper()
	w := &twoVCenters{clients: map[string]*vim25.Client{}, clones: map[string]*object.VirtualMachine{}}
	w.snap = reconcile.Snapshot{CollectedAt: time.Now().UTC(), VCenters: []string{"vc-a", "vc-b"}, VCenterUUIDs: map[string]string{}}
	for _, name := range w.snap.VCenters {
		s := newSimWorld(t, name, "wk-"+name)
		w.ctx, w.clients[name], w.clones[name] = s.ctx, s.c, s.clone
		w.snap.VMs = append(w.snap.VMs, s.snap.VMs...)
		w.snap.Guests = append(w.snap.Guests, s.snap.Guests...)
		w.snap.VCenterUUIDs[name] = s.snap.VCenterUUIDs[name]
	}
	if a, b := w.clones["vc-a"].Reference().Value, w.clones["vc-b"].Reference().Value; a != b {
		t.Fatalf("the test needs colliding morefs: vc-a's clone is %s, vc-b's %s", a, b)
	}
	return w
}

// simWorld is one vcsim instance with a swarm worker (prefix) and a clone
// of it (prefix-clone) that the guest probes show answering as the same
// node, and its snapshot as collection makes it under the vCenter name vc.
type simWorld struct {
	ctx   context.Context
	c     *vim25.Client
	clone *object.VirtualMachine
	snap  reconcile.Snapshot
}

func newSimWorld(t *testing.T, vc, prefix string) simWorld {
	t.Helper()
	ctx, c, model := guesttest.Simulator(t)
	// Every vcsim instance reports the same instance UUID (vpx's default;
	// NewServiceInstance assigns a random one to a copy it then drops).
	// A vCenter's is unique: give this one its own, and read it as
	// collection does, from the ServiceContent.
	si := model.Map().Get(vim25.ServiceInstance).(*simulator.ServiceInstance)
	var u [16]byte
	rand.Read(u[:])
	si.Content.About.InstanceUuid = fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
	sc, err := methods.RetrieveServiceContent(ctx, c, &types.RetrieveServiceContent{This: vim25.ServiceInstance})
	if err != nil {
		t.Fatal(err)
	}
	wk, err := vcsim.CreateVM(ctx, c, vcsim.VM{Name: prefix, Hostname: prefix, PowerOn: true, ToolsRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := vcsim.CreateVM(ctx, c, vcsim.VM{Name: prefix + "-clone", Hostname: prefix, PowerOn: true, ToolsRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	vms, err := vsphere.Inventory(ctx, c, c.ServiceContent.RootFolder, vsphere.InventoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	s := simWorld{ctx: ctx, c: c, clone: cl, snap: reconcile.Snapshot{CollectedAt: now, VCenters: []string{vc},
		VCenterUUIDs: map[string]string{vc: sc.Returnval.About.InstanceUuid},
		Swarms:       []reconcile.Swarm{{Endpoint: "tcp://mgr-" + vc + ":2376", ClusterID: "cluster-" + vc}}}}
	for _, v := range vms {
		v.VCenter = vc
		switch v.Ref {
		case wk.Reference().Value:
			v.Created = now.Add(-90 * 24 * time.Hour) // the original: created first
		case cl.Reference().Value:
			v.Created = now.Add(-time.Hour)
		default:
			continue
		}
		s.snap.VMs = append(s.snap.VMs, v)
		s.snap.Guests = append(s.snap.Guests, reconcile.GuestIdentity{VCenter: vc, VMRef: v.Ref, ProbedAt: now,
			NodeID: "node-" + vc, Role: "swarm-worker", ClusterID: "cluster-" + vc, DockerEnabled: "yes", DockerActive: "yes"})
	}
	return s
}

// plan looks the skip markers up per vCenter, as the remediate command and
// the daemon do, and computes the plan over the snapshot of both vCenters.
func (w *twoVCenters) plan(t *testing.T) remediate.Plan {
	t.Helper()
	res := reconcile.Reconcile(w.snap, reconcile.History{})
	settings := remediate.Settings{MaxActions: 5, MaxPercent: 100}
	cands, err := remediate.Candidates(w.snap, res, settings)
	if err != nil {
		t.Fatal(err)
	}
	if len(cands) != 2 {
		t.Fatalf("candidates %v, want both clones", cands)
	}
	skip := map[reconcile.VMKey]string{}
	for vc, c := range w.clients {
		m, err := remediate.SkipMarkers(w.ctx, c, vc, cands)
		if err != nil {
			t.Fatal(err)
		}
		maps.Copy(skip, m)
	}
	p, err := remediate.Compute(w.snap, res, remediate.Options{Settings: settings, Skip: skip})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (w *twoVCenters) mark(t *testing.T, vc, value string) {
	t.Helper()
	m := object.NewCustomFieldsManager(w.clients[vc])
	key, err := m.FindKey(w.ctx, remediate.SkipMarker)
	if err != nil {
		def, aerr := m.Add(w.ctx, remediate.SkipMarker, "VirtualMachine", nil, nil)
		if aerr != nil {
			t.Fatal(aerr)
		}
		key = def.Key
	}
	if err := m.Set(w.ctx, w.clones[vc].Reference(), key, value); err != nil {
		t.Fatal(err)
	}
}

// A skip marker holds with colliding morefs in two vCenters: the marker on
// one vCenter's clone keeps that VM, and only it, out of the plan. Keyed
// by ref alone, the marker of vc-a's vm-N also refused vc-b's vm-N (or,
// looked up in the wrong vCenter, was lost).
func TestSkipMarkerCollidingMorefsTwoVCenters(t *testing.T) {
	w := newTwoVCenters(t)
	for _, tc := range []struct{ marked, other string }{{"vc-a", "vc-b"}, {"vc-b", "vc-a"}} {
		t.Run("marked in "+tc.marked, func(t *testing.T) {
			w.mark(t, tc.marked, "INC-42 "+tc.marked)
			defer w.mark(t, tc.marked, "") // an empty value clears it
			p := w.plan(t)
			if len(p.Entries) != 1 || p.Entries[0].VM.VCenter != tc.other || p.Entries[0].VM.Name != "wk-"+tc.other+"-clone" {
				t.Errorf("entries %+v, want only the clone of %s", p.Entries, tc.other)
			}
			var refused []string
			for _, r := range p.Refused {
				if strings.HasPrefix(r.Why, "skip marker") {
					refused = append(refused, r.VM.Key().String()+": "+r.Why)
				}
			}
			want := tc.marked + "/" + w.clones[tc.marked].Reference().Value + ": skip marker: custom attribute vmreconcile.skip = \"INC-42 " + tc.marked + "\""
			if len(refused) != 1 || refused[0] != want {
				t.Errorf("refused for the marker: %q, want [%q]", refused, want)
			}
		})
	}
	// No marker: both clones are planned.
	if p := w.plan(t); len(p.Entries) != 2 {
		t.Errorf("unmarked: entries %+v", p.Entries)
	}
}

// issue 9, item 6: a plan made on one vCenter, replayed against another
// that answers under the same name with the same inventory (a second vcsim:
// same VM names, paths and morefs) is refused, naming both instance UUIDs.
// Without the binding the fresh plan there is identical, and the plan ran.
func TestPlanReplayedOnAnotherVCenter(t *testing.T) {
	const name = "vc.example.com"
	a := newSimWorld(t, name, "wk-1")
	b := newSimWorld(t, name, "wk-1")
	ua, ub := a.snap.VCenterUUIDs[name], b.snap.VCenterUUIDs[name]
	if ua == "" || ua == ub {
		t.Fatalf("vcsim instance UUIDs %q and %q: the test needs two distinct ones", ua, ub)
	}
	b.snap.Swarms = a.snap.Swarms // the same swarm observed from both
	key := []byte("0123456789abcdef0123456789abcdef")
	compute := func(s reconcile.Snapshot, settings remediate.Settings) remediate.Plan {
		t.Helper()
		p, err := remediate.Compute(s, reconcile.Reconcile(s, reconcile.History{}), remediate.Options{Settings: settings})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	saved := compute(a.snap, remediate.Settings{MaxPercent: 100})
	if len(saved.Entries) != 1 || saved.Entries[0].VM.Name != "wk-1-clone" || saved.VCenterUUIDs[name] != ua {
		t.Fatalf("plan on A: %+v", saved)
	}
	if err := remediate.Seal(&saved, key); err != nil {
		t.Fatal(err)
	}
	b1, _ := json.Marshal(saved)
	var loaded remediate.Plan
	if err := json.Unmarshal(b1, &loaded); err != nil {
		t.Fatal(err)
	}
	if err := remediate.Verify(loaded, key); err != nil {
		t.Fatalf("verify: %v", err)
	}
	settings := remediate.ApplySettings(loaded.Settings, remediate.Settings{})
	// On A, where it was made: applied.
	if err := remediate.Recheck(loaded, compute(a.snap, settings), nil); err != nil {
		t.Fatalf("recheck on A: %v", err)
	}
	// On B: the same names, refs and findings, another vCenter.
	freshB := compute(b.snap, settings)
	if s := remediate.Stale(loaded, freshB, nil); s != "" {
		t.Fatalf("setup: B's plan differs from A's other than by vCenter: %s", s)
	}
	err := remediate.Recheck(loaded, freshB, nil)
	if !errors.Is(err, remediate.ErrPlanRefused) || !strings.Contains(err.Error(), ua) || !strings.Contains(err.Error(), ub) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("recheck on B: %v, want a one-line refusal naming %s and %s", err, ua, ub)
	}
	t.Logf("refused: %v", err)
}
