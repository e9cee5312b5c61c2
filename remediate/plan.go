// Package remediate turns findings into a plan of actions on the VMs that
// impersonate a swarm node, and executes such a plan through vSphere (guest
// operations or power operations), journaling every action.
//
// It is split the way terraform is: Plan is a pure function (snapshot +
// result + options in, Plan out: what would be done, what is refused and
// why), an Executor carries a plan out, and every action is written to the
// store's journal before (intent) and after (outcome) it is taken.
//
// Safety rules, all enforced by Plan:
//   - a finding's original (the VM that owns the node ID) is never touched;
//   - templates are never touched (reported with the manual fix);
//   - VMs carrying the skip marker (custom attribute vmreconcile.skip set to
//     a non-empty value) or matching an exclude pattern are never touched;
//   - a shared-node-id finding whose original is undetermined is refused
//     (name the impostor explicitly);
//   - when more VMs qualify than -max-actions or -max-percent of the
//     inventory allow, the plan is blocked and nothing is done at all.
//
// Nothing here ever removes a node on a manager (`docker node rm`
// blacklists the shared ID and locks the original out as well).
package remediate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// Actions.
const (
	// ActionDisableDocker stops and disables docker.service and
	// docker.socket in the guest (and, with ForgetIdentity, moves the swarm
	// identity files into a backup directory; it never runs 'docker swarm
	// leave', which deletes them, see script.go).
	ActionDisableDocker = "disable-docker"
	// ActionPowerOff shuts the guest down, then powers the VM off hard after
	// a timeout.
	ActionPowerOff = "power-off"
)

// SkipMarker is the custom attribute (and the reserved tag name) that, set
// to a non-empty value on a VM, keeps remediation away from it.
const SkipMarker = "vmreconcile.skip"

// PlanVersion is the version of the saved plan format. Version 2 names VMs
// by vCenter and ref in the fingerprint, binds the plan to the vCenters'
// instance UUIDs and the swarms' cluster IDs, and is sealed.
const PlanVersion = 2

// Defaults of the caps.
const (
	DefaultMaxActions = 1
	DefaultMaxPercent = 10.0
)

// Settings are the options of a plan that are saved with it (the re-plan of
// `remediate -apply FILE` uses them).
type Settings struct {
	Action         string   `json:"action"`
	ForgetIdentity bool     `json:"forget_identity,omitempty"`
	Select         []string `json:"select,omitempty"` // -vm: names, inventory paths or path.Match globs
	Exclude        []string `json:"exclude,omitempty"`
	MaxActions     int      `json:"max_actions"`
	MaxPercent     float64  `json:"max_percent"`
}

// Options tune Plan.
type Options struct {
	Settings
	// Skip holds the VMs that carry the skip marker: VM key → what was found
	// (see SkipMarkers and SkipTags, called per vCenter). Only the
	// candidates need to be looked up.
	Skip map[reconcile.VMKey]string
	// Now stamps the plan (and seeds its ID); zero means time.Now().
	Now time.Time
}

// VMInfo identifies a VM in a plan.
type VMInfo struct {
	Name       string `json:"name"`
	Path       string `json:"path"`
	Ref        string `json:"ref"`
	VCenter    string `json:"vcenter,omitempty"`
	PowerState string `json:"power_state"`
}

// Entry is one action of a plan.
type Entry struct {
	VM             VMInfo `json:"vm"`
	Action         string `json:"action"`
	ForgetIdentity bool   `json:"forget_identity,omitempty"`
	Reason         string `json:"reason"`
	FindingKey     string `json:"finding_key,omitempty"`
	FindingKind    string `json:"finding_kind,omitempty"`
	NodeID         string `json:"node_id,omitempty"`
	// Original is the VM that keeps the identity (never touched).
	Original string `json:"original,omitempty"`
}

// JournalAction is the action name written to the journal.
func (e Entry) JournalAction() string {
	if e.Action == ActionDisableDocker && e.ForgetIdentity {
		return ActionDisableDocker + "+forget-identity"
	}
	return e.Action
}

