package swarm

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
)

// fakeManager is a client.APIClient that answers the calls Observe makes;
// any other call panics on the nil embedded interface.
type fakeManager struct {
	client.APIClient
	host     string
	info     system.Info
	replay   []events.Message // sent at once
	live     []events.Message // sent after liveWait
	liveWait time.Duration
	nodes    func(call int) []swarm.Node

	mu        sync.Mutex
	listCalls int
	eventOpts events.ListOptions
}

func (f *fakeManager) DaemonHost() string { return f.host }

func (f *fakeManager) Info(context.Context) (system.Info, error) { return f.info, nil }

func (f *fakeManager) SwarmInspect(context.Context) (swarm.Swarm, error) {
	return swarm.Swarm{ClusterInfo: swarm.ClusterInfo{ID: "cluster-from-inspect"}}, nil
}

func (f *fakeManager) NodeList(context.Context, swarm.NodeListOptions) ([]swarm.Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listCalls++
	return f.nodes(f.listCalls), nil
}

func (f *fakeManager) Events(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error) {
	f.mu.Lock()
	f.eventOpts = opts
	f.mu.Unlock()
	msgs, errs := make(chan events.Message), make(chan error, 1)
	go func() {
		send := func(ms []events.Message) bool {
			for _, m := range ms {
				select {
				case msgs <- m:
				case <-ctx.Done():
					errs <- ctx.Err()
					return false
				}
			}
			return true
		}
		if !send(f.replay) {
			return
		}
		if len(f.live) > 0 {
			time.Sleep(f.liveWait)
			if !send(f.live) {
				return
			}
		}
		errs <- io.EOF
	}()
	return msgs, errs
}

func managerInfo() system.Info {
	return system.Info{Name: "mgr", Swarm: swarm.Info{
		LocalNodeState: swarm.LocalNodeStateActive, ControlAvailable: true,
		Cluster: &swarm.ClusterInfo{ID: "cluster-1"},
	}}
}

func node(id, host string, cpus int64, addr string, role swarm.NodeRole) swarm.Node {
	var n swarm.Node
	n.ID = id
	n.Spec.Role = role
	n.Spec.Availability = swarm.NodeAvailabilityActive
	n.Description.Hostname = host
	n.Description.Resources.NanoCPUs = cpus * 1e9
	n.Description.Resources.MemoryBytes = 8 << 30
	n.Description.Engine.EngineVersion = "20.10.24"
	n.Status.State = swarm.NodeStateReady
	n.Status.Addr = addr
	return n
}

func nodeEvent(t time.Time, action events.Action, id, name string) events.Message {
	return events.Message{Type: events.NodeEventType, Action: action, Actor: events.Actor{ID: id, Attributes: map[string]string{"name": name}},
		Time: t.Unix(), TimeNano: t.UnixNano()}
}

