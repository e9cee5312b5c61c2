package remediate

import (
	"context"
	"fmt"
	"slices"

	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vapi/tags"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// SkipMarkers returns the VMs of keys that carry the skip marker: the custom
// attribute vmreconcile.skip set to a non-empty value (key → description).
// c is the vCenter named vcenter: only the keys of that vCenter are looked
// up (the others are left to their own vCenter's call, since morefs repeat
// across vCenters). It reads the VMs' customValue and the
// CustomFieldsManager's field definitions in one property collector call.
// vSphere tags are not read (that needs a separate vAPI REST session): see
// SkipTags.
func SkipMarkers(ctx context.Context, c *vim25.Client, vcenter string, keys []reconcile.VMKey) (map[reconcile.VMKey]string, error) {
	out := map[reconcile.VMKey]string{}
	refs := refsOf(vcenter, keys)
	if len(refs) == 0 {
		return out, nil
	}
	spec := types.PropertyFilterSpec{
		PropSet: []types.PropertySpec{{Type: "VirtualMachine", PathSet: []string{"customValue"}}},
	}
	for _, r := range refs {
		spec.ObjectSet = append(spec.ObjectSet, types.ObjectSpec{Obj: types.ManagedObjectReference{Type: "VirtualMachine", Value: r}})
	}
	if cfm := c.ServiceContent.CustomFieldsManager; cfm != nil { // nil on a standalone ESX host
		spec.PropSet = append(spec.PropSet, types.PropertySpec{Type: "CustomFieldsManager", PathSet: []string{"field"}})
		spec.ObjectSet = append(spec.ObjectSet, types.ObjectSpec{Obj: *cfm})
	}
	res, err := methods.RetrievePropertiesEx(ctx, c, &types.RetrievePropertiesEx{
		This:    c.ServiceContent.PropertyCollector,
		SpecSet: []types.PropertyFilterSpec{spec},
	})
	if err != nil {
		return nil, fmt.Errorf("reading custom attributes: %w", err)
	}
	if res.Returnval == nil {
		return out, nil
	}
	objs := res.Returnval.Objects
	for tok := res.Returnval.Token; tok != ""; {
		next, err := methods.ContinueRetrievePropertiesEx(ctx, c, &types.ContinueRetrievePropertiesEx{This: c.ServiceContent.PropertyCollector, Token: tok})
		if err != nil {
			return nil, fmt.Errorf("reading custom attributes: %w", err)
		}
		objs = append(objs, next.Returnval.Objects...)
		tok = next.Returnval.Token
	}
	fields := map[int32]bool{} // keys of fields named SkipMarker
	values := map[string][]types.BaseCustomFieldValue{}
	for _, o := range objs {
		for _, p := range o.PropSet {
			switch v := p.Val.(type) {
			case types.ArrayOfCustomFieldDef:
				for _, d := range v.CustomFieldDef {
					if d.Name == SkipMarker {
						fields[d.Key] = true
					}
				}
			case types.ArrayOfCustomFieldValue:
				values[o.Obj.Value] = v.CustomFieldValue
			}
		}
	}
	for ref, vals := range values {
		for _, bv := range vals {
			sv, ok := bv.(*types.CustomFieldStringValue)
			if ok && fields[sv.Key] && sv.Value != "" {
				out[reconcile.VMKey{VCenter: vcenter, Ref: ref}] = fmt.Sprintf("custom attribute %s = %q", SkipMarker, sv.Value)
			}
		}
	}
	return out, nil
}

// refsOf returns the distinct refs of the keys of one vCenter.
func refsOf(vcenter string, keys []reconcile.VMKey) []string {
	var refs []string
	for _, k := range keys {
		if k.VCenter == vcenter && k.Ref != "" && !slices.Contains(refs, k.Ref) {
			refs = append(refs, k.Ref)
		}
	}
	return refs
}

// SkipTags returns the VMs of keys that have a vSphere tag named
// vmreconcile.skip (in any category) attached: key → description. rc is a
// logged-in vAPI session of the vCenter named vcenter: only the keys of that
// vCenter are looked up. It lists the tags attached to those VMs in one
// call, then reads each distinct tag once.
func SkipTags(ctx context.Context, rc *rest.Client, vcenter string, keys []reconcile.VMKey) (map[reconcile.VMKey]string, error) {
	out := map[reconcile.VMKey]string{}
	refs := refsOf(vcenter, keys)
	if len(refs) == 0 {
		return out, nil
	}
	objs := make([]mo.Reference, len(refs))
	for i, r := range refs {
		objs[i] = types.ManagedObjectReference{Type: "VirtualMachine", Value: r}
	}
	m := tags.NewManager(rc)
	attached, err := m.ListAttachedTagsOnObjects(ctx, objs)
	if err != nil {
		return nil, fmt.Errorf("listing attached tags: %w", err)
	}
	names := map[string]string{} // tag ID → name
	for _, a := range attached {
		for _, id := range a.TagIDs {
			if _, ok := names[id]; ok {
				continue
			}
			t, err := m.GetTag(ctx, id)
			if err != nil {
				return nil, fmt.Errorf("reading tag %s: %w", id, err)
			}
			names[id] = t.Name
		}
		for _, id := range a.TagIDs {
			if names[id] == SkipMarker {
				out[reconcile.VMKey{VCenter: vcenter, Ref: a.ObjectID.Reference().Value}] = fmt.Sprintf("vSphere tag %s", SkipMarker)
			}
		}
	}
	return out, nil
}
