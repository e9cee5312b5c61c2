package vsphere

import (
	"path"
	"slices"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"
)

// Lineage kinds. KindClone and KindDeploy come from events; KindLinkedClone
// from disk backings whose parent lives in another VM's directory.
const (
	KindClone       = "clone"
	KindDeploy      = "deploy"
	KindLinkedClone = "linked-clone"
)

// datastoreDir returns the directory part of a datastore path:
// "[ds1] web-01/web-01.vmx" gives "[ds1] web-01".
func datastoreDir(file string) string {
	var p object.DatastorePath
	if file == "" || !p.FromString(file) {
		return ""
	}
	dir := path.Dir(p.Path)
	if dir == "." {
		dir = ""
	}
	p.Path = dir
	return p.String()
}

// diskParentChains returns, for each virtual disk that has a parent (a
// snapshot delta or a linked clone's child disk), its parent files from the
// nearest to the base. Most VMs have none, and then nothing is allocated.
func diskParentChains(devices []types.BaseVirtualDevice) [][]string {
	var chains [][]string
	for _, d := range devices {
		disk, ok := d.(*types.VirtualDisk)
		if !ok {
			continue
		}
		if files := parentFiles(disk.Backing); len(files) > 0 {
			chains = append(chains, files)
		}
	}
	return chains
}

// parentFiles walks a disk backing's Parent links. Every backing type that
// can have a parent is listed; they share no interface for it.
func parentFiles(backing types.BaseVirtualDeviceBackingInfo) []string {
	var files []string
	switch b := backing.(type) {
	case *types.VirtualDiskFlatVer2BackingInfo:
		for p := b.Parent; p != nil; p = p.Parent {
			files = append(files, p.FileName)
		}
	case *types.VirtualDiskSeSparseBackingInfo:
		for p := b.Parent; p != nil; p = p.Parent {
			files = append(files, p.FileName)
		}
	case *types.VirtualDiskSparseVer2BackingInfo:
		for p := b.Parent; p != nil; p = p.Parent {
			files = append(files, p.FileName)
		}
	case *types.VirtualDiskRawDiskMappingVer1BackingInfo:
		for p := b.Parent; p != nil; p = p.Parent {
			files = append(files, p.FileName)
		}
	case *types.VirtualDiskFlatVer1BackingInfo:
		for p := b.Parent; p != nil; p = p.Parent {
			files = append(files, p.FileName)
		}
	case *types.VirtualDiskSparseVer1BackingInfo:
		for p := b.Parent; p != nil; p = p.Parent {
			files = append(files, p.FileName)
		}
	}
	return files
}

// ownDirs returns the directories a VM's own files live in: its .vmx
// directory and those of its top-level disks (disks may sit on another
// datastore). Parent disks in these directories are the VM's own snapshots.
func ownDirs(vmDir string, devices []types.BaseVirtualDevice) []string {
	var dirs []string
	if vmDir != "" {
		dirs = append(dirs, vmDir)
	}
	for _, d := range devices {
		disk, ok := d.(*types.VirtualDisk)
		if !ok {
			continue
		}
		if fb, ok := disk.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
			if dir := datastoreDir(fb.GetVirtualDeviceFileBackingInfo().FileName); dir != "" && !slices.Contains(dirs, dir) {
				dirs = append(dirs, dir)
			}
		}
	}
	return dirs
}

// linkedSource returns the ref of the VM a linked clone's disks descend
// from: the owner of the nearest parent disk outside the VM's own
// directories. Parents further down belong to the source's own ancestry (a
// linked clone of a linked clone), so the walk stops at the first foreign
// directory, owned or not. It returns "" for VMs that are no linked clones,
// or whose source is gone.
func (b *builder) linkedSource(self, dc string, d *diskInfo) string {
	for _, chain := range d.chains {
		for _, file := range chain {
			dir := datastoreDir(file)
			if slices.Contains(d.ownDirs, dir) {
				continue
			}
			if owner := b.dirOwner[dirKey(dc, dir)]; owner != "" && owner != self {
				return owner
			}
			break
		}
	}
	return ""
}
