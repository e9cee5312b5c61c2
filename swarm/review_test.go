package swarm

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

// A node whose Spec.Annotations.Name is set: dockerd names its events by that
// name, not by the hostname, so they carry no identity.
func TestBuildNodesSpecNamedEvents(t *testing.T) {
	named := func(o Observation) Observation { o.SpecName = "db-primary"; return o }
	got := BuildNodes([]Observation{
		event(-10, "n1", "db-primary"),
		named(list(0, "n1", "wk", 2, "10.0.0.5")),
		event(1, "n1", "db-primary"),
		named(list(2, "n1", "wk", 2, "10.0.0.5")),
		event(3, "n1", "db-primary"),
	})
	want := []reconcile.Node{worker(
		[]reconcile.Description{desc("wk", 2, "10.0.0.5", 0, 2, 2)},
		sight(0, 0, "list"),
	)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("BuildNodes:\n got %+v\nwant %+v", got, want)
	}
	if r := reconcile.Reconcile(reconcile.Snapshot{VCenters: []string{"vc1"}, Swarms: []reconcile.Swarm{{ClusterID: "c", Nodes: got}}}, reconcile.History{}); len(r.Findings) != 1 || r.Findings[0].Kind != reconcile.KindNodeWithoutVM {
		t.Errorf("findings %+v: want only node-without-vm (no flapping)", r.Findings)
	}

	// Renamed once while the spec name is the old hostname: every later
	// event still says "old"; it must not bring the old identity back.
	oldNamed := func(o Observation) Observation { o.SpecName = "old"; return o }
	got = BuildNodes([]Observation{
		oldNamed(list(0, "n1", "old", 2, "10.0.0.5")),
		event(1, "n1", "old"),
		oldNamed(list(2, "n1", "new", 2, "10.0.0.5")),
		event(3, "n1", "old"),
		oldNamed(list(4, "n1", "new", 2, "10.0.0.5")),
	})
	if len(got) != 1 || got[0].Flips() != 1 {
		t.Errorf("renamed once with a spec name: %+v, want 1 flip", got)
	}
}

func TestManagerSkew(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		sys  string
		rtt  time.Duration
		want time.Duration
	}{
		{"no SystemTime", "", 0, 0},
		{"garbage", "yesterday", 0, 0},
		{"in sync", t0.Add(5 * time.Millisecond).Format(time.RFC3339Nano), 10 * time.Millisecond, 0},
		{"within the round trip", t0.Add(-5 * time.Millisecond).Format(time.RFC3339Nano), 20 * time.Millisecond, 0},
		{"manager 30s behind", t0.Add(-30 * time.Second).Format(time.RFC3339Nano), 0, -30 * time.Second},
		{"manager 2s ahead, 100ms call", t0.Add(2*time.Second + 50*time.Millisecond).Format(time.RFC3339Nano), 100 * time.Millisecond, 2 * time.Second},
	} {
		if got := managerSkew(c.sys, t0, t0.Add(c.rtt)); got != c.want {
			t.Errorf("%s: managerSkew = %s, want %s", c.name, got, c.want)
		}
	}
}

