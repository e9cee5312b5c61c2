package remediate_test

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25"

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
		ctx, c, _ := guesttest.Simulator(t)
		w.ctx = ctx
		w.clients[name] = c
		wk, err := vcsim.CreateVM(ctx, c, vcsim.VM{Name: "wk-" + name, Hostname: "wk-" + name, PowerOn: true, ToolsRunning: true})
		if err != nil {
			t.Fatal(err)
		}
		cl, err := vcsim.CreateVM(ctx, c, vcsim.VM{Name: "wk-" + name + "-clone", Hostname: "wk-" + name, PowerOn: true, ToolsRunning: true})
		if err != nil {
			t.Fatal(err)
		}
		w.clones[name] = cl
		vms, err := vsphere.Inventory(ctx, c, c.ServiceContent.RootFolder, vsphere.InventoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vms {
			v.VCenter = name
			switch v.Ref {
			case wk.Reference().Value:
				v.Created = time.Now().Add(-90 * 24 * time.Hour) // the original: created first
			case cl.Reference().Value:
				v.Created = time.Now().Add(-time.Hour)
			default:
				continue
			}
			w.snap.VMs = append(w.snap.VMs, v)
			w.snap.Guests = append(w.snap.Guests, reconcile.GuestIdentity{VCenter: name, VMRef: v.Ref, ProbedAt: w.snap.CollectedAt,
				NodeID: "node-" + name, Role: "swarm-worker", ClusterID: "cluster-" + name, DockerEnabled: "yes", DockerActive: "yes"})
		}
		w.snap.VCenterUUIDs[name] = c.ServiceContent.About.InstanceUuid
	}
	if a, b := w.clones["vc-a"].Reference().Value, w.clones["vc-b"].Reference().Value; a != b {
		t.Fatalf("the test needs colliding morefs: vc-a's clone is %s, vc-b's %s", a, b)
	}
	return w
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
