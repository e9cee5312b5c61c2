package reconcile_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/swarm"
	"github.com/vmreconcile/vmreconcile/swarmtest"
)

// TestRealSwarmNoVCenter runs the no-vCenter audit at library level against real
// engines: swarm.Observe through the manager, then reconcile.Reconcile with a
// snapshot that holds the swarm alone.
//
//   - healthy: a manager and a worker give two machines and no finding;
//   - clone: a copy of the worker's data root booted as another engine
//     answers as the worker's node; the result is one shared-node-id over the
//     two machines, naming both, and with the healthy run as history, the
//     worker as the original.
//
// In swarmtest every engine connects from 127.0.0.1 (the manager sees the
// loopback source address), so the address tells no machine apart: the
// hostnames (set by unshare -u) and the clone's 1-CPU pinning do.
func TestRealSwarmNoVCenter(t *testing.T) {
	swarmtest.Require(t)
	t.Parallel()
	began := time.Now()
	c := swarmtest.NewCluster(t, swarmtest.Options{Workers: []swarmtest.EngineOptions{{Hostname: "wk"}}})
	wk := c.Workers[0]
	cli, err := swarm.NewClientTLS(c.Manager.Host, false, "", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	observe := func(window time.Duration) reconcile.Snapshot {
		t.Helper()
		sw, err := swarm.Observe(t.Context(), cli, swarm.ObserveOptions{Lookback: time.Since(began) + time.Minute, Window: window, Interval: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return reconcile.Snapshot{CollectedAt: sw.ObservedTo, Swarms: []reconcile.Swarm{sw}}
	}

	healthy := observe(30 * time.Second)
	hist := reconcile.History{Nodes: map[string][]reconcile.Description{}}
	t.Run("healthy", func(t *testing.T) {
		res := reconcile.Reconcile(healthy, reconcile.History{})
		if len(res.Findings) != 0 || res.Summary.Highest != "" {
			t.Errorf("healthy swarm: findings %+v", res.Findings)
		}
		if len(res.Machines) != 2 || res.Summary.Machines != 2 {
			t.Fatalf("healthy swarm: machines %+v, want the manager and the worker", res.Machines)
		}
		for _, e := range []*swarmtest.Engine{c.Manager, wk} {
			i := slices.IndexFunc(res.Machines, func(m reconcile.Machine) bool { return m.Node == e.NodeID })
			if i < 0 || !slices.Equal(res.Machines[i].Hostnames, []string{e.Name}) || res.Machines[i].Label != e.Name || len(res.Machines[i].CPUs) != 1 {
				t.Errorf("machine of %s (%s): %+v", e.Name, e.NodeID, res.Machines)
			}
		}
	})
	for _, sw := range healthy.Swarms {
		for _, n := range sw.Nodes {
			hist.Nodes[n.ID] = n.Descriptions
		}
	}

	clone := c.Clone(t, wk, "clone", true)
	if clone.NodeID != wk.NodeID {
		t.Fatalf("clone joined as %s, want the worker's node ID %s", clone.NodeID, wk.NodeID)
	}
	snap := observe(20 * time.Second)
	t.Run("clone", func(t *testing.T) {
		for _, h := range []reconcile.History{{}, hist} {
			res := reconcile.Reconcile(snap, h)
			if len(res.Findings) != 1 {
				t.Fatalf("findings %+v, want one shared-node-id", res.Findings)
			}
			f := res.Findings[0]
			if f.Kind != reconcile.KindSharedNodeID || f.Severity != reconcile.Critical || f.NodeID != wk.NodeID || len(f.VMs) != 0 || len(f.VMRefs) != 0 || f.Original != "" {
				t.Fatalf("finding %+v", f)
			}
			if len(f.Machines) != 2 {
				t.Fatalf("finding over %d machines, want 2: %+v", len(f.Machines), f.Machines)
			}
			labels := map[string]string{} // hostname → label
			for _, m := range f.Machines {
				if len(m.Hostnames) != 1 || m.Node != wk.NodeID {
					t.Errorf("machine %+v", m)
				}
				labels[strings.Join(m.Hostnames, "/")] = m.Label
			}
			if labels["wk"] == "" || labels["clone"] == "" {
				t.Fatalf("machines %+v, want wk and clone", f.Machines)
			}
			ev := strings.Join(f.Evidence, "\n")
			for _, s := range []string{
				"hostname wk (addr 127.0.0.1", "hostname clone (addr 127.0.0.1, 1 CPU",
				"log in to the machine named ", "the machine named wk", "the machine named clone",
				"compare /var/lib/docker/swarm/certificates/swarm-node.crt", "shows CN=" + wk.NodeID,
				"differ in hostname (",
			} {
				if !strings.Contains(ev, s) {
					t.Errorf("evidence lacks %q:\n%s", s, ev)
				}
			}
			switch f.OriginalMachine {
			case labels["wk"]:
				if !strings.HasPrefix(f.Remedy, "Leave "+labels["wk"]+", the original, alone.") || !strings.Contains(f.Remedy, "On "+labels["clone"]+": ") {
					t.Errorf("remedy: %s", f.Remedy)
				}
			case "":
				// With the healthy run as history the worker answered alone
				// for 30 s and more; only turns of over 15 s leave it open,
				// and then the evidence must say so.
				if h.Nodes != nil && !strings.Contains(ev, "the evidence cannot tell which machine is the original: "+labels["wk"]+" answered alone for only") {
					t.Errorf("with the healthy run as history the original is undetermined:\n%s", ev)
				}
			default:
				t.Errorf("original %q: the clone named the original\n%s", f.OriginalMachine, ev)
			}
			if strings.Contains(f.Remedy, "docker node rm") || !strings.Contains(f.Remedy, "Do NOT remove node "+wk.NodeID) {
				t.Errorf("remedy: %s", f.Remedy)
			}
			b, err := json.MarshalIndent(f, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), `"machines": [`) {
				t.Errorf("finding JSON without machines: %s", b)
			}
			t.Logf("history %v: %s", h.Nodes != nil, b)
		}
	})
}
