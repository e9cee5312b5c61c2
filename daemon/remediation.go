package daemon

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vmreconcile/vmreconcile/audit"
	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/guest"
	"github.com/vmreconcile/vmreconcile/remediate"
	"github.com/vmreconcile/vmreconcile/store"
)

// NewRunner is the remediation of policy.remediate: the same Runner as
// `vmreconcile remediate` (planner, caps, skip markers failing closed,
// preflight, journal), with the policy's settings, the daemon's sessions,
// the config's guest logins and the store as journal. It fails (exit 2)
// on a policy that cannot work.
func NewRunner(cfg config.Config, src *audit.Sources, logins *guest.Logins, st *store.Store) (*remediate.Runner, error) {
	s := remediate.Settings{Action: cfg.Policy.Action, Exclude: cfg.Policy.Exclude, MaxActions: cfg.Policy.MaxActions, MaxPercent: cfg.Policy.MaxPercent}
	if err := s.Normalize(); err != nil {
		return nil, &config.Error{Key: "policy", Msg: err.Error()}
	}
	if cfg.Policy.Remediate == "on" && s.Action != remediate.ActionPowerOff && !logins.Any() {
		return nil, &config.Error{Key: "guest.login", Msg: fmt.Sprintf("policy.remediate is on with action %s, but no guest login is configured (fix: set guest.login or guest.logins, or policy.action: power-off)", s.Action)}
	}
	r := &remediate.Runner{
		Sessions:        src,
		Settings:        s,
		Auth:            logins.For,
		ShutdownTimeout: 2 * time.Minute,
		GuestTimeout:    cfg.Guest.Timeout + 3*time.Minute,
	}
	if st != nil {
		r.Journal = st
	}
	return r, nil
}

// applyPolicy plans from the run's outcome and, unless dryRun, applies the
// plan. It returns a one-line summary ("" when there is nothing to do); a
// plan the caps block is a *remediate.Refused.
func (d *Daemon) applyPolicy(ctx context.Context, out audit.Outcome, dryRun bool) (string, error) {
	plan, warnings, err := d.runner.Plan(ctx, out.Snapshot, out.Result)
	if err != nil {
		return "", err
	}
	withWarnings := func(msg string) string {
		if len(warnings) == 0 {
			return msg
		}
		return strings.TrimSpace(msg + " (warning: " + strings.Join(warnings, "; ") + ")")
	}
	if plan.Blocked != "" {
		return "", &remediate.Refused{Plan: plan}
	}
	if len(plan.Entries) == 0 {
		return withWarnings(""), nil
	}
	var parts []string
	for _, e := range plan.Entries {
		parts = append(parts, fmt.Sprintf("%s on %s (%s): %s", e.JournalAction(), e.VM.Name, e.VM.Ref, e.Reason))
	}
	if dryRun {
		return withWarnings("plan " + plan.ID + ": " + strings.Join(parts, "; ")), nil
	}
	outs, err := d.runner.Apply(ctx, plan)
	parts = parts[:0]
	for _, o := range outs {
		parts = append(parts, fmt.Sprintf("%s on %s (%s): %s: %s", o.Entry.JournalAction(), o.Entry.VM.Name, o.Entry.VM.Ref, o.Status, o.Detail))
	}
	if err != nil {
		if len(parts) == 0 {
			return "", fmt.Errorf("plan %s: nothing done: %s", plan.ID, oneLine(err.Error()))
		}
		return "", fmt.Errorf("plan %s: %s", plan.ID, oneLine(strings.Join(parts, "; ")))
	}
	return withWarnings("plan " + plan.ID + ": " + strings.Join(parts, "; ")), nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
