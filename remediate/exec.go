package remediate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/guest"
	"github.com/vmreconcile/vmreconcile/internal/textsafe"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/store"
)

// Journal is the part of the store the executor writes to (*store.Store).
type Journal interface {
	JournalIntent(ctx context.Context, rec store.JournalRecord) (int64, error)
	JournalOutcome(ctx context.Context, intentID int64, status, detail string) error
	JournalEntries(ctx context.Context, planID string) ([]store.JournalEntry, error)
	Unfinished(ctx context.Context) ([]store.JournalEntry, error)
}

// Outcome statuses (journal outcome status and Outcome.Status).
const (
	StatusDone         = "done"          // the action ran; Detail says what changed (maybe nothing)
	StatusFailed       = "failed"        // the action failed; Detail says why
	StatusAlreadyDone  = "already-done"  // a saved plan's entry done by an earlier apply (not redone)
	StatusNotAttempted = "not-attempted" // an earlier entry failed: stop there
	StatusSuperseded   = "superseded"    // journal only: an interrupted intent, re-run by a later one
)

// Outcome is what happened to one plan entry.
type Outcome struct {
	Entry    Entry  `json:"entry"`
	Status   string `json:"status"`
	Detail   string `json:"detail"`
	IntentID int64  `json:"intent_id,omitempty"`
	// Changed: the action changed something (false for an idempotent no-op).
	Changed bool `json:"changed"`
	// Resumed names an earlier intent without outcome (a crash) this
	// action completed.
	Resumed int64 `json:"resumed,omitempty"`
}

// Executor carries out plans.
type Executor struct {
	// Client is the vCenter of the plan's VMs; ClientFor, when set, picks
	// one per VM instead (several vCenters).
	Client    *vim25.Client
	ClientFor func(VMInfo) *vim25.Client
	// Auth returns the guest credentials of a VM (nil: none).
	Auth func(VMInfo) types.BaseGuestAuthentication
	// Journal records every action; required.
	Journal Journal
	// ShutdownTimeout is how long power-off waits for the guest to shut
	// down before powering off hard (default 2m).
	ShutdownTimeout time.Duration
	// GuestTimeout bounds one guest script (default 5m).
	GuestTimeout time.Duration
	// Now stamps the backup directory (default time.Now).
	Now func() time.Time
	// Progress, when set, is told about each step.
	Progress func(format string, args ...any)
}

// PreflightError lists the VMs whose guest operations cannot work, one
// line each; nothing was done.
type PreflightError struct{ Lines []string }

func (e *PreflightError) Error() string { return strings.Join(e.Lines, "; ") }

// Preflight checks, before anything is changed, that the guest of every
// disable-docker and disable-kubelet entry accepts the credentials and runs
// scripts as root. It returns a *PreflightError naming every VM that does
// not (once per VM).
func (x *Executor) Preflight(ctx context.Context, p Plan) error {
	var lines []string
	checked := map[reconcile.VMKey]bool{}
	for _, e := range p.Entries {
		if e.Action != ActionDisableDocker && e.Action != ActionDisableKubelet || checked[e.VM.Key()] {
			continue
		}
		checked[e.VM.Key()] = true
		if err := x.checkGuest(ctx, e.VM); err != "" {
			lines = append(lines, fmt.Sprintf("%s (%s): %s", e.VM.Name, e.VM.Ref, err))
		}
	}
	if len(lines) > 0 {
		return &PreflightError{Lines: lines}
	}
	return nil
}

