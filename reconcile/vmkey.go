package reconcile

import (
	"cmp"
	"fmt"
	"strings"
)

// VMKey names one VM across vCenters. A managed object ID ("vm-62") is
// unique only inside its vCenter: every vCenter hands out vm-62. VCenter is
// the vCenter's name as collection gives it (VM.VCenter, Snapshot.VCenters);
// empty means unknown: a single vCenter that was not named, or data recorded
// before vCenters were kept with refs.
type VMKey struct {
	VCenter string `json:"vcenter,omitempty"`
	Ref     string `json:"ref"`
}

// Key returns the VM's key.
func (v VM) Key() VMKey { return VMKey{VCenter: v.VCenter, Ref: v.Ref} }

// Key returns the key of the probed VM.
func (g GuestIdentity) Key() VMKey { return VMKey{VCenter: g.VCenter, Ref: g.VMRef} }

// String is "VCENTER/REF", or "REF" alone when the vCenter is unknown (so
// the key of a VM of an unnamed vCenter reads as its ref did before keys
// had a vCenter). vCenter names are host[:port] and morefs never contain a
// slash, so the form is unambiguous; ParseVMKey reads it back.
func (k VMKey) String() string {
	if k.VCenter == "" {
		return k.Ref
	}
	return k.VCenter + "/" + k.Ref
}

// IsZero reports whether k names no VM.
func (k VMKey) IsZero() bool { return k.Ref == "" }

// Compare orders keys by vCenter, then ref.
func (k VMKey) Compare(o VMKey) int {
	return cmp.Or(cmp.Compare(k.VCenter, o.VCenter), cmp.Compare(k.Ref, o.Ref))
}

// ParseVMKey reads a key written by VMKey.String: "VCENTER/REF" or "REF".
func ParseVMKey(s string) (VMKey, error) {
	var k VMKey
	if vc, ref, ok := strings.Cut(s, "/"); ok {
		k = VMKey{VCenter: vc, Ref: ref}
	} else {
		k = VMKey{Ref: s}
	}
	if k.Ref == "" || strings.Contains(k.Ref, "/") || strings.ContainsAny(s, ",|\x00") || (strings.Contains(s, "/") && k.VCenter == "") {
		return VMKey{}, fmt.Errorf("bad VM key %q (fix: VCENTER/REF such as vc.example.com/vm-62, or a bare REF such as vm-62)", s)
	}
	return k, nil
}

// VMKeys returns the keys of the finding's VMs, in the order of VMRefs. A
// finding without VMVCenters (recorded before findings kept vCenters) gives
// keys with an empty vCenter.
func (f Finding) VMKeys() []VMKey {
	out := make([]VMKey, len(f.VMRefs))
	for i, r := range f.VMRefs {
		out[i].Ref = r
		if i < len(f.VMVCenters) {
			out[i].VCenter = f.VMVCenters[i]
		}
	}
	return out
}
