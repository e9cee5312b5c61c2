package vcsim_test

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmware/govmomi/event"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/internal/vcsim"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/vsphere"
)

// eventLogTest runs f against a VPX model (20 VMs) with an EventLog of the
// given retention; c reads the log as its EventManager.
func eventLogTest(t *testing.T, retention int, f func(ctx context.Context, sim *simulator.Context, c *vim25.Client, l *vcsim.EventLog)) {
	t.Helper()
	model := simulator.VPX()
	model.Machine = 10
	err := model.Run(func(ctx context.Context, c *vim25.Client) error {
		sim := model.Service.Context
		l := vcsim.NewEventLog(sim, retention)
		f(ctx, sim, l.Client(c), l)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var seedStart = time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)

// vmEvents returns n VmPoweredOnEvents for vm, the i-th at start + i*step:
// VM events that are not lineage events.
func vmEvents(sim *simulator.Context, vm types.ManagedObjectReference, n int, start time.Time, step time.Duration) []types.BaseEvent {
	out := make([]types.BaseEvent, n)
	for i := range out {
		out[i] = &types.VmPoweredOnEvent{VmEvent: types.VmEvent{Event: types.Event{
			CreatedTime: start.Add(time.Duration(i) * step),
			Vm:          &types.VmEventArgument{Vm: vm},
		}}}
	}
	return out
}

// wantLineage is the lineage the events imply: per copy, the newest event.
func wantLineage(t *testing.T, events []types.BaseEvent) map[string]reconcile.Lineage {
	t.Helper()
	want := map[string]reconcile.Lineage{}
	for _, e := range events {
		switch e := e.(type) {
		case *types.VmClonedEvent:
			want[e.Vm.Vm.Value] = reconcile.Lineage{SourceRef: e.SourceVm.Vm.Value, SourceName: e.SourceVm.Name, Kind: vsphere.KindClone, Time: e.CreatedTime}
		case *types.VmDeployedEvent:
			want[e.Vm.Vm.Value] = reconcile.Lineage{SourceRef: e.SrcTemplate.Vm.Value, SourceName: e.SrcTemplate.Name, Kind: vsphere.KindDeploy, Time: e.CreatedTime}
		default:
			t.Fatalf("unexpected seeded event %T", e)
		}
	}
	return want
}

func checkLineage(t *testing.T, what string, got, want map[string]reconcile.Lineage) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d copies, want %d", what, len(got), len(want))
	}
	for ref, w := range want {
		g, ok := got[ref]
		if !ok || g.SourceRef != w.SourceRef || g.SourceName != w.SourceName || g.Kind != w.Kind || !g.Time.Equal(w.Time) {
			t.Errorf("%s: %s = %+v (%v), want %+v", what, ref, g, ok, w)
		}
	}
}

// counter counts SOAP calls by method.
type counter struct {
	soap.RoundTripper
	mu    sync.Mutex
	calls map[string]int
}

func counting(c *vim25.Client) (*vim25.Client, *counter) {
	cc := &counter{RoundTripper: c.RoundTripper, calls: map[string]int{}}
	return &vim25.Client{Client: c.Client, ServiceContent: c.ServiceContent, RoundTripper: cc}, cc
}

func (cc *counter) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	cc.mu.Lock()
	cc.calls[strings.TrimSuffix(reflect.TypeOf(req).Elem().Name(), "Body")]++
	cc.mu.Unlock()
	return cc.RoundTripper.RoundTrip(ctx, req, res)
}

func (cc *counter) count(method string) int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.calls[method]
}

