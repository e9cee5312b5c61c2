package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vmware/govmomi/cli/flags"
	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/collect"
	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/daemon"
	"github.com/vmreconcile/vmreconcile/internal/textsafe"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/remediate"
	"github.com/vmreconcile/vmreconcile/store"
	"github.com/vmreconcile/vmreconcile/vsphere"
)

func init() { register("remediate", func() command { return &remediateCmd{} }) }

// remediateCmd is `vmreconcile remediate`: plan (default) or apply the
// remediation of VMs that impersonate a swarm node.
type remediateCmd struct {
	*flags.DatacenterFlag
	*commonFlag

	apply           bool
	out             string
	vms             stringList
	action          string
	forget          bool
	maxActions      int
	maxPercent      float64
	shutdownTimeout time.Duration
	storePath       string
	noTags          bool
	verify          bool

	fs       *flag.FlagSet
	set      map[string]bool
	cfg      config.Config
	settings remediate.Settings
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func (cmd *remediateCmd) Register(ctx context.Context, f *flag.FlagSet) {
	cmd.DatacenterFlag, ctx = flags.NewDatacenterFlag(ctx)
	cmd.DatacenterFlag.Register(ctx, f)
	cmd.commonFlag = newCommonFlag(ctx, f)
	f.BoolVar(&cmd.apply, "apply", false, "Execute the plan (default: print it and change nothing); 'remediate -apply FILE' executes a plan saved with -out")
	f.StringVar(&cmd.out, "out", "", "Save the plan to FILE (JSON, with a fingerprint of what it was computed from)")
	f.Var(&cmd.vms, "vm", "Act on this VM (name, inventory path or glob; repeatable) instead of the impostors the findings name")
	f.StringVar(&cmd.action, "action", "", "disable-docker (default; policy.action) or power-off")
	f.BoolVar(&cmd.forget, "forget-identity", false, "disable-docker also copies /var/lib/docker/swarm into a backup directory, runs 'docker swarm leave --force' (local only) while the engine runs, then moves what is left and engine-id into that backup (nothing is deleted)")
	f.IntVar(&cmd.maxActions, "max-actions", 0, "Do nothing when more VMs than this qualify (default 1; policy.max_actions)")
	f.Float64Var(&cmd.maxPercent, "max-percent", 0, "Do nothing when more than this percentage of the inventory's VMs qualify (default 10; policy.max_percent)")
	f.DurationVar(&cmd.shutdownTimeout, "shutdown-timeout", 2*time.Minute, "power-off: wait this long for the guest to shut down before powering off hard")
	f.BoolVar(&cmd.noTags, "no-tags", false, "Do not read vSphere tags: only the "+remediate.SkipMarker+" custom attribute marks a VM to skip (by default a VM whose tags cannot be read is left alone)")
	f.StringVar(&cmd.storePath, "store", "", "Journal store file (default: store.path when a config is given, else $XDG_STATE_HOME/vmreconcile/state.db or ~/.local/state/vmreconcile/state.db)")
	f.BoolVar(&cmd.verify, "verify", true, "Probe the guests of the VMs around swarm nodes (guest operations, read only, as audit -verify) to confirm shared node IDs, when a guest login is available")
	cmd.fs = f
}

func (cmd *remediateCmd) Process(ctx context.Context) error {
	cmd.set = map[string]bool{}
	cmd.fs.Visit(func(f *flag.Flag) { cmd.set[f.Name] = true })
	if err := cmd.commonFlag.process(ctx, cmd.OutputFlag); err != nil {
		return err
	}
	cfg := cmd.cfg
	if cmd.shutdownTimeout <= 0 {
		return usagef("-shutdown-timeout %s must be positive (fix: e.g. 2m)", cmd.shutdownTimeout)
	}

	s := remediate.Settings{
		Action:         cfg.Policy.Action,
		ForgetIdentity: cmd.forget,
		Select:         cmd.vms,
		Exclude:        cfg.Policy.Exclude,
		MaxActions:     cfg.Policy.MaxActions,
		MaxPercent:     cfg.Policy.MaxPercent,
	}
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

Collects as audit does (and, with a guest login, probes the guests of the
VMs around swarm nodes, as audit -verify, to confirm shared node IDs), then plans an action for every VM
a finding names as an impostor: every VM of a shared-node-id finding but its
original, the clone of a clone-of-swarm-node finding. -vm NAME (repeatable,
globs allowed) acts on the named VMs instead.

Never touched: a finding's original, templates (the manual fix is printed),
VMs whose custom attribute vmreconcile.skip is set, VMs matching
policy.exclude. When more VMs qualify than -max-actions or -max-percent of the
inventory allow, NOTHING is done (exit 3). Never runs 'docker node rm': a
removed node ID is blacklisted, which would lock the original out too.

Actions:
  disable-docker  in the guest: systemctl disable --now docker.service
                  docker.socket; with -forget-identity it first copies
                  /var/lib/docker/swarm into /var/lib/docker/vmreconcile-
                  backup-TIME/ and runs docker swarm leave --force (local
                  only), then moves what is left and engine-id there
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
	var saved *remediate.Plan
	switch {
	case len(args) > 1:
		return usagef("unexpected argument %q (fix: remediate takes at most one plan FILE, with -apply)", args[1])
	case len(args) == 1 && !cmd.apply:
		return usagef("plan file %q given without -apply (fix: vmreconcile remediate -apply %s)", args[0], args[0])
	case len(args) == 1:
		for _, f := range []string{"vm", "action", "forget-identity", "max-actions", "max-percent", "out"} {
			if cmd.set[f] {
				return usagef("-%s cannot be combined with a saved plan (fix: the plan file fixes what is done; compute a new plan instead)", f)
			}
		}
		p, err := readPlan(args[0])
		if err != nil {
			return err
		}
		saved = &p
		cmd.settings = p.Settings
		cmd.settings.Exclude = cmd.cfg.Policy.Exclude // the current excludes apply
	}
	if cmd.apply && cmd.settings.Action == remediate.ActionDisableDocker && !cmd.guestFlag.hasLogin() {
		return usagef("disable-docker needs a guest login (fix: -l user:password, GOVC_GUEST_LOGIN, or guest.login in the config)")
	}

	a := &audit{DatacenterFlag: cmd.DatacenterFlag, commonFlag: cmd.commonFlag}
	vcs, sws, logout, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer logout()
	snap, err := collect.Snapshot(ctx, vcs, sws, collect.Options{Observe: cmd.swarmFlag.observeOptions(cmd.cfg), Progress: progress()})
	if err != nil {
		return sourceError(err)
	}
	clients := map[string]*vim25.Client{}
	for _, vc := range vcs {
		clients[vc.Name] = vc.Client
	}
	clientFor := func(v remediate.VMInfo) *vim25.Client { return clients[v.VCenter] }

	res := reconcile.Reconcile(snap, reconcile.History{})
	if cmd.verify && cmd.guestFlag.hasLogin() {
		v := verifier{clients: clients, guest: cmd.guestFlag}
		snap.Guests = v.probe(ctx, snap, res)
		res = reconcile.Reconcile(snap, reconcile.History{})
	}

	cands, err := remediate.Candidates(snap, res, cmd.settings)
	if err != nil {
		return planError(err)
	}
	skip, err := skipMarkers(ctx, clients, snap, cands)
	if err != nil {
		return err
	}
	for _, vc := range vcs {
		restFor := func(ctx context.Context) (*rest.Client, func(), error) { return cmd.restClient(ctx, vc) }
		if w := skipTags(ctx, vc.Name, restFor, snap, cands, skip, cmd.noTags); w != "" {
			fmt.Fprintln(out.stderr, "vmreconcile remediate: warning: "+w)
		}
	}
	plan, err := remediate.Compute(snap, res, remediate.Options{Settings: cmd.settings, Skip: skip})
	if err != nil {
		return planError(err)
	}
	if saved != nil {
		if saved.Blocked != "" {
			return usagef("plan %s was blocked by the caps when it was computed (%s) (fix: compute a new plan)", saved.ID, saved.Blocked)
		}
		done, err := doneInJournal(ctx, cmd.storeFile(cmd.storePath), saved.ID)
		if err != nil {
			return err
		}
		if what := remediate.Stale(*saved, plan, done); what != "" {
			return usagef("plan %s is stale: %s (fix: compute a new plan)", saved.ID, what)
		}
		fresh := plan
		plan = *saved
		if fresh.Blocked != "" {
			plan.Blocked = fresh.Blocked
		}
	}
	if cmd.out != "" {
		if err := writePlan(cmd.out, plan); err != nil {
			return err
		}
	}

	report := remediateReport{Plan: plan}
	finish := func(err error) error {
		if cmd.OutputFlag.JSON {
			// As the table does (writeOutcomes): a detail quoting guest
			// output or an error must not carry a secret into the JSON.
			for i := range report.Outcomes {
				report.Outcomes[i].Detail = redact(report.Outcomes[i].Detail)
			}
			enc := json.NewEncoder(out.stdout)
			enc.SetIndent("", "  ")
			enc.SetEscapeHTML(false)
			if jerr := enc.Encode(report); jerr != nil && err == nil {
				err = jerr
			}
		}
		return err
	}
	if !cmd.OutputFlag.JSON {
		writePlanTable(out.stdout, plan)
	}
	if plan.Blocked != "" {
		var names []string
		for _, e := range plan.Entries {
			names = append(names, e.VM.Name)
		}
		fmt.Fprintf(out.stderr, "vmreconcile remediate: REFUSED, NOTHING DONE: %s (qualifying VMs: %s) (fix: check the findings; raise -max-actions/-max-percent only if they are all right)\n",
			plan.Blocked, strings.Join(names, ", "))
		return finish(&findingsError{code: ExitFindings})
	}
	if !cmd.apply {
		if !cmd.OutputFlag.JSON {
			switch {
			case len(plan.Entries) == 0:
				fmt.Fprintln(out.stdout, "\nNothing to do.")
			case cmd.out != "":
				fmt.Fprintf(out.stdout, "\nDry run: nothing was changed. Plan saved to %s; execute it with: vmreconcile remediate -apply %s\n", cmd.out, cmd.out)
			default:
				fmt.Fprintln(out.stdout, "\nDry run: nothing was changed. Execute with -apply (or save with -out FILE, then -apply FILE).")
			}
		}
		return finish(nil)
	}
	if len(plan.Entries) == 0 {
		if !cmd.OutputFlag.JSON {
			fmt.Fprintln(out.stdout, "\nNothing to do.")
		}
		return finish(nil)
	}

	st, err := store.Open(cmd.storeFile(cmd.storePath), store.Options{})
	if err != nil {
		return fmt.Errorf("journal: %s", oneLine(err.Error()))
	}
	defer st.Close()
	x := &remediate.Executor{
		ClientFor: clientFor,
		Auth: func(v remediate.VMInfo) types.BaseGuestAuthentication {
			return cmd.guestFlag.authFor(reconcile.VM{Name: v.Name, Path: v.Path})
		},
		Journal:         st,
		ShutdownTimeout: cmd.shutdownTimeout,
		GuestTimeout:    cmd.guestFlag.timeout + 3*time.Minute,
		Progress:        progress(),
	}
	if err := x.Preflight(ctx, plan); err != nil {
		var pe *remediate.PreflightError
		if errors.As(err, &pe) {
			for _, l := range pe.Lines {
				fmt.Fprintf(out.stderr, "vmreconcile remediate: %s\n", redact(oneLine(l)))
			}
			fmt.Fprintf(out.stderr, "vmreconcile remediate: nothing was done: guest operations failed on %d VM(s) (fix: check the guest login)\n", len(pe.Lines))
			return finish(&findingsError{code: ExitRuntime})
		}
		return err
	}
	outs, err := x.Apply(ctx, plan)
	report.Applied, report.Outcomes = true, outs
	if !cmd.OutputFlag.JSON {
		writeOutcomes(out.stdout, plan, outs)
	}
	if err != nil {
		return finish(fmt.Errorf("%s", redact(oneLine(err.Error()))))
	}
	return finish(nil)
}

// doneInJournal reports the entries of plan id an earlier apply finished.
func doneInJournal(ctx context.Context, file, id string) (func(remediate.Entry) bool, error) {
	if _, err := os.Stat(file); err != nil {
		return func(remediate.Entry) bool { return false }, nil // no journal yet: nothing done
	}
	st, err := store.Open(file, store.Options{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("journal: %s", oneLine(err.Error()))
	}
	defer st.Close()
	es, err := st.JournalEntries(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("journal: %s", oneLine(err.Error()))
	}
	done := map[string]bool{}
	for _, e := range es {
		if e.Phase == store.PhaseOutcome && e.Status == remediate.StatusDone {
			done[e.VMRef+" "+e.Action] = true
		}
	}
	return func(e remediate.Entry) bool { return done[e.VM.Ref+" "+e.JournalAction()] }, nil
}

func planError(err error) error {
	if remediate.IsSelectError(err) {
		return usagef("%s (fix: check the VM name or pattern)", err)
	}
	return usagef("%s", err)
}

func skipMarkers(ctx context.Context, clients map[string]*vim25.Client, snap reconcile.Snapshot, refs []string) (map[string]string, error) {
	vcOf := map[string]string{}
	for _, v := range snap.VMs {
		vcOf[v.Ref] = v.VCenter
	}
	byVC := map[string][]string{}
	for _, r := range refs {
		byVC[vcOf[r]] = append(byVC[vcOf[r]], r)
	}
	skip := map[string]string{}
	for vc, rs := range byVC {
		c := clients[vc]
		if c == nil {
			continue
		}
		m, err := remediate.SkipMarkers(ctx, c, rs)
		if err != nil {
			return nil, fmt.Errorf("vcenter %s: %s", vc, oneLine(err.Error()))
		}
		for k, v := range m {
			skip[k] = v
		}
	}
	return skip, nil
}

// skipTags adds the VMs of one vCenter tagged vmreconcile.skip to skip. It
// fails closed: when the tags cannot be read, every candidate VM of that
// vCenter is skipped (a tagged VM must never be acted on because a tag read
// failed), unless noTags says to rely on the custom attribute alone (ESXi
// hosts without the vAPI endpoint). It returns a warning to print, or "".
func skipTags(ctx context.Context, vcName string, restFor func(context.Context) (*rest.Client, func(), error),
	snap reconcile.Snapshot, refs []string, skip map[string]string, noTags bool) string {
	var mine []string
	for _, v := range snap.VMs {
		if v.VCenter == vcName && slices.Contains(refs, v.Ref) {
			mine = append(mine, v.Ref)
		}
	}
	if len(mine) == 0 || noTags {
		return ""
	}
	m, err := func() (map[string]string, error) {
		rc, logout, err := restFor(ctx)
		if err != nil {
			return nil, err
		}
		defer logout()
		return remediate.SkipTags(ctx, rc, mine)
	}()
	if err != nil {
		for _, r := range mine {
			if _, ok := skip[r]; !ok {
				skip[r] = "vSphere tags could not be read, so the " + remediate.SkipMarker + " tag cannot be ruled out"
			}
		}
		return fmt.Sprintf("vcenter %s: vSphere tags not readable (%s): its %d candidate VM(s) are left alone (fix: grant tag read access, or -no-tags to rely on the %s custom attribute alone)",
			vcName, redact(oneLine(err.Error())), len(mine), remediate.SkipMarker)
	}
	for k, v := range m {
		if _, ok := skip[k]; !ok {
			skip[k] = v
		}
	}
	return ""
}

// restClient logs in to the vAPI endpoint of a connected vCenter with the
// credentials it was connected with.
func (cmd *remediateCmd) restClient(ctx context.Context, vc collect.VCenter) (*rest.Client, func(), error) {
	for _, c := range cmd.cfg.VCenters {
		if vsphere.HostOf(c.URL) != vc.Name || cmd.ClientFlag.Session.URL != nil && cmd.ClientFlag.Session.URL.Host != "" {
			continue
		}
		rc := rest.NewClient(vc.Client)
		if err := rc.Login(ctx, url.UserPassword(c.Username, c.Password.Reveal())); err != nil {
			return nil, nil, err
		}
		return rc, func() { _ = rc.Logout(context.WithoutCancel(ctx)) }, nil
	}
	rc, err := cmd.ClientFlag.RestClient()
	if err != nil {
		return nil, nil, err
	}
	return rc, func() {}, nil // the flag's session is logged out with the SOAP one
}

func readPlan(file string) (remediate.Plan, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return remediate.Plan{}, usagef("plan file: %s", oneLine(err.Error()))
	}
	var p remediate.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return remediate.Plan{}, usagef("plan file %s: not a vmreconcile plan: %s", file, oneLine(err.Error()))
	}
	if p.Version != remediate.PlanVersion || p.ID == "" || p.Fingerprint.Digest == "" {
		return remediate.Plan{}, usagef("plan file %s: not a vmreconcile plan of version %d (fix: compute a new plan with -out)", file, remediate.PlanVersion)
	}
	if err := p.Settings.Normalize(); err != nil {
		return remediate.Plan{}, usagef("plan file %s: %s", file, err)
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

// ---- the daemon's remediation (policy.remediate: dry-run or on) ----

func init() { daemonRemediator = newDaemonRemediator }

// daemonRemediation is what the daemon runs after an audit with findings:
// the same planner, caps, skip markers and executor as `remediate`, with
// the policy's settings, the config's vCenters and guest logins, and the
// store as journal. Before planning it probes the guests of the VMs the
// swarm-identity findings name (read only), so that shared node IDs are
// confirmed and VMs already fixed are recognised as such.
type daemonRemediation struct {
	cfg      config.Config
	settings remediate.Settings
	guest    *guestFlag
}

func newDaemonRemediator(cfg config.Config) (daemon.Remediator, error) {
	s := remediate.Settings{Action: cfg.Policy.Action, Exclude: cfg.Policy.Exclude, MaxActions: cfg.Policy.MaxActions, MaxPercent: cfg.Policy.MaxPercent}
	if err := s.Normalize(); err != nil {
		return nil, &config.Error{Key: "policy", Msg: err.Error()}
	}
	g := &guestFlag{}
	if err := g.Process(cfg); err != nil {
		return nil, err
	}
	if cfg.Policy.Remediate == "on" && s.Action == remediate.ActionDisableDocker && !g.hasLogin() {
		return nil, &config.Error{Key: "guest.login", Msg: "policy.remediate is on with action disable-docker, but no guest login is configured (fix: set guest.login or guest.logins, or policy.action: power-off)"}
	}
	return &daemonRemediation{cfg: cfg, settings: s, guest: g}, nil
}

func (d *daemonRemediation) Remediate(ctx context.Context, snap reconcile.Snapshot, res reconcile.Result, dryRun bool) (string, error) {
	involved := map[string]bool{}
	for _, f := range res.Findings {
		switch f.Kind {
		case reconcile.KindSharedNodeID, reconcile.KindCloneOfSwarmNode, reconcile.KindTemplateCarriesSwarm:
			for _, r := range f.VMRefs {
				involved[r] = true
			}
		}
	}
	if len(involved) == 0 {
		return "", nil
	}
	clients := map[string]*vim25.Client{}
	var logouts []func()
	defer func() {
		for _, l := range logouts {
			l()
		}
	}()
	vcNeeded := map[string]bool{}
	for _, v := range snap.VMs {
		if involved[v.Ref] {
			vcNeeded[v.VCenter] = true
		}
	}
	for _, vc := range d.cfg.VCenters {
		host := vsphere.HostOf(vc.URL)
		if !vcNeeded[host] || clients[host] != nil {
			continue
		}
		conn, err := vsphere.Connect(ctx, vsphere.ConnectOptions{URL: vc.URL, Username: vc.Username, Password: vc.Password.Reveal(),
			Insecure: vc.Insecure, CACerts: vc.TLSCACerts, KnownHosts: vc.TLSKnownHosts})
		if err != nil {
			return "", fmt.Errorf("vcenter %s: %s", host, redact(oneLine(err.Error())))
		}
		clients[host] = conn.Client
		logouts = append(logouts, conn.Logout)
	}

	// Confirm in the guests (replacing any older probe of those VMs).
	var probe []reconcile.VM
	for _, v := range snap.VMs {
		if involved[v.Ref] && v.PoweredOn() && !v.Template && d.guest.authFor(v) != nil {
			probe = append(probe, v)
		}
	}
	if len(probe) > 0 {
		fresh := d.guest.probe(ctx, clients, probe)
		keep := snap.Guests[:0:0]
		for _, g := range snap.Guests {
			if !involved[g.VMRef] {
				keep = append(keep, g)
			}
		}
		snap.Guests = append(keep, fresh...)
		res = reconcile.Reconcile(snap, reconcile.History{})
	}

	cands, err := remediate.Candidates(snap, res, d.settings)
	if err != nil {
		return "", err
	}
	skip, err := skipMarkers(ctx, clients, snap, cands)
	if err != nil {
		return "", err
	}
	var warnings []string
	withWarnings := func(msg string) string {
		if len(warnings) == 0 {
			return msg
		}
		return strings.TrimSpace(msg + " (warning: " + strings.Join(warnings, "; ") + ")")
	}
	for _, vc := range d.cfg.VCenters {
		host := vsphere.HostOf(vc.URL)
		c := clients[host]
		if c == nil {
			continue
		}
		restFor := func(ctx context.Context) (*rest.Client, func(), error) {
			rc := rest.NewClient(c)
			if err := rc.Login(ctx, url.UserPassword(vc.Username, vc.Password.Reveal())); err != nil {
				return nil, nil, err
			}
			return rc, func() { _ = rc.Logout(context.WithoutCancel(ctx)) }, nil
		}
		if w := skipTags(ctx, host, restFor, snap, cands, skip, false); w != "" {
			warnings = append(warnings, w)
		}
	}
	plan, err := remediate.Compute(snap, res, remediate.Options{Settings: d.settings, Skip: skip})
	if err != nil {
		return "", err
	}
	if plan.Blocked != "" {
		var names []string
		for _, e := range plan.Entries {
			names = append(names, e.VM.Name)
		}
		return "", fmt.Errorf("%w: nothing done: %s (qualifying VMs: %s)", daemon.ErrRefused, plan.Blocked, strings.Join(names, ", "))
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
	st, err := store.Open(d.cfg.Store.Path, store.Options{})
	if err != nil {
		return "", fmt.Errorf("journal: %s", oneLine(err.Error()))
	}
	defer st.Close()
	x := &remediate.Executor{
		ClientFor: func(v remediate.VMInfo) *vim25.Client { return clients[v.VCenter] },
		Auth: func(v remediate.VMInfo) types.BaseGuestAuthentication {
			return d.guest.authFor(reconcile.VM{Name: v.Name, Path: v.Path})
		},
		Journal:         st,
		ShutdownTimeout: 2 * time.Minute,
		GuestTimeout:    d.guest.timeout + 3*time.Minute,
	}
	if err := x.Preflight(ctx, plan); err != nil {
		return "", fmt.Errorf("nothing done: guest operations failed: %s", redact(oneLine(err.Error())))
	}
	outs, err := x.Apply(ctx, plan)
	parts = parts[:0]
	for _, o := range outs {
		parts = append(parts, fmt.Sprintf("%s on %s (%s): %s: %s", o.Entry.JournalAction(), o.Entry.VM.Name, o.Entry.VM.Ref, o.Status, o.Detail))
	}
	if err != nil {
		return "", fmt.Errorf("plan %s: %s", plan.ID, redact(oneLine(strings.Join(parts, "; "))))
	}
	return withWarnings("plan " + plan.ID + ": " + redact(strings.Join(parts, "; "))), nil
}