// Refusal is a VM a finding names (or -vm selects) that the plan will not
// touch, and why.
type Refusal struct {
	VM         VMInfo `json:"vm"`
	FindingKey string `json:"finding_key,omitempty"`
	Why        string `json:"why"`
	// Fix is the manual fix, when there is one (templates).
	Fix string `json:"fix,omitempty"`
}

// Plan is what remediation would do.
type Plan struct {
	Version  int       `json:"version"`
	ID       string    `json:"id"`
	Created  time.Time `json:"created"`
	Settings Settings  `json:"settings"`
	// InventoryVMs counts the VMs (not templates) of the snapshot, the base
	// of MaxPercent.
	InventoryVMs int `json:"inventory_vms"`
	// Entries are the actions, in order.
	Entries []Entry `json:"entries"`
	// AlreadyDone lists qualifying VMs whose state already is what the
	// action makes it (guest probe: Docker disabled and inactive; VM off).
	// They count against no cap and are not acted on.
	AlreadyDone []Entry `json:"already_done,omitempty"`
	// Refused lists VMs that will not be touched, and why.
	Refused []Refusal `json:"refused,omitempty"`
	// Blocked, when set, says which cap refused the whole plan: Entries
	// lists what qualified, and nothing will be done.
	Blocked string `json:"blocked,omitempty"`
	// VCenterUUIDs binds the plan to the vCenters it was computed against:
	// vCenter name → instance UUID (Snapshot.VCenterUUIDs). ClusterIDs are
	// the swarms' cluster IDs. Recheck refuses a plan applied where they
	// differ.
	VCenterUUIDs map[string]string `json:"vcenter_uuids,omitempty"`
	ClusterIDs   []string          `json:"cluster_ids,omitempty"`
	Fingerprint  Fingerprint       `json:"fingerprint"`
	// Seal is the HMAC of everything else in the plan with the local plan
	// key (Seal, Verify): a saved plan edited by hand does not verify.
	Seal string `json:"seal,omitempty"`
}

// Actionable reports whether applying the plan would do anything.
func (p Plan) Actionable() bool { return p.Blocked == "" && len(p.Entries) > 0 }

// Fingerprint is what a plan was computed from. A saved plan is applied
// only when a fresh plan, computed the same way now, has the same
// fingerprint.
type Fingerprint struct {
	// VMs are the VMs involved: acted on, already done, refused, and the
	// originals of the findings involved.
	VMs []FingerprintVM `json:"vms"`
	// Findings are the keys of the swarm-identity findings of the result.
	Findings []string `json:"findings"`
	// Actions are "KEY action" of the entries (KEY: VMKey.String).
	Actions []string `json:"actions"`
	Digest  string   `json:"digest"`
}

// FingerprintVM is one VM of a fingerprint.
type FingerprintVM struct {
	// VCenter is part of the VM's identity: morefs ("vm-42") repeat across
	// vCenters.
	VCenter    string `json:"vcenter,omitempty"`
	Ref        string `json:"ref"`
	Name       string `json:"name"`
	PowerState string `json:"power_state"`
}

// swarmKinds are the findings about swarm identity remediation acts on (and
// whose originals are protected).
var swarmKinds = []string{reconcile.KindSharedNodeID, reconcile.KindCloneOfSwarmNode, reconcile.KindTemplateCarriesSwarm}

