package swarm

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

// list is a NodeList sighting of node id with hostname host, cpus CPUs, 4 GiB
// and address addr.
func list(sec int, id, host string, cpus int64, addr string) Observation {
	return Observation{
		Time: at(sec), NodeID: id, Source: SourceList, Hostname: host,
		NanoCPUs: cpus * 1e9, MemoryBytes: 4 << 30, Addr: addr, EngineVersion: "20.10.24",
		Role: "worker", State: "ready", Availability: "active",
	}
}

func event(sec int, id, host string) Observation {
	return Observation{Time: at(sec), NodeID: id, Source: SourceEvent, Hostname: host}
}

func desc(host string, cpus int64, addr string, first, last, seen int) reconcile.Description {
	return reconcile.Description{
		Hostname: host, NanoCPUs: cpus * 1e9, MemoryBytes: 4 << 30, Addr: addr, EngineVersion: "20.10.24",
		FirstSeen: at(first), LastSeen: at(last), Seen: seen,
	}
}

func sight(sec, d int, src string) reconcile.Sighting {
	return reconcile.Sighting{Time: at(sec), Description: d, Source: src}
}

func worker(descs []reconcile.Description, timeline ...reconcile.Sighting) reconcile.Node {
	return reconcile.Node{ID: "n1", Role: "worker", State: "ready", Availability: "active", Descriptions: descs, Timeline: timeline}
}

func TestBuildNodes(t *testing.T) {
	tests := []struct {
		name  string
		obs   []Observation
		want  []reconcile.Node
		flips int
	}{{
		name: "single identity, events attributed to the sample",
		obs: []Observation{
			event(-30, "n1", "wk"), // replayed, before any sample
			list(0, "n1", "wk", 2, "10.0.0.5"),
			event(1, "n1", "wk"),
			list(2, "n1", "wk", 2, "10.0.0.5"),
		},
		want: []reconcile.Node{worker(
			[]reconcile.Description{desc("wk", 2, "10.0.0.5", -30, 2, 4)},
			sight(-30, 0, "event"),
		)},
	}, {
		name: "renamed once: one flip, no alternation",
		obs: []Observation{
			list(0, "n1", "old", 2, "10.0.0.5"),
			list(1, "n1", "old", 2, "10.0.0.5"),
			event(2, "n1", "new"),
			list(3, "n1", "new", 2, "10.0.0.5"),
			list(4, "n1", "new", 2, "10.0.0.5"),
		},
		want: []reconcile.Node{worker(
			[]reconcile.Description{desc("old", 2, "10.0.0.5", 0, 1, 2), desc("new", 2, "10.0.0.5", 2, 4, 3)},
			sight(0, 0, "list"), sight(2, 1, "event"),
		)},
		flips: 1,
	}, {
		name: "CPU hot-add: same hostname, new description",
		obs: []Observation{
			list(0, "n1", "wk", 2, "10.0.0.5"),
			event(1, "n1", "wk"), // before the new sample: still the 2-CPU identity
			list(2, "n1", "wk", 4, "10.0.0.5"),
			event(3, "n1", "wk"), // after: the 4-CPU identity
		},
		want: []reconcile.Node{worker(
			[]reconcile.Description{desc("wk", 2, "10.0.0.5", 0, 1, 2), desc("wk", 4, "10.0.0.5", 2, 3, 2)},
			sight(0, 0, "list"), sight(2, 1, "list"),
		)},
		flips: 1,
	}, {
		name: "clone alternating A/B/A/B",
		obs: []Observation{
			list(0, "n1", "wk", 2, "10.0.0.5"),
			list(1, "n1", "clone", 1, "10.0.0.9"),
			list(2, "n1", "wk", 2, "10.0.0.5"),
			list(3, "n1", "clone", 1, "10.0.0.9"),
		},
		want: []reconcile.Node{worker(
			[]reconcile.Description{desc("wk", 2, "10.0.0.5", 0, 2, 2), desc("clone", 1, "10.0.0.9", 1, 3, 2)},
			sight(0, 0, "list"), sight(1, 1, "list"), sight(2, 0, "list"), sight(3, 1, "list"),
		)},
		flips: 3,
	}, {
		name: "event-only names mixed with samples",
		obs: []Observation{
			event(-5, "n1", ""), // create event: no name yet, ignored
			event(-4, "n1", "wk"),
			event(-3, "n1", "clone"), // the clone never answers a sample
			list(0, "n1", "wk", 2, "10.0.0.5"),
			event(1, "n1", "clone"),
			event(2, "n1", "wk"),
		},
		want: []reconcile.Node{worker(
			[]reconcile.Description{
				desc("wk", 2, "10.0.0.5", -4, 2, 3),
				{Hostname: "clone", EventsOnly: true, FirstSeen: at(-3), LastSeen: at(1), Seen: 2},
			},
			sight(-4, 0, "event"), sight(-3, 1, "event"), sight(0, 0, "list"), sight(1, 1, "event"), sight(2, 0, "event"),
		)},
		flips: 4,
	}, {
		name: "events without any sample of the node",
		obs: []Observation{
			event(0, "gone", "old-host"),
		},
		want: []reconcile.Node{{
			ID:           "gone",
			Descriptions: []reconcile.Description{{Hostname: "old-host", EventsOnly: true, FirstSeen: at(0), LastSeen: at(0), Seen: 1}},
			Timeline:     []reconcile.Sighting{sight(0, 0, "event")},
		}},
	}, {
		name: "nodes sorted by ID; role and state from the latest sample",
		obs: []Observation{
			list(0, "zz", "mgr", 2, "10.0.0.1"),
			list(0, "aa", "wk", 2, "10.0.0.5"),
			func() Observation { o := list(1, "aa", "wk", 2, "10.0.0.5"); o.State = "down"; return o }(),
		},
		want: []reconcile.Node{
			{ID: "aa", Role: "worker", State: "down", Availability: "active",
				Descriptions: []reconcile.Description{desc("wk", 2, "10.0.0.5", 0, 1, 2)},
				Timeline:     []reconcile.Sighting{sight(0, 0, "list")}},
			{ID: "zz", Role: "worker", State: "ready", Availability: "active",
				Descriptions: []reconcile.Description{desc("mgr", 2, "10.0.0.1", 0, 0, 1)},
				Timeline:     []reconcile.Sighting{sight(0, 0, "list")}},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := BuildNodes(tt.obs)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("BuildNodes:\n got %+v\nwant %+v", got, tt.want)
			}
			if f := got[0].Flips(); f != tt.flips {
				t.Errorf("Flips() = %d, want %d", f, tt.flips)
			}
			for _, n := range got {
				for i := 1; i < len(n.Timeline); i++ {
					if n.Timeline[i].Description == n.Timeline[i-1].Description || n.Timeline[i].Time.Before(n.Timeline[i-1].Time) {
						t.Errorf("node %s timeline %d: repeats or goes back in time: %+v", n.ID, i, n.Timeline)
					}
				}
			}
		})
	}
}

