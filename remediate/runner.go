package remediate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/guest"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/store"
)

// Sessions are the vCenter sessions a Runner acts through (audit.Sources).
type Sessions interface {
	// Client returns the session of a vCenter by name, nil when none.
	Client(vcenter string) *vim25.Client
	// Rest logs in to the vCenter's vAPI endpoint; done logs out.
	Rest(ctx context.Context, vcenter string) (rc *rest.Client, done func(), err error)
}

// Runner is remediation as a library: candidates → skip markers (custom
// attribute and tags, failing closed) → plan with caps → preflight → apply
// with the journal. `vmreconcile remediate`, the daemon's policy and
// `preclone -apply` all go through it.
type Runner struct {
	Sessions Sessions
	Settings Settings
	// NoTags relies on the custom attribute alone (no vAPI endpoint).
	NoTags bool
	// Auth returns the guest login of a VM (nil: none).
	Auth            func(reconcile.VM) types.BaseGuestAuthentication
	Journal         Journal
	ShutdownTimeout time.Duration
	GuestTimeout    time.Duration
	Progress        func(format string, args ...any)
	// Now stamps plans and backup directories (default time.Now).
	Now func() time.Time
}

// Refused is a plan the caps blocked: nothing is done.
type Refused struct{ Plan Plan }

func (e *Refused) Error() string {
	var names []string
	for _, en := range e.Plan.Entries {
		names = append(names, en.VM.Name)
	}
	return fmt.Sprintf("refused, nothing done: %s (qualifying VMs: %s)", e.Plan.Blocked, strings.Join(names, ", "))
}

// Plan computes what remediation would do now. Its warnings say which
// vCenters' tags could not be read (their candidates are then left alone).
func (r *Runner) Plan(ctx context.Context, snap reconcile.Snapshot, res reconcile.Result) (Plan, []string, error) {
	return r.plan(ctx, snap, res, r.Settings)
}

func (r *Runner) plan(ctx context.Context, snap reconcile.Snapshot, res reconcile.Result, s Settings) (Plan, []string, error) {
	cands, err := Candidates(snap, res, s)
	if err != nil {
		return Plan{}, nil, err
	}
	skip, warnings, err := r.skipped(ctx, cands)
	if err != nil {
		return Plan{}, warnings, err
	}
	p, err := Compute(snap, res, Options{Settings: s, Skip: skip, Now: r.now()})
	return p, warnings, err
}

// Replan decides again, at apply time, whether a saved plan may be
// executed (see Verify and Recheck): its seal must verify with the local
// plan key, and the plan computed now with ApplySettings(saved, today)
// must do everything it does, on the same vCenters and swarms. It returns
// the plan to apply (the saved one) or a *RefusedError.
func (r *Runner) Replan(ctx context.Context, saved Plan, key []byte, today Settings, snap reconcile.Snapshot, res reconcile.Result) (Plan, []string, error) {
	if err := Verify(saved, key); err != nil {
		return Plan{}, nil, err
	}
	fresh, warnings, err := r.plan(ctx, snap, res, ApplySettings(saved.Settings, today))
	if err != nil {
		return Plan{}, warnings, err
	}
	var rows []store.JournalEntry
	if r.Journal != nil {
		if rows, err = r.Journal.JournalEntries(ctx, saved.ID); err != nil {
			return Plan{}, warnings, fmt.Errorf("journal: %w", err)
		}
	}
	if err := Recheck(saved, fresh, DoneIn(rows)); err != nil {
		return Plan{}, warnings, err
	}
	return saved, warnings, nil
}

// Apply executes an actionable plan: every guest entry is preflighted
// first (nothing is done when one fails), then the entries run in order,
// journaled. A blocked plan returns *Refused.
func (r *Runner) Apply(ctx context.Context, p Plan) ([]Outcome, error) {
	if p.Blocked != "" {
		return nil, &Refused{Plan: p}
	}
	if len(p.Entries) == 0 {
		return nil, nil
	}
	if r.Journal == nil {
		return nil, errors.New("remediate: no journal")
	}
	x := r.executor()
	if err := x.Preflight(ctx, p); err != nil {
		return nil, err
	}
	return x.Apply(ctx, p)
}

func (r *Runner) executor() *Executor {
	return &Executor{
		ClientFor: func(v VMInfo) *vim25.Client { return r.Sessions.Client(v.VCenter) },
		Auth: func(v VMInfo) types.BaseGuestAuthentication {
			if r.Auth == nil {
				return nil
			}
			return r.Auth(reconcile.VM{Name: v.Name, Path: v.Path, Ref: v.Ref, VCenter: v.VCenter})
		},
		Journal:         r.Journal,
		ShutdownTimeout: r.ShutdownTimeout,
		GuestTimeout:    r.GuestTimeout,
		Progress:        r.Progress,
		Now:             r.Now,
	}
}

