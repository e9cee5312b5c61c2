package vsphere

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/internal/vcsim"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

// mirrorRun runs m over c in the background; stop ends it and returns Run's
// error.
func mirrorRun(ctx context.Context, m *Mirror, c *vim25.Client) (stop func() error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, c) }()
	return func() error {
		cancel()
		return <-done
	}
}

// fresh is what a one-shot audit collects: Inventory and Lineage.
func fresh(t *testing.T, ctx context.Context, c *vim25.Client, root types.ManagedObjectReference) ([]reconcile.VM, map[string]reconcile.Lineage) {
	t.Helper()
	vms, err := Inventory(ctx, c, root, InventoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lin, err := Lineage(ctx, c, root, LineageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return vms, lin
}

// converge waits until the mirror equals a fresh collect (vCenter sends
// updates shortly after the change), and fails with the difference if it
// never does.
func converge(t *testing.T, ctx context.Context, m *Mirror, c *vim25.Client, root types.ManagedObjectReference, step string) MirrorSnapshot {
	t.Helper()
	want, wantLin := fresh(t, ctx, c, root)
	var snap MirrorSnapshot
	deadline := time.Now().Add(20 * time.Second)
	for {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var err error
		snap, err = m.Snapshot(sctx)
		cancel()
		if err == nil && reflect.DeepEqual(snap.VMs, want) && reflect.DeepEqual(snap.Lineage, wantLin) {
			return snap
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("%s: snapshot: %v", step, err)
			}
			t.Fatalf("%s: mirror differs from a fresh collect:\n%s", step, diffVMs(snap.VMs, want, snap.Lineage, wantLin))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func diffVMs(got, want []reconcile.VM, gotLin, wantLin map[string]reconcile.Lineage) string {
	s := ""
	if len(got) != len(want) {
		s += fmt.Sprintf("%d VMs, want %d\n", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if !reflect.DeepEqual(got[i], want[i]) {
			s += fmt.Sprintf("got  %+v\nwant %+v\n", got[i], want[i])
		}
	}
	if !reflect.DeepEqual(gotLin, wantLin) {
		s += fmt.Sprintf("lineage %v\nwant    %v\n", gotLin, wantLin)
	}
	return s
}

// mirrorOps applies random changes of every kind the audit reads.
type mirrorOps struct {
	t    *testing.T
	c    *vim25.Client
	rnd  *rand.Rand
	vms  []*object.VirtualMachine
	n    int
	dc   *object.Datacenter
	fold *object.Folder
}

func (o *mirrorOps) pick() *object.VirtualMachine { return o.vms[o.rnd.IntN(len(o.vms))] }

func (o *mirrorOps) step(ctx context.Context) string {
	o.n++
	vm := o.pick()
	switch k := o.rnd.IntN(6); k {
	case 0: // clone
		cp, err := vcsim.Clone(ctx, o.c, vm.Reference(), vcsim.CloneSpec{Name: fmt.Sprintf("copy-%d", o.n), PowerOn: o.rnd.IntN(2) == 0})
		if err != nil {
			o.t.Fatal(err)
		}
		o.vms = append(o.vms, cp)
		return "clone " + vm.Reference().Value
	case 1: // rename
		if err := vcsim.Rename(ctx, o.c, vm.Reference(), fmt.Sprintf("renamed-%d", o.n)); err != nil {
			o.t.Fatal(err)
		}
		return "rename " + vm.Reference().Value
	case 2: // power
		st, err := vm.PowerState(ctx)
		if err != nil {
			o.t.Fatal(err)
		}
		task, err := vm.PowerOn(ctx)
		if st == types.VirtualMachinePowerStatePoweredOn {
			task, err = vm.PowerOff(ctx)
		}
		if err != nil {
			o.t.Fatal(err)
		}
		_ = task.Wait(ctx)
		return "power " + vm.Reference().Value
	case 3: // reconfigure CPU, memory and the guest's hostname
		spec := types.VirtualMachineConfigSpec{NumCPUs: int32(1 + o.rnd.IntN(8)), MemoryMB: int64(512 * (1 + o.rnd.IntN(8))),
			ExtraConfig: []types.BaseOptionValue{&types.OptionValue{Key: "SET.guest.hostName", Value: fmt.Sprintf("host-%d", o.n)}}}
		task, err := vm.Reconfigure(ctx, spec)
		if err != nil {
			o.t.Fatal(err)
		}
		_ = task.Wait(ctx)
		return "reconfigure " + vm.Reference().Value
	case 4: // delete (powered off first)
		if len(o.vms) < 4 {
			return "skip"
		}
		if task, err := vm.PowerOff(ctx); err == nil {
			_ = task.Wait(ctx)
		}
		task, err := vm.Destroy(ctx)
		if err != nil {
			o.t.Fatal(err)
		}
		if err := task.Wait(ctx); err != nil {
			o.t.Fatal(err)
		}
		i := 0
		for ; o.vms[i] != vm; i++ {
		}
		o.vms = append(o.vms[:i], o.vms[i+1:]...)
		return "delete " + vm.Reference().Value
	default: // rename the folder (every path in it changes)
		task, err := o.fold.Rename(ctx, fmt.Sprintf("folder-%d", o.n))
		if err != nil {
			o.t.Fatal(err)
		}
		_ = task.Wait(ctx)
		return "rename folder"
	}
}

func newMirrorOps(t *testing.T, ctx context.Context, c *vim25.Client, seed uint64) *mirrorOps {
	finder := find.NewFinder(c)
	dc, err := finder.DefaultDatacenter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	folders, err := dc.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fold, err := folders.VmFolder.CreateFolder(ctx, "nodes")
	if err != nil {
		t.Fatal(err)
	}
	o := &mirrorOps{t: t, c: c, rnd: rand.New(rand.NewPCG(seed, seed)), dc: dc, fold: fold}
	for i := range 3 {
		o.vms = append(o.vms, mustCreate(t, ctx, c, vcsim.VM{Name: fmt.Sprintf("node-%d", i), Hostname: fmt.Sprintf("node-%d", i),
			IP: fmt.Sprintf("10.0.0.%d", 10+i), PowerOn: true, ToolsRunning: true}))
	}
	return o
}

// login opens a second session on the simulator c talks to.
func login(t *testing.T, ctx context.Context, c *vim25.Client) *vim25.Client {
	t.Helper()
	u := *c.URL()
	u.User = simulator.DefaultLogin
	gc, err := govmomi.NewClient(ctx, &u, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gc.Logout(context.Background()) })
	return gc.Client
}

// TestMirrorEqualsFreshCollect applies random clones, renames, power
// changes, reconfigures, folder renames and deletions (not moves: vcsim
// reports no property change for them, see vmTreeObjectSpec), and after each
// checks that the mirror's snapshot equals a fresh Inventory and Lineage. In
// the middle the stream is lost: changes are made while it is down, and the
// mirror comes back on a new session by a re-sync that reports them.
func TestMirrorEqualsFreshCollect(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			simTest(t, nil, func(ctx context.Context, c *vim25.Client) {
				testMirrorRandom(t, ctx, c, seed)
			})
		})
	}
}

func testMirrorRandom(t *testing.T, ctx context.Context, c *vim25.Client, seed uint64) {
	ops := newMirrorOps(t, ctx, c, seed)
	root := ops.dc.Reference()
	var (
		mu      sync.Mutex
		updates []MirrorUpdate
	)
	m, err := NewMirror([]types.ManagedObjectReference{root}, MirrorOptions{MaxWait: 2 * time.Second, OnUpdate: func(u MirrorUpdate) {
		mu.Lock()
		updates = append(updates, u)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	stop := mirrorRun(ctx, m, c)
	converge(t, ctx, m, c, root, "initial sync")
	for i := range 12 {
		what := ops.step(ctx)
		converge(t, ctx, m, c, root, fmt.Sprintf("step %d (%s)", i, what))
	}

	// The stream is lost: the mirror refuses to serve stale state.
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = m.Snapshot(sctx)
	cancel()
	if !errors.Is(err, ErrMirrorNotSynced) {
		t.Fatalf("snapshot of a mirror without stream = %v, want ErrMirrorNotSynced", err)
	}
	var downOps []string
	for range 4 {
		downOps = append(downOps, ops.step(ctx))
	}
	mu.Lock()
	before := len(updates)
	mu.Unlock()

	// Back on a new session: a re-sync, which reports what changed meanwhile.
	c2 := login(t, ctx, c)
	stop = mirrorRun(ctx, m, c2)
	defer stop()
	snap := converge(t, ctx, m, c2, root, fmt.Sprintf("after reconnect (changes while down: %v)", downOps))
	if snap.Resyncs != 1 {
		t.Errorf("resyncs = %d, want 1", snap.Resyncs)
	}
	// OnUpdate runs just after the state is installed: the snapshot may
	// be live before the re-sync's update has been reported.
	var resync MirrorUpdate
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(updates)
		if n > before {
			resync = updates[before]
		}
		mu.Unlock()
		if n > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the re-sync was never reported")
		}
	}
	if !resync.Resync || resync.Initial {
		t.Errorf("first update after reconnect = %+v, want a resync", resync)
	}
	for i := range 12 {
		what := ops.step(ctx)
		converge(t, ctx, m, c2, root, fmt.Sprintf("step %d after reconnect (%s)", i, what))
	}
	mu.Lock()
	defer mu.Unlock()
	if !updates[0].Initial || len(updates[0].Changes) != 0 {
		t.Errorf("first update = %+v, want the initial sync without changes", updates[0])
	}
}

// TestMirrorStreamFailure: a failing WaitForUpdatesEx ends Run with the
// error, and the mirror then refuses snapshots, naming it.
func TestMirrorStreamFailure(t *testing.T) {
	simTest(t, nil, func(ctx context.Context, c *vim25.Client) {
		dc, err := find.NewFinder(c).DefaultDatacenter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewMirror([]types.ManagedObjectReference{dc.Reference()}, MirrorOptions{MaxWait: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		cc, calls := counting(c)
		calls.fail = "WaitForUpdatesEx"
		err = m.Run(ctx, cc)
		if err == nil || !errorsContains(err, "wait for updates: injected failure") {
			t.Fatalf("Run = %v, want the injected failure", err)
		}
		sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err = m.Snapshot(sctx)
		if !errors.Is(err, ErrMirrorNotSynced) || !errorsContains(err, "injected failure") {
			t.Fatalf("Snapshot = %v, want ErrMirrorNotSynced with the stream's error", err)
		}
		if m.Live() {
			t.Error("mirror live after a failed stream")
		}
		// The collector, views and event collectors were destroyed.
		for _, method := range []string{"DestroyPropertyCollector", "DestroyCollector"} {
			if calls.count(method) != 1 {
				t.Errorf("%s called %d times, want 1", method, calls.count(method))
			}
		}
	})
}

func errorsContains(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}

// TestMirrorCallsPerChange: once synced, a snapshot costs no call, a
// power-on arrives on the stream alone, and a clone costs its events' read.
func TestMirrorCallsPerChange(t *testing.T) {
	simTest(t, nil, func(ctx context.Context, c *vim25.Client) {
		src := mustCreate(t, ctx, c, vcsim.VM{Name: "worker-1", Hostname: "worker-1", IP: "10.0.0.11"})
		dc, err := find.NewFinder(c).DefaultDatacenter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var (
			mu      sync.Mutex
			changes []VMChange
		)
		m, err := NewMirror([]types.ManagedObjectReference{dc.Reference()}, MirrorOptions{MaxWait: time.Second, OnUpdate: func(u MirrorUpdate) {
			mu.Lock()
			changes = append(changes, u.Changes...)
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		cc, calls := counting(c)
		stop := mirrorRun(ctx, m, cc)
		defer stop()
		converge(t, ctx, m, c, dc.Reference(), "sync")
		after := func(what string, f func(), allowed map[string]int) {
			t.Helper()
			calls.mu.Lock()
			before := maps.Clone(calls.calls)
			calls.mu.Unlock()
			f()
			converge(t, ctx, m, c, dc.Reference(), what)
			calls.mu.Lock()
			defer calls.mu.Unlock()
			for method, n := range calls.calls {
				d := n - before[method]
				if d > 0 && method != "WaitForUpdatesEx" && d > allowed[method] {
					t.Errorf("%s: %d %s calls, want at most %d", what, d, method, allowed[method])
				}
			}
		}
		after("power on", func() {
			task, err := src.PowerOn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_ = task.Wait(ctx)
		}, nil)
		// The power-on is reported as a change of that VM, old and new.
		// (OnUpdate runs just after the state is installed: wait for it.)
		var on *VMChange
		for deadline := time.Now().Add(10 * time.Second); on == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			mu.Lock()
			for i := range changes {
				if c := changes[i]; c.Ref == src.Reference().Value && c.Old != nil && c.New != nil && c.New.PowerState == "poweredOn" {
					on = &c
				}
			}
			mu.Unlock()
		}
		if on == nil || on.Old.PowerState != "poweredOff" {
			t.Errorf("power-on reported as %+v, want a change from poweredOff to poweredOn", on)
		}
		// The clone's event comes in its collector's latestPage; its
		// configuration (new MACs) may move config.changeVersion in a later
		// update set than the one it entered in, and then it is read again.
		after("clone", func() { mustClone(t, ctx, c, src, vcsim.CloneSpec{Name: "worker-1-copy", PowerOn: true}) },
			map[string]int{"RetrievePropertiesEx": 1})
		if _, err := m.Snapshot(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