// TestObserveSkewedManagerReplay: the manager's clock runs 30s behind ours.
// The replay must be asked for in its clock, and its events come back in ours.
func TestObserveSkewedManagerReplay(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	const skew = -30 * time.Second
	mgr := func(d time.Duration) time.Time { return now.Add(d + skew) } // manager clock
	f := &fakeManager{
		host: "unix:///run/docker.sock",
		info: managerInfo(),
		replay: []events.Message{
			nodeEvent(mgr(-5*time.Minute), events.ActionUpdate, "wk1", "wk"),
			nodeEvent(mgr(-time.Minute), events.ActionUpdate, "wk1", "clone"),
		},
		nodes: func(int) []swarm.Node { return []swarm.Node{node("wk1", "wk", 2, "10.0.0.5", swarm.NodeRoleWorker)} },
	}
	f.info.SystemTime = mgr(0).Format(time.RFC3339Nano)
	got, err := Observe(t.Context(), f, ObserveOptions{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if f.eventOpts.Since != timestamp(mgr(-10*time.Minute)) || f.eventOpts.Until != timestamp(mgr(0)) {
		t.Errorf("events since %q until %q, want the manager's now-10m and now (%q, %q)", f.eventOpts.Since, f.eventOpts.Until, timestamp(mgr(-10*time.Minute)), timestamp(mgr(0)))
	}
	if !got.ObservedFrom.Equal(now.Add(-10 * time.Minute)) {
		t.Errorf("observed from %v, want our now-10m", got.ObservedFrom)
	}
	wk := got.Nodes[0]
	if len(wk.Timeline) != 3 || !wk.Timeline[0].Time.Equal(now.Add(-5*time.Minute)) || !wk.Timeline[1].Time.Equal(now.Add(-time.Minute)) {
		t.Errorf("timeline %+v: want the events at our -5m and -1m", wk.Timeline)
	}
}

// renamingManager renames node wk1 from "old" to "new" right after answering
// the first NodeList; its clock runs behind ours, so the rename's event
// carries a time before that first sample.
type renamingManager struct {
	*fakeManager
	skew time.Duration

	mu       sync.Mutex
	calls    int
	renameAt time.Time
}

func (m *renamingManager) Info(context.Context) (system.Info, error) {
	i := managerInfo()
	i.SystemTime = time.Now().Add(m.skew).Format(time.RFC3339Nano)
	return i, nil
}

func (m *renamingManager) NodeList(context.Context, swarm.NodeListOptions) ([]swarm.Node, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.calls == 1 {
		time.Sleep(20 * time.Millisecond) // the manager read its store at the start of the call
		m.renameAt = time.Now()
		return []swarm.Node{node("wk1", "old", 2, "10.0.0.5", swarm.NodeRoleWorker)}, nil
	}
	return []swarm.Node{node("wk1", "new", 2, "10.0.0.5", swarm.NodeRoleWorker)}, nil
}

func (m *renamingManager) Events(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error) {
	msgs, errs := make(chan events.Message), make(chan error, 1)
	go func() {
		time.Sleep(150 * time.Millisecond) // after the first sample
		m.mu.Lock()
		ev := nodeEvent(m.renameAt.Add(-5*time.Millisecond).Add(m.skew), events.ActionUpdate, "wk1", "new")
		m.mu.Unlock()
		select {
		case msgs <- ev:
			errs <- nil
		case <-ctx.Done():
			errs <- ctx.Err()
		}
	}()
	return msgs, errs
}

// TestObserveRenameWithSkewedManager: a node renamed once during the window,
// observed through a manager whose clock is 2s behind, shows one flip, not
// old → new → old → new (which reconcile reports as node-flapping).
func TestObserveRenameWithSkewedManager(t *testing.T) {
	for _, skew := range []time.Duration{0, -2 * time.Second} {
		m := &renamingManager{fakeManager: &fakeManager{host: "unix:///run/docker.sock"}, skew: skew}
		got, err := Observe(t.Context(), m, ObserveOptions{Window: 400 * time.Millisecond, Interval: 100 * time.Millisecond, Lookback: -1})
		if err != nil {
			t.Fatal(err)
		}
		wk := got.Nodes[0]
		if wk.Flips() != 1 {
			t.Errorf("skew %s: %d flips, want 1 (old → new): %+v %+v", skew, wk.Flips(), wk.Descriptions, wk.Timeline)
		}
		vm := reconcile.VM{Name: "wk", Ref: "vm-1", PowerState: "poweredOn", GuestHostname: "new", IPs: []string{"10.0.0.5"}}
		r := reconcile.Reconcile(reconcile.Snapshot{VMs: []reconcile.VM{vm}, Swarms: []reconcile.Swarm{got}}, reconcile.History{})
		for _, f := range r.Findings {
			t.Errorf("skew %s: finding %s on a node renamed once", skew, f.Kind)
		}
	}
}