func (x *Executor) checkGuest(ctx context.Context, v VMInfo) string {
	auth := x.auth(v)
	if auth == nil {
		return "no guest credentials (fix: -l user:password, GOVC_GUEST_LOGIN or guest.login)"
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	code, out, _, err := guest.Run(ctx, x.client(v), ref(v), auth, "id -u")
	if err != nil {
		return guest.Describe(err)
	}
	uid := strings.TrimSpace(string(out))
	if code != 0 || uid != "0" {
		if _, perr := strconv.Atoi(uid); perr != nil {
			uid = "unknown"
		}
		return fmt.Sprintf("guest user is not root (uid %s): disable-docker and disable-kubelet need root", uid)
	}
	return ""
}

// Apply executes the plan's entries in order, journaling an intent before
// and an outcome after each. It stops at the first failure (the rest are
// not attempted). Entries a previous apply of the same plan finished are
// reported, not redone; an entry whose VM and action have an intent
// without outcome (an interrupted run) is run again — the actions are
// idempotent — and the old intent is closed as superseded.
//
// A blocked plan is refused (nothing done). The error is nil when every
// entry is done or already done.
func (x *Executor) Apply(ctx context.Context, p Plan) ([]Outcome, error) {
	if x.Journal == nil {
		return nil, errors.New("remediate: no journal")
	}
	if p.Blocked != "" {
		return nil, fmt.Errorf("plan %s is blocked: %s", p.ID, p.Blocked)
	}
	done := map[string]store.JournalEntry{} // "KEY action" → outcome row
	prior, err := x.Journal.JournalEntries(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	for _, e := range prior {
		if e.Phase == store.PhaseOutcome && e.Status == StatusDone {
			done[journalAction(e)] = e
		}
	}
	unfinished, err := x.Journal.Unfinished(ctx)
	if err != nil {
		return nil, err
	}

	var outs []Outcome
	failed := false
	for _, e := range p.Entries {
		o := Outcome{Entry: e}
		if d, ok := done[e.action()]; ok {
			o.Status, o.IntentID = StatusAlreadyDone, d.IntentID
			o.Detail = fmt.Sprintf("done by an earlier apply of this plan (journal intent #%d, %s): %s", d.IntentID, d.Time.Format(time.RFC3339), d.Detail)
			outs = append(outs, o)
			continue
		}
		if failed {
			o.Status, o.Detail = StatusNotAttempted, "not attempted: an earlier action failed"
			outs = append(outs, o)
			continue
		}
		var stale []store.JournalEntry
		for _, u := range unfinished {
			if journalAction(u) == e.action() {
				stale = append(stale, u)
			}
		}
		id, err := x.Journal.JournalIntent(ctx, store.JournalRecord{
			PlanID: p.ID, VCenter: e.VM.VCenter, VMRef: e.VM.Ref, VMName: e.VM.Name, Action: e.JournalAction(),
			Reason: e.Reason, FindingKey: e.FindingKey,
		})
		if err != nil {
			return outs, fmt.Errorf("journal: %w (nothing done on %s)", err, e.VM.Name)
		}
		o.IntentID = id
		x.progress("%s %s: %s", e.Action, textsafe.Term(e.VM.Name), "running")
		changed, detail, aerr := x.run(ctx, e)
		o.Changed, o.Detail = changed, detail
		if len(stale) > 0 {
			o.Resumed = stale[0].ID
			o.Detail += fmt.Sprintf(" (completes interrupted intent #%d of plan %s)", stale[0].ID, stale[0].PlanID)
		}
		status := StatusDone
		if aerr != nil {
			status, failed = StatusFailed, true
			o.Detail = aerr.Error()
		}
		o.Status = status
		// The outcome must be written even when ctx was cancelled meanwhile.
		jctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		jerr := x.Journal.JournalOutcome(jctx, id, status, o.Detail)
		if jerr == nil && aerr == nil {
			for _, s := range stale {
				jerr = errors.Join(jerr, x.Journal.JournalOutcome(jctx, s.ID, StatusSuperseded, fmt.Sprintf("re-run as intent #%d of plan %s", id, p.ID)))
			}
		}
		cancel()
		outs = append(outs, o)
		if jerr != nil {
			return outs, fmt.Errorf("journal: %w", jerr)
		}
	}
	if failed {
		for _, o := range outs {
			if o.Status == StatusFailed {
				return outs, fmt.Errorf("%s %s (%s): %s", o.Entry.Action, o.Entry.VM.Name, o.Entry.VM.Ref, o.Detail)
			}
		}
	}
	return outs, nil
}

func (x *Executor) run(ctx context.Context, e Entry) (changed bool, detail string, err error) {
	switch e.Action {
	case ActionDisableDocker:
		return x.guestScript(ctx, e, script(e.ForgetIdentity, x.stamp()))
	case ActionDisableKubelet:
		return x.guestScript(ctx, e, kubeletScript(x.stamp()))
	case ActionPowerOff:
		return x.powerOff(ctx, e)
	}
	return false, "", fmt.Errorf("unknown action %q", e.Action)
}

func (x *Executor) stamp() string { return x.now().UTC().Format("20060102T150405Z") }

// guestScript runs a disable-docker or disable-kubelet script in the guest
// and reads its report.
func (x *Executor) guestScript(ctx context.Context, e Entry, sh string) (bool, string, error) {
	auth := x.auth(e.VM)
	if auth == nil {
		return false, "", errors.New("no guest credentials")
	}
	timeout := x.GuestTimeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	code, out, stderr, err := guest.Run(ctx, x.client(e.VM), ref(e.VM), auth, sh)
	if err != nil {
		return false, "", errors.New(guest.Describe(err))
	}
	r, perr := ParseGuestReport(out)
	if perr != nil {
		return false, "", fmt.Errorf("guest script (exit %d): %v %s", code, perr, firstLine(stderr))
	}
	if code != 0 || !r.Complete {
		msg := r.Error
		if msg == "" {
			msg = fmt.Sprintf("exit %d %s", code, firstLine(stderr))
		}
		return r.Changed(), "", fmt.Errorf("guest script failed: %s (so far: %s)", msg, r.Summary())
	}
	return r.Changed(), r.Summary(), nil
}

func (x *Executor) powerOff(ctx context.Context, e Entry) (bool, string, error) {
	c := x.client(e.VM)
	vm := object.NewVirtualMachine(c, ref(e.VM))
	var m mo.VirtualMachine
	if err := property.DefaultCollector(c).RetrieveOne(ctx, vm.Reference(), []string{"runtime.powerState", "guest.toolsRunningStatus"}, &m); err != nil {
		return false, "", errors.New(guest.Describe(err))
	}
	if m.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOff {
		return false, "already powered off (nothing to do)", nil
	}
	timeout := x.ShutdownTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	how := ""
	if m.Guest != nil && m.Guest.ToolsRunningStatus == string(types.VirtualMachineToolsRunningStatusGuestToolsRunning) {
		start := time.Now()
		if err := vm.ShutdownGuest(ctx); err == nil {
			wctx, cancel := context.WithTimeout(ctx, timeout)
			werr := vm.WaitForPowerState(wctx, types.VirtualMachinePowerStatePoweredOff)
			cancel()
			if werr == nil {
				return true, fmt.Sprintf("guest shut down in %s", time.Since(start).Round(time.Second)), nil
			}
			if ctx.Err() != nil {
				return false, "", ctx.Err()
			}
			how = fmt.Sprintf("guest did not shut down within %s; ", timeout)
		} else {
			how = "guest shutdown refused (" + guest.Describe(err) + "); "
		}
	} else {
		how = "VMware Tools not running; "
	}
	task, err := vm.PowerOff(ctx)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		// It may have gone off by itself in between.
		if st, serr := vm.PowerState(ctx); serr == nil && st == types.VirtualMachinePowerStatePoweredOff {
			return true, how + "powered off", nil
		}
		return false, "", fmt.Errorf("%spower off: %s", how, guest.Describe(err))
	}
	return true, how + "powered off hard", nil
}

func (x *Executor) client(v VMInfo) *vim25.Client {
	if x.ClientFor != nil {
		if c := x.ClientFor(v); c != nil {
			return c
		}
	}
	return x.Client
}

func (x *Executor) auth(v VMInfo) types.BaseGuestAuthentication {
	if x.Auth == nil {
		return nil
	}
	return x.Auth(v)
}

func (x *Executor) now() time.Time {
	if x.Now != nil {
		return x.Now()
	}
	return time.Now()
}

func (x *Executor) progress(format string, args ...any) {
	if x.Progress != nil {
		x.Progress(format, args...)
	}
}

func ref(v VMInfo) types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "VirtualMachine", Value: v.Ref}
}

// journalAction is a journal row as Entry.action names an entry: "KEY action".
func journalAction(e store.JournalEntry) string { return e.Key().String() + " " + e.Action }

// DoneIn reports, from a plan's journal rows (Journal.JournalEntries), the
// entries an earlier apply of that plan finished: the done func of Stale
// and Recheck. Rows match entries by vCenter, ref and action.
func DoneIn(rows []store.JournalEntry) func(Entry) bool {
	done := map[string]bool{}
	for _, e := range rows {
		if e.Phase == store.PhaseOutcome && e.Status == StatusDone {
			done[journalAction(e)] = true
		}
	}
	return func(e Entry) bool { return done[e.action()] }
}