// Normalize fills in defaults and validates settings.
func (s *Settings) Normalize() error {
	if s.Action == "" {
		s.Action = ActionDisableDocker
	}
	switch s.Action {
	case ActionDisableDocker, ActionPowerOff:
	default:
		return fmt.Errorf("unknown action %q (fix: %s or %s)", s.Action, ActionDisableDocker, ActionPowerOff)
	}
	if s.ForgetIdentity && s.Action != ActionDisableDocker {
		return fmt.Errorf("forget-identity goes with %s, not %s", ActionDisableDocker, s.Action)
	}
	if s.MaxActions == 0 {
		s.MaxActions = DefaultMaxActions
	}
	if s.MaxPercent == 0 {
		s.MaxPercent = DefaultMaxPercent
	}
	if s.MaxActions < 0 {
		return fmt.Errorf("max-actions %d is negative (fix: a small number such as 1)", s.MaxActions)
	}
	// NaN compares false with everything: "pct > NaN" would never block,
	// so -max-percent NaN would switch the percentage cap off.
	if math.IsNaN(s.MaxPercent) || s.MaxPercent < 0 || s.MaxPercent > 100 {
		return fmt.Errorf("max-percent %g is outside 0..100 (fix: e.g. 10)", s.MaxPercent)
	}
	for _, p := range slices.Concat(s.Select, s.Exclude) {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("bad VM pattern %q: %v", p, err)
		}
	}
	return nil
}

// candidate is a VM some finding or selector names for action.
type candidate struct {
	vm      reconcile.VM
	finding *reconcile.Finding // nil: selected without a finding naming it
	reason  string
}

// Candidates returns the keys of the VMs Plan would consider acting on,
// before the skip marker is checked: look their markers up (SkipMarkers and
// SkipTags, once per vCenter) and pass them in Options.Skip.
func Candidates(snap reconcile.Snapshot, res reconcile.Result, s Settings) ([]reconcile.VMKey, error) {
	if err := s.Normalize(); err != nil {
		return nil, err
	}
	cands, _, err := candidates(snap, res, s, nil)
	if err != nil {
		return nil, err
	}
	keys := make([]reconcile.VMKey, 0, len(cands))
	for _, c := range cands {
		keys = append(keys, c.vm.Key())
	}
	return keys, nil
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
	p.Blocked = capsBlock(len(p.Entries), p.InventoryVMs, s)

	// Fingerprint: the VMs involved with their power states, the finding keys
	// and the actions.
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
	p.Fingerprint = fp
	sum := sha256.Sum256([]byte(fp.Digest + "|" + p.Created.Format(time.RFC3339Nano)))
	p.ID = "plan-" + p.Created.Format("20060102T150405Z") + "-" + hex.EncodeToString(sum[:4])
	return p, nil
}

