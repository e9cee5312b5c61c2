package vsphere

import (
	"cmp"
	"context"
	"fmt"
	"path"
	"slices"

	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// InventoryOptions tunes Inventory. The zero value collects everything in
// pages of DefaultPageSize.
type InventoryOptions struct {
	// PageSize is the MaxObjects of each RetrievePropertiesEx page; 0 means
	// DefaultPageSize.
	PageSize int32
	// Include, when not empty, keeps only the VMs whose name or inventory path
	// matches at least one of these path.Match patterns ("swarm-*",
	// "/DC0/vm/prod/*").
	Include []string
	// Exclude drops the VMs whose name or inventory path matches any of these
	// path.Match patterns. Exclude wins over Include.
	Exclude []string
}

// vmProperties is everything Inventory reads of a VirtualMachine. The device
// list is the heaviest part; it is needed for the NIC MACs of VMs whose tools
// report no guest.net, and for linked-clone disk parents.
// config.files.vmPathName names the VM's directory, which is how a parent
// disk is traced back to the VM that owns it. parentVApp stands in for parent
// on VMs inside a vApp.
var vmProperties = []string{
	"name",
	"parent",
	"parentVApp",
	"config.uuid",
	"config.instanceUuid",
	"config.hardware.numCPU",
	"config.hardware.memoryMB",
	"config.hardware.device",
	"config.template",
	"config.createDate",
	"config.files.vmPathName",
	"runtime.powerState",
	"guest.toolsRunningStatus",
	"guest.hostName",
	"guest.net",
	"guest.ipAddress",
}

// containerProperties are what inventory paths are built from.
var containerProperties = []types.PropertySpec{
	{Type: "Folder", PathSet: []string{"name", "parent"}},
	{Type: "Datacenter", PathSet: []string{"name", "parent"}},
	{Type: "VirtualApp", PathSet: []string{"name", "parentFolder", "parentVApp"}},
}

// Inventory returns every VM and template under root (a datacenter or the
// root folder), sorted by inventory path, each with the fields of
// reconcile.VM filled in except VCenter (the caller knows which vCenter it
// asked) and Lineage, which is set here only for linked clones found through
// their disks (see ResolveLineage for event lineage).
//
// All of it comes from one recursive ContainerView and one paged property
// collection: VMs, and the folders, datacenters and vApps that their paths are
// made of, arrive in the same pages, together with root's own ancestors.
func Inventory(ctx context.Context, c *vim25.Client, root types.ManagedObjectReference, opts InventoryOptions) ([]reconcile.VM, error) {
	match, err := newMatcher(opts.Include, opts.Exclude)
	if err != nil {
		return nil, err
	}

	v, destroy, err := createView(ctx, c, root, []string{"VirtualMachine", "Folder", "Datacenter", "VirtualApp"})
	if err != nil {
		return nil, err
	}
	defer destroy()

	spec := types.PropertyFilterSpec{
		ObjectSet: []types.ObjectSpec{
			viewObjectSpec(v.Reference()),
			ancestorsObjectSpec(root),
		},
		PropSet: append([]types.PropertySpec{{Type: "VirtualMachine", PathSet: vmProperties}}, containerProperties...),
	}

	b := newBuilder()
	err = collectPages(ctx, c, spec, opts.PageSize, func(objects []types.ObjectContent) error {
		for i := range objects {
			b.add(&objects[i])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("inventory of %s: %w", root, err)
	}

	// Only when root is not a folder or datacenter (a cluster, say) can a
	// VM's folders lie outside the view; fetch those in one more call.
	if missing := b.missingContainers(); len(missing) > 0 {
		if err := b.addAncestors(ctx, c, missing, opts.PageSize); err != nil {
			return nil, fmt.Errorf("inventory of %s: %w", root, err)
		}
	}

	return filterSorted(b.finish(), match), nil
}

// filterSorted keeps the VMs match accepts, sorted by path (then ref).
func filterSorted(vms []reconcile.VM, match func(name, vmPath string) bool) []reconcile.VM {
	vms = slices.DeleteFunc(vms, func(vm reconcile.VM) bool { return !match(vm.Name, vm.Path) })
	slices.SortFunc(vms, func(a, b reconcile.VM) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Ref, b.Ref))
	})
	return vms
}

// ancestorsObjectSpec selects obj and every entity above it, following
// "parent" up to the root folder. A container view holds what is inside its
// container, not the container nor what is above it, yet paths start at the
// top of the inventory.
func ancestorsObjectSpec(obj types.ManagedObjectReference) types.ObjectSpec {
	return types.ObjectSpec{
		Obj: obj,
		SelectSet: []types.BaseSelectionSpec{
			&types.TraversalSpec{
				SelectionSpec: types.SelectionSpec{Name: "up"},
				Type:          "ManagedEntity",
				Path:          "parent",
				SelectSet:     []types.BaseSelectionSpec{&types.SelectionSpec{Name: "up"}},
			},
		},
	}
}

// addAncestors collects refs and their ancestors.
func (b *builder) addAncestors(ctx context.Context, c *vim25.Client, refs []types.ManagedObjectReference, pageSize int32) error {
	spec := types.PropertyFilterSpec{PropSet: containerProperties}
	for _, ref := range refs {
		spec.ObjectSet = append(spec.ObjectSet, ancestorsObjectSpec(ref))
	}
	// Objects we may not read are left out rather than failing the inventory;
	// paths then start below them.
	spec.ReportMissingObjectsInResults = types.NewBool(true)
	return collectPages(ctx, c, spec, pageSize, func(objects []types.ObjectContent) error {
		for i := range objects {
			b.add(&objects[i])
		}
		return nil
	})
}

// newMatcher validates the patterns once, so a typo fails the call instead of
// silently matching nothing.
func newMatcher(include, exclude []string) (func(name, vmPath string) bool, error) {
	for _, p := range slices.Concat(include, exclude) {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("bad VM pattern %q: %w", p, err)
		}
	}
	matchAny := func(patterns []string, name, vmPath string) bool {
		for _, p := range patterns {
			if ok, _ := path.Match(p, name); ok {
				return true
			}
			if ok, _ := path.Match(p, vmPath); ok {
				return true
			}
		}
		return false
	}
	return func(name, vmPath string) bool {
		if len(include) > 0 && !matchAny(include, name, vmPath) {
			return false
		}
		return !matchAny(exclude, name, vmPath)
	}, nil
}
