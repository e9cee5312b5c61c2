package vcsim

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// This file builds inventories in vcsim (govmomi's vCenter simulator) for
// tests and the demo. It relies on vcsim behaviour, not on vSphere's:
//
//   - vcsim takes guest facts from extraConfig keys "SET.<property>": setting
//     "SET.guest.hostName" assigns guest.hostName, "SET.guest.ipAddress"
//     assigns guest.ipAddress and the first guest NIC's address, and
//     "SET.guest.toolsRunningStatus" makes tools look running (vcsim
//     otherwise reports guestToolsNotRunning for every VM). They apply when
//     given to CreateVM, ReconfigVM or in a CloneSpec's config, whatever the
//     power state; nothing clears them on power off.
//   - vcsim does not copy extraConfig on clone, so a clone shows no guest
//     facts unless the CloneSpec sets them; CloneSpec does, the way a clone of
//     a running VM boots with the same disk and so the same hostname.
//   - vcsim clones keep the source's NIC MACs, and always copy disks in full.
//     A real vSphere clone gets new generated MACs: Clone gives the copy new
//     ones unless CloneSpec.KeepMAC (a VM copied as files, whose .vmx kept
//     its MACs).

// VM describes a VM for CreateVM.
type VM struct {
	Name string
	// Folder is a path under the first datacenter's VM folder ("swarm/prod");
	// missing folders are created. Empty means the VM folder itself.
	Folder   string
	NumCPU   int32 // 0 means 1
	MemoryMB int32 // 0 means 1024
	// Hostname and IP are what the guest reports (guest.hostName,
	// guest.ipAddress and the first NIC's address); empty means none.
	Hostname string
	IP       string
	PowerOn  bool
	// ToolsRunning makes guest.toolsRunningStatus "guestToolsRunning".
	ToolsRunning bool
}

// CreateVM creates a VM with one disk and one NIC in the first datacenter
// of a vcsim inventory, on its first compute resource and datastore.
func CreateVM(ctx context.Context, c *vim25.Client, spec VM) (*object.VirtualMachine, error) {
	finder, dc, err := simFinder(ctx, c)
	if err != nil {
		return nil, err
	}
	folder, err := simFolder(ctx, finder, dc, spec.Folder)
	if err != nil {
		return nil, err
	}
	pool, host, err := simPlacement(ctx, finder)
	if err != nil {
		return nil, err
	}
	dss, err := finder.DatastoreList(ctx, "*")
	if err != nil {
		return nil, fmt.Errorf("find datastore: %w", err)
	}
	ds := dss[0]
	backing, err := simNetwork(ctx, finder)
	if err != nil {
		return nil, err
	}

	var devices object.VirtualDeviceList
	scsi, err := devices.CreateSCSIController("pvscsi")
	if err != nil {
		return nil, err
	}
	devices = append(devices, scsi)
	disk := devices.CreateDisk(scsi.(types.BaseVirtualController), ds.Reference(),
		ds.Path(path.Join(spec.Name, spec.Name+".vmdk")))
	disk.CapacityInKB = 1 << 20
	nic, err := devices.CreateEthernetCard("vmxnet3", backing)
	if err != nil {
		return nil, err
	}
	devices = append(devices, disk, nic)
	changes, err := devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)
	if err != nil {
		return nil, err
	}

	config := types.VirtualMachineConfigSpec{
		Name:         spec.Name,
		GuestId:      string(types.VirtualMachineGuestOsIdentifierOtherLinux64Guest),
		NumCPUs:      max(spec.NumCPU, 1),
		MemoryMB:     int64(spec.MemoryMB),
		Files:        &types.VirtualMachineFileInfo{VmPathName: ds.Path("")},
		DeviceChange: changes,
		ExtraConfig:  guestConfig(spec.Hostname, spec.IP, spec.ToolsRunning),
	}
	if config.MemoryMB == 0 {
		config.MemoryMB = 1024
	}

	task, err := folder.CreateVM(ctx, config, pool, host)
	if err != nil {
		return nil, fmt.Errorf("create VM %q: %w", spec.Name, err)
	}
	info, err := task.WaitForResult(ctx)
	if err != nil {
		return nil, fmt.Errorf("create VM %q: %w", spec.Name, err)
	}
	vm := object.NewVirtualMachine(c, info.Result.(types.ManagedObjectReference))
	if spec.PowerOn {
		if err := simPowerOn(ctx, vm); err != nil {
			return nil, err
		}
	}
	return vm, nil
}