// consider adds candidate c to the plan: as an entry, as already done, or
// as refused (protected says why it is an original, "" when it is not).
func (p *Plan) consider(c candidate, res reconcile.Result, ix *vmIndex, protected string, skip map[reconcile.VMKey]string) {
	s := p.Settings
	v := c.vm
	info := vmInfo(v)
	refuse := func(why, fix string) {
		p.Refused = append(p.Refused, Refusal{VM: info, FindingKey: keyOf(c.finding), Why: why, Fix: fix})
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
	e := Entry{VM: info, Action: s.Action, ForgetIdentity: s.ForgetIdentity, Reason: c.reason}
	if f := c.finding; f != nil {
		e.FindingKey, e.FindingKind, e.NodeID, e.Original = f.Key(), f.Kind, f.NodeID, f.Original
	}
	switch s.Action {
	case ActionPowerOff:
		if v.PowerState == "poweredOff" {
			p.AlreadyDone = append(p.AlreadyDone, withReason(e, "already powered off"))
			return
		}
	case ActionDisableDocker:
		if !v.PoweredOn() {
			refuse(fmt.Sprintf("%s: guest operations need it powered on", orUnknown(v.PowerState)),
				"power it on with its network disconnected and rerun, or disable Docker in the guest before it rejoins; it takes over the node again when its Docker starts")
			return
		}
		if g, ok := ix.guest(v); ok && g.Error == "" && g.DockerEnabled == "no" && g.DockerActive == "no" && (!s.ForgetIdentity || g.NodeID == "") {
			p.AlreadyDone = append(p.AlreadyDone, withReason(e, "guest probe: Docker already disabled and inactive"))
			return
		}
	}
	p.Entries = append(p.Entries, e)
}

// capsBlock says which cap refuses n actions in an inventory of inventory
// VMs, or "" when none does. As Cluster API's MachineHealthCheck
// maxUnhealthy: beyond the caps, something is wrong with the detection or
// the estate; do nothing.
func capsBlock(n, inventory int, s Settings) string {
	if n == 0 {
		return ""
	}
	pct := 100 * float64(n) / float64(max(inventory, 1))
	switch {
	case n > s.MaxActions:
		return fmt.Sprintf("%d VMs qualify but -max-actions allows %d", n, s.MaxActions)
	case pct > s.MaxPercent:
		return fmt.Sprintf("%d VMs qualify = %.1f%% of the %d VMs in the inventory, but -max-percent allows %g%%", n, pct, inventory, s.MaxPercent)
	}
	return ""
}

// vmIndex holds a snapshot's VMs and guest probes by key. VMs are keyed by
// vCenter and ref: several vCenters hand out the same morefs.
type vmIndex struct {
	byKey  map[reconcile.VMKey]reconcile.VM
	refs   map[string][]reconcile.VM // ref → the VMs carrying it, one per vCenter using it
	guests map[reconcile.VMKey]reconcile.GuestIdentity
}

func newVMIndex(snap reconcile.Snapshot) *vmIndex {
	ix := &vmIndex{byKey: map[reconcile.VMKey]reconcile.VM{}, refs: map[string][]reconcile.VM{}, guests: map[reconcile.VMKey]reconcile.GuestIdentity{}}
	for _, v := range snap.VMs {
		ix.byKey[v.Key()] = v
		ix.refs[v.Ref] = append(ix.refs[v.Ref], v)
	}
	for _, g := range snap.Guests {
		if old, ok := ix.guests[g.Key()]; !ok || !g.ProbedAt.Before(old.ProbedAt) {
			ix.guests[g.Key()] = g // the latest probe wins
		}
	}
	return ix
}

// guest returns the guest probe of v: its own, or one that names no
// vCenter when no other vCenter's VM has v's ref.
func (ix *vmIndex) guest(v reconcile.VM) (reconcile.GuestIdentity, bool) {
	if g, ok := ix.guests[v.Key()]; ok {
		return g, true
	}
	if len(ix.refs[v.Ref]) == 1 {
		g, ok := ix.guests[reconcile.VMKey{Ref: v.Ref}]
		return g, ok
	}
	return reconcile.GuestIdentity{}, false
}

// resolve returns the VMs the j-th VM of a finding can be. A finding names
// its VMs' vCenters (Finding.VMVCenters): that VM, if the snapshot has it.
// One that does not (older JSON or store rows) names them by ref, path and
// name: when several vCenters have a VM with that ref, the path and name
// narrow it down. More than one result means the finding is ambiguous and
// must not be acted on.
func (ix *vmIndex) resolve(f *reconcile.Finding, j int) []reconcile.VM {
	if j < len(f.VMVCenters) {
		if v, ok := ix.byKey[reconcile.VMKey{VCenter: f.VMVCenters[j], Ref: f.VMRefs[j]}]; ok {
			return []reconcile.VM{v}
		}
		return nil
	}
	vs := ix.refs[f.VMRefs[j]]
	if len(vs) <= 1 {
		return vs
	}
	var out []reconcile.VM
	for _, v := range vs {
		if j < len(f.VMPaths) && f.VMPaths[j] != "" && v.Path != f.VMPaths[j] {
			continue
		}
		if j < len(f.VMs) && f.VMs[j] != "" && v.Name != f.VMs[j] {
			continue
		}
		out = append(out, v)
	}
	return out
}

// protect returns the originals of the swarm-identity findings (VM key →
// why it is never touched), the VMs involved so far (the originals) and the
// findings' keys.
func (ix *vmIndex) protect(res reconcile.Result) (map[reconcile.VMKey]string, map[reconcile.VMKey]bool, []string) {
	protected := map[reconcile.VMKey]string{}
	involved := map[reconcile.VMKey]bool{}
	var keys []string
	for i := range res.Findings {
		f := &res.Findings[i]
		if !slices.Contains(swarmKinds, f.Kind) {
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
					protected[v.Key()] = fmt.Sprintf("original of the %s finding for node %s: never touched", f.Kind, f.NodeID)
				}
				involved[v.Key()] = true
			}
		}
	}
	return protected, involved, keys
}

