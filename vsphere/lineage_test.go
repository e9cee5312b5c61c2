package vsphere

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vmware/govmomi/event"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/internal/vcsim"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

func mustCreate(t *testing.T, ctx context.Context, c *vim25.Client, spec vcsim.VM) *object.VirtualMachine {
	t.Helper()
	vm, err := vcsim.CreateVM(ctx, c, spec)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

func mustClone(t *testing.T, ctx context.Context, c *vim25.Client, src *object.VirtualMachine, spec vcsim.CloneSpec) *object.VirtualMachine {
	t.Helper()
	vm, err := vcsim.Clone(ctx, c, src.Reference(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

func mustLineage(t *testing.T, ctx context.Context, c *vim25.Client, opts LineageOptions) map[string]reconcile.Lineage {
	t.Helper()
	lin, err := Lineage(ctx, c, c.ServiceContent.RootFolder, opts)
	if err != nil {
		t.Fatal(err)
	}
	return lin
}

func mustInventory(t *testing.T, ctx context.Context, c *vim25.Client) []reconcile.VM {
	t.Helper()
	vms, err := Inventory(ctx, c, c.ServiceContent.RootFolder, InventoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return vms
}

// checkLineage asserts l says copy came from src, by kind, between the two
// times.
func checkLineage(t *testing.T, l reconcile.Lineage, ok bool, src *object.VirtualMachine, srcName, kind string, after, before time.Time) {
	t.Helper()
	if !ok {
		t.Errorf("no lineage, want %s from %s", kind, srcName)
		return
	}
	if l.SourceRef != src.Reference().Value || l.SourceName != srcName || l.Kind != kind {
		t.Errorf("lineage = %+v, want %s from %s (%s)", l, kind, srcName, src.Reference().Value)
	}
	if l.Time.Before(after) || l.Time.After(before) {
		t.Errorf("lineage time %v not in [%v, %v]", l.Time, after, before)
	}
}

func TestLineageCloneSurvivesRename(t *testing.T) {
	simTest(t, nil, func(ctx context.Context, c *vim25.Client) {
		src := mustCreate(t, ctx, c, vcsim.VM{Name: "worker-1", Hostname: "worker-1", IP: "10.0.0.11", PowerOn: true, ToolsRunning: true})
		t0 := time.Now()
		cp := mustClone(t, ctx, c, src, vcsim.CloneSpec{Name: "worker-1-copy", PowerOn: true})
		t1 := time.Now()
		if err := vcsim.Rename(ctx, c, src.Reference(), "worker-1-old"); err != nil {
			t.Fatal(err)
		}

		lin := mustLineage(t, ctx, c, LineageOptions{})
		if len(lin) != 1 {
			t.Fatalf("lineage = %v, want only the copy", lin)
		}
		// The event keeps the name the source had then.
		l, ok := lin[cp.Reference().Value]
		checkLineage(t, l, ok, src, "worker-1", KindClone, t0, t1)

		// Attached to the inventory, the name is the current one.
		vms := ResolveLineage(mustInventory(t, ctx, c), lin)
		got := findVM(t, vms, cp.Reference().Value)
		if got.Lineage == nil {
			t.Fatal("copy has no lineage")
		}
		checkLineage(t, *got.Lineage, true, src, "worker-1-old", KindClone, t0, t1)
		for _, vm := range vms {
			if vm.Ref != cp.Reference().Value && vm.Lineage != nil {
				t.Errorf("%s has lineage %+v", vm.Name, *vm.Lineage)
			}
		}
		// The clone boots the same disk: same hostname and, in vcsim, the
		// same MACs; tools running as on the source.
		if got.GuestHostname != "worker-1" || !got.ToolsRunning || got.PowerState != "poweredOn" || fmt.Sprint(got.IPs) != "[10.0.0.11]" {
			t.Errorf("copy = %+v", got)
		}
	})
}

func TestLineageChain(t *testing.T) {
	simTest(t, nil, func(ctx context.Context, c *vim25.Client) {
		a := mustCreate(t, ctx, c, vcsim.VM{Name: "A"})
		t0 := time.Now()
		b := mustClone(t, ctx, c, a, vcsim.CloneSpec{Name: "B"})
		t1 := time.Now()
		cc := mustClone(t, ctx, c, b, vcsim.CloneSpec{Name: "C", Hostname: "c-host", PowerOn: true})
		t2 := time.Now()

		lin := mustLineage(t, ctx, c, LineageOptions{})
		if len(lin) != 2 {
			t.Fatalf("lineage = %v", lin)
		}
		l, ok := lin[b.Reference().Value]
		checkLineage(t, l, ok, a, "A", KindClone, t0, t1)
		l, ok = lin[cc.Reference().Value]
		checkLineage(t, l, ok, b, "B", KindClone, t1, t2)
		if _, ok := lin[a.Reference().Value]; ok {
			t.Error("A has lineage")
		}
		if got := findVM(t, mustInventory(t, ctx, c), cc.Reference().Value); got.GuestHostname != "c-host" {
			t.Errorf("C hostname = %q", got.GuestHostname)
		}
	})
}

func TestLineageTemplate(t *testing.T) {
	simTest(t, nil, func(ctx context.Context, c *vim25.Client) {
		golden := mustCreate(t, ctx, c, vcsim.VM{Name: "golden", PowerOn: true})
		t0 := time.Now()
		tmpl := mustClone(t, ctx, c, golden, vcsim.CloneSpec{Name: "golden-tmpl", Template: true})
		t1 := time.Now()
		w := mustClone(t, ctx, c, tmpl, vcsim.CloneSpec{Name: "from-tmpl", PowerOn: true, Hostname: "w9"})
		t2 := time.Now()

		lin := mustLineage(t, ctx, c, LineageOptions{})
		l, ok := lin[tmpl.Reference().Value]
		checkLineage(t, l, ok, golden, "golden", KindClone, t0, t1)
		// vcsim posts VmClonedEvent, not VmDeployedEvent, for a clone of a
		// template; vCenter posts VmDeployedEvent (see TestLineageDeployEvent).
		l, ok = lin[w.Reference().Value]
		checkLineage(t, l, ok, tmpl, "golden-tmpl", KindClone, t1, t2)

		vms := ResolveLineage(mustInventory(t, ctx, c), lin)
		if tv := findVM(t, vms, tmpl.Reference().Value); !tv.Template || tv.Lineage == nil || tv.Lineage.SourceRef != golden.Reference().Value {
			t.Errorf("template = %+v", tv)
		}
		if wv := findVM(t, vms, w.Reference().Value); wv.Template || wv.PowerState != "poweredOn" || wv.GuestHostname != "w9" {
			t.Errorf("VM from template = %+v", wv)
		}
	})
}

// postEvent posts a synthetic event, as vCenter would for operations vcsim
// does not emulate.
func postEvent(t *testing.T, ctx context.Context, c *vim25.Client, e types.BaseEvent) {
	t.Helper()
	if err := event.NewManager(c).PostEvent(ctx, e); err != nil {
		t.Fatal(err)
	}
}

func vmArg(vm *object.VirtualMachine, name string) *types.VmEventArgument {
	return &types.VmEventArgument{EntityEventArgument: types.EntityEventArgument{Name: name}, Vm: vm.Reference()}
}

func TestLineageDeployEventAndNewestWins(t *testing.T) {
	simTest(t, nil, func(ctx context.Context, c *vim25.Client) {
		tmpl := mustCreate(t, ctx, c, vcsim.VM{Name: "tmpl"})
		other := mustCreate(t, ctx, c, vcsim.VM{Name: "other"})
		deployed := mustCreate(t, ctx, c, vcsim.VM{Name: "deployed"})
		recloned := mustCreate(t, ctx, c, vcsim.VM{Name: "recloned"})

		t0 := time.Now()
		postEvent(t, ctx, c, &types.VmDeployedEvent{
			VmEvent:     types.VmEvent{Event: types.Event{Vm: vmArg(deployed, "deployed")}},
			SrcTemplate: *vmArg(tmpl, "tmpl"),
		})
		// Two events name the same copy: the newer one wins.
		postEvent(t, ctx, c, &types.VmClonedEvent{
			VmCloneEvent: types.VmCloneEvent{VmEvent: types.VmEvent{Event: types.Event{Vm: vmArg(recloned, "recloned")}}},
			SourceVm:     *vmArg(tmpl, "tmpl"),
		})
		t1 := time.Now()
		time.Sleep(2 * time.Millisecond)
		postEvent(t, ctx, c, &types.VmClonedEvent{
			VmCloneEvent: types.VmCloneEvent{VmEvent: types.VmEvent{Event: types.Event{Vm: vmArg(recloned, "recloned")}}},
			SourceVm:     *vmArg(other, "other-then"),
		})
		t2 := time.Now()

		lin := mustLineage(t, ctx, c, LineageOptions{})
		if len(lin) != 2 {
			t.Fatalf("lineage = %v", lin)
		}
		l, ok := lin[deployed.Reference().Value]
		checkLineage(t, l, ok, tmpl, "tmpl", KindDeploy, t0, t1)
		l, ok = lin[recloned.Reference().Value]
		checkLineage(t, l, ok, other, "other-then", KindClone, t1, t2)

		vms := ResolveLineage(mustInventory(t, ctx, c), lin)
		if got := findVM(t, vms, recloned.Reference().Value).Lineage; got == nil || got.SourceName != "other" {
			t.Errorf("recloned lineage = %+v, want current name other", got)
		}
	})
}

func TestLineageSince(t *testing.T) {
	simTest(t, nil, func(ctx context.Context, c *vim25.Client) {
		src := mustCreate(t, ctx, c, vcsim.VM{Name: "src"})
		early := mustClone(t, ctx, c, src, vcsim.CloneSpec{Name: "early"})
		time.Sleep(5 * time.Millisecond)
		since := time.Now()
		late := mustClone(t, ctx, c, src, vcsim.CloneSpec{Name: "late"})

		lin := mustLineage(t, ctx, c, LineageOptions{Since: since})
		if _, ok := lin[late.Reference().Value]; !ok || len(lin) != 1 {
			t.Errorf("lineage since %v = %v, want only %s (not %s)", since, lin, late.Reference().Value, early.Reference().Value)
		}
	})
}

func TestLineagePagesPastTen(t *testing.T) {
	simTest(t, nil, func(ctx context.Context, c *vim25.Client) {
		src := mustCreate(t, ctx, c, vcsim.VM{Name: "src"})
		want := map[string]bool{}
		for i := range 30 {
			cp := mustClone(t, ctx, c, src, vcsim.CloneSpec{Name: fmt.Sprintf("copy-%02d", i)})
			want[cp.Reference().Value] = true
		}

		cc, counter := counting(c)
		lin, err := Lineage(ctx, cc, c.ServiceContent.RootFolder, LineageOptions{PageSize: 7})
		if err != nil {
			t.Fatal(err)
		}
		if len(lin) != 30 {
			t.Errorf("%d copies, want 30", len(lin))
		}
		for ref := range want {
			if l, ok := lin[ref]; !ok || l.SourceRef != src.Reference().Value || l.SourceName != "src" {
				t.Errorf("%s: lineage %+v %v", ref, l, ok)
			}
		}
		// 30 events, 7 a page: 5 pages and an empty one.
		if n := counter.count("ReadNextEvents"); n != 6 {
			t.Errorf("%d ReadNextEvents, want 6", n)
		}
		if n := counter.count("DestroyCollector"); n != 1 {
			t.Errorf("%d DestroyCollector, want 1", n)
		}
	})
}

func TestLineageReleasesCollectors(t *testing.T) {
	simTest(t, nil, func(ctx context.Context, c *vim25.Client) {
		// vCenter (and vcsim) allow 32 collectors per session: leaking one
		// per call would fail before the 40th.
		for i := range 40 {
			if _, err := Lineage(ctx, c, c.ServiceContent.RootFolder, LineageOptions{}); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		// Also when reading fails.
		cc, counter := counting(c)
		counter.fail = "ReadNextEvents"
		if _, err := Lineage(ctx, cc, c.ServiceContent.RootFolder, LineageOptions{}); err == nil {
			t.Error("Lineage succeeded though ReadNextEvents failed")
		}
		if n := counter.count("DestroyCollector"); n != 1 {
			t.Errorf("%d DestroyCollector after a failed read, want 1", n)
		}
	})
}

func TestLineageScopedToRoot(t *testing.T) {
	model := simulatorVPXTwoDCs()
	simTest(t, model, func(ctx context.Context, c *vim25.Client) {
		finder := find.NewFinder(c, true)
		dc1, err := finder.Datacenter(ctx, "DC1")
		if err != nil {
			t.Fatal(err)
		}
		vm0, err := finder.VirtualMachine(ctx, "/DC0/vm/DC0_H0_VM0")
		if err != nil {
			t.Fatal(err)
		}
		cp := mustClone(t, ctx, c, vm0, vcsim.CloneSpec{Name: "dc0-copy"})

		lin, err := Lineage(ctx, c, dc1.Reference(), LineageOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(lin) != 0 {
			t.Errorf("DC1 lineage = %v, want none", lin)
		}
		lin = mustLineage(t, ctx, c, LineageOptions{})
		if _, ok := lin[cp.Reference().Value]; !ok {
			t.Errorf("root lineage = %v, want %s", lin, cp.Reference().Value)
		}
	})
}

func TestLinkedCloneLineage(t *testing.T) {
	simTest(t, nil, func(ctx context.Context, c *vim25.Client) {
		base := mustCreate(t, ctx, c, vcsim.VM{Name: "base", PowerOn: true})
		t0 := time.Now()
		lc1 := mustClone(t, ctx, c, base, vcsim.CloneSpec{Name: "lc1", Linked: true, PowerOn: true})
		t1 := time.Now()
		lc2 := mustClone(t, ctx, c, lc1, vcsim.CloneSpec{Name: "lc2", Linked: true})
		full := mustClone(t, ctx, c, base, vcsim.CloneSpec{Name: "full"})
		if err := vcsim.Rename(ctx, c, base.Reference(), "base-renamed"); err != nil {
			t.Fatal(err)
		}

		// From the disks alone (events aged out): kind linked-clone, the
		// source's current name, and the copy's creation date.
		vms := mustInventory(t, ctx, c)
		v1 := findVM(t, vms, lc1.Reference().Value)
		if v1.Lineage == nil {
			t.Fatal("lc1: no lineage from disks")
		}
		checkLineage(t, *v1.Lineage, true, base, "base-renamed", KindLinkedClone, t0, t1)
		if !v1.Lineage.Time.Equal(v1.Created) {
			t.Errorf("lc1 lineage time %v, want created %v", v1.Lineage.Time, v1.Created)
		}
		if l := findVM(t, vms, lc2.Reference().Value).Lineage; l == nil || l.SourceRef != lc1.Reference().Value || l.Kind != KindLinkedClone {
			t.Errorf("lc2 lineage = %+v, want linked-clone of lc1", l)
		}
		for _, vm := range []*object.VirtualMachine{base, full} {
			if l := findVM(t, vms, vm.Reference().Value).Lineage; l != nil {
				t.Errorf("%s: disk lineage %+v", vm.Reference().Value, *l)
			}
		}

		// With the events: the clone event's time, kind stays linked-clone;
		// the full clone is a plain clone.
		lin := mustLineage(t, ctx, c, LineageOptions{})
		resolved := ResolveLineage(vms, lin)
		r1 := findVM(t, resolved, lc1.Reference().Value)
		checkLineage(t, *r1.Lineage, true, base, "base-renamed", KindLinkedClone, t0, t1)
		if r1.Lineage.Time.Equal(v1.Lineage.Time) || !r1.Lineage.Time.Equal(lin[lc1.Reference().Value].Time) {
			t.Errorf("lc1 time %v, want the event's %v", r1.Lineage.Time, lin[lc1.Reference().Value].Time)
		}
		if l := findVM(t, resolved, full.Reference().Value).Lineage; l == nil || l.Kind != KindClone || l.SourceName != "base-renamed" {
			t.Errorf("full clone lineage = %+v", l)
		}
		// ResolveLineage does not touch its input.
		if v1.Lineage.Time != findVM(t, vms, lc1.Reference().Value).Lineage.Time {
			t.Error("ResolveLineage modified its input")
		}
	})
}

func TestResolveLineage(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	vms := []reconcile.VM{
		{Ref: "vm-1", Name: "src-now"},
		{Ref: "vm-2", Name: "copy"},
		{Ref: "vm-3", Name: "linked", Lineage: &reconcile.Lineage{SourceRef: "vm-1", SourceName: "src-now", Kind: KindLinkedClone, Time: t0}},
		{Ref: "vm-4", Name: "conflict", Lineage: &reconcile.Lineage{SourceRef: "vm-1", Kind: KindLinkedClone, Time: t0}},
		{Ref: "vm-5", Name: "orphan-copy"},
	}
	lin := map[string]reconcile.Lineage{
		"vm-2": {SourceRef: "vm-1", SourceName: "src-then", Kind: KindClone, Time: t0.Add(time.Hour)},
		"vm-4": {SourceRef: "vm-2", SourceName: "copy", Kind: KindClone, Time: t0.Add(2 * time.Hour)},
		"vm-5": {SourceRef: "vm-99", SourceName: "deleted-src", Kind: KindDeploy, Time: t0},
		"vm-9": {SourceRef: "vm-1", Kind: KindClone}, // copy no longer exists
	}
	got := ResolveLineage(vms, lin)
	want := []string{
		"vm-1 <nil>",
		"vm-2 {vm-1 src-now clone 2024-01-01 01:00:00 +0000 UTC}",
		"vm-3 {vm-1 src-now linked-clone 2024-01-01 00:00:00 +0000 UTC}",
		"vm-4 {vm-2 copy clone 2024-01-01 02:00:00 +0000 UTC}",
		"vm-5 {vm-99 deleted-src deploy 2024-01-01 00:00:00 +0000 UTC}",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d VMs", len(got))
	}
	for i, vm := range got {
		s := vm.Ref + " <nil>"
		if vm.Lineage != nil {
			s = fmt.Sprintf("%s %v", vm.Ref, *vm.Lineage)
		}
		if s != want[i] {
			t.Errorf("got  %s\nwant %s", s, want[i])
		}
	}
	if vms[2].Lineage == got[2].Lineage || vms[1].Lineage != nil {
		t.Error("ResolveLineage shares or modifies its input")
	}
}

func TestLineageSetKeepsNewest(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	cloned := func(key int32, at time.Time, copyRef, src string) types.BaseEvent {
		e := &types.VmClonedEvent{SourceVm: types.VmEventArgument{EntityEventArgument: types.EntityEventArgument{Name: src}, Vm: types.ManagedObjectReference{Type: "VirtualMachine", Value: src}}}
		e.Key, e.CreatedTime = key, at
		e.Vm = &types.VmEventArgument{Vm: types.ManagedObjectReference{Type: "VirtualMachine", Value: copyRef}}
		return e
	}
	s := newLineageSet()
	for _, e := range []types.BaseEvent{
		cloned(5, t0.Add(time.Minute), "vm-1", "newest"),
		cloned(3, t0, "vm-1", "oldest"),
		cloned(4, t0.Add(time.Minute), "vm-1", "same-time-lower-key"),
		cloned(7, t0, "vm-2", "tie-high-key"),
		cloned(6, t0, "vm-2", "tie-low-key"),
		&types.VmClonedEvent{}, // no copy named: ignored
		&types.VmPoweredOnEvent{},
	} {
		s.add(e)
	}
	if len(s.lineage) != 2 || s.lineage["vm-1"].SourceName != "newest" || s.lineage["vm-2"].SourceName != "tie-high-key" {
		t.Errorf("lineage = %v", s.lineage)
	}
}