func TestObserveSingleSampleWithReplay(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	f := &fakeManager{
		host: "tcp://admin:pw@mgr.example:2376",
		info: managerInfo(),
		replay: []events.Message{
			nodeEvent(now.Add(-9*time.Minute), events.ActionCreate, "wk1", ""),
			nodeEvent(now.Add(-9*time.Minute+time.Millisecond), events.ActionUpdate, "wk1", "wk"),
			nodeEvent(now.Add(-5*time.Minute), events.ActionUpdate, "wk1", "clone"),
			nodeEvent(now.Add(-4*time.Minute), events.ActionUpdate, "wk1", "wk"),
			nodeEvent(now.Add(-3*time.Minute), events.ActionRemove, "old", ""),
		},
		nodes: func(int) []swarm.Node {
			return []swarm.Node{
				node("wk1", "wk", 2, "127.0.0.1", swarm.NodeRoleWorker),
				node("mgr1", "mgr", 2, "10.0.0.1", swarm.NodeRoleManager),
			}
		},
	}
	got, err := Observe(t.Context(), f, ObserveOptions{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if got.Endpoint != "tcp://mgr.example:2376" || got.ClusterID != "cluster-1" {
		t.Errorf("endpoint %q cluster %q: want the redacted host and cluster-1", got.Endpoint, got.ClusterID)
	}
	if got.Samples != 1 || got.Events != 5 {
		t.Errorf("samples %d events %d, want 1 and 5 (every node event counts)", got.Samples, got.Events)
	}
	if !got.ObservedFrom.Equal(now.Add(-10*time.Minute)) || !got.ObservedTo.Equal(now) {
		t.Errorf("observed %v..%v, want now-10m..now", got.ObservedFrom, got.ObservedTo)
	}
	if want := timestamp(now.Add(-10 * time.Minute)); f.eventOpts.Since != want || f.eventOpts.Until != timestamp(now) {
		t.Errorf("events since %q until %q, want %q and %q", f.eventOpts.Since, f.eventOpts.Until, want, timestamp(now))
	}
	if ty := f.eventOpts.Filters.Get("type"); len(ty) != 1 || ty[0] != "node" {
		t.Errorf("event filter type=%v, want [node]", ty)
	}
	if len(got.Nodes) != 2 || got.Nodes[0].ID != "mgr1" || got.Nodes[1].ID != "wk1" {
		t.Fatalf("nodes %+v, want mgr1 and wk1 in ID order", got.Nodes)
	}
	mgr, wk := got.Nodes[0], got.Nodes[1]
	if mgr.Role != "manager" || len(mgr.Descriptions) != 1 || mgr.Flips() != 0 {
		t.Errorf("manager node %+v: want 1 description, no flips", mgr)
	}
	// The replayed flips happened before the run; the sample supplies the
	// worker's full description, the clone is known only by name.
	if wk.Role != "worker" || wk.State != "ready" || len(wk.Descriptions) != 2 || wk.Flips() != 2 {
		t.Fatalf("worker node %+v: want 2 descriptions and 2 flips", wk)
	}
	d0, d1 := wk.Descriptions[0], wk.Descriptions[1]
	if d0.Hostname != "wk" || d0.NanoCPUs != 2e9 || d0.Addr != "127.0.0.1" || d0.Seen != 3 || d0.EventsOnly {
		t.Errorf("worker description %+v: want wk, 2 CPUs, seen by 2 events and 1 sample", d0)
	}
	if d1.Hostname != "clone" || !d1.EventsOnly || d1.Seen != 1 {
		t.Errorf("clone description %+v: want events-only clone, seen once", d1)
	}
	if tl := wk.Timeline; tl[0].Source != "event" || tl[1].Description != 1 || tl[2].Description != 0 {
		t.Errorf("timeline %+v: want wk(event) -> clone -> wk", tl)
	}
}

func TestObserveWindowFollowsLiveEvents(t *testing.T) {
	f := &fakeManager{
		host:     "unix:///run/docker.sock",
		info:     managerInfo(),
		liveWait: 150 * time.Millisecond,
		nodes: func(call int) []swarm.Node {
			if call%2 == 0 {
				return []swarm.Node{node("wk1", "clone", 1, "10.0.0.9", swarm.NodeRoleWorker)}
			}
			return []swarm.Node{node("wk1", "wk", 2, "10.0.0.5", swarm.NodeRoleWorker)}
		},
	}
	f.info.Swarm.Cluster = nil // older engines: fall back to SwarmInspect
	f.live = []events.Message{nodeEvent(time.Now().Add(200*time.Millisecond), events.ActionUpdate, "wk1", "clone")}
	start := time.Now()
	got, err := Observe(t.Context(), f, ObserveOptions{Window: 400 * time.Millisecond, Interval: 100 * time.Millisecond, Lookback: -1})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 3*time.Second {
		t.Errorf("Observe took %s for a 400ms window", d)
	}
	if got.ClusterID != "cluster-from-inspect" {
		t.Errorf("cluster ID %q, want the SwarmInspect fallback", got.ClusterID)
	}
	if got.Samples < 4 || got.Samples > 7 || got.Events != 1 {
		t.Errorf("samples %d events %d: want ~5 samples in 400ms/100ms and the live event", got.Samples, got.Events)
	}
	if f.eventOpts.Since == "" || f.eventOpts.Until <= f.eventOpts.Since {
		t.Errorf("events since %q until %q: want until after since (window end)", f.eventOpts.Since, f.eventOpts.Until)
	}
	wk := got.Nodes[0]
	if len(wk.Descriptions) != 2 || wk.Flips() < 3 {
		t.Errorf("node %+v: want 2 descriptions and alternating flips", wk)
	}
	if wk.Descriptions[1].EventsOnly || wk.Descriptions[1].Seen < 3 {
		t.Errorf("clone description %+v: want the full one, sampled and named by the live event", wk.Descriptions[1])
	}
}

func TestObserveNotManager(t *testing.T) {
	for name, sw := range map[string]swarm.Info{
		"worker":   {LocalNodeState: swarm.LocalNodeStateActive, ControlAvailable: false},
		"no swarm": {LocalNodeState: swarm.LocalNodeStateInactive},
	} {
		f := &fakeManager{host: "tcp://wk.example:2376", info: system.Info{Name: "wk", Swarm: sw}}
		_, err := Observe(t.Context(), f, ObserveOptions{})
		if err == nil || !IsNotManager(err) {
			t.Fatalf("%s: err %v, want a not-a-manager error", name, err)
		}
		if msg := err.Error(); !strings.Contains(msg, "tcp://wk.example:2376") || !strings.Contains(msg, "not a swarm manager") {
			t.Errorf("%s: %q should name the host and say it is not a swarm manager", name, msg)
		}
	}
}