// impostors is what the findings name for action, before -vm selection.
type impostors struct {
	why   map[reconcile.VMKey]impostor
	order []reconcile.VMKey
	// noOriginal: VMs of shared-node-id findings whose original is
	// undetermined; ambiguous: refs (of findings without vCenters) that
	// several vCenters' VMs carry with the same path and name.
	noOriginal map[reconcile.VMKey]*reconcile.Finding
	ambiguous  map[string]*reconcile.Finding
}

type impostor struct {
	f      *reconcile.Finding
	reason string
}

// name records the j-th VM of f as an impostor, when it resolves to exactly
// one VM of the snapshot.
func (im *impostors) name(ix *vmIndex, f *reconcile.Finding, j int, reason string) {
	vs := ix.resolve(f, j)
	if len(vs) != 1 {
		if _, ok := im.ambiguous[f.VMRefs[j]]; !ok && len(vs) > 1 {
			im.ambiguous[f.VMRefs[j]] = f
		}
		return
	}
	k := vs[0].Key()
	if _, ok := im.why[k]; !ok {
		im.why[k] = impostor{f, reason}
		im.order = append(im.order, k)
	}
}

func findImpostors(res reconcile.Result, ix *vmIndex) *impostors {
	im := &impostors{why: map[reconcile.VMKey]impostor{}, noOriginal: map[reconcile.VMKey]*reconcile.Finding{}, ambiguous: map[string]*reconcile.Finding{}}
	for i := range res.Findings {
		f := &res.Findings[i]
		if len(f.VMRefs) == 0 { // nothing to act on (and no index to take)
			continue
		}
		switch f.Kind {
		case reconcile.KindSharedNodeID:
			if f.Original == "" {
				for j, ref := range f.VMRefs {
					vs := ix.resolve(f, j)
					if len(vs) == 0 && j >= len(f.VMVCenters) {
						vs = ix.refs[ref]
					}
					for _, v := range vs {
						if _, ok := im.noOriginal[v.Key()]; !ok {
							im.noOriginal[v.Key()] = f
						}
					}
				}
				continue
			}
			conf := ""
			if f.Confirmed {
				conf = ", confirmed in the guest"
			}
			for j := range f.VMRefs {
				if j == 0 {
					continue
				}
				im.name(ix, f, j, fmt.Sprintf("answers as node %s of %s (the original, left alone)%s", f.NodeID, f.Original, conf))
			}
		case reconcile.KindCloneOfSwarmNode:
			if len(f.VMRefs) < 2 {
				continue
			}
			im.name(ix, f, len(f.VMRefs)-1, fmt.Sprintf("clone of swarm node %s (%s, left alone) carrying its swarm state", f.NodeID, f.Original))
		case reconcile.KindTemplateCarriesSwarm:
			im.name(ix, f, len(f.VMRefs)-1, fmt.Sprintf("template carries the swarm identity of node %s", f.NodeID))
		}
	}
	return im
}