// Script runs a script in one VM as one journaled action (preclone's
// generalization): the VM's skip markers are checked first (tags fail
// closed), then the guest login (root), then intent, run, outcome. It
// returns the journal intent, the script's output and an error when the
// VM is skipped, the preflight fails or the script fails.
func (r *Runner) Script(ctx context.Context, vm reconcile.VM, planID, action, reason, script string) (intent int64, stdout string, err error) {
	if r.Journal == nil {
		return 0, "", errors.New("remediate: no journal")
	}
	if matchAny(r.Settings.Exclude, vm) {
		return 0, "", &SkippedError{VM: vm.Name, Why: "it matches an exclude pattern (policy.exclude)"}
	}
	skip, warnings, err := r.skipped(ctx, []reconcile.VMKey{vm.Key()})
	if err != nil {
		return 0, "", err
	}
	if why, ok := skip[vm.Key()]; ok {
		return 0, "", &SkippedError{VM: vm.Name, Why: why, Warnings: warnings}
	}
	x := r.executor()
	info := vmInfo(vm)
	if why := x.checkGuest(ctx, info); why != "" {
		return 0, "", &PreflightError{Lines: []string{fmt.Sprintf("%s (%s): %s", vm.Name, vm.Ref, why)}}
	}
	id, err := r.Journal.JournalIntent(ctx, store.JournalRecord{PlanID: planID, VCenter: vm.VCenter, VMRef: vm.Ref, VMName: vm.Name, Action: action, Reason: reason})
	if err != nil {
		return 0, "", fmt.Errorf("journal: %w (nothing done on %s)", err, vm.Name)
	}
	timeout := r.GuestTimeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	code, out, stderr, rerr := guest.Run(rctx, x.client(info), ref(info), x.auth(info), script)
	cancel()
	status, detail := StatusDone, oneLine(strings.ReplaceAll(strings.TrimSpace(string(out)), "\n", "; "))
	switch {
	case rerr != nil:
		status, detail = StatusFailed, guest.Describe(rerr)
	case code != 0:
		status, detail = StatusFailed, fmt.Sprintf("script exited %d: %s", code, oneLine(lastLines(string(stderr)+string(out), 2)))
	}
	jctx, jcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	jerr := r.Journal.JournalOutcome(jctx, id, status, detail)
	jcancel()
	if status != StatusDone {
		return id, string(out), fmt.Errorf("%s on %s failed (journal intent #%d): %s", action, vm.Name, id, detail)
	}
	if jerr != nil {
		return id, string(out), fmt.Errorf("journal: %w", jerr)
	}
	return id, string(out), nil
}

// SkippedError is a VM that carries the skip marker or matches policy.exclude.
type SkippedError struct {
	VM, Why  string
	Warnings []string
}

func (e *SkippedError) Error() string {
	if strings.HasPrefix(e.Why, "it matches") {
		return e.VM + " is left alone: " + e.Why
	}
	return fmt.Sprintf("%s carries the skip marker (%s)", e.VM, e.Why)
}

// skipped looks up the skip markers of the candidates, per vCenter: the
// custom attribute, then the tags. A vCenter whose tags cannot be read has
// all its candidates skipped (fail closed) unless NoTags, with a warning.
func (r *Runner) skipped(ctx context.Context, keys []reconcile.VMKey) (map[reconcile.VMKey]string, []string, error) {
	byVC := map[string][]reconcile.VMKey{}
	for _, k := range keys {
		if !slices.Contains(byVC[k.VCenter], k) {
			byVC[k.VCenter] = append(byVC[k.VCenter], k)
		}
	}
	skip := map[reconcile.VMKey]string{}
	var warnings []string
	for _, vc := range slices.Sorted(maps.Keys(byVC)) {
		mine := byVC[vc]
		c := r.Sessions.Client(vc)
		if c == nil {
			for _, k := range mine {
				skip[k] = "no session to vCenter " + orUnknown(vc) + ", so its skip markers cannot be read"
			}
			continue
		}
		m, err := SkipMarkers(ctx, c, vc, mine)
		if err != nil {
			return nil, warnings, fmt.Errorf("vcenter %s: %s", vc, oneLine(err.Error()))
		}
		maps.Copy(skip, m)
		if r.NoTags {
			continue
		}
		tagged, err := r.tags(ctx, vc, mine)
		if err != nil {
			for _, k := range mine {
				if _, ok := skip[k]; !ok {
					skip[k] = "vSphere tags could not be read, so the " + SkipMarker + " tag cannot be ruled out"
				}
			}
			warnings = append(warnings, fmt.Sprintf("vcenter %s: vSphere tags not readable (%s): its %d candidate VM(s) are left alone (fix: grant tag read access, or -no-tags to rely on the %s custom attribute alone)",
				vc, oneLine(err.Error()), len(mine), SkipMarker))
			continue
		}
		for k, v := range tagged {
			if _, ok := skip[k]; !ok {
				skip[k] = v
			}
		}
	}
	return skip, warnings, nil
}

func (r *Runner) tags(ctx context.Context, vc string, keys []reconcile.VMKey) (map[reconcile.VMKey]string, error) {
	rc, done, err := r.Sessions.Rest(ctx, vc)
	if err != nil {
		return nil, err
	}
	defer done()
	return SkipTags(ctx, rc, vc, keys)
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " ")
}
