package swarm

import (
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api"

	"github.com/docker/docker/api/types/versions"
	"github.com/docker/docker/client"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/swarmtest"
)

// nodeByID returns the observed node with the given ID.
func nodeByID(t *testing.T, sw reconcile.Swarm, id string) reconcile.Node {
	t.Helper()
	for _, n := range sw.Nodes {
		if n.ID == id {
			return n
		}
	}
	t.Fatalf("node %s not observed; nodes: %+v", id, sw.Nodes)
	return reconcile.Node{}
}

// managerClient builds the client the way the tool does, from a -H value
// (DOCKER_TLS_VERIFY or DOCKER_API_VERSION in the environment would apply).
func managerClient(t *testing.T, host string) *client.Client {
	t.Helper()
	cli, err := NewClientTLS(host, false, "", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// TestRealSwarmHealthy observes a manager and a worker: two nodes, one
// identity each, no flips, whether from one sample or across a short window,
// with replayed events (create events without a name included).
func TestRealSwarmHealthy(t *testing.T) {
	swarmtest.Require(t)
	t.Parallel()
	c := swarmtest.NewCluster(t, swarmtest.Options{Workers: []swarmtest.EngineOptions{{Hostname: "wk"}}})
	cli := managerClient(t, c.Manager.Host)

	for _, opts := range []ObserveOptions{
		{},
		{Window: 2 * time.Second, Interval: 500 * time.Millisecond},
	} {
		sw, err := Observe(t.Context(), cli, opts)
		if err != nil {
			t.Fatal(err)
		}
		// The client negotiates the engine's API version down to what both
		// speak: 1.41 against Debian's dockerd 20.10, the client's own
		// maximum against a newer engine (Engine 29 speaks 1.56).
		sv, err := cli.ServerVersion(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		want := sv.APIVersion
		if versions.GreaterThan(want, api.DefaultVersion) {
			want = api.DefaultVersion
		}
		if v := cli.ClientVersion(); v != want {
			t.Errorf("negotiated API version %s against an engine of API %s, want %s", v, sv.APIVersion, want)
		}
		t.Logf("engine %s (API %s), negotiated API %s", sv.Version, sv.APIVersion, cli.ClientVersion())
		info, err := cli.SwarmInspect(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if sw.Endpoint != c.Manager.Host || sw.ClusterID != info.ID {
			t.Errorf("endpoint %q cluster %q, want %q and %q", sw.Endpoint, sw.ClusterID, c.Manager.Host, info.ID)
		}
		wantSamples := 1
		if opts.Window > 0 {
			wantSamples = 4
		}
		if sw.Samples < wantSamples || sw.Events == 0 {
			t.Errorf("window %s: %d samples, %d events; want >= %d samples and the replayed join events",
				opts.Window, sw.Samples, sw.Events, wantSamples)
		}
		if len(sw.Nodes) != 2 {
			t.Fatalf("observed %d nodes, want 2: %+v", len(sw.Nodes), sw.Nodes)
		}
		for _, e := range []*swarmtest.Engine{c.Manager, c.Workers[0]} {
			n := nodeByID(t, sw, e.NodeID)
			if len(n.Descriptions) != 1 || n.Flips() != 0 {
				t.Errorf("window %s: node %s (%s): %d descriptions, %d flips; want 1 and 0: %+v",
					opts.Window, n.ID, e.Name, len(n.Descriptions), n.Flips(), n.Descriptions)
				continue
			}
			d := n.Descriptions[0]
			if d.Hostname != e.Name || d.EventsOnly || d.NanoCPUs <= 0 || d.MemoryBytes <= 0 || d.EngineVersion == "" || d.Addr == "" {
				t.Errorf("node %s description %+v: want %s with full resources", n.ID, d, e.Name)
			}
			if n.State != "ready" || n.Availability != "active" {
				t.Errorf("node %s state %q availability %q", n.ID, n.State, n.Availability)
			}
		}
		if r := nodeByID(t, sw, c.Manager.NodeID).Role; r != "manager" {
			t.Errorf("manager role %q", r)
		}
	}

	// A worker is not a manager: Observe must say so, naming the host.
	_, err := Observe(t.Context(), managerClient(t, c.Workers[0].Host), ObserveOptions{})
	if !IsNotManager(err) {
		t.Errorf("Observe on the worker: %v, want a not-a-swarm-manager error", err)
	}

	// CheckManager (config validate -connect) says the same, read only.
	info, err := cli.SwarmInspect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	m, err := CheckManager(t.Context(), cli)
	if err != nil || m.ClusterID != info.ID || m.Name != c.Manager.Name || m.Endpoint != c.Manager.Host || m.EngineVersion == "" {
		t.Errorf("CheckManager(manager) = %+v, %v; want cluster %s, name %s", m, err, info.ID, c.Manager.Name)
	}
	if _, err := CheckManager(t.Context(), managerClient(t, c.Workers[0].Host)); !IsNotManager(err) || !strings.Contains(err.Error(), c.Workers[0].Host) {
		t.Errorf("CheckManager(worker) = %v, want a not-a-swarm-manager error naming the host", err)
	}
}

// TestRealSwarmClone clones the worker's data root onto a 1-CPU engine with
// another hostname and checks that Observe catches the node ID flipping
// between the two identities.
func TestRealSwarmClone(t *testing.T) {
	swarmtest.Require(t)
	t.Parallel()
	began := time.Now()
	c := swarmtest.NewCluster(t, swarmtest.Options{Workers: []swarmtest.EngineOptions{{Hostname: "wk"}}})
	wk := c.Workers[0]
	clone := c.Clone(t, wk, "clone", true)
	if clone.NodeID != wk.NodeID {
		t.Fatalf("clone joined as %s, want the worker's node ID %s", clone.NodeID, wk.NodeID)
	}
	cli := managerClient(t, c.Manager.Host)

	sw, err := Observe(t.Context(), cli, ObserveOptions{
		Lookback: time.Since(began) + time.Minute,
		Window:   15 * time.Second,
		Interval: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if sw.Samples < 15 {
		t.Errorf("%d samples in a 15s window at 1s, want >= 15", sw.Samples)
	}
	if len(sw.Nodes) != 2 {
		t.Errorf("observed %d nodes, want 2 (the clone shares the worker's ID): %+v", len(sw.Nodes), sw.Nodes)
	}
	mgr := nodeByID(t, sw, c.Manager.NodeID)
	if len(mgr.Descriptions) != 1 || mgr.Flips() != 0 {
		t.Errorf("manager node: %d descriptions, %d flips, want 1 and 0", len(mgr.Descriptions), mgr.Flips())
	}

	n := nodeByID(t, sw, wk.NodeID)
	hosts := map[string]reconcile.Description{}
	for _, d := range n.Descriptions {
		hosts[d.Hostname] = d
	}
	t.Logf("node %s: %d descriptions, %d flips, %d samples, %d events", n.ID, len(n.Descriptions), n.Flips(), sw.Samples, sw.Events)
	for _, d := range n.Descriptions {
		t.Logf("  %-6s cpus=%d mem=%dMiB addr=%s seen=%d eventsOnly=%v", d.Hostname, d.CPUs(), d.MemoryMB(), d.Addr, d.Seen, d.EventsOnly)
	}
	if len(n.Descriptions) != 2 || len(hosts) != 2 {
		t.Fatalf("worker node: descriptions %+v, want exactly wk and clone", n.Descriptions)
	}
	if _, ok := hosts["wk"]; !ok {
		t.Errorf("no description with the worker's hostname: %+v", n.Descriptions)
	}
	cd, ok := hosts["clone"]
	if !ok {
		t.Fatalf("no description with the clone's hostname: %+v", n.Descriptions)
	}
	if n.Flips() < 2 {
		t.Errorf("worker node flipped %d times, want >= 2: %+v", n.Flips(), n.Timeline)
	}
	// The clone is sampled in most runs; then its 1-CPU pinning shows.
	if !cd.EventsOnly && cd.NanoCPUs != 1e9 {
		t.Errorf("clone description %+v: want 1 CPU (taskset)", cd)
	}
	if wd := hosts["wk"]; !wd.EventsOnly && !cd.EventsOnly && wd.NanoCPUs == cd.NanoCPUs {
		t.Logf("worker and clone report the same NanoCPUs %d (machine has 1 CPU?)", wd.NanoCPUs)
	}
}
