package vsphere

import (
	"context"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// benchVMs is the size of the benchmark inventory: 1 datacenter, 1 cluster
// of 2 hosts, 10 resource pools of benchVMs/10 VMs each. 3,000 by default;
// VMRECONCILE_BENCH_VMS sets another (10000 takes a few minutes to build).
var benchVMs = func() int {
	if n, err := strconv.Atoi(os.Getenv("VMRECONCILE_BENCH_VMS")); err == nil && n >= 10 {
		return n / 10 * 10
	}
	return 3000
}()

// benchSim is one large vcsim shared by the benchmarks: building 3000 VMs
// takes far longer than collecting them.
var benchSim struct {
	once  sync.Once
	ctx   context.Context
	c     *vim25.Client
	err   error
	close func()
}

func benchClient(b *testing.B) (context.Context, *vim25.Client) {
	b.Helper()
	benchSim.once.Do(func() {
		model := simulator.VPX()
		model.Host = 0
		model.ClusterHost = 2
		model.Pool = 10
		model.Machine = benchVMs / 10
		if err := model.Create(); err != nil {
			benchSim.err = err
			return
		}
		srv := model.Service.NewServer()
		ctx := context.Background()
		client, err := govmomi.NewClient(ctx, srv.URL, true)
		if err != nil {
			srv.Close()
			model.Remove()
			benchSim.err = err
			return
		}
		benchSim.ctx, benchSim.c = ctx, client.Client
		benchSim.close = func() {
			_ = client.Logout(ctx)
			srv.Close()
			model.Remove()
		}
	})
	if benchSim.err != nil {
		b.Fatal(benchSim.err)
	}
	return benchSim.ctx, benchSim.c
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchSim.close != nil {
		benchSim.close()
	}
	os.Exit(code)
}

// cpuTime is the CPU time the process (client and in-process vcsim) has used.
// The benchmarks report it per op next to wall time, which on a shared
// machine moves with other load.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per op used since start.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

func BenchmarkInventory(b *testing.B) {
	ctx, c := benchClient(b)
	b.ReportAllocs()
	defer reportCPU(b, cpuTime())
	for b.Loop() {
		vms, err := Inventory(ctx, c, c.ServiceContent.RootFolder, InventoryOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if len(vms) != benchVMs {
			b.Fatalf("%d VMs, want %d", len(vms), benchVMs)
		}
	}
}

// BenchmarkBareCollect is the floor Inventory is measured against: the same
// VM properties through a ContainerView and one paged RetrievePropertiesEx,
// decoded into mo.VirtualMachine by govmomi, and nothing else.
func BenchmarkBareCollect(b *testing.B) {
	ctx, c := benchClient(b)
	b.ReportAllocs()
	defer reportCPU(b, cpuTime())
	for b.Loop() {
		vms, err := bareCollect(ctx, c, c.ServiceContent.RootFolder)
		if err != nil {
			b.Fatal(err)
		}
		if len(vms) != benchVMs {
			b.Fatalf("%d VMs, want %d", len(vms), benchVMs)
		}
	}
}

func bareCollect(ctx context.Context, c *vim25.Client, root types.ManagedObjectReference) ([]mo.VirtualMachine, error) {
	v, err := view.NewManager(c).CreateContainerView(ctx, root, []string{"VirtualMachine"}, true)
	if err != nil {
		return nil, err
	}
	defer func() { _ = v.Destroy(ctx) }()

	pc := c.ServiceContent.PropertyCollector
	res, err := methods.RetrievePropertiesEx(ctx, c, &types.RetrievePropertiesEx{
		This: pc,
		SpecSet: []types.PropertyFilterSpec{{
			ObjectSet: []types.ObjectSpec{viewObjectSpec(v.Reference())},
			PropSet:   []types.PropertySpec{{Type: "VirtualMachine", PathSet: vmProperties}},
		}},
		Options: types.RetrieveOptions{MaxObjects: DefaultPageSize},
	})
	if err != nil {
		return nil, err
	}
	var vms []mo.VirtualMachine
	if res.Returnval == nil {
		return nil, nil
	}
	objects, token := res.Returnval.Objects, res.Returnval.Token
	for {
		if err := mo.LoadObjectContent(objects, &vms); err != nil {
			return nil, err
		}
		if token == "" {
			return vms, nil
		}
		next, err := methods.ContinueRetrievePropertiesEx(ctx, c, &types.ContinueRetrievePropertiesEx{This: pc, Token: token})
		if err != nil {
			return nil, err
		}
		objects, token = next.Returnval.Objects, next.Returnval.Token
	}
}
