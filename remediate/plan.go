// Package remediate turns findings into a plan of actions on the VMs that
// impersonate a swarm node or a Kubernetes Node, and executes such a plan
// through vSphere (guest operations or power operations), journaling every
// action.
//
// It is split the way terraform is: Plan is a pure function (snapshot +
// result + options in, Plan out: what would be done, what is refused and
// why), an Executor carries a plan out, and every action is written to the
// store's journal before (intent) and after (outcome) it is taken.
//
// Safety rules, all enforced by Plan:
//   - a finding's original (the VM that owns the node ID or the Node) is
//     never touched;
//   - templates are never touched (reported with the manual fix);
//   - VMs carrying the skip marker (custom attribute vmreconcile.skip set to
//     a non-empty value) or matching an exclude pattern are never touched;
//   - a shared-node-id, shared-k8s-node or clone-of-k8s-node finding whose
//     original is undetermined is refused (name the impostor explicitly);
//   - when more VMs qualify than -max-actions or -max-percent of the
//     inventory allow, the plan is blocked and nothing is done at all.
//
// Nothing here ever removes a node on a manager (`docker node rm`
// blacklists the shared ID and locks the original out as well), nor deletes
// a Kubernetes Node object (that drops its labels and taints).
//
// The action of each VM follows its findings' kind when the action is the
// default, disable-docker (see actionsFor). VMs are keyed by vCenter and
// ref (reconcile.VMKey) throughout.
//
// Files: plan.go (types, settings, fingerprint, staleness), candidates.go
// (which VMs the findings and -vm name), compute.go (Compute: per-VM
// checks, actions, caps, fingerprint), integrity.go (sealed plans,
// Recheck), exec.go (Executor), script.go (guest scripts), markers.go
// (skip markers), runner.go (Runner).
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
	// ActionDisableKubelet runs `systemctl disable --now kubelet` in the
	// guest and moves the kubelet's credentials (/var/lib/kubelet/pki,
	// /etc/kubernetes/kubelet.conf) into a timestamped backup directory
	// under /var/backups; nothing is deleted (see script.go).
	ActionDisableKubelet = "disable-kubelet"
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
	// Action is disable-docker (the default: the action follows each VM's
	// findings, see actionsFor), disable-kubelet or power-off.
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
	// action makes it (guest probe: Docker disabled and inactive, or kubelet
	// disabled and inactive with no credentials left; VM off).
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
	// Findings are the keys of the identity findings (swarm and
	// Kubernetes, Kinds) of the result.
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

// identityKinds are the findings remediation acts on (and whose originals
// are protected): a copied swarm or kubelet identity.
var identityKinds = slices.Concat(reconcile.SwarmIdentityKinds, reconcile.KubeIdentityKinds)

// Kinds returns the finding kinds remediation acts on: the daemon and the
// command plan remediation when a finding of one of these kinds is open.
func Kinds() []string { return slices.Clone(identityKinds) }

// Normalize fills in defaults and validates settings.
func (s *Settings) Normalize() error {
	if s.Action == "" {
		s.Action = ActionDisableDocker
	}
	switch s.Action {
	case ActionDisableDocker, ActionDisableKubelet, ActionPowerOff:
	default:
		return fmt.Errorf("unknown action %q (fix: %s, %s or %s)", s.Action, ActionDisableDocker, ActionDisableKubelet, ActionPowerOff)
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

// capsBlock says which cap refuses acting on n VMs in an inventory of
// inventory VMs, or "" when none does. As Cluster API's MachineHealthCheck
// maxUnhealthy: beyond the caps, something is wrong with the detection or
// the estate; do nothing. The caps count VMs, not actions: n is
// entryVMs(entries).
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

// entryVMs counts the VMs entries act on: a VM with two actions (MKE:
// disable-docker, then disable-kubelet) is one.
func entryVMs(es []Entry) int {
	vms := map[reconcile.VMKey]bool{}
	for _, e := range es {
		vms[e.VM.Key()] = true
	}
	return len(vms)
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
		if f.Kind != reconcile.KindTemplateCarriesSwarm && f.Kind != reconcile.KindTemplateCarriesKubelet {
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
