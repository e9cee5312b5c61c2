package remediate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
	p := Plan{Version: PlanVersion, Created: now.UTC(), Settings: s}
	for _, v := range snap.VMs {
		if !v.Template {
			p.InventoryVMs++
		}
	}
	// VMs are keyed by vCenter and ref (vmKey): several vCenters hand out
	// the same morefs, and a finding's refs alone could name a VM of
	// another vCenter.
	refs := refIndex(snap)
	w := planInputs{settings: s, res: res, refs: refs, skip: opts.Skip, guests: map[string]reconcile.GuestIdentity{}}
	for _, g := range snap.Guests {
		w.guests[g.VMRef] = g
	}
	protected, involved, keys := originals(res, refs)
	w.protected = protected

	cands, refused, err := candidates(snap, res, s)
	if err != nil {
		return Plan{}, err
	}
	p.Refused = refused
	for _, c := range cands {
		w.consider(&p, c)
	}
	p.applyCaps(s)
	p.Fingerprint = fingerprint(p, snap, involved, keys)
	sum := sha256.Sum256([]byte(p.Fingerprint.Digest + "|" + p.Created.Format(time.RFC3339Nano)))
	p.ID = "plan-" + p.Created.Format("20060102T150405Z") + "-" + hex.EncodeToString(sum[:4])
	return p, nil
}

// originals returns the VMs never to be touched (the originals of the
// identity findings: vmKey → why), the VMs involved, and the keys of the
// identity findings.
func originals(res reconcile.Result, refs map[string][]reconcile.VM) (protected map[string]string, involved map[string]bool, keys []string) {
	protected, involved = map[string]string{}, map[string]bool{}
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
		// the original's name, should the order ever differ. When the ref
		// cannot be narrowed to one VM, every VM with that ref is protected.
		for j := range f.VMRefs {
			if j != 0 && (j >= len(f.VMs) || f.VMs[j] != f.Original) {
				continue
			}
			vs := resolve(refs, f, j)
			if len(vs) != 1 {
				vs = refs[f.VMRefs[j]]
			}
			for _, v := range vs {
				if _, ok := protected[vmKey(v)]; !ok {
					protected[vmKey(v)] = fmt.Sprintf("original of the %s finding for %s: never touched", f.Kind, nodeOf(f))
				}
				involved[vmKey(v)] = true
			}
		}
	}
	return protected, involved, keys
}

// planInputs is what consider weighs each candidate against.
type planInputs struct {
	settings  Settings
	res       reconcile.Result
	refs      map[string][]reconcile.VM
	skip      map[string]string
	guests    map[string]reconcile.GuestIdentity // by ref
	protected map[string]string
}

// consider adds a candidate's entries to the plan, or its refusal.
func (w planInputs) consider(p *Plan, c candidate) {
	v := c.vm
	info := vmInfo(v)
	refuse := func(why, fix string) {
		key := ""
		if cl := c.first(); cl != nil {
			key = cl.f.Key()
		}
		p.Refused = append(p.Refused, Refusal{VM: info, FindingKey: key, Why: why, Fix: fix})
	}
	switch {
	case v.Template:
		refuse("template: not actionable (a template cannot run a guest script or be powered off)", templateFix(w.res, v))
		return
	case w.protected[vmKey(v)] != "":
		refuse(w.protected[vmKey(v)], "")
		return
	case matchAny(w.settings.Exclude, v):
		refuse("matches an exclude pattern (policy.exclude)", "")
		return
	case w.skip[v.Ref] != "":
		refuse("skip marker: "+w.skip[v.Ref], "")
		return
	}
	actions := actionsFor(w.settings, c)
	if !v.PoweredOn() && actions[0] != ActionPowerOff {
		agents := map[string]string{ActionDisableDocker: "Docker", ActionDisableKubelet: "kubelet"}
		var names []string
		for _, a := range actions {
			names = append(names, agents[a])
		}
		who := strings.Join(names, " and ")
		refuse(fmt.Sprintf("%s: guest operations need it powered on", orUnknown(v.PowerState)),
			fmt.Sprintf("power it on with its network disconnected and rerun, or disable %s in the guest before it rejoins; it takes over the node again when its %s starts", who, who))
		return
	}
	// Guest probes carry only a ref: trust one only when no other vCenter's
	// VM has the same ref.
	g, probed := w.guests[v.Ref]
	probed = probed && len(w.refs[v.Ref]) == 1 && g.Error == ""
	for _, a := range actions {
		e := Entry{VM: info, Action: a, ForgetIdentity: w.settings.ForgetIdentity && a == ActionDisableDocker}
		e.Reason = c.note
		if cl := c.claimFor(a); cl != nil {
			e.Reason = cl.reason + c.note
			f := cl.f
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

// applyCaps blocks the plan when more VMs qualify than the caps allow. As
// Cluster API's MachineHealthCheck maxUnhealthy: beyond them, something is
// wrong with the detection or the estate; do nothing. VMs are counted once
// however many actions they get.
func (p *Plan) applyCaps(s Settings) {
	vms := map[string]bool{}
	for _, e := range p.Entries {
		vms[infoKey(e.VM)] = true
	}
	n := len(vms)
	if n == 0 {
		return
	}
	pct := 100 * float64(n) / float64(max(p.InventoryVMs, 1))
	switch {
	case n > s.MaxActions:
		p.Blocked = fmt.Sprintf("%d VMs qualify but -max-actions allows %d", n, s.MaxActions)
	case pct > s.MaxPercent:
		p.Blocked = fmt.Sprintf("%d VMs qualify = %.1f%% of the %d VMs in the inventory, but -max-percent allows %g%%", n, pct, p.InventoryVMs, s.MaxPercent)
	}
}

// fingerprint records the VMs involved with their power states, the finding
// keys and the actions.
func fingerprint(p Plan, snap reconcile.Snapshot, involved map[string]bool, keys []string) Fingerprint {
	byKey := map[string]reconcile.VM{}
	for _, v := range snap.VMs {
		byKey[vmKey(v)] = v
	}
	for _, e := range p.Entries {
		involved[infoKey(e.VM)] = true
	}
	for _, e := range p.AlreadyDone {
		involved[infoKey(e.VM)] = true
	}
	for _, r := range p.Refused {
		involved[infoKey(r.VM)] = true
	}
	fp := Fingerprint{Findings: sortedUnique(keys), Actions: []string{}}
	for _, k := range sortedKeys(involved) {
		v := byKey[k]
		fp.VMs = append(fp.VMs, FingerprintVM{VCenter: v.VCenter, Ref: v.Ref, Name: v.Name, PowerState: v.PowerState})
	}
	for _, e := range p.Entries {
		fp.Actions = append(fp.Actions, e.VM.Ref+" "+e.JournalAction())
	}
	fp.Digest = fp.digest()
	return fp
}
