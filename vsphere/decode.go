package vsphere

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// container is a folder, datacenter or vApp: what inventory paths are made of.
type container struct {
	name   string
	parent types.ManagedObjectReference // zero for the root folder
}

// diskInfo is what linked-clone detection needs of a VM with child disks.
type diskInfo struct {
	// ownDirs are the datastore directories holding the VM's .vmx and its
	// top-level disks.
	ownDirs []string
	// chains holds, per disk that has a parent, the parent files from the
	// nearest to the base.
	chains [][]string
}

// builder accumulates decoded objects across pages. It keeps no
// ObjectContent: each page is decoded and can be collected before the next.
type builder struct {
	vms []reconcile.VM
	// parents[i] is the folder or vApp holding vms[i], for its path.
	parents []types.ManagedObjectReference
	// disks holds, by index in vms, the few VMs whose disks have parents.
	disks      map[int]*diskInfo
	containers map[types.ManagedObjectReference]container
	// dirs[i] is the directory of vms[i]'s .vmx ("[ds] web-01").
	dirs []string
	// dirOwner maps a datacenter and a VM directory (dirKey) to the ref of
	// the VM whose .vmx lives there; "" marks a directory claimed by several
	// VMs. Datastore names are unique only within a datacenter. Filled by
	// finish.
	dirOwner map[string]string
}

func newBuilder() *builder {
	return &builder{
		disks:      make(map[int]*diskInfo),
		containers: make(map[types.ManagedObjectReference]container),
		dirOwner:   make(map[string]string),
	}
}

// add decodes one object of any collected type.
func (b *builder) add(o *types.ObjectContent) {
	if o.Obj.Type == "VirtualMachine" {
		b.addVM(decodeVM(o))
		return
	}
	b.containers[o.Obj] = decodeContainer(o)
}

// addVM adds one decoded VM (decodeVM's results).
func (b *builder) addVM(vm reconcile.VM, parent types.ManagedObjectReference, dir string, disks *diskInfo) {
	if disks != nil {
		b.disks[len(b.vms)] = disks
	}
	b.vms = append(b.vms, vm)
	b.parents = append(b.parents, parent)
	b.dirs = append(b.dirs, dir)
}

func decodeContainer(o *types.ObjectContent) container {
	var c container
	var folder, vapp types.ManagedObjectReference
	for _, p := range o.PropSet {
		switch p.Name {
		case "name":
			c.name, _ = p.Val.(string)
		case "parent":
			c.parent, _ = p.Val.(types.ManagedObjectReference)
		case "parentFolder":
			folder, _ = p.Val.(types.ManagedObjectReference)
		case "parentVApp":
			vapp, _ = p.Val.(types.ManagedObjectReference)
		}
	}
	if o.Obj.Type == "VirtualApp" {
		// A vApp's "parent" is a resource pool; in the VM and Templates
		// hierarchy it hangs off a folder or an outer vApp.
		c.parent = cmp.Or(vapp, folder)
	}
	return c
}