// candidates lists the VMs to consider, in order, and the VMs refused
// before any per-VM check (findings without an original, ambiguous refs).
func candidates(snap reconcile.Snapshot, res reconcile.Result, s Settings, ix *vmIndex) ([]candidate, []Refusal, error) {
	if ix == nil {
		ix = newVMIndex(snap)
	}
	im := findImpostors(res, ix)
	if len(s.Select) > 0 {
		out, err := selected(snap, s.Select, im)
		return out, nil, err
	}
	var out []candidate
	var refused []Refusal
	seen := map[reconcile.VMKey]bool{}
	for _, k := range im.order {
		v, ok := ix.byKey[k]
		if !ok || seen[k] {
			continue
		}
		seen[k] = true
		w := im.why[k]
		out = append(out, candidate{vm: v, finding: w.f, reason: w.reason})
	}
	for _, k := range sortedVMKeys(im.noOriginal) {
		f := im.noOriginal[k]
		v, ok := ix.byKey[k]
		if !ok || seen[k] {
			continue
		}
		seen[k] = true
		refused = append(refused, Refusal{VM: vmInfo(v), FindingKey: f.Key(),
			Why: fmt.Sprintf("shares node ID %s but the evidence cannot tell which VM is the original", f.NodeID),
			Fix: "decide which VM is the original and name the others with -vm NAME"})
	}
	for _, ref := range slices.Sorted(maps.Keys(im.ambiguous)) {
		f := im.ambiguous[ref]
		for _, v := range ix.refs[ref] {
			if seen[v.Key()] {
				continue
			}
			seen[v.Key()] = true
			refused = append(refused, Refusal{VM: vmInfo(v), FindingKey: f.Key(),
				Why: fmt.Sprintf("the finding names ref %s, which several vCenters' VMs carry with the same path and name: cannot tell which one it means", ref),
				Fix: "name the impostor with -vm PATH"})
		}
	}
	return out, refused, nil
}

