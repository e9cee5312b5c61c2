package vsphere

import (
	"slices"
	"testing"
	"time"

	"github.com/vmware/govmomi/vim25/types"
)

func prop(name string, val any) types.DynamicProperty {
	return types.DynamicProperty{Name: name, Val: val}
}

func TestDecodeVMGuestNet(t *testing.T) {
	created := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	o := types.ObjectContent{
		Obj: types.ManagedObjectReference{Type: "VirtualMachine", Value: "vm-7"},
		PropSet: []types.DynamicProperty{
			prop("name", "w1"),
			prop("parentVApp", types.ManagedObjectReference{Type: "VirtualApp", Value: "resgroup-v9"}),
			prop("config.createDate", created),
			prop("runtime.powerState", types.VirtualMachinePowerStateSuspended),
			prop("guest.toolsRunningStatus", "guestToolsNotRunning"),
			prop("guest.ipAddress", "10.0.0.2"),
			prop("guest.net", types.ArrayOfGuestNicInfo{GuestNicInfo: []types.GuestNicInfo{
				{
					MacAddress: "00:50:56:AA:BB:CC",
					IpAddress:  []string{"fe80::1", "10.0.0.2", "not-an-ip", "::ffff:10.0.0.3"},
					IpConfig: &types.NetIpConfigInfo{IpAddress: []types.NetIpConfigInfoIpAddress{
						{IpAddress: "10.0.0.10"}, {IpAddress: "fe80::1"},
					}},
				},
				{MacAddress: "00:50:56:aa:bb:cc"},
				{MacAddress: "00:50:56:00:00:01"},
			}}),
			// The device list is ignored for MACs when guest.net has some.
			prop("config.hardware.device", types.ArrayOfVirtualDevice{VirtualDevice: []types.BaseVirtualDevice{
				&types.VirtualE1000{VirtualEthernetCard: types.VirtualEthernetCard{MacAddress: "00:50:56:ff:ff:ff"}},
			}}),
		},
		// One unreadable property must not lose the VM.
		MissingSet: []types.MissingProperty{{Path: "config.uuid", Fault: types.LocalizedMethodFault{Fault: &types.NoPermission{}}}},
	}
	vm, parent, dir, disks := decodeVM(&o)
	if vm.Name != "w1" || vm.Ref != "vm-7" || vm.PowerState != "suspended" || vm.ToolsRunning || !vm.Created.Equal(created) || vm.BIOSUUID != "" {
		t.Errorf("vm = %+v", vm)
	}
	if parent.Value != "resgroup-v9" {
		t.Errorf("parent = %v, want the vApp", parent)
	}
	if dir != "" || disks != nil {
		t.Errorf("dir %q disks %v", dir, disks)
	}
	if want := []string{"10.0.0.2", "10.0.0.3", "10.0.0.10", "fe80::1"}; !slices.Equal(vm.IPs, want) {
		t.Errorf("IPs = %v, want %v", vm.IPs, want)
	}
	if want := []string{"00:50:56:00:00:01", "00:50:56:aa:bb:cc"}; !slices.Equal(vm.MACs, want) {
		t.Errorf("MACs = %v, want %v", vm.MACs, want)
	}
}

func TestDecodeVMNICFallback(t *testing.T) {
	o := types.ObjectContent{
		Obj: types.ManagedObjectReference{Type: "VirtualMachine", Value: "vm-8"},
		PropSet: []types.DynamicProperty{
			prop("guest.net", types.ArrayOfGuestNicInfo{}),
			prop("config.hardware.device", types.ArrayOfVirtualDevice{VirtualDevice: []types.BaseVirtualDevice{
				&types.VirtualVmxnet3{VirtualVmxnet: types.VirtualVmxnet{VirtualEthernetCard: types.VirtualEthernetCard{MacAddress: "00:50:56:AB:CD:EF"}}},
				&types.VirtualE1000e{VirtualEthernetCard: types.VirtualEthernetCard{MacAddress: "00:50:56:01:02:03"}},
				&types.VirtualE1000{}, // no MAC assigned yet
				&types.VirtualDisk{},
			}}),
		},
	}
	vm, _, _, _ := decodeVM(&o)
	if want := []string{"00:50:56:01:02:03", "00:50:56:ab:cd:ef"}; !slices.Equal(vm.MACs, want) {
		t.Errorf("MACs = %v, want %v", vm.MACs, want)
	}
	if vm.IPs != nil {
		t.Errorf("IPs = %v", vm.IPs)
	}
}