// TestBuildNodesOutOfOrder checks that replayed events delivered after the
// samples, or input in any order, give the same nodes as time-ordered input.
func TestBuildNodesOutOfOrder(t *testing.T) {
	ordered := []Observation{
		event(-20, "n1", "wk"),
		event(-18, "n1", "clone"),
		event(-17, "n1", "wk"),
		list(0, "n1", "wk", 2, "10.0.0.5"),
		list(0, "n2", "mgr", 2, "10.0.0.1"),
		list(1, "n1", "clone", 1, "10.0.0.9"),
		event(1, "n1", "clone"), // same instant as the sample: resolves against it
		list(2, "n1", "wk", 2, "10.0.0.5"),
	}
	want := BuildNodes(ordered)
	if len(want) != 2 || len(want[0].Descriptions) != 2 || want[0].Flips() != 4 {
		t.Fatalf("ordered input: %+v, want n1 with 2 descriptions and 4 flips", want)
	}
	if d := want[0].Descriptions[1]; d.Hostname != "clone" || d.EventsOnly || d.Seen != 3 || !d.FirstSeen.Equal(at(-18)) {
		t.Errorf("clone description %+v: want the full 1-CPU one, first seen at -18s by event, seen 3 times", d)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20 {
		shuffled := append([]Observation(nil), ordered...)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if got := BuildNodes(shuffled); !reflect.DeepEqual(got, want) {
			t.Fatalf("shuffle %d: got %+v\nwant %+v", i, got, want)
		}
	}
}

func TestBuildNodesEmpty(t *testing.T) {
	if got := BuildNodes(nil); len(got) != 0 {
		t.Errorf("BuildNodes(nil) = %+v", got)
	}
	if got := BuildNodes([]Observation{event(0, "n1", "")}); len(got) != 0 {
		t.Errorf("only an unnamed create event: got %+v, want no nodes", got)
	}
}
