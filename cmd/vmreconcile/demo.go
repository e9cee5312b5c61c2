package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/vmreconcile/vmreconcile/audit"
	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/internal/demo"
	"github.com/vmreconcile/vmreconcile/reconcile"
	swarmobs "github.com/vmreconcile/vmreconcile/swarm"
)

func init() { register("demo", func() command { return &demoCmd{} }) }

// demoCmd runs the audit against an embedded, simulated vCenter and swarm that
// hold the seed story: a live worker cloned by another team.
type demoCmd struct {
	output    outputFlag
	observe   time.Duration
	failOn    string
	noVCenter bool
}

func (cmd *demoCmd) Register(ctx context.Context, f *flag.FlagSet) {
	cmd.output.Register(f)
	f.DurationVar(&cmd.observe, "observe", 3*time.Second, "Sample the simulated manager for this long")
	f.StringVar(&cmd.failOn, "fail-on", "never", "As audit's -fail-on; the demo exits 0 by default")
	f.BoolVar(&cmd.noVCenter, "no-vcenter", false, "The same story seen from the swarm alone, as on bare metal or a cloud (no vCenter)")
}

func (cmd *demoCmd) Process(ctx context.Context) error {
	if err := config.ValidateFailOn(cmd.failOn); err != nil {
		return usagef("-fail-on: %s", err)
	}
	if err := cmd.output.Process(); err != nil {
		return err
	}
	if cmd.observe < 0 {
		return usagef("-observe %s is negative (fix: e.g. -observe 3s)", cmd.observe)
	}
	return nil
}

func (cmd *demoCmd) Usage() string { return "" }

func (cmd *demoCmd) Description() string {
	return `Run the audit against an embedded simulated vCenter and swarm (no setup needed).

The simulation holds the story vmreconcile exists for: worker swarm-wk-03 was
stable for months until another team cloned it to make Kubernetes nodes; one
clone booted with Docker and kubelet enabled and the same swarm state and
kubelet credentials, and now answers as swarm-wk-03's node ID and writes its
Kubernetes Node (MKE runs Kubernetes on the swarm). The report comes from the same code path as 'audit'.
With -no-vcenter the swarm alone is audited, as on bare metal or a cloud: the
two machines that answer as the node are named by hostname and address.`
}

func (cmd *demoCmd) Run(ctx context.Context, args []string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := demo.Start(ctx)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer w.Close()

	// The same pipeline as audit, through the same sources: the simulators
	// listen on loopback like a real vCenter and manager would.
	cfg := w.Config()
	banner := "SIMULATED: embedded vCenter (govmomi vcsim), Docker Engine API and Kubernetes API simulators.\n" +
		"Nothing real was contacted. Story: swarm-wk-03 (a worker for months) was cloned\n" +
		"while live; its clone k8s-new-01 booted with Docker and kubelet enabled and the same\n" +
		"swarm state and kubelet credentials: it answers as swarm-wk-03's node ID, and (MKE\n" +
		"runs Kubernetes on the swarm) writes swarm-wk-03's Node: \"rebooted\", CPUs 8 -> 4 -> 8."
	if cmd.noVCenter {
		cfg.VCenters = nil
		banner = "SIMULATED: embedded Docker Engine API simulator, no vCenter (as on bare metal or a cloud).\n" +
			"Nothing real was contacted. Story: a copy of machine swarm-wk-03 booted with its\n" +
			"swarm state as k8s-new-01; both now answer as the same node ID."
	}
	src := audit.NewSources(cfg)
	defer src.Close()
	o, err := audit.Run(ctx, src, audit.Options{
		Observe: swarmobs.ObserveOptions{Lookback: 15 * time.Minute, Window: cmd.observe, Interval: 500 * time.Millisecond},
	})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return report(o.Result, reportOptions{output: cmd.output, failOn: reconcile.Severity(cmd.failOn), banner: banner})
}