// decodeVM turns one VM's properties into a reconcile.VM, and returns with it
// the VM's folder or vApp, its directory, and its disk chains if any disk has
// a parent. Properties a VM lacks (an inaccessible VM has no config, a VM
// without tools no guest.net) leave the zero value; MissingSet entries (no
// permission on one property) are ignored the same way instead of failing the
// whole inventory.
func decodeVM(o *types.ObjectContent) (vm reconcile.VM, parent types.ManagedObjectReference, vmPathDir string, disks *diskInfo) {
	vm.Ref = o.Obj.Value
	var (
		vapp     types.ManagedObjectReference
		devices  []types.BaseVirtualDevice
		guestNet []types.GuestNicInfo
		guestIP  string
	)
	for _, p := range o.PropSet {
		switch p.Name {
		case "name":
			vm.Name, _ = p.Val.(string)
		case "parent":
			parent, _ = p.Val.(types.ManagedObjectReference)
		case "parentVApp":
			vapp, _ = p.Val.(types.ManagedObjectReference)
		case "config.uuid":
			vm.BIOSUUID, _ = p.Val.(string)
		case "config.instanceUuid":
			vm.InstanceUUID, _ = p.Val.(string)
		case "config.hardware.numCPU":
			vm.NumCPU, _ = p.Val.(int32)
		case "config.hardware.memoryMB":
			vm.MemoryMB, _ = p.Val.(int32)
		case "config.hardware.device":
			if a, ok := p.Val.(types.ArrayOfVirtualDevice); ok {
				devices = a.VirtualDevice
			}
		case "config.template":
			vm.Template, _ = p.Val.(bool)
		case "config.createDate":
			vm.Created, _ = p.Val.(time.Time)
		case "config.files.vmPathName":
			s, _ := p.Val.(string)
			vmPathDir = datastoreDir(s)
		case "runtime.powerState":
			if s, ok := p.Val.(types.VirtualMachinePowerState); ok {
				vm.PowerState = string(s)
			}
		case "guest.toolsRunningStatus":
			s, _ := p.Val.(string)
			vm.ToolsRunning = s == string(types.VirtualMachineToolsRunningStatusGuestToolsRunning)
		case "guest.hostName":
			vm.GuestHostname, _ = p.Val.(string)
		case "guest.net":
			if a, ok := p.Val.(types.ArrayOfGuestNicInfo); ok {
				guestNet = a.GuestNicInfo
			}
		case "guest.ipAddress":
			guestIP, _ = p.Val.(string)
		}
	}
	if parent.Value == "" {
		parent = vapp
	}

	vm.IPs = guestIPs(guestNet, guestIP)
	vm.MACs = guestMACs(guestNet)
	if len(vm.MACs) == 0 {
		vm.MACs = nicMACs(devices)
	}

	if chains := diskParentChains(devices); len(chains) > 0 {
		disks = &diskInfo{ownDirs: ownDirs(vmPathDir, devices), chains: chains}
	}
	return vm, parent, vmPathDir, disks
}

// guestIPs returns the addresses the guest reports, canonical, deduplicated
// and in netip order (IPv4 before IPv6). Strings that do not parse are
// dropped: they cannot match anything a swarm node reports.
func guestIPs(nics []types.GuestNicInfo, primary string) []string {
	var addrs []netip.Addr
	add := func(s string) {
		if a, err := netip.ParseAddr(s); err == nil {
			addrs = append(addrs, a.Unmap())
		}
	}
	add(primary)
	for i := range nics {
		for _, s := range nics[i].IpAddress {
			add(s)
		}
		if cfg := nics[i].IpConfig; cfg != nil {
			for _, a := range cfg.IpAddress {
				add(a.IpAddress)
			}
		}
	}
	if len(addrs) == 0 {
		return nil
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

// guestMACs returns the MACs of the guest's NICs as tools report them.
func guestMACs(nics []types.GuestNicInfo) []string {
	var macs []string
	for i := range nics {
		macs = appendMAC(macs, nics[i].MacAddress)
	}
	return sortMACs(macs)
}

// nicMACs returns the MACs of the VM's virtual NICs: the fallback when tools
// are not running, which is exactly when a powered-off or freshly booted
// clone has to be recognized.
func nicMACs(devices []types.BaseVirtualDevice) []string {
	var macs []string
	for _, d := range devices {
		if nic, ok := d.(types.BaseVirtualEthernetCard); ok {
			macs = appendMAC(macs, nic.GetVirtualEthernetCard().MacAddress)
		}
	}
	return sortMACs(macs)
}

func appendMAC(macs []string, mac string) []string {
	if mac == "" {
		return macs
	}
	return append(macs, strings.ToLower(mac))
}

func sortMACs(macs []string) []string {
	if len(macs) == 0 {
		return nil
	}
	slices.Sort(macs)
	return slices.Compact(macs)
}