func TestEventLogLineage20000(t *testing.T) {
	eventLogTest(t, 50000, func(ctx context.Context, sim *simulator.Context, c *vim25.Client, l *vcsim.EventLog) {
		vms := vcsim.VMRefs(sim)
		if len(vms) != 20 {
			t.Fatalf("%d VMs, want 20", len(vms))
		}
		// 1,000 other VM events before the lineage events and 1,000 after.
		l.Post(sim, vmEvents(sim, vms[0], 1000, seedStart.Add(-time.Hour), time.Millisecond)...)
		seeded, err := l.SeedCloneEvents(sim, 20000, vms, seedStart, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		end := seedStart.Add(20000 * time.Second)
		l.Post(sim, vmEvents(sim, vms[1], 1000, end, time.Millisecond)...)
		if n := l.Len(); n != 22000 {
			t.Fatalf("log holds %d events, want 22000", n)
		}

		cc, calls := counting(c)
		lin, err := vsphere.Lineage(ctx, cc, c.ServiceContent.RootFolder, vsphere.LineageOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkLineage(t, "full", lin, wantLineage(t, seeded))
		// Only the 20,000 lineage events are read: 40 pages of 500 and an
		// empty one (the 2,000 others would make 44 pages).
		if n := calls.count("ReadNextEvents"); n != 41 {
			t.Errorf("%d ReadNextEvents, want 41", n)
		}

		// Since: only the newest 50 lineage events.
		cc, calls = counting(c)
		since := seeded[19950].GetEvent().CreatedTime
		lin, err = vsphere.Lineage(ctx, cc, c.ServiceContent.RootFolder, vsphere.LineageOptions{Since: since})
		if err != nil {
			t.Fatal(err)
		}
		checkLineage(t, "since", lin, wantLineage(t, seeded[19950:]))
		if n := calls.count("ReadNextEvents"); n != 2 {
			t.Errorf("since: %d ReadNextEvents, want 2", n)
		}

		// Scoped to the datacenter: every seeded event carries it. Scoped to
		// the datacenter's network folder: no VM or datacenter is under it.
		finder := find.NewFinder(c)
		dc, err := finder.Datacenter(ctx, "DC0")
		if err != nil {
			t.Fatal(err)
		}
		lin, err = vsphere.Lineage(ctx, c, dc.Reference(), vsphere.LineageOptions{Since: since})
		if err != nil {
			t.Fatal(err)
		}
		checkLineage(t, "datacenter", lin, wantLineage(t, seeded[19950:]))
		folders, err := dc.Folders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		lin, err = vsphere.Lineage(ctx, c, folders.NetworkFolder.Reference(), vsphere.LineageOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(lin) != 0 {
			t.Errorf("network folder: %d copies, want none", len(lin))
		}
		if n := l.Collectors(); n != 0 {
			t.Errorf("%d collectors left, want 0", n)
		}
	})
}

// TestEventLogSeedNewestWins checks the seeding pattern itself: copies
// recur with another source, so the newest event decides.
func TestEventLogSeedNewestWins(t *testing.T) {
	eventLogTest(t, 0, func(ctx context.Context, sim *simulator.Context, c *vim25.Client, l *vcsim.EventLog) {
		vms := vcsim.VMRefs(sim)
		seeded, err := l.SeedCloneEvents(sim, 3*len(vms), vms, seedStart, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		first, last := wantLineage(t, seeded[:len(vms)]), wantLineage(t, seeded)
		lin, err := vsphere.Lineage(ctx, c, c.ServiceContent.RootFolder, vsphere.LineageOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkLineage(t, "lineage", lin, last)
		for ref, l := range first {
			if last[ref].SourceRef == l.SourceRef {
				t.Errorf("%s: the newest event has the oldest's source %s", ref, l.SourceRef)
			}
		}
		if _, err := l.SeedCloneEvents(sim, 1, vms[:1], seedStart, 0); err == nil {
			t.Error("seeding over one VM succeeded")
		}
	})
}

func keys(events []types.BaseEvent) []int32 {
	out := make([]int32, len(events))
	for i, e := range events {
		out[i] = e.GetEvent().Key
	}
	return out
}

func TestEventLogCollectorReadsNewEvents(t *testing.T) {
	eventLogTest(t, 0, func(ctx context.Context, sim *simulator.Context, c *vim25.Client, l *vcsim.EventLog) {
		vms := vcsim.VMRefs(sim)
		if _, err := l.SeedCloneEvents(sim, 5, vms, seedStart, time.Second); err != nil {
			t.Fatal(err)
		}
		coll, err := event.NewManager(c).CreateCollectorForEvents(ctx, types.EventFilterSpec{EventTypeId: []string{"VmClonedEvent"}})
		if err != nil {
			t.Fatal(err)
		}
		// Events 1-5; the fourth is a deploy.
		got, err := coll.ReadNextEvents(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		if k := keys(got); !reflect.DeepEqual(k, []int32{1, 2, 3, 5}) {
			t.Fatalf("first read: keys %v, want [1 2 3 5]", k)
		}

		pc, err := property.DefaultCollector(c).Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = pc.Destroy(ctx) }()
		_, err = pc.CreateFilter(ctx, types.CreateFilter{Spec: types.PropertyFilterSpec{
			ObjectSet: []types.ObjectSpec{{Obj: coll.Reference()}},
			PropSet:   []types.PropertySpec{{Type: "EventHistoryCollector", PathSet: []string{"latestPage"}}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		wait := &property.WaitOptions{Options: &types.WaitOptions{MaxWaitSeconds: types.NewInt32(5)}}
		var page []types.BaseEvent
		latest := func(updates []types.ObjectUpdate) bool {
			for _, u := range updates {
				for _, ch := range u.ChangeSet {
					if ch.Name == "latestPage" {
						page = ch.Val.(types.ArrayOfEvent).Event
					}
				}
			}
			return true
		}
		if err := pc.WaitForUpdatesEx(ctx, wait, latest); err != nil {
			t.Fatal(err)
		}
		if k := keys(page); !reflect.DeepEqual(k, []int32{5, 3, 2, 1}) {
			t.Errorf("initial latestPage keys %v, want [5 3 2 1]", k)
		}

		// Appended after the collector was created: a power-on (6), a clone
		// (7) and a deploy (8).
		clone := &types.VmClonedEvent{
			VmCloneEvent: types.VmCloneEvent{VmEvent: types.VmEvent{Event: types.Event{Vm: &types.VmEventArgument{Vm: vms[2]}}}},
			SourceVm:     types.VmEventArgument{Vm: vms[3]},
		}
		deploy := &types.VmDeployedEvent{
			VmEvent:     types.VmEvent{Event: types.Event{Vm: &types.VmEventArgument{Vm: vms[4]}}},
			SrcTemplate: types.VmEventArgument{Vm: vms[3]},
		}
		l.Post(sim, append(vmEvents(sim, vms[0], 1, time.Now(), 0), clone, deploy)...)

		page = nil
		if err := pc.WaitForUpdatesEx(ctx, wait, latest); err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 || page[0].GetEvent().Key != 7 {
			t.Errorf("latestPage after the post: keys %v, want 7 first", keys(page))
		}
		got, err = coll.ReadNextEvents(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		if k := keys(got); !reflect.DeepEqual(k, []int32{7}) {
			t.Errorf("second read: keys %v, want [7]", k)
		}
		if got, _ := coll.ReadNextEvents(ctx, 100); len(got) != 0 {
			t.Errorf("third read: keys %v, want none", keys(got))
		}
		if err := coll.Destroy(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// TestEventLogConcurrentPost reads with a long-lived collector while
// another goroutine appends: every event is read once, in order.
func TestEventLogConcurrentPost(t *testing.T) {
	eventLogTest(t, 0, func(ctx context.Context, sim *simulator.Context, c *vim25.Client, l *vcsim.EventLog) {
		vms := vcsim.VMRefs(sim)
		coll, err := event.NewManager(c).CreateCollectorForEvents(ctx, types.EventFilterSpec{EventTypeId: []string{"VmPoweredOnEvent"}})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = coll.Destroy(ctx) }()
		const batches, size = 100, 20
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range batches {
				l.Post(sim, vmEvents(sim, vms[0], size, time.Now(), 0)...)
			}
		}()
		var got []int32
		deadline := time.Now().Add(30 * time.Second)
		for len(got) < batches*size && time.Now().Before(deadline) {
			page, err := coll.ReadNextEvents(ctx, 7)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, keys(page)...)
		}
		<-done
		if len(got) != batches*size {
			t.Fatalf("read %d events, want %d", len(got), batches*size)
		}
		for i, k := range got {
			if k != int32(i+1) {
				t.Fatalf("event %d has key %d, want %d", i, k, i+1)
			}
		}
	})
}

func TestEventLogScrolling(t *testing.T) {
	eventLogTest(t, 0, func(ctx context.Context, sim *simulator.Context, c *vim25.Client, l *vcsim.EventLog) {
		vms := vcsim.VMRefs(sim)
		l.Post(sim, vmEvents(sim, vms[0], 10, seedStart, time.Second)...)
		coll, err := event.NewManager(c).CreateCollectorForEvents(ctx, types.EventFilterSpec{MaxCount: 3})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = coll.Destroy(ctx) }()
		read := func(what string, f func(context.Context, int32) ([]types.BaseEvent, error), n int32, want []int32) {
			t.Helper()
			got, err := f(ctx, n)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if k := keys(got); !reflect.DeepEqual(k, want) && !(len(k) == 0 && len(want) == 0) {
				t.Errorf("%s: keys %v, want %v", what, k, want)
			}
		}
		page, err := coll.LatestPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if k := keys(page); !reflect.DeepEqual(k, []int32{10, 9, 8}) {
			t.Errorf("latestPage %v, want [10 9 8]", k)
		}
		read("next from the start", coll.ReadNextEvents, 4, []int32{1, 2, 3, 4})
		read("previous", coll.ReadPreviousEvents, 2, []int32{4, 3})
		read("next again", coll.ReadNextEvents, 2, []int32{3, 4})
		if err := coll.Reset(ctx); err != nil {
			t.Fatal(err)
		}
		read("previous after reset", coll.ReadPreviousEvents, 3, []int32{7, 6, 5})
		if err := coll.Reset(ctx); err != nil {
			t.Fatal(err)
		}
		read("next after reset", coll.ReadNextEvents, 5, []int32{8, 9, 10})
		if err := coll.Rewind(ctx); err != nil {
			t.Fatal(err)
		}
		read("next after rewind", coll.ReadNextEvents, 1, []int32{1})
		if err := coll.SetPageSize(ctx, 5); err != nil {
			t.Fatal(err)
		}
		if page, err = coll.LatestPage(ctx); err != nil {
			t.Fatal(err)
		}
		if k := keys(page); !reflect.DeepEqual(k, []int32{10, 9, 8, 7, 6}) {
			t.Errorf("latestPage after SetPageSize(5) %v, want [10 9 8 7 6]", k)
		}
		if _, err := coll.ReadNextEvents(ctx, 1001); err == nil {
			t.Error("ReadNextEvents(1001) succeeded; vCenter allows at most 1000")
		}
		if err := coll.SetPageSize(ctx, -1); err == nil {
			t.Error("SetPageSize(-1) succeeded")
		}
	})
}

func TestEventLogFilter(t *testing.T) {
	eventLogTest(t, 0, func(ctx context.Context, sim *simulator.Context, c *vim25.Client, l *vcsim.EventLog) {
		vms := vcsim.VMRefs(sim)
		seeded, err := l.SeedCloneEvents(sim, 100, vms, seedStart, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		l.Post(sim, vmEvents(sim, vms[0], 10, seedStart, time.Second)...) // out of time order
		begin, end := seedStart.Add(10*time.Second), seedStart.Add(29*time.Second)
		target := vms[7]

		cases := []struct {
			name   string
			filter types.EventFilterSpec
			want   func(types.BaseEvent) bool
		}{
			{"deploys", types.EventFilterSpec{EventTypeId: []string{"VmDeployedEvent"}},
				func(e types.BaseEvent) bool { _, ok := e.(*types.VmDeployedEvent); return ok }},
			{"base type VmEvent", types.EventFilterSpec{EventTypeId: []string{"VmEvent"}},
				func(types.BaseEvent) bool { return true }},
			{"time window", types.EventFilterSpec{Time: &types.EventFilterSpecByTime{BeginTime: &begin, EndTime: &end}},
				func(e types.BaseEvent) bool {
					t := e.GetEvent().CreatedTime
					return !t.Before(begin) && !t.After(end)
				}},
			{"one VM, self", types.EventFilterSpec{Entity: &types.EventFilterSpecByEntity{Entity: target, Recursion: types.EventFilterSpecRecursionOptionSelf}},
				func(e types.BaseEvent) bool {
					d, ok := e.(*types.VmDeployedEvent)
					return e.GetEvent().Vm.Vm == target || (ok && d.SrcTemplate.Vm == target)
				}},
		}
		all := append(append([]types.BaseEvent{}, seeded...), vmEvents(sim, vms[0], 10, seedStart, time.Second)...)
		for _, tc := range cases {
			var want []int32
			for i, e := range all {
				if tc.want(e) {
					want = append(want, int32(i+1))
				}
			}
			coll, err := event.NewManager(c).CreateCollectorForEvents(ctx, tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			got, err := coll.ReadNextEvents(ctx, 1000)
			if err != nil {
				t.Fatal(err)
			}
			_ = coll.Destroy(ctx)
			// vmEvents are fresh copies without keys: compare by position.
			if k := keys(got); !reflect.DeepEqual(k, want) || len(want) == 0 {
				t.Errorf("%s: keys %v, want %v", tc.name, k, want)
			}
		}
		_, err = event.NewManager(c).CreateCollectorForEvents(ctx, types.EventFilterSpec{Entity: &types.EventFilterSpecByEntity{Entity: target}})
		if err == nil {
			t.Error("a filter without recursion was accepted")
		}
	})
}

func TestEventLogDestroyCollector(t *testing.T) {
	eventLogTest(t, 0, func(ctx context.Context, sim *simulator.Context, c *vim25.Client, l *vcsim.EventLog) {
		m := event.NewManager(c)
		var colls []*event.HistoryCollector
		for i := range 32 {
			coll, err := m.CreateCollectorForEvents(ctx, types.EventFilterSpec{})
			if err != nil {
				t.Fatalf("collector %d: %v", i, err)
			}
			colls = append(colls, coll)
		}
		if _, err := m.CreateCollectorForEvents(ctx, types.EventFilterSpec{}); err == nil {
			t.Fatal("a 33rd collector was created; vCenter allows 32")
		}
		if err := colls[0].Destroy(ctx); err != nil {
			t.Fatal(err)
		}
		if n := l.Collectors(); n != 31 {
			t.Errorf("%d collectors after a destroy, want 31", n)
		}
		_, err := colls[0].ReadNextEvents(ctx, 10)
		if !isNotFound(err) {
			t.Errorf("reading a destroyed collector: %v, want ManagedObjectNotFound", err)
		}
		if _, err := m.CreateCollectorForEvents(ctx, types.EventFilterSpec{}); err != nil {
			t.Errorf("creating after a destroy: %v", err)
		}
	})
}

func isNotFound(err error) bool {
	if err == nil || !soap.IsSoapFault(err) {
		return false
	}
	switch soap.ToSoapFault(err).VimFault().(type) {
	case types.ManagedObjectNotFound, *types.ManagedObjectNotFound:
		return true
	}
	return false
}

func TestEventLogRetention(t *testing.T) {
	eventLogTest(t, 100, func(ctx context.Context, sim *simulator.Context, c *vim25.Client, l *vcsim.EventLog) {
		second := vcsim.NewEventLog(sim, 0)
		if second.Reference() == l.Reference() {
			t.Fatalf("two event logs share %s", l.Reference())
		}
		vms := vcsim.VMRefs(sim)
		coll, err := event.NewManager(c).CreateCollectorForEvents(ctx, types.EventFilterSpec{})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = coll.Destroy(ctx) }()
		if _, err := l.SeedCloneEvents(sim, 150, vms, seedStart, time.Second); err != nil {
			t.Fatal(err)
		}
		if n := l.Len(); n != 100 {
			t.Errorf("log holds %d, want 100", n)
		}
		got, err := coll.ReadNextEvents(ctx, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if k := keys(got); len(k) != 100 || k[0] != 51 || k[99] != 150 {
			t.Errorf("read %d events, keys %v..., want 51..150", len(k), k[:min(3, len(k))])
		}
		if n := second.Len(); n != 0 {
			t.Errorf("the second log holds %d events, want 0", n)
		}
	})
}

// BenchmarkSeedCloneEvents seeds 20,000 events into a fresh log per op.
func BenchmarkSeedCloneEvents(b *testing.B) {
	model := simulator.VPX()
	model.Machine = 50
	if err := model.Create(); err != nil {
		b.Fatal(err)
	}
	defer model.Remove()
	sim := model.Service.Context
	vms := vcsim.VMRefs(sim)
	b.ReportAllocs()
	for b.Loop() {
		l := vcsim.NewEventLog(sim, 0)
		if _, err := l.SeedCloneEvents(sim, 20000, vms, seedStart, time.Second); err != nil {
			b.Fatal(err)
		}
		if l.Len() != 20000 {
			b.Fatalf("log holds %d", l.Len())
		}
	}
}