// selected lists the VMs -vm selects, by name, with the finding that names
// each, if any. A pattern that matches no VM is a *SelectError.
func selected(snap reconcile.Snapshot, patterns []string, im *impostors) ([]candidate, error) {
	var out []candidate
	seen := map[reconcile.VMKey]bool{}
	matched := map[string]bool{}
	vms := slices.Clone(snap.VMs)
	sort.SliceStable(vms, func(i, j int) bool { return vms[i].Name < vms[j].Name })
	for _, v := range vms {
		hit := false
		for _, p := range patterns {
			if matchPattern(p, v) {
				matched[p] = true
				hit = true
			}
		}
		if !hit || seen[v.Key()] {
			continue
		}
		seen[v.Key()] = true
		if w, ok := im.why[v.Key()]; ok {
			out = append(out, candidate{vm: v, finding: w.f, reason: w.reason + "; selected with -vm"})
		} else if f := im.noOriginal[v.Key()]; f != nil {
			out = append(out, candidate{vm: v, finding: f, reason: fmt.Sprintf("shares node ID %s (original undetermined); selected with -vm", f.NodeID)})
		} else {
			out = append(out, candidate{vm: v, reason: "selected with -vm (no finding names it)"})
		}
	}
	var missing []string
	for _, p := range patterns {
		if !matched[p] {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return nil, &SelectError{Patterns: missing}
	}
	return out, nil
}

// Key returns the key of the VM.
func (v VMInfo) Key() reconcile.VMKey { return reconcile.VMKey{VCenter: v.VCenter, Ref: v.Ref} }

// action is the entry as the fingerprint lists it: "KEY action".
func (e Entry) action() string { return e.VM.Key().String() + " " + e.JournalAction() }

func clusterIDs(snap reconcile.Snapshot) []string {
	var out []string
	for _, sw := range snap.Swarms {
		if sw.ClusterID != "" {
			out = append(out, sw.ClusterID)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func sortedVMKeys[V any](m map[reconcile.VMKey]V) []reconcile.VMKey {
	return slices.SortedFunc(maps.Keys(m), reconcile.VMKey.Compare)
}

// SelectError says which -vm patterns matched no VM.
type SelectError struct{ Patterns []string }

func (e *SelectError) Error() string {
	return fmt.Sprintf("-vm %s matches no VM in the inventory", strings.Join(quoteAll(e.Patterns), ", "))
}

// IsSelectError reports whether err is a *SelectError.
func IsSelectError(err error) bool {
	var se *SelectError
	return errors.As(err, &se)
}

func templateFix(res reconcile.Result, v reconcile.VM) string {
	for _, f := range res.Findings {
		if f.Kind != reconcile.KindTemplateCarriesSwarm {
			continue
		}
		for j, k := range f.VMKeys() {
			if k.Ref == v.Ref && (j >= len(f.VMVCenters) || k.VCenter == v.VCenter) {
				return f.Remedy
			}
		}
	}
	return "convert it to a VM, power it on with its network disconnected, run `systemctl disable --now docker.service docker.socket`, move /var/lib/docker/swarm and /var/lib/docker/engine-id aside, power it off and convert it back to a template"
}

func withReason(e Entry, s string) Entry {
	e.Reason = s + " (" + e.Reason + ")"
	return e
}

func vmInfo(v reconcile.VM) VMInfo {
	return VMInfo{Name: v.Name, Path: v.Path, Ref: v.Ref, VCenter: v.VCenter, PowerState: v.PowerState}
}

func keyOf(f *reconcile.Finding) string {
	if f == nil {
		return ""
	}
	return f.Key()
}

// matchPattern matches a -vm or exclude pattern against a VM's name, its
// inventory path, its ref and its key ("VCENTER/REF").
func matchPattern(p string, v reconcile.VM) bool {
	if p == v.Name || p == v.Path || p == v.Ref || p == v.Key().String() {
		return true
	}
	if ok, _ := path.Match(p, v.Name); ok {
		return true
	}
	ok, _ := path.Match(p, v.Path)
	return ok
}

func matchAny(patterns []string, v reconcile.VM) bool {
	for _, p := range patterns {
		if matchPattern(p, v) {
			return true
		}
	}
	return false
}

func orUnknown(s string) string {
	if s == "" {
		return "power state unknown"
	}
	return s
}

func sortedUnique(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	out = slices.Compact(out)
	if out == nil {
		out = []string{}
	}
	return out
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}

func (fp Fingerprint) digest() string {
	h := sha256.New()
	for _, v := range fp.VMs {
		fmt.Fprintf(h, "vm\x00%s\x00%s\x00%s\x00%s\n", v.VCenter, v.Ref, v.Name, v.PowerState)
	}
	for _, k := range fp.Findings {
		fmt.Fprintf(h, "finding\x00%s\n", k)
	}
	for _, a := range fp.Actions {
		fmt.Fprintf(h, "action\x00%s\n", a)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Changed compares a saved plan's fingerprint with a fresh one and returns
// one line saying what changed, or "" when nothing did.
func Changed(saved, fresh Fingerprint) string {
	if saved.Digest == fresh.Digest && saved.Digest != "" {
		return ""
	}
	key := func(v FingerprintVM) reconcile.VMKey { return reconcile.VMKey{VCenter: v.VCenter, Ref: v.Ref} }
	old := map[reconcile.VMKey]FingerprintVM{}
	for _, v := range saved.VMs {
		old[key(v)] = v
	}
	now := map[reconcile.VMKey]FingerprintVM{}
	for _, v := range fresh.VMs {
		now[key(v)] = v
	}
	var diffs []string
	for _, v := range saved.VMs {
		n, ok := now[key(v)]
		switch {
		case !ok:
			// Still in the inventory? The fresh plan no longer involves it.
			diffs = append(diffs, fmt.Sprintf("VM %s (%s) is no longer involved", v.Name, key(v)))
		case n.PowerState != v.PowerState:
			diffs = append(diffs, fmt.Sprintf("VM %s (%s) power state %s → %s", v.Name, key(v), v.PowerState, n.PowerState))
		case n.Name != v.Name:
			diffs = append(diffs, fmt.Sprintf("VM %s (%s) renamed to %s", v.Name, key(v), n.Name))
		}
	}
	for _, v := range fresh.VMs {
		if _, ok := old[key(v)]; !ok {
			diffs = append(diffs, fmt.Sprintf("VM %s (%s) is newly involved", v.Name, key(v)))
		}
	}
	for _, k := range saved.Findings {
		if !slices.Contains(fresh.Findings, k) {
			diffs = append(diffs, "finding "+k+" is gone")
		}
	}
	for _, k := range fresh.Findings {
		if !slices.Contains(saved.Findings, k) {
			diffs = append(diffs, "new finding "+k)
		}
	}
	for _, a := range saved.Actions {
		if !slices.Contains(fresh.Actions, a) {
			diffs = append(diffs, "action \""+a+"\" would no longer be planned")
		}
	}
	for _, a := range fresh.Actions {
		if !slices.Contains(saved.Actions, a) {
			diffs = append(diffs, "action \""+a+"\" would now be planned")
		}
	}
	if len(diffs) == 0 {
		return "the plan's fingerprint differs"
	}
	if len(diffs) > 3 {
		diffs = append(diffs[:3], fmt.Sprintf("and %d more changes", len(diffs)-3))
	}
	return strings.Join(diffs, "; ")
}

// Stale says why a saved plan may not be applied now, or "" when it may:
// fresh is the plan computed now with the saved plan's settings. Entries
// of the saved plan that an earlier apply finished (done reports them, from
// the journal) are expected to have changed — the fresh plan lists them as
// already done, a powered-off VM is off — and do not make the plan stale.
func Stale(saved, fresh Plan, done func(Entry) bool) string {
	// What is executed is saved.Entries, so they must be what the saved
	// fingerprint says (a plan file is JSON anyone can edit: an entry added
	// by hand, say for the original, must not ride on an unchanged
	// fingerprint), and each entry still to do must be one the fresh plan
	// would do now, on the same VM of the same vCenter.
	if saved.Fingerprint.digest() != saved.Fingerprint.Digest {
		return "the plan file's fingerprint does not match its contents (edited or corrupted)"
	}
	var savedActions []string
	for _, e := range saved.Entries {
		savedActions = append(savedActions, e.action())
	}
	if !slices.Equal(savedActions, saved.Fingerprint.Actions) && !(len(savedActions) == 0 && len(saved.Fingerprint.Actions) == 0) {
		return "the plan file's entries do not match its fingerprint (edited or corrupted)"
	}
	fp := fresh.Fingerprint
	fp.VMs = slices.Clone(fp.VMs)
	fp.Actions = slices.Clone(fp.Actions)
	for _, e := range saved.Entries {
		if done == nil || !done(e) {
			continue
		}
		a := e.action()
		if !slices.Contains(fp.Actions, a) {
			fp.Actions = append(fp.Actions, a)
		}
		for i := range fp.VMs {
			if (reconcile.VMKey{VCenter: fp.VMs[i].VCenter, Ref: fp.VMs[i].Ref}) == e.VM.Key() {
				fp.VMs[i].PowerState = e.VM.PowerState
			}
		}
	}
	// Keep the order Compute uses: entries in plan order.
	order := map[string]int{}
	for i, e := range saved.Entries {
		order[e.action()] = i
	}
	sort.SliceStable(fp.Actions, func(i, j int) bool {
		oi, iok := order[fp.Actions[i]]
		oj, jok := order[fp.Actions[j]]
		return iok && jok && oi < oj
	})
	fp.Digest = fp.digest()
	if what := Changed(saved.Fingerprint, fp); what != "" {
		return what
	}
	for _, e := range saved.Entries {
		if done != nil && done(e) {
			continue
		}
		ok := false
		for _, f := range fresh.Entries {
			if f.VM.Key() == e.VM.Key() && f.Action == e.Action && f.ForgetIdentity == e.ForgetIdentity {
				ok = true
				break
			}
		}
		if !ok {
			return fmt.Sprintf("action %q on %s (%s, vCenter %s) would not be planned now", e.JournalAction(), e.VM.Name, e.VM.Ref, orUnknown(e.VM.VCenter))
		}
	}
	return ""
}
