package collect

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/internal/dockersim"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/swarm"
)

// world is a vcsim with `vms` VMs and a dockersim manager with `nodes` nodes.
func world(tb testing.TB, vms, nodes int) ([]VCenter, []Swarm, *dockersim.Engine) {
	tb.Helper()
	m := simulator.VPX()
	m.Datacenter = 1
	m.Cluster = 1
	m.ClusterHost = 2
	m.Host = 0
	m.Machine = vms // per cluster
	if err := m.Create(); err != nil {
		tb.Fatal(err)
	}
	s := m.Service.NewServer()
	tb.Cleanup(func() { s.Close(); m.Remove() })
	gc, err := govmomi.NewClient(context.Background(), s.URL, true)
	if err != nil {
		tb.Fatal(err)
	}
	c := gc.Client
	sim := dockersim.New(dockersim.Options{})
	if err := sim.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(sim.Close)
	sim.Populate(nodes, "node")
	dc, err := client.NewClientWithOpts(client.WithHost(sim.Host()), client.WithAPIVersionNegotiation())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { dc.Close() })
	return []VCenter{{Name: "vcsim", Client: c, Roots: []types.ManagedObjectReference{c.ServiceContent.RootFolder}}},
		[]Swarm{{Name: sim.Host(), Client: dc}}, sim
}

func TestSnapshot(t *testing.T) {
	vcs, sws, sim := world(t, 20, 30)
	var steps []string
	snap, err := Snapshot(context.Background(), Sources{VCenters: vcs, Swarms: sws}, Options{
		Observe:  swarm.ObserveOptions{Lookback: time.Minute},
		Progress: func(f string, a ...any) { steps = append(steps, fmt.Sprintf(f, a...)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.VMs) != 20 || len(snap.Swarms) != 1 || len(snap.Swarms[0].Nodes) != 31 { // + the manager itself
		t.Fatalf("snapshot: %d VMs, %d swarms", len(snap.VMs), len(snap.Swarms))
	}
	if snap.Swarms[0].ClusterID != sim.ClusterID() || snap.VCenters[0] != "vcsim" {
		t.Errorf("cluster %q vcenters %v", snap.Swarms[0].ClusterID, snap.VCenters)
	}
	for i, v := range snap.VMs {
		if v.VCenter != "vcsim" || v.Ref == "" || v.Path == "" {
			t.Errorf("vm %d: %+v", i, v)
		}
		if i > 0 && snap.VMs[i-1].Path > v.Path {
			t.Errorf("VMs not sorted by path: %s > %s", snap.VMs[i-1].Path, v.Path)
		}
	}
	if got := strings.Join(steps, "|"); !strings.Contains(got, "listing VMs in vcsim") || !strings.Contains(got, "observing swarm") {
		t.Errorf("progress = %q", got)
	}
}

// TestSnapshotSourceError: one failing source fails the whole collection,
// naming the source; no partial snapshot is returned.
func TestSnapshotSourceError(t *testing.T) {
	vcs, sws, sim := world(t, 4, 2)
	sim.SetMode(dockersim.ModeWorker)
	snap, err := Snapshot(context.Background(), Sources{VCenters: vcs, Swarms: sws}, Options{})
	var se *SourceError
	if !errors.As(err, &se) || !strings.HasPrefix(se.Source, "swarm ") || !swarm.IsNotManager(err) {
		t.Fatalf("err = %v", err)
	}
	if len(snap.VMs) != 0 || len(snap.Swarms) != 0 {
		t.Errorf("partial snapshot returned: %d VMs", len(snap.VMs))
	}
}

// BenchmarkSnapshotAndReconcile is the whole audit minus output: 2,000 VMs
// in vcsim, 1,000 nodes in dockersim, collected side by side and reconciled.
func BenchmarkSnapshotAndReconcile(b *testing.B) {
	vcs, sws, _ := world(b, 2000, 1000)
	b.ResetTimer()
	for b.Loop() {
		snap, err := Snapshot(context.Background(), Sources{VCenters: vcs, Swarms: sws}, Options{Observe: swarm.ObserveOptions{Lookback: time.Minute}})
		if err != nil {
			b.Fatal(err)
		}
		res := reconcile.Reconcile(snap, reconcile.History{})
		if res.Summary.VMs != 2000 || res.Summary.Nodes != 1001 {
			b.Fatalf("summary %+v", res.Summary)
		}
	}
}
