package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vmreconcile/vmreconcile/audit"
	"github.com/vmreconcile/vmreconcile/internal/textsafe"
	"github.com/vmreconcile/vmreconcile/remediate"
	"github.com/vmreconcile/vmreconcile/store"
)

func init() { register("remediate", func() command { return &remediateCmd{} }) }

// remediateCmd is `vmreconcile remediate`: plan (default) or apply the
// remediation of VMs that impersonate a swarm node.
type remediateCmd struct {
	settingsFlag

	apply           bool
	out             string
	vms             stringList
	action          string
	forget          bool
	maxActions      int
	maxPercent      float64
	shutdownTimeout time.Duration
	noTags          bool
	verify          bool
	json            bool

	settings remediate.Settings
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func (cmd *remediateCmd) Register(ctx context.Context, f *flag.FlagSet) {
	cmd.settingsFlag.Register(f)
	f.BoolVar(&cmd.apply, "apply", false, "Execute the plan (default: print it and change nothing); 'remediate -apply FILE' executes a plan saved with -out")
	f.StringVar(&cmd.out, "out", "", "Save the plan to FILE (JSON, with a fingerprint of what it was computed from)")
	f.Var(&cmd.vms, "vm", "Act on this VM (name, inventory path or glob; repeatable) instead of the impostors the findings name")
	f.StringVar(&cmd.action, "action", "", "disable-docker (default; policy.action: swarm findings disable Docker, Kubernetes findings disable kubelet), disable-kubelet or power-off")
	f.BoolVar(&cmd.forget, "forget-identity", false, "disable-docker also copies /var/lib/docker/swarm into a backup directory, runs 'docker swarm leave --force' (local only) while the engine runs, then moves what is left and engine-id into that backup (nothing is deleted)")
	f.IntVar(&cmd.maxActions, "max-actions", 0, "Do nothing when more VMs than this qualify (default 1; policy.max_actions)")
	f.Float64Var(&cmd.maxPercent, "max-percent", 0, "Do nothing when more than this percentage of the inventory's VMs qualify (default 10; policy.max_percent)")
	f.DurationVar(&cmd.shutdownTimeout, "shutdown-timeout", 2*time.Minute, "power-off: wait this long for the guest to shut down before powering off hard")
	f.BoolVar(&cmd.noTags, "no-tags", false, "Do not read vSphere tags: only the "+remediate.SkipMarker+" custom attribute marks a VM to skip (by default a VM whose tags cannot be read is left alone)")
	f.BoolVar(&cmd.verify, "verify", true, "Probe the guests of the VMs around swarm nodes (guest operations, read only, as audit -verify) to confirm shared node IDs, when a guest login is available")
	f.BoolVar(&cmd.json, "json", false, "Print the plan (and outcomes) as JSON")
}

// Process resolves the settings: flags over the config's policy section.
func (cmd *remediateCmd) Process(ctx context.Context) error {
	if err := cmd.settingsFlag.Process(); err != nil {
		return err
	}
	if cmd.shutdownTimeout <= 0 {
		return usagef("-shutdown-timeout %s must be positive (fix: e.g. 2m)", cmd.shutdownTimeout)
	}
	pol := cmd.cfg.Policy
	s := remediate.Settings{Action: pol.Action, ForgetIdentity: cmd.forget, Select: cmd.vms, Exclude: pol.Exclude,
		MaxActions: pol.MaxActions, MaxPercent: pol.MaxPercent}
	if cmd.set["action"] {
		s.Action = cmd.action
	}
	if cmd.set["max-actions"] {
		if cmd.maxActions < 1 {
			return usagef("-max-actions %d must be at least 1 (fix: e.g. -max-actions 1)", cmd.maxActions)
		}
		s.MaxActions = cmd.maxActions
	}
	if cmd.set["max-percent"] {
		if cmd.maxPercent <= 0 || cmd.maxPercent > 100 {
			return usagef("-max-percent %g must be in (0, 100] (fix: e.g. -max-percent 10)", cmd.maxPercent)
		}
		s.MaxPercent = cmd.maxPercent
	}
	if err := s.Normalize(); err != nil {
		return usagef("%s", err)
	}
	cmd.settings = s
	return nil
}

func (cmd *remediateCmd) Usage() string { return "[-apply [FILE]]" }

func (cmd *remediateCmd) Description() string {
	return `Plan, and with -apply execute, the remediation of VMs that impersonate a swarm node.

Runs the audit pipeline (and, with a guest login, probes the guests of the
VMs around swarm nodes, as audit -verify, to confirm shared node IDs), then
plans an action for every VM a finding names as an impostor: every VM of a
shared-node-id finding but its original, the clone of a clone-of-swarm-node
finding. -vm NAME (repeatable, globs allowed) acts on the named VMs instead.
The config file's policy section (action, exclude, max_actions, max_percent)
applies; flags win over it.

Never touched: a finding's original, templates (the manual fix is printed),
VMs whose custom attribute or tag vmreconcile.skip is set, VMs matching
policy.exclude. When more VMs qualify than -max-actions or -max-percent of the
inventory allow, NOTHING is done (exit 3). Never runs 'docker node rm': a
removed node ID is blacklisted, which would lock the original out too.

Actions:
  disable-docker  in the guest: systemctl disable --now docker.service
                  docker.socket; with -forget-identity it first copies
                  /var/lib/docker/swarm into /var/lib/docker/vmreconcile-
                  backup-TIME/ and runs docker swarm leave --force (local
                  only), then moves what is left and engine-id there
  disable-kubelet in the guest: systemctl disable --now kubelet, then move
                  /var/lib/kubelet/pki and /etc/kubernetes/kubelet.conf to
                  /var/backups/vmreconcile-kubelet-TIME/ (chosen for the VMs of
                  Kubernetes findings when the action is the default)
  power-off       guest shutdown, then hard power-off after -shutdown-timeout

Without -apply the plan is printed and nothing changes. -out FILE saves it;
'remediate -apply FILE' re-collects and executes exactly that plan, or refuses
it (exit 2) when the inventory or the findings changed since. Every action is
journaled (intent before, outcome after) in the store: a rerun after a crash
completes the interrupted action without doing anything twice.

Guest login: -l user:password, GOVC_GUEST_LOGIN, or guest.logins/guest.login.

Exit: 0 done (or nothing to do), 1 an action or guest login failed, 2 usage
error or stale plan, 3 refused by the caps.

Examples:
  vmreconcile remediate -u ... -H tcp://mgr:2376 -l root:PASS
  vmreconcile remediate -u ... -H tcp://mgr:2376 -out plan.json
  vmreconcile remediate -u ... -H tcp://mgr:2376 -l root:PASS -apply plan.json`
}

// remediateReport is the -json output.
type remediateReport struct {
	Plan     remediate.Plan      `json:"plan"`
	Applied  bool                `json:"applied"`
	Outcomes []remediate.Outcome `json:"outcomes,omitempty"`
}

func (cmd *remediateCmd) Run(ctx context.Context, args []string) error {
	saved, err := cmd.savedPlan(args)
	if err != nil {
		return err
	}
	if len(cmd.cfg.VCenters) == 0 {
		return usagef("remediate acts through vSphere and no vCenter is given (fix: -u URL or GOVC_URL, or vcenters in -config)")
	}
	if cmd.apply && cmd.settings.Action != remediate.ActionPowerOff && !cmd.logins.Any() {
		return usagef("%s needs a guest login (fix: -l user:password, GOVC_GUEST_LOGIN, or guest.login in the config)", cmd.settings.Action)
	}
	src := audit.NewSources(cmd.cfg)
	defer src.Close()
	opts := audit.Options{Observe: audit.Observe(cmd.cfg.Observe), Progress: progress()}
	if cmd.verify {
		opts.Probe = &audit.Probe{Logins: cmd.logins, Concurrency: cmd.cfg.Guest.Concurrency, Timeout: cmd.cfg.Guest.Timeout}
	}
	o, err := audit.Run(ctx, src, opts)
	clearProgress()
	if err != nil {
		return sourceError(err, cmd.vcFromFlags)
	}
	var st *store.Store
	if cmd.apply || saved != nil {
		if st, err = openStore(cmd.cfg.Store.Path, false); err != nil {
			return err
		}
		defer st.Close()
	}
	r := &remediate.Runner{
		Sessions: src, Settings: cmd.settings, NoTags: cmd.noTags, Auth: cmd.logins.For,
		ShutdownTimeout: cmd.shutdownTimeout, GuestTimeout: cmd.cfg.Guest.Timeout + 3*time.Minute, Progress: progress(),
	}
	if st != nil {
		r.Journal = st
	}
	var (
		plan     remediate.Plan
		warnings []string
	)
	if saved != nil {
		key, kerr := remediate.PlanKey(cmd.cfg.Store.Path)
		if kerr != nil {
			return usagef("%s", oneLine(kerr.Error()))
		}
		// The plan's own caps hold (sealed: they cannot be raised by an
		// edit); today's exclusions are added to its own.
		today := remediate.Settings{Exclude: cmd.cfg.Policy.Exclude}
		plan, warnings, err = r.Replan(ctx, *saved, key, today, o.Snapshot, o.Result)
	} else {
		plan, warnings, err = r.Plan(ctx, o.Snapshot, o.Result)
	}
	for _, w := range warnings {
		fmt.Fprintln(out.stderr, "vmreconcile remediate: warning: "+textsafe.Term(redact(w)))
	}
	if err != nil {
		return planError(err)
	}
	if cmd.out != "" {
		if err := cmd.savePlan(&plan); err != nil {
			return err
		}
	}
	return cmd.execute(ctx, r, plan)
}

// savedPlan reads the plan FILE of 'remediate -apply FILE', if any.
func (cmd *remediateCmd) savedPlan(args []string) (*remediate.Plan, error) {
	switch {
	case len(args) > 1:
		return nil, usagef("unexpected argument %q (fix: remediate takes at most one plan FILE, with -apply)", args[1])
	case len(args) == 1 && !cmd.apply:
		return nil, usagef("plan file %q given without -apply (fix: vmreconcile remediate -apply %s)", args[0], args[0])
	case len(args) == 0:
		return nil, nil
	}
	for _, f := range []string{"vm", "action", "forget-identity", "max-actions", "max-percent", "out"} {
		if cmd.set[f] {
			return nil, usagef("-%s cannot be combined with a saved plan (fix: the plan file fixes what is done; compute a new plan instead)", f)
		}
	}
	p, err := readPlan(args[0])
	if err != nil {
		return nil, err
	}
	cmd.settings = p.Settings
	return &p, nil
}

// execute prints the plan and, with -apply, carries it out.
func (cmd *remediateCmd) execute(ctx context.Context, r *remediate.Runner, plan remediate.Plan) error {
	report := remediateReport{Plan: plan}
	done := func(err error) error {
		if cmd.json {
			// As the table does (writeOutcomes): a detail quoting guest
			// output or an error must not carry a secret into the JSON.
			for i := range report.Outcomes {
				report.Outcomes[i].Detail = redact(report.Outcomes[i].Detail)
			}
			if jerr := writeJSON(out.stdout, report); jerr != nil && err == nil {
				err = jerr
			}
		}
		return err
	}
	if !cmd.json {
		writePlanTable(out.stdout, plan)
	}
	if plan.Blocked != "" {
		fmt.Fprintf(out.stderr, "vmreconcile remediate: REFUSED, NOTHING DONE: %s (fix: check the findings; raise -max-actions/-max-percent only if they are all right)\n",
			strings.TrimPrefix((&remediate.Refused{Plan: plan}).Error(), "refused, nothing done: "))
		return done(&findingsError{code: ExitFindings})
	}
	if !cmd.apply || len(plan.Entries) == 0 {
		if !cmd.json {
			switch {
			case len(plan.Entries) == 0:
				fmt.Fprintln(out.stdout, "\nNothing to do.")
			case cmd.out != "":
				fmt.Fprintf(out.stdout, "\nDry run: nothing was changed. Plan saved to %s; execute it with: vmreconcile remediate -apply %s\n", cmd.out, cmd.out)
			default:
				fmt.Fprintln(out.stdout, "\nDry run: nothing was changed. Execute with -apply (or save with -out FILE, then -apply FILE).")
			}
		}
		return done(nil)
	}
	outs, err := r.Apply(ctx, plan)
	var pe *remediate.PreflightError
	if errors.As(err, &pe) {
		for _, l := range pe.Lines {
			fmt.Fprintf(out.stderr, "vmreconcile remediate: %s\n", redact(oneLine(l)))
		}
		fmt.Fprintf(out.stderr, "vmreconcile remediate: nothing was done: guest operations failed on %d VM(s) (fix: check the guest login)\n", len(pe.Lines))
		return done(&findingsError{code: ExitRuntime})
	}
	report.Applied, report.Outcomes = true, outs
	if !cmd.json {
		writeOutcomes(out.stdout, plan, outs)
	}
	if err != nil {
		return done(fmt.Errorf("%s", redact(oneLine(err.Error()))))
	}
	return done(nil)
}

// savePlan seals the plan with the local plan key (beside the store) and
// writes it to -out.
func (cmd *remediateCmd) savePlan(p *remediate.Plan) error {
	key, err := remediate.PlanKey(cmd.cfg.Store.Path)
	if err != nil {
		return usagef("%s", oneLine(err.Error()))
	}
	if err := remediate.Seal(p, key); err != nil {
		return err
	}
	return writePlan(cmd.out, *p)
}

// openStore opens the store (the journal); readOnly when it is only read.
func openStore(path string, readOnly bool) (*store.Store, error) {
	if readOnly {
		if _, err := os.Stat(path); err != nil {
			readOnly = false // no store yet: create it
		}
	}
	st, err := store.Open(path, store.Options{ReadOnly: readOnly})
	if err != nil {
		return nil, storeError(path, err)
	}
	return st, nil
}

// storeError is a store that cannot be opened: a permanent configuration
// problem (exit 2) when the path is unusable, else a runtime error.
func storeError(path string, err error) error {
	var lk *store.LockedError
	switch {
	case errors.As(err, &lk):
		return err
	case errors.Is(err, os.ErrPermission), errors.Is(err, os.ErrNotExist), strings.Contains(err.Error(), "read-only file system"),
		strings.Contains(err.Error(), "not a directory"), strings.Contains(err.Error(), "unable to open database"):
		return usagef("store %s: %s (fix: -store or store.path naming a writable file)", path, oneLine(err.Error()))
	}
	return fmt.Errorf("store %s: %s", path, oneLine(err.Error()))
}

func planError(err error) error {
	switch {
	case remediate.IsSelectError(err):
		return usagef("%s (fix: check the VM name or pattern)", err)
	case errors.Is(err, remediate.ErrPlanRefused):
		return usagef("%s", oneLine(err.Error()))
	}
	return usagef("%s", oneLine(err.Error()))
}

func readPlan(file string) (remediate.Plan, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return remediate.Plan{}, usagef("plan file: %s", oneLine(err.Error()))
	}
	p, err := remediate.DecodePlan(b)
	if err != nil {
		return remediate.Plan{}, usagef("plan file %s: %s", file, oneLine(err.Error()))
	}
	return p, nil
}

