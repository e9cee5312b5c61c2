package vsphere

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/internal/vcsim"
)

// hookRT calls after once a call of a method has returned.
type hookRT struct {
	soap.RoundTripper
	mu     sync.Mutex
	onResp func(name string, req, res soap.HasFault)
}

func (h *hookRT) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	err := h.RoundTripper.RoundTrip(ctx, req, res)
	name := strings.TrimSuffix(reflect.TypeOf(req).Elem().Name(), "Body")
	if err == nil && h.onResp != nil {
		h.mu.Lock()
		h.onResp(name, req, res)
		h.mu.Unlock()
	}
	return err
}

func cloneEvent(dc types.ManagedObjectReference, copyRef, srcRef string) types.BaseEvent {
	return &types.VmClonedEvent{
		VmCloneEvent: types.VmCloneEvent{VmEvent: types.VmEvent{Event: types.Event{
			Datacenter: &types.DatacenterEventArgument{Datacenter: dc},
			Vm:         &types.VmEventArgument{Vm: types.ManagedObjectReference{Type: "VirtualMachine", Value: copyRef}},
		}}},
		SourceVm: types.VmEventArgument{Vm: types.ManagedObjectReference{Type: "VirtualMachine", Value: srcRef}},
	}
}

// TestMirrorReviewGapAcrossRoots: two datacenter roots. While the initial
// sync reads the second collector, 150 clones happen in the first
// datacenter (already read) and then one in the second. The first
// collector's latestPage (100 events) is full and its oldest is unseen,
// but older than the global maxKey (the second datacenter's newer event),
// so gapBefore says "no gap" and 50 clone events are lost for good.
func TestMirrorReviewGapAcrossRoots(t *testing.T) {
	model := simulator.VPX()
	model.Datacenter = 2
	if err := model.Run(func(ctx context.Context, c0 *vim25.Client) error {
		sim := model.Service.Context
		log := vcsim.NewEventLog(sim, 0)
		c := log.Client(c0)
		dcs, err := find.NewFinder(c).DatacenterList(ctx, "*")
		if err != nil || len(dcs) != 2 {
			t.Fatalf("datacenters: %v %v", dcs, err)
		}
		roots := []types.ManagedObjectReference{dcs[0].Reference(), dcs[1].Reference()}

		var (
			collDC []types.ManagedObjectReference // collector i -> root i
			coll   []types.ManagedObjectReference
			posted bool
		)
		h := &hookRT{RoundTripper: c.RoundTripper}
		h.onResp = func(name string, req, res soap.HasFault) {
			switch name {
			case "CreateCollectorForEvents":
				r := res.(*methods.CreateCollectorForEventsBody)
				coll = append(coll, r.Res.Returnval)
				collDC = append(collDC, roots[len(coll)-1])
			case "ReadNextEvents":
				if posted {
					return
				}
				this := req.(*methods.ReadNextEventsBody).Req.This
				posted = true
				var first, other types.ManagedObjectReference
				for i := range coll {
					if coll[i] == this {
						first = collDC[i]
					} else {
						other = collDC[i]
					}
				}
				var evs []types.BaseEvent
				for i := range 150 {
					evs = append(evs, cloneEvent(first, fmt.Sprintf("vm-a%d", i), "vm-src"))
				}
				log.Post(sim, evs...)
				log.Post(sim, cloneEvent(other, "vm-b0", "vm-src"))
			}
		}
		hc := &vim25.Client{Client: c.Client, ServiceContent: c.ServiceContent, RoundTripper: h}

		m, err := NewMirror(roots, MirrorOptions{MaxWait: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		stop := mirrorRun(ctx, m, hc)
		defer stop()
		if _, err := m.Snapshot(ctx); err != nil { // synced: the posts are done
			t.Fatal(err)
		}
		if !posted {
			t.Fatal("events not posted during the sync")
		}

		want := map[string]bool{}
		for _, r := range roots {
			lin, err := Lineage(ctx, c, r, LineageOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for ref := range lin {
				want[ref] = true
			}
		}
		if len(want) != 151 {
			t.Fatalf("fresh Lineage: %d copies, want 151", len(want))
		}
		var snap MirrorSnapshot
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			snap, err = m.Snapshot(sctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			if len(snap.Lineage) == len(want) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		var missing []string
		for ref := range want {
			if _, ok := snap.Lineage[ref]; !ok {
				missing = append(missing, ref)
			}
		}
		if len(missing) > 0 {
			t.Errorf("mirror lineage lacks %d of %d copies a fresh Lineage finds (e.g. %v)", len(missing), len(want), missing[:min(3, len(missing))])
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestMirrorReviewLinkedCloneTwoDatacenters: Inventory runs per root
// (collect.inventory), so a VM directory is owned per datacenter; the
// mirror builds one builder over all roots, so a directory of the same name
// on a same-named datastore in another datacenter ("[LocalDS_0] x") makes
// the owner ambiguous and the linked clone loses its lineage.
func TestMirrorReviewLinkedCloneTwoDatacenters(t *testing.T) {
	model := simulator.VPX()
	model.Datacenter = 2
	simTest(t, model, func(ctx context.Context, c *vim25.Client) {
		dcs, err := find.NewFinder(c).DatacenterList(ctx, "*")
		if err != nil || len(dcs) != 2 {
			t.Fatalf("datacenters: %v %v", dcs, err)
		}
		// A VM of the second datacenter, and one of the same name in the first.
		f := find.NewFinder(c)
		f.SetDatacenter(dcs[1])
		other, err := f.VirtualMachineList(ctx, "*")
		if err != nil || len(other) == 0 {
			t.Fatalf("vms of %s: %v", dcs[1].Name(), err)
		}
		var o mo.VirtualMachine
		if err := property.DefaultCollector(c).RetrieveOne(ctx, other[0].Reference(), []string{"name", "config.files.vmPathName"}, &o); err != nil {
			t.Fatal(err)
		}
		src := mustCreate(t, ctx, c, vcsim.VM{Name: o.Name})
		lc := mustClone(t, ctx, c, src, vcsim.CloneSpec{Name: "lc", Linked: true})
		var s mo.VirtualMachine
		if err := property.DefaultCollector(c).RetrieveOne(ctx, src.Reference(), []string{"config.files.vmPathName"}, &s); err != nil {
			t.Fatal(err)
		}
		if datastoreDir(s.Config.Files.VmPathName) != datastoreDir(o.Config.Files.VmPathName) {
			t.Skipf("directories differ: %s vs %s", s.Config.Files.VmPathName, o.Config.Files.VmPathName)
		}

		roots := []types.ManagedObjectReference{dcs[0].Reference(), dcs[1].Reference()}
		inv, err := Inventory(ctx, c, roots[0], InventoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		l := findVM(t, inv, lc.Reference().Value).Lineage
		if l == nil || l.SourceRef != src.Reference().Value || l.Kind != KindLinkedClone {
			t.Fatalf("Inventory(%s): lc lineage = %+v, want linked clone of %s", dcs[0].Name(), l, src.Reference().Value)
		}

		m, err := NewMirror(roots, MirrorOptions{MaxWait: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		stop := mirrorRun(ctx, m, c)
		defer stop()
		snap, err := m.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ml := findVM(t, snap.VMs, lc.Reference().Value).Lineage
		if ml == nil || ml.SourceRef != src.Reference().Value {
			t.Errorf("mirror over [%s %s]: lc lineage = %+v, Inventory per root says linked clone of %s", dcs[0].Name(), dcs[1].Name(), ml, src.Reference().Value)
		}
		// With the source gone, the per-root Inventory finds no source; the
		// mirror must not name the other datacenter's VM either.
		if task, err := object.NewVirtualMachine(c, src.Reference()).Destroy(ctx); err == nil {
			_ = task.Wait(ctx)
		}
		time.Sleep(2 * time.Second)
		snap, err = m.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ml := findVM(t, snap.VMs, lc.Reference().Value).Lineage; ml != nil {
			t.Errorf("source destroyed: mirror says lc is a linked clone of %s (in the other datacenter)", ml.SourceRef)
		}
	})
}

// TestMirrorReviewSinceFiltersLiveEvents: the daemon seeds LineageSince
// with the store's newest clone time minus 10 minutes. The live event
// collector keeps that BeginTime for good, so once vCenter's clock has been
// ahead (an event stored with a future time, then NTP corrects the clock),
// every new clone event is older than BeginTime and never reaches the
// mirror, while a fresh Lineage (what audits read before) finds it.
func TestMirrorReviewSinceFiltersLiveEvents(t *testing.T) {
	model := simulator.VPX()
	if err := model.Run(func(ctx context.Context, c0 *vim25.Client) error {
		sim := model.Service.Context
		log := vcsim.NewEventLog(sim, 0)
		c := log.Client(c0)
		dc, err := find.NewFinder(c).DefaultDatacenter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The store's newest event was stamped by a clock one hour fast.
		storeNewest := time.Now().Add(time.Hour)
		m, err := NewMirror([]types.ManagedObjectReference{dc.Reference()}, MirrorOptions{
			MaxWait: time.Second, LineageSince: storeNewest.Add(-10 * time.Minute),
		})
		if err != nil {
			t.Fatal(err)
		}
		stop := mirrorRun(ctx, m, c)
		defer stop()
		if _, err := m.Snapshot(ctx); err != nil {
			t.Fatal(err)
		}
		log.Post(sim, cloneEvent(dc.Reference(), "vm-new", "vm-src")) // now, clock corrected
		lin, err := Lineage(ctx, c, dc.Reference(), LineageOptions{})
		if err != nil || len(lin) != 1 {
			t.Fatalf("fresh Lineage = %v, %v; want the new clone", lin, err)
		}
		time.Sleep(3 * time.Second)
		snap, err := m.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := snap.Lineage["vm-new"]; !ok {
			t.Errorf("mirror lineage lacks a clone posted after the sync (fresh Lineage has it): %v", snap.Lineage)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestMirrorReviewKeysAfterRestore: the mirror outlives sessions, and so
// does lineageSet.seen (event keys). When vCenter's event key sequence rolls
// back (a file-based restore of its database; a redeploy under the same
// name), the re-sync reads new clone events whose keys the mirror has
// already "seen", and drops them. Simulated with a second EventLog (keys
// restart) behind the same vCenter for the re-sync.
func TestMirrorReviewKeysAfterRestore(t *testing.T) {
	model := simulator.VPX()
	if err := model.Run(func(ctx context.Context, c0 *vim25.Client) error {
		sim := model.Service.Context
		dc, err := find.NewFinder(c0).DefaultDatacenter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		before := vcsim.NewEventLog(sim, 0)
		for i := range 5 {
			before.Post(sim, cloneEvent(dc.Reference(), fmt.Sprintf("vm-a%d", i), "vm-src"))
		}
		m, err := NewMirror([]types.ManagedObjectReference{dc.Reference()}, MirrorOptions{MaxWait: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		stop := mirrorRun(ctx, m, before.Client(c0))
		if snap, err := m.Snapshot(ctx); err != nil || len(snap.Lineage) != 5 {
			t.Fatalf("first sync: %d copies, %v", len(snap.Lineage), err)
		}
		_ = stop()

		// Restored from a backup taken after two clones; then a new clone.
		after := vcsim.NewEventLog(sim, 0)
		after.Post(sim, cloneEvent(dc.Reference(), "vm-a0", "vm-src"), cloneEvent(dc.Reference(), "vm-a1", "vm-src"))
		after.Post(sim, cloneEvent(dc.Reference(), "vm-new", "vm-src"))
		c := after.Client(c0)
		stop = mirrorRun(ctx, m, c)
		defer stop()
		snap, err := m.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if lin, _ := Lineage(ctx, c, dc.Reference(), LineageOptions{}); lin["vm-new"].SourceRef != "vm-src" {
			t.Fatalf("fresh Lineage lacks vm-new: %v", lin)
		}
		if _, ok := snap.Lineage["vm-new"]; !ok {
			t.Errorf("after the re-sync the mirror lacks the new clone a fresh Lineage finds")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
