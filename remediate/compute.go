package remediate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// Actions by finding kind (documented in docs/findings.md, "Remediation
// actions"): with the default action, disable-docker, each VM gets the
// action that fixes the identity its findings are about:
//   - a VM named by a swarm identity finding (shared-node-id,
//     clone-of-swarm-node) gets disable-docker;
//   - a VM named by a Kubernetes identity finding (shared-k8s-node,
//     clone-of-k8s-node) gets disable-kubelet;
//   - a VM named by both (MKE: the copy holds a swarm node and a Kubernetes
//     Node) gets both, disable-docker first (MKE runs its kubelet under
//     Docker; disable-kubelet refuses to move the credentials from under a
//     kubelet that still runs);
//   - a VM selected with -vm that no finding names gets disable-docker.
//
// The action disable-kubelet applies disable-kubelet, and power-off
// power-off, to every candidate, whatever its findings.
func actionsFor(s Settings, c candidate) []string {
	if s.Action != ActionDisableDocker {
		return []string{s.Action}
	}
	var out []string
	if c.swarm != nil || c.kube == nil {
		out = append(out, ActionDisableDocker)
	}
	if c.kube != nil {
		out = append(out, ActionDisableKubelet)
	}
	return out
}

// claimFor returns the claim an entry of action a is for: the Kubernetes
// finding for disable-kubelet, the swarm finding for disable-docker, the
// first otherwise.
func (c candidate) claimFor(a string) *claim {
	switch {
	case a == ActionDisableKubelet && c.kube != nil:
		return c.kube
	case a == ActionDisableDocker && c.swarm != nil:
		return c.swarm
	}
	return c.first()
}

