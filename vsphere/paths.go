package vsphere

import (
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// missingContainers returns the first unknown container on each VM's way to
// the root folder. It is empty when root was a folder or datacenter, since the
// view and root's ancestors then cover every VM's path.
func (b *builder) missingContainers() []types.ManagedObjectReference {
	var missing []types.ManagedObjectReference
	seen := make(map[types.ManagedObjectReference]bool)
	for _, parent := range b.parents {
		for ref := parent; ref.Value != "" && !seen[ref]; {
			seen[ref] = true
			c, ok := b.containers[ref]
			if !ok {
				missing = append(missing, ref)
				break
			}
			ref = c.parent
		}
	}
	return missing
}

// pathOf returns the inventory path of a container, "" for the root folder
// (which paths leave out: "/DC0/vm", not "/Datacenters/DC0/vm"). Paths are
// memoized: thousands of VMs share a few folders. Names are used as vCenter
// returns them, with '/' escaped as "%2f", so paths stay unambiguous.
func (b *builder) pathOf(ref types.ManagedObjectReference, memo map[types.ManagedObjectReference]string) string {
	if p, ok := memo[ref]; ok {
		return p
	}
	c, ok := b.containers[ref]
	if !ok || c.parent.Value == "" {
		// The root folder, or a container we could not read: paths start
		// below it.
		memo[ref] = ""
		return ""
	}
	p := b.pathOf(c.parent, memo) + "/" + c.name
	memo[ref] = p
	return p
}

// finish resolves paths and linked-clone sources now that every page is in,
// and returns the VMs (unsorted, unfiltered).
func (b *builder) finish() []reconcile.VM {
	memo := make(map[types.ManagedObjectReference]string, len(b.containers))
	for i := range b.vms {
		b.vms[i].Path = b.pathOf(b.parents[i], memo) + "/" + b.vms[i].Name
	}

	if len(b.disks) > 0 {
		byRef := make(map[string]int, len(b.vms))
		dcs := make(map[types.ManagedObjectReference]string)
		for i := range b.vms {
			byRef[b.vms[i].Ref] = i
			if b.dirs[i] == "" {
				continue
			}
			k := dirKey(b.datacenterOf(b.parents[i], dcs), b.dirs[i])
			if _, dup := b.dirOwner[k]; dup {
				b.dirOwner[k] = ""
			} else {
				b.dirOwner[k] = b.vms[i].Ref
			}
		}
		for i, d := range b.disks {
			vm := &b.vms[i]
			src := b.linkedSource(vm.Ref, b.datacenterOf(b.parents[i], dcs), d)
			if src == "" {
				continue
			}
			// The copy was made when the VM was created; disks carry no
			// other date.
			vm.Lineage = &reconcile.Lineage{
				SourceRef:  src,
				SourceName: b.vms[byRef[src]].Name,
				Kind:       KindLinkedClone,
				Time:       vm.Created,
			}
		}
	}

	vms := b.vms
	*b = builder{}
	return vms
}

// datacenterOf returns the ref value of the datacenter above a container,
// "" when none is known (memoized: VMs share a few folders).
func (b *builder) datacenterOf(ref types.ManagedObjectReference, memo map[types.ManagedObjectReference]string) string {
	if dc, ok := memo[ref]; ok {
		return dc
	}
	dc := ""
	for r, seen := ref, 0; r.Value != "" && seen < 1000; seen++ {
		if r.Type == "Datacenter" {
			dc = r.Value
			break
		}
		c, ok := b.containers[r]
		if !ok {
			break
		}
		r = c.parent
	}
	memo[ref] = dc
	return dc
}

// dirKey is dirOwner's key: a directory within a datacenter.
func dirKey(dc, dir string) string { return dc + "\x00" + dir }
