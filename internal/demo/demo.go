// Package demo builds the story vmreconcile exists for in an embedded vcsim
// and Docker Engine API simulator, for `vmreconcile demo`: a live worker
// cloned by another team, the clone fighting it for its node ID.
package demo

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/internal/dockersim"
	"github.com/vmreconcile/vmreconcile/internal/kubesim"
	"github.com/vmreconcile/vmreconcile/internal/vcsim"
)

// World is the running simulation.
type World struct {
	model  *simulator.Model
	server *simulator.Server
	vc     *vim25.Client
	sim    *dockersim.Engine
	// vcenter is how the pipeline reaches the simulated vCenter.
	vcenter config.VCenter
	// kube is MKE's Kubernetes (the API subset the source uses); its
	// kubeconfig lives in dir.
	kube       *kubesim.Server
	kubeconfig string
	dir        string
}

// Config is a configuration whose sources are the simulators: the same
// pipeline as a real audit reaches them on loopback.
func (w *World) Config() config.Config {
	cfg := config.Default()
	cfg.VCenters = []config.VCenter{w.vcenter}
	cfg.Swarms = []config.Swarm{{Hosts: []string{w.sim.Host()}}}
	cfg.Kubernetes = []config.Kubernetes{{Name: "mke", Kubeconfig: w.kubeconfig}}
	return cfg
}

// Close stops the simulators.
func (w *World) Close() {
	if w.kube != nil {
		w.kube.Close()
	}
	if w.dir != "" {
		os.RemoveAll(w.dir)
	}
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

// storyVM is one VM of the story and, when it is a swarm node, how the manager sees it.
type storyVM struct {
	vcsim.VM
	node bool // a swarm worker
}

// Start builds the story in a vcsim and a dockersim.
func Start(ctx context.Context) (w *World, err error) {
	w = &World{}
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

	vms := []storyVM{
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
	// Unrelated to the story: a database VM copied as files and registered
	// ("I copied it"), which kept its MAC address.
	if _, err := vcsim.Clone(ctx, w.vc, refs["db-01"], vcsim.CloneSpec{Name: "db-01-restore", KeepMAC: true}); err != nil {
		return nil, fmt.Errorf("clone db-01-restore: %w", err)
	}
	for _, c := range copies {
		vm, err := vcsim.Clone(ctx, w.vc, wk3, c)
		if err != nil {
			return nil, fmt.Errorf("clone %s: %w", c.Name, err)
		}
		refs[c.Name] = vm.Reference()
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
	if err := w.startKube(ctx, vms, refs); err != nil {
		return nil, err
	}
	return w, nil
}

// startKube is MKE's Kubernetes on the same swarm: every worker is a Node,
// and the clone's kubelet, booted with swarm-wk-03's credentials, writes
// swarm-wk-03's Node in turn with its original: boot IDs, systemUUIDs and
// CPU counts alternate, and each kubelet records a Rebooted event.
func (w *World) startKube(ctx context.Context, vms []storyVM, refs map[string]types.ManagedObjectReference) error {
	w.kube = kubesim.New(kubesim.Options{})
	if err := w.kube.Start(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "vmreconcile-demo-")
	if err != nil {
		return err
	}
	w.dir = dir
	if w.kubeconfig, err = w.kube.Kubeconfig(dir, "mke"); err != nil {
		return err
	}
	identity := func(name, hostname, ip string, cpus, memMB int32) (kubesim.Identity, error) {
		var m mo.VirtualMachine
		if err := property.DefaultCollector(w.vc).RetrieveOne(ctx, refs[name], []string{"config.uuid"}, &m); err != nil {
			return kubesim.Identity{}, err
		}
		id := kubesim.RandomIdentity(hostname, ip)
		id.SystemUUID, id.CPUs, id.MemoryBytes = m.Config.Uuid, int64(cpus), int64(memMB)<<20
		return id, nil
	}
	var wk3 kubesim.Identity
	for _, v := range vms {
		if !v.node {
			continue
		}
		id, err := identity(v.Name, v.Hostname, v.IP, v.NumCPU, v.MemoryMB)
		if err != nil {
			return err
		}
		w.kube.Write(v.Hostname, id)
		if v.Name == "swarm-wk-03" {
			wk3 = id
		}
	}
	clone, err := identity("k8s-new-01", "swarm-wk-03.corp.example", "10.20.0.51", 4, 8192)
	if err != nil {
		return err
	}
	return w.kube.Flap(ctx, "swarm-wk-03.corp.example", []kubesim.Identity{clone, wk3}, 500*time.Millisecond)
}
