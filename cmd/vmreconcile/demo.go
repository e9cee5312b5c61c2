package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/audit"
	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/internal/dockersim"
	"github.com/vmreconcile/vmreconcile/internal/vcsim"
	"github.com/vmreconcile/vmreconcile/reconcile"
	swarmobs "github.com/vmreconcile/vmreconcile/swarm"
)

func init() { register("demo", func() command { return &demo{} }) }

// demo runs the audit against an embedded, simulated vCenter and swarm that
// hold the seed story: a live worker cloned by another team.
type demo struct {
	json    bool
	observe time.Duration
	failOn  string
}

func (cmd *demo) Register(ctx context.Context, f *flag.FlagSet) {
	f.BoolVar(&cmd.json, "json", false, "Enable JSON output")
	f.DurationVar(&cmd.observe, "observe", 3*time.Second, "Sample the simulated manager for this long")
	f.StringVar(&cmd.failOn, "fail-on", "never", "As audit's -fail-on; the demo exits 0 by default")
}

func (cmd *demo) Process(ctx context.Context) error {
	if err := config.ValidateFailOn(cmd.failOn); err != nil {
		return usagef("-fail-on: %s", err)
	}
	if cmd.observe < 0 {
		return usagef("-observe %s is negative (fix: e.g. -observe 3s)", cmd.observe)
	}
	return nil
}

func (cmd *demo) Usage() string { return "" }

func (cmd *demo) Description() string {
	return `Run the audit against an embedded simulated vCenter and swarm (no setup needed).

The simulation holds the story vmreconcile exists for: worker swarm-wk-03 was
stable for months until another team cloned it to make Kubernetes nodes; one
clone booted with Docker enabled and the same swarm state, and now answers as
swarm-wk-03's node ID. The report comes from the same code path as 'audit'.`
}

func (cmd *demo) Run(ctx context.Context, args []string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := startDemoWorld(ctx)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer w.Close()

	// The same pipeline as audit, through the same sources: the simulators
	// listen on loopback like a real vCenter and manager would.
	cfg := config.Default()
	cfg.VCenters = []config.VCenter{w.vcenter}
	cfg.Swarms = []config.Swarm{{Hosts: []string{w.sim.Host()}}}
	src := audit.NewSources(cfg)
	defer src.Close()
	o, err := audit.Run(ctx, src, audit.Options{
		Observe: swarmobs.ObserveOptions{Lookback: 15 * time.Minute, Window: cmd.observe, Interval: 500 * time.Millisecond},
	})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return report(o.Result, reportOptions{json: cmd.json, failOn: reconcile.Severity(cmd.failOn),
		banner: "SIMULATED: embedded vCenter (govmomi vcsim) and Docker Engine API simulator.\n" +
			"Nothing real was contacted. Story: swarm-wk-03 (a worker for months) was cloned\n" +
			"while live; its clone k8s-new-01 booted with Docker enabled and the same swarm state."})
}

// demoWorld is the running simulation.
type demoWorld struct {
	model  *simulator.Model
	server *simulator.Server
	vc     *vim25.Client
	sim    *dockersim.Engine
	// vcenter is how the pipeline reaches the simulated vCenter.
	vcenter config.VCenter
}

func (w *demoWorld) Close() {
	if w.sim != nil {
		w.sim.Close()
	}
	if w.server != nil {
		w.server.Close()
	}
	if w.model != nil {
		w.model.Remove()
	}
}

// demoVM is one VM of the story and, when it is a swarm node, how the manager sees it.
type demoVM struct {
	vcsim.VM
	node bool // a swarm worker
}

