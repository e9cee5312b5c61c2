package vsphere

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/internal/vcsim"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

func findVM(t *testing.T, vms []reconcile.VM, ref string) reconcile.VM {
	t.Helper()
	for _, vm := range vms {
		if vm.Ref == ref {
			return vm
		}
	}
	t.Fatalf("VM %s not in inventory", ref)
	return reconcile.VM{}
}

func TestInventoryFields(t *testing.T) {
	simTest(t, nil, func(ctx context.Context, c *vim25.Client) {
		before := time.Now()
		vm, err := vcsim.CreateVM(ctx, c, vcsim.VM{
			Name: "web-01", Folder: "swarm/prod", NumCPU: 4, MemoryMB: 4096,
			Hostname: "web01.example.com", IP: "10.1.2.3", PowerOn: true, ToolsRunning: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		after := time.Now()

		// What vcsim holds, read the ordinary way, to compare against.
		var want mo.VirtualMachine
		if err := property.DefaultCollector(c).RetrieveOne(ctx, vm.Reference(), []string{"config"}, &want); err != nil {
			t.Fatal(err)
		}
		devices, err := vm.Device(ctx)
		if err != nil {
			t.Fatal(err)
		}
		nics := devices.SelectByType((*types.VirtualEthernetCard)(nil))
		if len(nics) != 1 {
			t.Fatalf("want 1 NIC, got %d", len(nics))
		}
		mac := nics[0].(types.BaseVirtualEthernetCard).GetVirtualEthernetCard().MacAddress

		vms, err := Inventory(ctx, c, c.ServiceContent.RootFolder, InventoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := findVM(t, vms, vm.Reference().Value)

		if got.Created.Before(before) || got.Created.After(after) || !got.Created.Equal(*want.Config.CreateDate) {
			t.Errorf("Created = %v, want config.createDate %v between %v and %v", got.Created, *want.Config.CreateDate, before, after)
		}
		wantVM := reconcile.VM{
			Name:          "web-01",
			Path:          "/DC0/vm/swarm/prod/web-01",
			Ref:           vm.Reference().Value,
			BIOSUUID:      want.Config.Uuid,
			InstanceUUID:  want.Config.InstanceUuid,
			NumCPU:        4,
			MemoryMB:      4096,
			Template:      false,
			PowerState:    "poweredOn",
			ToolsRunning:  true,
			GuestHostname: "web01.example.com",
			IPs:           []string{"10.1.2.3"},
			MACs:          []string{strings.ToLower(mac)},
			Created:       got.Created,
		}
		if wantVM.BIOSUUID == "" || wantVM.InstanceUUID == "" || wantVM.BIOSUUID == wantVM.InstanceUUID {
			t.Fatalf("vcsim UUIDs unusable: %q %q", wantVM.BIOSUUID, wantVM.InstanceUUID)
		}
		assertVM(t, got, wantVM)

		// A model VM: powered on, tools not running, no guest facts.
		model := findByName(t, vms, "DC0_H0_VM0")
		if model.Path != "/DC0/vm/DC0_H0_VM0" || model.PowerState != "poweredOn" || model.ToolsRunning ||
			model.GuestHostname != "" || len(model.IPs) != 0 || len(model.MACs) != 1 || model.Template {
			t.Errorf("model VM = %+v", model)
		}

		if !slices.IsSortedFunc(vms, func(a, b reconcile.VM) int { return strings.Compare(a.Path, b.Path) }) {
			t.Error("inventory not sorted by path")
		}
	})
}

func assertVM(t *testing.T, got, want reconcile.VM) {
	t.Helper()
	g, w := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want)
	if g != w || !slices.Equal(got.IPs, want.IPs) || !slices.Equal(got.MACs, want.MACs) {
		t.Errorf("VM mismatch\n got %s\nwant %s", g, w)
	}
}

func findByName(t *testing.T, vms []reconcile.VM, name string) reconcile.VM {
	t.Helper()
	for _, vm := range vms {
		if vm.Name == name {
			return vm
		}
	}
	t.Fatalf("VM %q not in inventory", name)
	return reconcile.VM{}
}

func TestInventoryTemplateAndPoweredOffClone(t *testing.T) {
	simTest(t, nil, func(ctx context.Context, c *vim25.Client) {
		src, err := vcsim.CreateVM(ctx, c, vcsim.VM{Name: "base", Hostname: "base", IP: "10.0.0.1", PowerOn: true, ToolsRunning: true})
		if err != nil {
			t.Fatal(err)
		}
		tmpl, err := vcsim.Clone(ctx, c, src.Reference(), vcsim.CloneSpec{Name: "base-tmpl", Template: true})
		if err != nil {
			t.Fatal(err)
		}
		off, err := vcsim.Clone(ctx, c, src.Reference(), vcsim.CloneSpec{Name: "base-off", NumCPU: 8, MemoryMB: 512})
		if err != nil {
			t.Fatal(err)
		}

		vms, err := Inventory(ctx, c, c.ServiceContent.RootFolder, InventoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		base := findVM(t, vms, src.Reference().Value)
		tv := findVM(t, vms, tmpl.Reference().Value)
		if !tv.Template || tv.PowerState != "poweredOff" || tv.Path != "/DC0/vm/base-tmpl" || tv.GuestHostname != "" {
			t.Errorf("template = %+v", tv)
		}
		ov := findVM(t, vms, off.Reference().Value)
		if ov.Template || ov.PowerState != "poweredOff" || ov.NumCPU != 8 || ov.MemoryMB != 512 || ov.ToolsRunning || ov.GuestHostname != "" {
			t.Errorf("powered-off clone = %+v", ov)
		}
		// Clones get new MACs, as on vSphere (the NIC fallback reads them).
		if len(ov.MACs) != 1 || len(tv.MACs) != 1 || len(base.MACs) != 1 || ov.MACs[0] == base.MACs[0] || tv.MACs[0] == base.MACs[0] {
			t.Errorf("MACs: base %v template %v clone %v", base.MACs, tv.MACs, ov.MACs)
		}
		if ov.BIOSUUID == base.BIOSUUID || ov.InstanceUUID == base.InstanceUUID {
			t.Errorf("clone shares a UUID with its source: %+v %+v", ov, base)
		}
	})
}

func TestInventoryRoots(t *testing.T) {
	simTest(t, nil, func(ctx context.Context, c *vim25.Client) {
		vm, err := vcsim.CreateVM(ctx, c, vcsim.VM{Name: "deep", Folder: "a/b/c"})
		if err != nil {
			t.Fatal(err)
		}
		finder := find.NewFinder(c, true)
		dc, err := finder.Datacenter(ctx, "DC0")
		if err != nil {
			t.Fatal(err)
		}
		cluster, err := finder.ClusterComputeResource(ctx, "/DC0/host/DC0_C0")
		if err != nil {
			t.Fatal(err)
		}
		all, err := Inventory(ctx, c, c.ServiceContent.RootFolder, InventoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 5 { // the model's 4 VMs and ours
			t.Fatalf("root folder: %d VMs, want 5", len(all))
		}

		// A datacenter root gives the same VMs with the same paths: the
		// datacenter and the root folder above it are not in its view.
		byDC, err := Inventory(ctx, c, dc.Reference(), InventoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(byDC) != fmt.Sprint(all) {
			t.Errorf("datacenter root differs:\n%v\n%v", byDC, all)
		}
		if got := findVM(t, byDC, vm.Reference().Value).Path; got != "/DC0/vm/a/b/c/deep" {
			t.Errorf("path = %q", got)
		}

		// A cluster root holds no folders: paths still resolve.
		byCluster, err := Inventory(ctx, c, cluster.Reference(), InventoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var paths []string
		for _, v := range byCluster {
			paths = append(paths, v.Path)
		}
		// Only the cluster's VMs (CreateSimVM used the standalone host).
		want := []string{"/DC0/vm/DC0_C0_RP0_VM0", "/DC0/vm/DC0_C0_RP0_VM1"}
		if !slices.Equal(paths, want) {
			t.Errorf("cluster root paths = %v, want %v", paths, want)
		}
	})
}

func TestInventoryPaging(t *testing.T) {
	model := simulator.VPX()
	model.Host = 0
	model.ClusterHost = 1
	model.Machine = 50
	simTest(t, model, func(ctx context.Context, c *vim25.Client) {
		// The truth, listed independently.
		var want []string
		finder := find.NewFinder(c, true)
		list, err := finder.VirtualMachineList(ctx, "/DC0/vm/*")
		if err != nil {
			t.Fatal(err)
		}
		for _, vm := range list {
			want = append(want, vm.Reference().Value)
		}
		if len(want) != 50 {
			t.Fatalf("model has %d VMs, want 50", len(want))
		}

		cc, counter := counting(c)
		vms, err := Inventory(ctx, cc, c.ServiceContent.RootFolder, InventoryOptions{PageSize: 7})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, vm := range vms {
			got = append(got, vm.Ref)
			if vm.Name == "" || vm.BIOSUUID == "" || !strings.HasPrefix(vm.Path, "/DC0/vm/DC0_C0_RP0_VM") {
				t.Errorf("incomplete VM %+v", vm)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("got %d VMs %v\nwant %d %v", len(got), got, len(want), want)
		}

		// 50 VMs plus a few folders, 7 a page: at least 7 continuations, and
		// nothing per VM.
		if n := counter.count("ContinueRetrievePropertiesEx"); n < 7 {
			t.Errorf("%d continuations, want >= 7 (calls: %v)", n, counter.calls)
		}
		if n := counter.count("RetrievePropertiesEx"); n != 1 {
			t.Errorf("%d RetrievePropertiesEx, want 1", n)
		}
		if n := counter.total(); n > 15 {
			t.Errorf("%d calls for 50 VMs: %v", n, counter.calls)
		}
	})
}

func TestInventoryPatterns(t *testing.T) {
	simTest(t, nil, func(ctx context.Context, c *vim25.Client) {
		for _, s := range []vcsim.VM{
			{Name: "web-01", Folder: "swarm"},
			{Name: "web-02", Folder: "swarm"},
			{Name: "db-01", Folder: "swarm"},
			{Name: "web-03", Folder: "legacy"},
		} {
			if _, err := vcsim.CreateVM(ctx, c, s); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			include, exclude []string
			want             []string
		}{
			{nil, nil, []string{"DC0_C0_RP0_VM0", "DC0_C0_RP0_VM1", "DC0_H0_VM0", "DC0_H0_VM1", "web-03", "db-01", "web-01", "web-02"}},
			{[]string{"web-*"}, nil, []string{"web-03", "web-01", "web-02"}},
			{[]string{"/DC0/vm/swarm/*"}, nil, []string{"db-01", "web-01", "web-02"}},
			{[]string{"/DC0/vm/swarm/*"}, []string{"*-02"}, []string{"db-01", "web-01"}},
			{nil, []string{"DC0_*", "/DC0/vm/legacy/*"}, []string{"db-01", "web-01", "web-02"}},
			{[]string{"web-0[13]", "db-*"}, []string{"/DC0/vm/legacy/*"}, []string{"db-01", "web-01"}},
			{[]string{"nothing"}, nil, nil},
		}
		for _, tt := range tests {
			vms, err := Inventory(ctx, c, c.ServiceContent.RootFolder, InventoryOptions{Include: tt.include, Exclude: tt.exclude})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, vm := range vms {
				got = append(got, vm.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("include %q exclude %q: got %v, want %v", tt.include, tt.exclude, got, tt.want)
			}
		}

		if _, err := Inventory(ctx, c, c.ServiceContent.RootFolder, InventoryOptions{Include: []string{"web-["}}); err == nil {
			t.Error("bad pattern accepted")
		}
	})
}