// Compute computes the plan: what remediation would do. It is pure: no I/O, and the same
// input gives the same plan (the ID also depends on Options.Now).
func Compute(snap reconcile.Snapshot, res reconcile.Result, opts Options) (Plan, error) {
	s := opts.Settings
	if err := s.Normalize(); err != nil {
		return Plan{}, err
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	p := Plan{Version: PlanVersion, Created: now.UTC(), Settings: s, VCenterUUIDs: maps.Clone(snap.VCenterUUIDs), ClusterIDs: clusterIDs(snap)}
	ix := newVMIndex(snap)
	for _, v := range snap.VMs {
		if !v.Template {
			p.InventoryVMs++
		}
	}
	// Originals are never touched.
	protected, involved, keys := ix.protect(res)

	cands, refused, err := candidates(snap, res, s, ix)
	if err != nil {
		return Plan{}, err
	}
	p.Refused = refused
	for _, c := range cands {
		p.consider(c, res, ix, protected[c.vm.Key()], opts.Skip)
	}
	p.Blocked = capsBlock(entryVMs(p.Entries), p.InventoryVMs, s)
	p.Fingerprint = p.fingerprint(ix, involved, keys)
	sum := sha256.Sum256([]byte(p.Fingerprint.Digest + "|" + p.Created.Format(time.RFC3339Nano)))
	p.ID = "plan-" + p.Created.Format("20060102T150405Z") + "-" + hex.EncodeToString(sum[:4])
	return p, nil
}

// protect returns the originals of the identity findings (VM key → why it
// is never touched), the VMs involved so far (the originals) and the
// findings' keys.
func (ix *vmIndex) protect(res reconcile.Result) (map[reconcile.VMKey]string, map[reconcile.VMKey]bool, []string) {
	protected := map[reconcile.VMKey]string{}
	involved := map[reconcile.VMKey]bool{}
	var keys []string
	for i := range res.Findings {
		f := &res.Findings[i]
		if !slices.Contains(identityKinds, f.Kind) {
			continue
		}
		keys = append(keys, f.Key())
		if f.Original == "" || len(f.VMRefs) == 0 {
			continue
		}
		// The original is listed first; also protect whichever VM carries
		// the original's name, should the order ever differ. When the
		// finding's VM cannot be narrowed to one VM, every VM with that ref
		// is protected.
		for j := range f.VMRefs {
			if j != 0 && (j >= len(f.VMs) || f.VMs[j] != f.Original) {
				continue
			}
			vs := ix.resolve(f, j)
			if len(vs) != 1 {
				vs = ix.refs[f.VMRefs[j]]
			}
			for _, v := range vs {
				if _, ok := protected[v.Key()]; !ok {
					protected[v.Key()] = fmt.Sprintf("original of the %s finding for %s: never touched", f.Kind, nodeOf(f))
				}
				involved[v.Key()] = true
			}
		}
	}
	return protected, involved, keys
}

// agents names what each guest action disables (the refusal of a VM that
// is not powered on says "disable Docker and kubelet in the guest").
var agents = map[string]string{ActionDisableDocker: "Docker", ActionDisableKubelet: "kubelet"}

// consider adds candidate c to the plan: its entries (one per action, see
// actionsFor), as entries or as already done, or its refusal (protected
// says why it is an original, "" when it is not).
func (p *Plan) consider(c candidate, res reconcile.Result, ix *vmIndex, protected string, skip map[reconcile.VMKey]string) {
	s := p.Settings
	v := c.vm
	info := vmInfo(v)
	refuse := func(why, fix string) {
		p.Refused = append(p.Refused, Refusal{VM: info, FindingKey: c.findingKey(), Why: why, Fix: fix})
	}
	switch {
	case v.Template:
		refuse("template: not actionable (a template cannot run a guest script or be powered off)", templateFix(res, v))
		return
	case protected != "":
		refuse(protected, "")
		return
	case matchAny(s.Exclude, v):
		refuse("matches an exclude pattern (policy.exclude)", "")
		return
	case skip[v.Key()] != "":
		refuse("skip marker: "+skip[v.Key()], "")
		return
	}
	actions := actionsFor(s, c)
	if !v.PoweredOn() && actions[0] != ActionPowerOff {
		var names []string
		for _, a := range actions {
			names = append(names, agents[a])
		}
		who := strings.Join(names, " and ")
		refuse(fmt.Sprintf("%s: guest operations need it powered on", orUnknown(v.PowerState)),
			fmt.Sprintf("power it on with its network disconnected and rerun, or disable %s in the guest before it rejoins; it takes over the node again when its %s starts", who, who))
		return
	}
	g, probed := ix.guest(v)
	probed = probed && g.Error == ""
	for _, a := range actions {
		e := Entry{VM: info, Action: a, ForgetIdentity: s.ForgetIdentity && a == ActionDisableDocker, Reason: c.note}
		if cl := c.claimFor(a); cl != nil {
			f := cl.f
			e.Reason = cl.reason + c.note
			e.FindingKey, e.FindingKind, e.NodeID, e.Original = f.Key(), f.Kind, f.NodeID, f.Original
		}
		switch {
		case a == ActionPowerOff && v.PowerState == "poweredOff":
			p.AlreadyDone = append(p.AlreadyDone, withReason(e, "already powered off"))
		case a == ActionDisableDocker && probed && g.DockerEnabled == "no" && g.DockerActive == "no" && (!e.ForgetIdentity || g.NodeID == ""):
			p.AlreadyDone = append(p.AlreadyDone, withReason(e, "guest probe: Docker already disabled and inactive"))
		case a == ActionDisableKubelet && probed && g.KubeletEnabled == "no" && g.KubeletActive == "no" && !g.KubeletCreds && g.KubeletNode == "":
			p.AlreadyDone = append(p.AlreadyDone, withReason(e, "guest probe: kubelet already disabled and inactive, no kubelet credentials left"))
		default:
			p.Entries = append(p.Entries, e)
		}
	}
}

// fingerprint records the VMs involved (the originals in involved, and
// every VM the plan names) with their power states, the identity findings'
// keys and the actions ("KEY action").
func (p *Plan) fingerprint(ix *vmIndex, involved map[reconcile.VMKey]bool, keys []string) Fingerprint {
	for _, e := range p.Entries {
		involved[e.VM.Key()] = true
	}
	for _, e := range p.AlreadyDone {
		involved[e.VM.Key()] = true
	}
	for _, r := range p.Refused {
		involved[r.VM.Key()] = true
	}
	fp := Fingerprint{Findings: sortedUnique(keys), Actions: []string{}}
	for _, k := range sortedVMKeys(involved) {
		v := ix.byKey[k]
		fp.VMs = append(fp.VMs, FingerprintVM{VCenter: v.VCenter, Ref: v.Ref, Name: v.Name, PowerState: v.PowerState})
	}
	for _, e := range p.Entries {
		fp.Actions = append(fp.Actions, e.action())
	}
	fp.Digest = fp.digest()
	return fp
}