func writePlan(file string, p remediate.Plan) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(file, append(b, '\n'), 0o600); err != nil {
		return usagef("-out: %s", oneLine(err.Error()))
	}
	return nil
}

func writePlanTable(w io.Writer, p remediate.Plan) {
	s := p.Settings
	what := s.Action
	if s.ForgetIdentity {
		what += " -forget-identity"
	}
	// Everything below comes from the plan (a file, when -apply FILE) and
	// names VMs from vCenter: escaped for the terminal.
	esc := textsafe.Term
	fmt.Fprintf(w, "PLAN %s: %s (inventory: %d VMs; caps: %d action(s), %g%%)\n", esc(p.ID), esc(what), p.InventoryVMs, s.MaxActions, s.MaxPercent)
	if p.Blocked != "" {
		fmt.Fprintf(w, "\n*** REFUSED BY THE CAPS: %s. NOTHING WILL BE DONE. ***\n", esc(p.Blocked))
		fmt.Fprintln(w, "Qualifying VMs (NOT acted on):")
	}
	if len(p.Entries) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VM\tACTION\tREASON\tFINDING")
		for _, e := range p.Entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", esc(e.VM.Name+" ("+e.VM.Path+", "+e.VM.Ref+")"), esc(e.JournalAction()), esc(e.Reason), esc(orDash(e.FindingKind)))
		}
		tw.Flush()
	}
	if len(p.AlreadyDone) > 0 {
		fmt.Fprintln(w, "\nAlready done (not acted on):")
		for _, e := range p.AlreadyDone {
			fmt.Fprintf(w, "  %s (%s, %s): %s\n", esc(e.VM.Name), esc(e.VM.Path), esc(e.VM.Ref), esc(e.Reason))
		}
	}
	if len(p.Refused) > 0 {
		fmt.Fprintln(w, "\nRefused (never touched):")
		for _, r := range p.Refused {
			fmt.Fprintf(w, "  %s (%s, %s): %s\n", esc(r.VM.Name), esc(r.VM.Path), esc(r.VM.Ref), esc(r.Why))
			if r.Fix != "" {
				fmt.Fprintf(w, "    manual fix: %s\n", esc(r.Fix))
			}
		}
	}
}

func writeOutcomes(w io.Writer, p remediate.Plan, outs []remediate.Outcome) {
	esc := textsafe.Term
	fmt.Fprintf(w, "\nAPPLIED %s:\n", esc(p.ID))
	for _, o := range outs {
		fmt.Fprintf(w, "  %s (%s) %s: %s: %s\n", esc(o.Entry.VM.Name), esc(o.Entry.VM.Ref), esc(o.Entry.JournalAction()), esc(o.Status), esc(redact(o.Detail)))
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