// CloneSpec describes a copy for Clone.
type CloneSpec struct {
	Name string
	// Template marks the copy as a template (it stays powered off).
	Template bool
	PowerOn  bool
	// Hostname and IP override what the copy's guest reports. Left empty, a
	// powered-on copy reports the source's (it boots the source's disk) and a
	// powered-off one reports nothing.
	Hostname string
	IP       string
	// NumCPU and MemoryMB override the source's when not zero.
	NumCPU   int32
	MemoryMB int32
	// KeepMAC keeps the source's NIC MACs, as a VM copied as files and
	// registered ("I copied it") does; by default the copy gets new MACs, as
	// a vSphere clone does.
	KeepMAC bool
	// Linked makes the copy's disks children of the source's disks, as a
	// linked clone's are. vcsim cannot clone that way, so the full copies are
	// swapped for child disks after the clone.
	Linked bool
}

// Clone clones src (a VM or template) into the source's folder. vcsim
// posts a VmClonedEvent for it, also when src is a template.
func Clone(ctx context.Context, c *vim25.Client, src types.ManagedObjectReference, spec CloneSpec) (*object.VirtualMachine, error) {
	var s mo.VirtualMachine
	err := property.DefaultCollector(c).RetrieveOne(ctx, src,
		[]string{"parent", "resourcePool", "runtime.host", "guest", "config.hardware.device"}, &s)
	if err != nil {
		return nil, fmt.Errorf("read clone source %s: %w", src.Value, err)
	}
	if s.Parent == nil || s.Runtime.Host == nil {
		return nil, fmt.Errorf("clone source %s has no folder or host", src.Value)
	}

	// A template has no resource pool; vcsim, like vCenter, then wants one.
	pool := s.ResourcePool
	if pool == nil {
		p, err := object.NewHostSystem(c, *s.Runtime.Host).ResourcePool(ctx)
		if err != nil {
			return nil, fmt.Errorf("find resource pool for clone of %s: %w", src.Value, err)
		}
		ref := p.Reference()
		pool = &ref
	}

	hostname, ip, tools := spec.Hostname, spec.IP, false
	if spec.PowerOn && s.Guest != nil {
		hostname = cmp.Or(hostname, s.Guest.HostName)
		ip = cmp.Or(ip, s.Guest.IpAddress)
		tools = s.Guest.ToolsRunningStatus == string(types.VirtualMachineToolsRunningStatusGuestToolsRunning)
	}

	cloneSpec := types.VirtualMachineCloneSpec{
		Location: types.VirtualMachineRelocateSpec{Pool: pool},
		Template: spec.Template,
		Config: &types.VirtualMachineConfigSpec{
			NumCPUs:     spec.NumCPU,
			MemoryMB:    int64(spec.MemoryMB),
			ExtraConfig: guestConfig(hostname, ip, tools),
		},
	}
	if !spec.KeepMAC && s.Config != nil {
		changes, err := newMACs(s.Config.Hardware.Device)
		if err != nil {
			return nil, err
		}
		cloneSpec.Config.DeviceChange = changes
	}
	srcVM := object.NewVirtualMachine(c, src)
	task, err := srcVM.Clone(ctx, object.NewFolder(c, *s.Parent), spec.Name, cloneSpec)
	if err != nil {
		return nil, fmt.Errorf("clone %s to %q: %w", src.Value, spec.Name, err)
	}
	info, err := task.WaitForResult(ctx)
	if err != nil {
		return nil, fmt.Errorf("clone %s to %q: %w", src.Value, spec.Name, err)
	}
	vm := object.NewVirtualMachine(c, info.Result.(types.ManagedObjectReference))

	if spec.Linked {
		if err := linkDisks(ctx, vm, spec.Name, s.Config); err != nil {
			return nil, err
		}
	}

	if spec.PowerOn && !spec.Template {
		if err := simPowerOn(ctx, vm); err != nil {
			return nil, err
		}
	}
	return vm, nil
}

