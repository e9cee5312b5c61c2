// Package collect runs the collectors — vSphere inventory and lineage, swarm
// observation — side by side and assembles their output into one
// reconcile.Snapshot. It is the one collection path shared by `audit`,
// `demo`, the daemon and `preclone`.
package collect

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/client"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/kube"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/swarm"
	"github.com/vmreconcile/vmreconcile/vsphere"
)

// VCenter is one connected vCenter and what to inventory in it.
type VCenter struct {
	Name   string // host name, for reports (never a URL with credentials)
	Client *vim25.Client
	// Roots are the datacenters (or the root folder) to inventory.
	Roots   []types.ManagedObjectReference
	Include []string
	Exclude []string
	// Mirror, when set, is the daemon's live mirror of this vCenter: the
	// collection reads it (no vCenter call) instead of collecting.
	Mirror *vsphere.Mirror
}

// Swarm is one connected swarm manager.
type Swarm struct {
	Name   string
	Client client.APIClient
}

// Kube is one connected Kubernetes cluster.
type Kube struct {
	Name   string
	Client *kube.Client
}

// Sources are the connected sources of one collection.
type Sources struct {
	VCenters   []VCenter
	Swarms     []Swarm
	Kubernetes []Kube
}

// Options tune a collection.
type Options struct {
	Observe swarm.ObserveOptions
	// Progress, when set, is told what is going on (for a terminal).
	Progress func(format string, args ...any)
	// KubePrior, when set, returns the Node sightings a follower of the
	// Kubernetes cluster name made before this collection (the daemon).
	KubePrior func(name string) []kube.Observation
}

// SourceError is a collection failure of one source; Source names it
// ("vcenter vc1.example.com", "swarm tcp://mgr:2376").
type SourceError struct {
	Source string
	Err    error
}

func (e *SourceError) Error() string { return e.Source + ": " + e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// Snapshot collects every source concurrently. The vSphere side and the swarm
// side overlap in time: swarm observation may take a window of seconds, and
// the inventory is collected meanwhile. The first source error is returned;
// a partial snapshot is never returned as if it were whole.
func Snapshot(ctx context.Context, src Sources, opts Options) (reconcile.Snapshot, error) {
	vcs, sws := src.VCenters, src.Swarms
	progress := serialized(opts.Progress)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		first error
		snap  = reconcile.Snapshot{CollectedAt: time.Now().UTC()}
		// observing counts swarm observations still running, so that the
		// progress line says what the collection is waiting for.
		observing atomic.Int32
		vcLeft    atomic.Int32
	)
	vcLeft.Store(int32(len(vcs)))
	observing.Store(int32(len(sws) + len(src.Kubernetes)))
	fail := func(source string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = &SourceError{Source: source, Err: err}
			cancel()
		}
	}
	for _, vc := range vcs {
		snap.VCenters = append(snap.VCenters, vc.Name)
		// A saved remediation plan is bound to the vCenter's instance UUID.
		if id := vc.Client.ServiceContent.About.InstanceUuid; id != "" {
			if snap.VCenterUUIDs == nil {
				snap.VCenterUUIDs = map[string]string{}
			}
			snap.VCenterUUIDs[vc.Name] = id
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			vms, err := inventory(ctx, vc, progress)
			if err != nil {
				fail("vcenter "+vc.Name, err)
				return
			}
			if vcLeft.Add(-1) == 0 && observing.Load() > 0 && opts.Observe.Window > 0 {
				progress("inventory done; observing the swarm for its %s window", opts.Observe.Window)
			}
			mu.Lock()
			snap.VMs = append(snap.VMs, vms...)
			mu.Unlock()
		}()
	}
	for _, sw := range sws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			progress("observing swarm %s", sw.Name)
			obs, err := swarm.Observe(ctx, sw.Client, opts.Observe)
			observing.Add(-1)
			if err != nil {
				fail("swarm "+sw.Name, err)
				return
			}
			mu.Lock()
			snap.Swarms = append(snap.Swarms, obs)
			mu.Unlock()
		}()
	}
	for _, k := range src.Kubernetes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			progress("observing Kubernetes cluster %s", k.Name)
			ko := kube.ObserveOptions{Lookback: opts.Observe.Lookback, Window: opts.Observe.Window}
			if opts.KubePrior != nil {
				ko.Prior = opts.KubePrior(k.Name)
			}
			cl, err := kube.Observe(ctx, k.Client, ko)
			observing.Add(-1)
			if err != nil {
				fail("kubernetes "+k.Name, err)
				return
			}
			mu.Lock()
			snap.Kubernetes = append(snap.Kubernetes, cl)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if first != nil {
		return reconcile.Snapshot{}, first
	}
	if err := ctx.Err(); err != nil {
		return reconcile.Snapshot{}, err
	}
	// Goroutines finish in any order: sort so that the snapshot is deterministic.
	sortSnapshot(&snap)
	return snap, nil
}

// inventory collects one vCenter: VMs and templates of every root, and the
// lineage that vCenter's events still know.
func inventory(ctx context.Context, vc VCenter, progress func(string, ...any)) ([]reconcile.VM, error) {
	if vc.Mirror != nil {
		progress("reading the live mirror of %s", vc.Name)
		snap, err := vc.Mirror.Snapshot(ctx)
		if err != nil {
			return nil, err
		}
		return withVCenter(vsphere.ResolveLineage(snap.VMs, snap.Lineage), vc.Name), nil
	}
	var all []reconcile.VM
	lineage := map[string]reconcile.Lineage{}
	for _, root := range vc.Roots {
		progress("listing VMs in %s", vc.Name)
		vms, err := vsphere.Inventory(ctx, vc.Client, root, vsphere.InventoryOptions{Include: vc.Include, Exclude: vc.Exclude})
		if err != nil {
			return nil, fmt.Errorf("inventory: %w", err)
		}
		progress("reading clone events in %s", vc.Name)
		lin, err := vsphere.Lineage(ctx, vc.Client, root, vsphere.LineageOptions{})
		if err != nil {
			return nil, fmt.Errorf("clone events: %w", err)
		}
		all = append(all, vms...)
		for ref, l := range lin {
			lineage[ref] = l
		}
	}
	return withVCenter(vsphere.ResolveLineage(all, lineage), vc.Name), nil
}

func withVCenter(vms []reconcile.VM, name string) []reconcile.VM {
	for i := range vms {
		vms[i].VCenter = name
	}
	return vms
}

// serialized calls p one call at a time (the sources report from their own
// goroutines); a no-op when p is nil.
func serialized(p func(string, ...any)) func(string, ...any) {
	if p == nil {
		return func(string, ...any) {}
	}
	var mu sync.Mutex
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		p(format, args...)
	}
}

// sortSnapshot orders what goroutines added in any order, so that the
// snapshot is deterministic.
func sortSnapshot(snap *reconcile.Snapshot) {
	sort.Slice(snap.VMs, func(i, j int) bool {
		if snap.VMs[i].VCenter != snap.VMs[j].VCenter {
			return snap.VMs[i].VCenter < snap.VMs[j].VCenter
		}
		return snap.VMs[i].Path < snap.VMs[j].Path
	})
	sort.Slice(snap.Swarms, func(i, j int) bool { return snap.Swarms[i].Endpoint < snap.Swarms[j].Endpoint })
	sort.Slice(snap.Kubernetes, func(i, j int) bool { return snap.Kubernetes[i].Name < snap.Kubernetes[j].Name })
}