// startDemoWorld builds the story in a vcsim and a dockersim.
func startDemoWorld(ctx context.Context) (w *demoWorld, err error) {
	w = &demoWorld{}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()

	// vCenter: an empty datacenter, filled below through the vSphere API.
	w.model = simulator.VPX()
	w.model.Machine = 0
	if err := w.model.Create(); err != nil {
		return nil, err
	}
	w.server = w.model.Service.NewServer()
	u, _ := url.Parse(w.server.URL.String())
	pass, _ := u.User.Password()
	w.vcenter = config.VCenter{URL: u.Scheme + "://" + u.Host + "/sdk", Username: u.User.Username(), Password: config.Secret(pass), Insecure: true}
	gc, err := govmomi.NewClient(ctx, u, true)
	if err != nil {
		return nil, err
	}
	w.vc = gc.Client

	vms := []demoVM{
		{VM: vcsim.VM{Name: "swarm-mgr-01", Folder: "swarm", NumCPU: 4, MemoryMB: 8192, Hostname: "swarm-mgr-01.corp.example", IP: "10.20.0.10", PowerOn: true, ToolsRunning: true}},
		{VM: vcsim.VM{Name: "swarm-wk-01", Folder: "swarm", NumCPU: 8, MemoryMB: 16384, Hostname: "swarm-wk-01.corp.example", IP: "10.20.0.11", PowerOn: true, ToolsRunning: true}, node: true},
		{VM: vcsim.VM{Name: "swarm-wk-02", Folder: "swarm", NumCPU: 8, MemoryMB: 16384, Hostname: "swarm-wk-02.corp.example", IP: "10.20.0.12", PowerOn: true, ToolsRunning: true}, node: true},
		{VM: vcsim.VM{Name: "swarm-wk-03", Folder: "swarm", NumCPU: 8, MemoryMB: 16384, Hostname: "swarm-wk-03.corp.example", IP: "10.20.0.13", PowerOn: true, ToolsRunning: true}, node: true},
		{VM: vcsim.VM{Name: "web-01", Folder: "apps", NumCPU: 2, MemoryMB: 4096, Hostname: "web-01.corp.example", IP: "10.30.0.21", PowerOn: true, ToolsRunning: true}},
		{VM: vcsim.VM{Name: "db-01", Folder: "apps", NumCPU: 4, MemoryMB: 16384, Hostname: "db-01.corp.example", IP: "10.30.0.22", PowerOn: true, ToolsRunning: true}},
	}
	refs := map[string]types.ManagedObjectReference{}
	for _, v := range vms {
		vm, err := vcsim.CreateVM(ctx, w.vc, v.VM)
		if err != nil {
			return nil, fmt.Errorf("create VM %s: %w", v.Name, err)
		}
		refs[v.Name] = vm.Reference()
	}
	// The other team's copies of the live worker: a template, a clone that was
	// powered on (it booted with swarm-wk-03's disk and so its swarm state),
	// and one still off.
	wk3 := refs["swarm-wk-03"]
	copies := []vcsim.CloneSpec{
		{Name: "k8s-node-template", Template: true},
		{Name: "k8s-new-01", PowerOn: true, Hostname: "k8s-new-01.corp.example", IP: "10.20.0.51", NumCPU: 4, MemoryMB: 8192},
		{Name: "k8s-new-02", NumCPU: 4, MemoryMB: 8192},
	}
	for _, c := range copies {
		if _, err := vcsim.Clone(ctx, w.vc, wk3, c); err != nil {
			return nil, fmt.Errorf("clone %s: %w", c.Name, err)
		}
	}

	// Swarm: the manager, three workers, and a bare-metal node with no VM.
	w.sim = dockersim.New(dockersim.Options{
		ClusterID: "qx2dw1r8lmzc5kc3a7y0hq9nf",
		Self:      dockersim.NodeSpec{ID: "m0vd1bdpqxvcqol4fb5yynr7e", Hostname: "swarm-mgr-01.corp.example", NanoCPUs: 4e9, MemoryBytes: 8 << 30, Addr: "10.20.0.10"},
	})
	if err := w.sim.Start(); err != nil {
		return nil, err
	}
	ids := map[string]string{
		"swarm-wk-01": "3r0lwqz2k1c9tjg6yd8xv5n4b",
		"swarm-wk-02": "8hc2m7p0sqa4lx1v9ke6rj3tw",
		"swarm-wk-03": "hfe0vnnxhrgndripv7nv5khmd",
	}
	for _, v := range vms {
		if !v.node {
			continue
		}
		if _, err := w.sim.AddNode(dockersim.NodeSpec{ID: ids[v.Name], Hostname: v.Hostname, NanoCPUs: int64(v.NumCPU) * 1e9,
			MemoryBytes: int64(v.MemoryMB-256) << 20, Addr: v.IP, CreatedAt: time.Now().Add(-200 * 24 * time.Hour)}); err != nil {
			return nil, err
		}
	}
	if _, err := w.sim.AddNode(dockersim.NodeSpec{ID: "pz6t0c4yk2wq8rj1mfh3n5x7d", Hostname: "edge-bm-01.corp.example", NanoCPUs: 16e9,
		MemoryBytes: 64 << 30, Addr: "10.40.0.5", CreatedAt: time.Now().Add(-90 * 24 * time.Hour)}); err != nil {
		return nil, err
	}

	// The clone just booted: from now on both engines fight over the node ID,
	// each re-registering as soon as the other took the session.
	fight := []dockersim.Identity{
		{Hostname: "k8s-new-01.corp.example", NanoCPUs: 4e9, MemoryBytes: (8192 - 256) << 20, Addr: "10.20.0.51"},
		{Hostname: "swarm-wk-03.corp.example", NanoCPUs: 8e9, MemoryBytes: (16384 - 256) << 20, Addr: "10.20.0.13"},
	}
	if err := w.sim.Flap(ctx, ids["swarm-wk-03"], fight, 400*time.Millisecond); err != nil {
		return nil, err
	}
	return w, nil
}