// Rename renames a VM or template.
func Rename(ctx context.Context, c *vim25.Client, ref types.ManagedObjectReference, name string) error {
	task, err := object.NewVirtualMachine(c, ref).Rename(ctx, name)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("rename %s to %q: %w", ref.Value, name, err)
	}
	return nil
}

// linkDisks replaces vm's disks with child disks of the source's disks
// (matched by order), in vm's directory.
func linkDisks(ctx context.Context, vm *object.VirtualMachine, name string, srcConfig *types.VirtualMachineConfigInfo) error {
	if srcConfig == nil {
		return errors.New("linked clone: source has no config")
	}
	srcDisks := object.VirtualDeviceList(srcConfig.Hardware.Device).SelectByType((*types.VirtualDisk)(nil))
	devices, err := vm.Device(ctx)
	if err != nil {
		return fmt.Errorf("linked clone %q: %w", name, err)
	}
	disks := devices.SelectByType((*types.VirtualDisk)(nil))
	if len(disks) != len(srcDisks) {
		return fmt.Errorf("linked clone %q: %d disks, source has %d", name, len(disks), len(srcDisks))
	}

	var changes []types.BaseVirtualDeviceConfigSpec
	for i, d := range disks {
		disk := d.(*types.VirtualDisk)
		old := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		srcBacking, ok := srcDisks[i].(*types.VirtualDisk).Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if !ok {
			return fmt.Errorf("linked clone %q: source disk %d is not a flat disk", name, i)
		}
		var file object.DatastorePath
		file.FromString(old.FileName)
		file.Path = path.Join(path.Dir(file.Path), fmt.Sprintf("%s-child-%d.vmdk", name, i))

		child := *disk
		child.Key = -1 - int32(i)
		child.Backing = &types.VirtualDiskFlatVer2BackingInfo{
			VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: file.String()},
			DiskMode:                     old.DiskMode,
			ThinProvisioned:              types.NewBool(true),
			Parent:                       &types.VirtualDiskFlatVer2BackingInfo{VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: srcBacking.FileName}},
		}
		changes = append(changes,
			&types.VirtualDeviceConfigSpec{
				Operation:     types.VirtualDeviceConfigSpecOperationRemove,
				FileOperation: types.VirtualDeviceConfigSpecFileOperationDestroy,
				Device:        disk,
			},
			&types.VirtualDeviceConfigSpec{
				Operation:     types.VirtualDeviceConfigSpecOperationAdd,
				FileOperation: types.VirtualDeviceConfigSpecFileOperationCreate,
				Device:        &child,
			})
	}
	task, err := vm.Reconfigure(ctx, types.VirtualMachineConfigSpec{DeviceChange: changes})
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("linked clone %q: swap disks: %w", name, err)
	}
	return nil
}

// guestConfig returns the vcsim extraConfig keys that set guest facts.
func guestConfig(hostname, ip string, toolsRunning bool) []types.BaseOptionValue {
	var opts []types.BaseOptionValue
	if hostname != "" {
		opts = append(opts, &types.OptionValue{Key: "SET.guest.hostName", Value: hostname})
	}
	if ip != "" {
		opts = append(opts, &types.OptionValue{Key: "SET.guest.ipAddress", Value: ip})
	}
	if toolsRunning {
		opts = append(opts, &types.OptionValue{
			Key:   "SET.guest.toolsRunningStatus",
			Value: string(types.VirtualMachineToolsRunningStatusGuestToolsRunning),
		})
	}
	return opts
}

