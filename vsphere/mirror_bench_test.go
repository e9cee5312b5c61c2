package vsphere

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"
)

// benchMirror starts a mirror of the benchmark inventory over a counting
// session and waits for its first sync.
func benchMirror(b *testing.B, onUpdate func(MirrorUpdate)) (*Mirror, *callCounter, func()) {
	b.Helper()
	ctx, c := benchClient(b)
	cc, calls := counting(c)
	dc, err := find.NewFinder(c).DefaultDatacenter(ctx)
	if err != nil {
		b.Fatal(err)
	}
	m, err := NewMirror([]types.ManagedObjectReference{dc.Reference()}, MirrorOptions{MaxWait: 30 * time.Second, OnUpdate: onUpdate})
	if err != nil {
		b.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(rctx, cc) }()
	sctx, scancel := context.WithTimeout(ctx, 10*time.Minute)
	defer scancel()
	if snap, err := m.Snapshot(sctx); err != nil || len(snap.VMs) != benchVMs {
		b.Fatalf("mirror: %d VMs, want %d (%v)", len(snap.VMs), benchVMs, err)
	}
	return m, calls, func() { cancel(); <-done }
}

// BenchmarkTriggeredAudit is the daemon's cost of one change: a VM is powered
// on or off (outside the timed region's vCenter-call count), the change
// arrives on the mirror's stream, and the audit reads the mirror's snapshot.
// Reported: vCenter calls the mirror made per change (calls/op), the time
// from the task's completion to the snapshot (ns/op), CPU of the whole
// process (client and vcsim) per op.
func BenchmarkTriggeredAudit(b *testing.B) {
	ctx, c := benchClient(b)
	changed := make(chan string, 16)
	m, calls, stop := benchMirror(b, func(u MirrorUpdate) {
		for _, ch := range u.Changes {
			changed <- ch.Ref
		}
	})
	defer stop()
	vms, err := find.NewFinder(c).VirtualMachineList(ctx, "*")
	if err != nil {
		b.Fatal(err)
	}
	before := calls.total()
	var trigger time.Duration
	cpu := cpuTime()
	i := 0
	for b.Loop() {
		vm := vms[i%len(vms)]
		i++
		b.StopTimer()
		toggle(ctx, b, vm)
		b.StartTimer()
		t0 := time.Now()
		for ref := range changed {
			if ref == vm.Reference().Value {
				break
			}
		}
		snap, err := m.Snapshot(ctx)
		if err != nil || len(snap.VMs) != benchVMs {
			b.Fatalf("snapshot: %d VMs, %v", len(snap.VMs), err)
		}
		trigger += time.Since(t0)
	}
	b.ReportMetric(float64(calls.total()-before)/float64(b.N), "calls/op")
	b.ReportMetric(float64(trigger)/float64(b.N), "trigger-to-result-ns/op")
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

func toggle(ctx context.Context, b *testing.B, vm *object.VirtualMachine) {
	st, err := vm.PowerState(ctx)
	if err != nil {
		b.Fatal(err)
	}
	task, err := vm.PowerOff(ctx)
	if st != types.VirtualMachinePowerStatePoweredOn {
		task, err = vm.PowerOn(ctx)
	}
	if err != nil {
		b.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkMirrorSnapshot is an audit's read of a synced mirror: no vCenter
// call, the inventory rebuilt from the decoded VMs.
func BenchmarkMirrorSnapshot(b *testing.B) {
	ctx, _ := benchClient(b)
	m, calls, stop := benchMirror(b, nil)
	defer stop()
	before := calls.total()
	b.ReportAllocs()
	for b.Loop() {
		if snap, err := m.Snapshot(ctx); err != nil || len(snap.VMs) != benchVMs {
			b.Fatalf("snapshot: %d VMs, %v", len(snap.VMs), err)
		}
	}
	b.ReportMetric(float64(calls.total()-before)/float64(b.N), "calls/op")
}

// BenchmarkMirrorIdle measures what a synced mirror costs when nothing
// changes: the process CPU over one second (client waiting on
// WaitForUpdatesEx, and vcsim's wait loop) as a fraction of a core, and the
// heap the mirror holds.
func BenchmarkMirrorIdle(b *testing.B) {
	benchClient(b) // the fixture is not the mirror's
	runtime.GC()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	m, _, stop := benchMirror(b, nil)
	defer stop()
	runtime.GC()
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	var busy time.Duration
	for b.Loop() {
		cpu := cpuTime()
		time.Sleep(time.Second)
		busy += cpuTime() - cpu
	}
	b.ReportMetric(float64(busy)/float64(b.N)/float64(time.Second)*100, "%core")
	b.ReportMetric(float64(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc))/(1<<20), "mirror-heap-MB")
	runtime.KeepAlive(m)
}
