// Package audit is vmreconcile's one pipeline. Data flows one way, once:
//
//	Sources.Connect → collect (vCenters and clusters side by side) → snapshot
//	→ reconcile with the history → [guest probes → reconcile] → Outcome
//
// `vmreconcile audit`, `remediate`, `preclone` and the daemon all call Run;
// what they do with the Outcome (print it, plan from it, record it) is
// theirs. Sessions are passed in (Sources), never opened twice in one
// process; the history comes from the caller's store.
package audit

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/vmware/govmomi/vim25"

	"github.com/vmreconcile/vmreconcile/collect"
	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/guest"
	"github.com/vmreconcile/vmreconcile/kube"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/swarm"
)

// Options tune one run.
type Options struct {
	Observe swarm.ObserveOptions
	// History is what earlier runs saw (the store's); zero for none.
	History reconcile.History
	// Lineage, when set, adds lineage learned earlier (the daemon's lineage
	// job) to VMs whose clone events vCenter no longer has; keyed by
	// reconcile.VMKey-style "vcenter\x00ref".
	Lineage map[string]reconcile.Lineage
	// Probe, when set, probes the VMs worth probing from inside (guest
	// operations, read only) and reconciles again with what they hold.
	Probe *Probe
	// Progress, when set, is told what is going on (for a terminal).
	Progress func(format string, args ...any)
	// KubePrior, when set, gives the Node sightings the caller's followers
	// made of each Kubernetes cluster since the last run (the daemon).
	KubePrior func(cluster string) []kube.Observation
}

// Probe says which VMs to probe and how.
type Probe struct {
	Logins      *guest.Logins
	Concurrency int
	Timeout     time.Duration // per VM
	// Select picks the VMs to probe from the first reconcile; default
	// reconcile.ProbeCandidates.
	Select func(reconcile.Snapshot, reconcile.Result) []reconcile.VM
	// Keep, when set, is given every probe (the store saves them).
	Keep func(reconcile.GuestIdentity)
}

// Outcome is one run's snapshot and result.
type Outcome struct {
	Snapshot reconcile.Snapshot
	Result   reconcile.Result
}

// Run runs the pipeline once over the sources. A source that fails fails the
// run (a *collect.SourceError naming it): a partial snapshot is never
// returned as if it were whole.
func Run(ctx context.Context, src *Sources, opts Options) (Outcome, error) {
	conn, err := src.Connect(ctx)
	if err != nil {
		return Outcome{}, err
	}
	snap, err := collect.Snapshot(ctx, conn, collect.Options{Observe: opts.Observe, Progress: opts.Progress, KubePrior: opts.KubePrior})
	if err != nil {
		return Outcome{}, err
	}
	addLineage(&snap, opts.Lineage)
	res := reconcile.Reconcile(snap, opts.History)
	if p := opts.Probe; p != nil && p.Logins.Any() {
		if opts.Progress != nil {
			opts.Progress("probing VMs through guest operations")
		}
		sel := p.Select
		if sel == nil {
			sel = reconcile.ProbeCandidates
		}
		snap.Guests = p.run(ctx, src, sel(snap, res))
		res = reconcile.Reconcile(snap, opts.History)
	}
	return Outcome{Snapshot: snap, Result: res}, nil
}

// ProbeVMs probes vms (grouped by vCenter, through the sources' sessions)
// and returns their identities; VMs of a vCenter without a session get an
// identity whose Error says so.
func ProbeVMs(ctx context.Context, src *Sources, p *Probe, vms []reconcile.VM) []reconcile.GuestIdentity {
	return p.run(ctx, src, vms)
}

func (p *Probe) run(ctx context.Context, src *Sources, vms []reconcile.VM) []reconcile.GuestIdentity {
	byVC := map[string][]reconcile.VM{}
	for _, vm := range vms {
		byVC[vm.VCenter] = append(byVC[vm.VCenter], vm)
	}
	var out []reconcile.GuestIdentity
	for _, vc := range slices.Sorted(maps.Keys(byVC)) {
		var c *vim25.Client
		if src != nil {
			c = src.Client(vc)
		}
		if c == nil {
			for _, vm := range byVC[vc] {
				out = append(out, reconcile.GuestIdentity{VMRef: vm.Ref, VCenter: vm.VCenter, Error: fmt.Sprintf("vcenter %s: no session", vc)})
			}
			continue
		}
		out = append(out, guest.ProbeAll(ctx, c, byVC[vc], p.Logins.For, p.Concurrency, p.Timeout)...)
	}
	if p.Keep != nil {
		for _, g := range out {
			p.Keep(g)
		}
	}
	return out
}

// addLineage gives VMs without lineage the lineage learned earlier.
func addLineage(snap *reconcile.Snapshot, known map[string]reconcile.Lineage) {
	if len(known) == 0 {
		return
	}
	names := map[string]string{}
	for _, vm := range snap.VMs {
		names[vm.VCenter+"\x00"+vm.Ref] = vm.Name
	}
	for i := range snap.VMs {
		vm := &snap.VMs[i]
		if vm.Lineage != nil {
			continue
		}
		if l, ok := known[vm.VCenter+"\x00"+vm.Ref]; ok {
			if n, ok := names[vm.VCenter+"\x00"+l.SourceRef]; ok {
				l.SourceName = n
			}
			vm.Lineage = &l
		}
	}
}

// Observe is the observation of a configuration's observe section.
func Observe(o config.Observe) swarm.ObserveOptions {
	return swarm.ObserveOptions{Lookback: o.Lookback, Window: o.Window, Interval: o.Interval}
}