func simPowerOn(ctx context.Context, vm *object.VirtualMachine) error {
	task, err := vm.PowerOn(ctx)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("power on %s: %w", vm.Reference().Value, err)
	}
	return nil
}

// simFinder returns a finder set to the first datacenter.
func simFinder(ctx context.Context, c *vim25.Client) (*find.Finder, *object.Datacenter, error) {
	finder := find.NewFinder(c, false)
	dcs, err := finder.DatacenterList(ctx, "*")
	if err != nil {
		return nil, nil, fmt.Errorf("find datacenter: %w", err)
	}
	finder.SetDatacenter(dcs[0])
	return finder, dcs[0], nil
}

// simFolder returns the folder at rel under dc's VM folder, creating what is
// missing.
func simFolder(ctx context.Context, finder *find.Finder, dc *object.Datacenter, rel string) (*object.Folder, error) {
	folders, err := dc.Folders(ctx)
	if err != nil {
		return nil, fmt.Errorf("datacenter folders: %w", err)
	}
	folder := folders.VmFolder
	dir := folder.InventoryPath
	for _, name := range strings.Split(strings.Trim(rel, "/"), "/") {
		if name == "" {
			continue
		}
		dir = path.Join(dir, name)
		next, err := finder.Folder(ctx, dir)
		var notFound *find.NotFoundError
		switch {
		case errors.As(err, &notFound):
			if next, err = folder.CreateFolder(ctx, name); err != nil {
				return nil, fmt.Errorf("create folder %s: %w", dir, err)
			}
			next.InventoryPath = dir
		case err != nil:
			return nil, fmt.Errorf("find folder %s: %w", dir, err)
		}
		folder = next
	}
	return folder, nil
}

// simPlacement returns the first compute resource's pool and first host.
func simPlacement(ctx context.Context, finder *find.Finder) (*object.ResourcePool, *object.HostSystem, error) {
	crs, err := finder.ComputeResourceList(ctx, "*")
	if err != nil {
		return nil, nil, fmt.Errorf("find compute resource: %w", err)
	}
	pool, err := crs[0].ResourcePool(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("find resource pool: %w", err)
	}
	hosts, err := crs[0].Hosts(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("find host of %s: %w", crs[0].InventoryPath, err)
	}
	if len(hosts) == 0 {
		return nil, nil, fmt.Errorf("compute resource %s has no host", crs[0].InventoryPath)
	}
	return pool, hosts[0], nil
}

// simNetwork returns a NIC backing on "VM Network", or the first network.
func simNetwork(ctx context.Context, finder *find.Finder) (types.BaseVirtualDeviceBackingInfo, error) {
	nets, err := finder.NetworkList(ctx, "*")
	if err != nil {
		return nil, fmt.Errorf("find network: %w", err)
	}
	net := nets[0]
	for _, n := range nets {
		if strings.HasSuffix(n.GetInventoryPath(), "/VM Network") {
			net = n
		}
	}
	backing, err := net.EthernetCardBackingInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("network backing: %w", err)
	}
	return backing, nil
}

// newMACs edits every NIC of devices (the source's) to a new generated MAC
// (VMware's 00:50:56 prefix), as vCenter gives a clone.
func newMACs(devices []types.BaseVirtualDevice) ([]types.BaseVirtualDeviceConfigSpec, error) {
	var changes []types.BaseVirtualDeviceConfigSpec
	for _, d := range devices {
		nic, ok := d.(types.BaseVirtualEthernetCard)
		if !ok {
			continue
		}
		// devices is this call's own copy of the source's configuration:
		// the card is edited in place, keeping its type.
		card := nic.GetVirtualEthernetCard()
		b := make([]byte, 3)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		card.MacAddress = fmt.Sprintf("00:50:56:%02x:%02x:%02x", b[0]&0x3f, b[1], b[2])
		card.AddressType = string(types.VirtualEthernetCardMacTypeManual)
		changes = append(changes, &types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationEdit, Device: d})
	}
	return changes, nil
}