func flatDisk(file string, parents ...string) *types.VirtualDisk {
	b := &types.VirtualDiskFlatVer2BackingInfo{VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: file}}
	cur := b
	for _, p := range parents {
		cur.Parent = &types.VirtualDiskFlatVer2BackingInfo{VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: p}}
		cur = cur.Parent
	}
	return &types.VirtualDisk{VirtualDevice: types.VirtualDevice{Backing: b}}
}

func vmContent(ref, name, vmx string, disks ...*types.VirtualDisk) *types.ObjectContent {
	var devices []types.BaseVirtualDevice
	for _, d := range disks {
		devices = append(devices, d)
	}
	return &types.ObjectContent{
		Obj: types.ManagedObjectReference{Type: "VirtualMachine", Value: ref},
		PropSet: []types.DynamicProperty{
			prop("name", name),
			prop("config.files.vmPathName", vmx),
			prop("config.hardware.device", types.ArrayOfVirtualDevice{VirtualDevice: devices}),
		},
	}
}

func TestLinkedSourceFromDisks(t *testing.T) {
	b := newBuilder()
	// base has a snapshot: its delta's parent is in its own directory.
	b.add(vmContent("vm-1", "base", "[ds1] base/base.vmx", flatDisk("[ds1] base/base-000001.vmdk", "[ds1] base/base.vmdk")))
	// lc1 is a linked clone of base.
	b.add(vmContent("vm-2", "lc1", "[ds1] lc1/lc1.vmx", flatDisk("[ds1] lc1/lc1.vmdk", "[ds1] base/base.vmdk")))
	// lc2 is a linked clone of lc1 (whose chain continues into base), with
	// its own snapshot and its disk on another datastore.
	b.add(vmContent("vm-3", "lc2", "[ds1] lc2/lc2.vmx",
		flatDisk("[ds2] lc2/lc2-000001.vmdk", "[ds2] lc2/lc2.vmdk", "[ds1] lc1/lc1.vmdk", "[ds1] base/base.vmdk")))
	// orphan's parent directory belongs to no VM (source deleted).
	b.add(vmContent("vm-4", "orphan", "[ds1] orphan/orphan.vmx", flatDisk("[ds1] orphan/orphan.vmdk", "[ds1] gone/gone.vmdk", "[ds1] base/base.vmdk")))
	// full is a full clone.
	b.add(vmContent("vm-5", "full", "[ds1] full/full.vmx", flatDisk("[ds1] full/full.vmdk")))

	vms := b.finish()
	want := map[string]string{"vm-2": "vm-1", "vm-3": "vm-2"}
	for _, vm := range vms {
		src := want[vm.Ref]
		switch {
		case src == "" && vm.Lineage != nil:
			t.Errorf("%s: unexpected lineage %+v", vm.Name, *vm.Lineage)
		case src != "" && vm.Lineage == nil:
			t.Errorf("%s: no lineage, want from %s", vm.Name, src)
		case src != "" && (vm.Lineage.SourceRef != src || vm.Lineage.Kind != KindLinkedClone):
			t.Errorf("%s: lineage %+v, want linked-clone from %s", vm.Name, *vm.Lineage, src)
		}
	}
	if l := vms[2].Lineage; l == nil || l.SourceName != "lc1" {
		t.Errorf("lc2 lineage = %+v", l)
	}
}

func TestDatastoreDir(t *testing.T) {
	for in, want := range map[string]string{
		"[ds1] web-01/web-01.vmx":   "[ds1] web-01",
		"[ds 2] a/b/c.vmdk":         "[ds 2] a/b",
		"[ds1] top.vmdk":            "[ds1]",
		"":                          "",
		"not a datastore path.vmdk": "",
	} {
		if got := datastoreDir(in); got != want {
			t.Errorf("datastoreDir(%q) = %q, want %q", in, got, want)
		}
	}
}
