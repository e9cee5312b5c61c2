package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/audit"
	"github.com/vmreconcile/vmreconcile/collect"
	"github.com/vmreconcile/vmreconcile/preclone"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/remediate"
	"github.com/vmreconcile/vmreconcile/store"
)

func init() { register("preclone", func() command { return &precloneCmd{} }) }

// precloneCmd is `vmreconcile preclone [flags] VM...`: is it safe to copy
// these VMs, and the generalization plan of a copy.
type precloneCmd struct {
	settingsFlag

	search map[string]*string // govc's -vm.uuid, -vm.ipath, -vm.ip, -vm.dns
	target string             // -generalize-plan
	apply  bool
	json   bool
}

var searchFlags = []string{"vm.uuid", "vm.ipath", "vm.ip", "vm.dns"}

func (cmd *precloneCmd) Register(ctx context.Context, f *flag.FlagSet) {
	cmd.settingsFlag.Register(f)
	cmd.search = map[string]*string{}
	for _, n := range searchFlags {
		cmd.search[n] = f.String(n, "", "Find the VM by "+strings.TrimPrefix(n, "vm.")+" (as govc)")
	}
	f.StringVar(&cmd.target, "generalize-plan", "", "Print the steps that make the COPY `TARGET` of the VM argument (its source) safe; run them on TARGET only")
	f.BoolVar(&cmd.apply, "apply", false, "With -generalize-plan: run the steps in TARGET through guest operations (journaled; needs -l)")
	f.BoolVar(&cmd.json, "json", false, "Print the report as JSON")
}

func (cmd *precloneCmd) Process(ctx context.Context) error {
	if err := cmd.settingsFlag.Process(); err != nil {
		return err
	}
	if cmd.apply && cmd.target == "" {
		return usagef("-apply needs -generalize-plan TARGET (fix: vmreconcile preclone -generalize-plan COPY SOURCE -apply)")
	}
	if cmd.apply && !cmd.logins.Any() {
		return usagef("-apply needs a guest login (fix: -l user:password, GOVC_GUEST_LOGIN, or guest.login in -config)")
	}
	var given []string
	for _, n := range searchFlags {
		if *cmd.search[n] != "" {
			given = append(given, "-"+n)
		}
	}
	if len(given) > 1 {
		return usagef("more than one search flag (%s) (fix: one of -vm.uuid, -vm.ipath, -vm.ip, -vm.dns)", strings.Join(given, ", "))
	}
	return nil
}

func (cmd *precloneCmd) Usage() string { return "VM..." }

func (cmd *precloneCmd) Description() string {
	return `Check, before cloning, whether copies of a VM or template would share its identity.

For each VM (inventory path or name, or one of -vm.uuid, -vm.ipath, -vm.ip,
-vm.dns, as govc) it reports PASS, WARN, FAIL or UNKNOWN for: swarm identity
(swarm-node.crt; FAIL when that node ID is live in a swarm read through -H),
manager role (a copied manager must never start), whether the managers list
the VM now, Docker enabled at boot, engine-id, /etc/machine-id, SSH host keys,
kubelet credentials, cloud-init instance state, the VM's own clone lineage (a
copy of a swarm node VM not proven generalized FAILs, as the audit reports it)
and extraConfig uuid.action = keep. It runs the same pipeline as audit. A
powered-on VM is probed through guest operations (-l) and the probe is stored;
a powered-off VM or a template is judged from its last stored probe.

Verdict: SAFE (no FAIL, nothing unknown), UNSAFE (a FAIL), UNVERIFIED (no
probe, or a manager could not be read). Exit 0 safe, 3 unsafe, 4 unverified
(several VMs: the worst), 1 runtime error, 2 usage error or a refused target.

-generalize-plan COPY prints the steps that make COPY, a copy of the VM
argument, safe: stop and disable Docker, move swarm state and engine-id to a
timestamped backup directory, empty /etc/machine-id, remove SSH host keys,
cloud-init clean. -apply runs them in COPY through guest operations,
journaled like remediate, then checks COPY again (exit code of that check).
It refuses COPY when it is the source itself, the original of the source, a
live swarm member not known to be a copy of the source, or carries the
vmreconcile.skip marker.

Examples:
  vmreconcile preclone -l root:PASS -H tcp://mgr:2376 /DC0/vm/golden-01
  vmreconcile preclone -json -vm.ipath /DC0/vm/tmpl-ubuntu | jq .verdict
  vmreconcile preclone -l root:PASS -generalize-plan wk-07-copy wk-07 -apply`
}

// planOutput is the JSON document of -generalize-plan.
type planOutput struct {
	Plan    preclone.Plan          `json:"plan"`
	Applied *appliedPlan           `json:"applied,omitempty"`
	Recheck *preclone.Report       `json:"recheck,omitempty"`
	Swarms  []preclone.SwarmSource `json:"swarms"`
}

type appliedPlan struct {
	PlanID   string `json:"plan_id"`
	IntentID int64  `json:"intent_id"`
	Status   string `json:"status"` // done, failed
	Detail   string `json:"detail"`
}

// precloneRun is one preclone: the pipeline's outcome and what it needs
// around it.
type precloneRun struct {
	cmd    *precloneCmd
	src    *audit.Sources
	st     *store.Store
	vc     string // the vCenter's name
	out    audit.Outcome
	swErrs []string
	now    time.Time
	// named: VM arguments or a search flag were given (a copy named as its
	// own source is generalized from itself).
	named bool
}

func (cmd *precloneCmd) Run(ctx context.Context, args []string) error {
	search := cmd.searchGiven()
	if len(args) == 0 && search == "" && cmd.target == "" {
		return usagef("no VM given (fix: vmreconcile preclone [flags] VM..., or -vm.uuid / -vm.ipath / -vm.ip / -vm.dns)")
	}
	if cmd.target != "" && len(args) > 1 {
		return usagef("-generalize-plan takes one source VM, got %d (fix: vmreconcile preclone -generalize-plan COPY SOURCE)", len(args))
	}
	cfg := cmd.cfg
	if len(cfg.VCenters) == 0 {
		return usagef("preclone needs a vCenter (fix: -u URL or GOVC_URL, e.g. https://user:pass@vcenter.example.com/sdk, or vcenters in -config)")
	}
	if len(cfg.VCenters) > 1 {
		fmt.Fprintf(out.stderr, "vmreconcile preclone: using vCenter %s, the first of the config's %d (fix: -u to choose another)\n", hostOnly(cfg.VCenters[0].URL), len(cfg.VCenters))
		cfg.VCenters = cfg.VCenters[:1]
	}
	st, err := openStore(cfg.Store.Path, false)
	if err != nil {
		return err
	}
	defer st.Close()
	src := audit.NewSources(cfg)
	vcs, _, err := src.Connect(ctx)
	if err != nil {
		var se *collect.SourceError
		if !errors.As(err, &se) || !strings.HasPrefix(se.Source, "swarm ") {
			return sourceError(err, cmd.vcFromFlags)
		}
		// The managers are optional here: check without them.
		cfg.Swarms = nil
		src.Close()
		src = audit.NewSources(cfg)
		if vcs, _, err = src.Connect(ctx); err != nil {
			src.Close()
			return sourceError(err, cmd.vcFromFlags)
		}
	}
	r := &precloneRun{cmd: cmd, src: src, st: st, vc: vcs[0].Name, named: len(args) > 0 || search != ""}
	defer func() { r.src.Close() }()
	sel, err := r.resolve(ctx, vcs[0].Client, args, search)
	if err != nil {
		return err
	}
	if err := r.pipeline(ctx, sel); err != nil {
		return err
	}
	if cmd.target != "" {
		return r.generalize(ctx, sel)
	}
	return r.check(ctx, sel)
}

// searchGiven returns the govc search flag given (`-vm.uuid "X"`), or "".
func (cmd *precloneCmd) searchGiven() string {
	for _, n := range searchFlags {
		if v := *cmd.search[n]; v != "" {
			return fmt.Sprintf("-%s %q", n, v)
		}
	}
	return ""
}

// resolve finds the VMs the arguments name, the govc way, and returns
// their refs (-generalize-plan: the target first).
func (r *precloneRun) resolve(ctx context.Context, c *vim25.Client, args []string, search string) ([]string, error) {
	var refs []string
	add := func(ref string) {
		if !slices.Contains(refs, ref) {
			refs = append(refs, ref)
		}
	}
	finder := find.NewFinder(c, false)
	if dcs := r.cmd.cfg.VCenters[0].Datacenters; len(dcs) == 1 {
		dc, err := finder.Datacenter(ctx, dcs[0])
		if err != nil {
			return nil, usagef("datacenter %q not found (fix: -dc or GOVC_DATACENTER naming an existing datacenter)", dcs[0])
		}
		finder.SetDatacenter(dc)
	} else if dc, err := finder.DefaultDatacenter(ctx); err == nil {
		finder.SetDatacenter(dc)
	}
	if r.cmd.target != "" {
		vms, err := findVMs(ctx, finder, r.cmd.target)
		if err != nil {
			return nil, err
		}
		if len(vms) != 1 {
			return nil, usagef("-generalize-plan %q names %d VMs (fix: name exactly one copy)", r.cmd.target, len(vms))
		}
		add(vms[0].Reference().Value)
	}
	if search != "" {
		ref, err := r.searchIndex(ctx, c)
		if err != nil {
			return nil, err
		}
		if ref == "" {
			return nil, usagef("%s matches no VM (fix: check the value; 'govc find / -type m' lists the VMs)", search)
		}
		add(ref)
	}
	for _, a := range args {
		vms, err := findVMs(ctx, finder, a)
		if err != nil {
			return nil, err
		}
		for _, vm := range vms {
			add(vm.Reference().Value)
		}
	}
	return refs, nil
}

func (r *precloneRun) searchIndex(ctx context.Context, c *vim25.Client) (string, error) {
	si := object.NewSearchIndex(c)
	var (
		ref object.Reference
		err error
	)
	s := r.cmd.search
	switch {
	case *s["vm.uuid"] != "":
		ref, err = si.FindByUuid(ctx, nil, *s["vm.uuid"], true, nil)
	case *s["vm.ipath"] != "":
		ref, err = si.FindByInventoryPath(ctx, *s["vm.ipath"])
	case *s["vm.ip"] != "":
		ref, err = si.FindByIp(ctx, nil, *s["vm.ip"], true)
	case *s["vm.dns"] != "":
		ref, err = si.FindByDnsName(ctx, nil, *s["vm.dns"], true)
	}
	if err != nil {
		return "", fmt.Errorf("vcenter %s: search: %s", r.vc, oneLine(err.Error()))
	}
	if ref == nil || ref.Reference().Type != "VirtualMachine" {
		return "", nil
	}
	return ref.Reference().Value, nil
}

// findVMs resolves one argument the govc way (name, inventory path, glob).
func findVMs(ctx context.Context, finder *find.Finder, arg string) ([]*object.VirtualMachine, error) {
	vms, err := finder.VirtualMachineList(ctx, arg)
	if err != nil {
		var nf *find.NotFoundError
		if errors.As(err, &nf) {
			return nil, usagef("VM %q not found (fix: a VM name or inventory path, as govc ls shows it)", arg)
		}
		return nil, fmt.Errorf("finding VM %q: %s", arg, oneLine(err.Error()))
	}
	return vms, nil
}

// pipeline runs the audit pipeline with the store's history, probing the
// selected VMs and their lineage sources (saved to the store).
func (r *precloneRun) pipeline(ctx context.Context, sel []string) error {
	r.now = time.Now().UTC()
	hist, err := r.st.History(ctx, time.Time{})
	if err != nil {
		return fmt.Errorf("store: %s", oneLine(err.Error()))
	}
	probe := &audit.Probe{Logins: r.cmd.logins, Concurrency: r.cmd.cfg.Guest.Concurrency, Timeout: r.cmd.cfg.Guest.Timeout,
		Select: func(snap reconcile.Snapshot, _ reconcile.Result) []reconcile.VM { return probeSet(snap, sel) },
		Keep: func(g reconcile.GuestIdentity) {
			if g.Error == "" {
				if err := r.st.SaveProbe(ctx, g); err != nil {
					fmt.Fprintf(out.stderr, "vmreconcile preclone: %s\n", oneLine(err.Error()))
				}
			}
		}}
	o, err := audit.Run(ctx, r.src, audit.Options{Observe: observeOptions(r.cmd.cfg), History: hist, Probe: probe, Progress: progress()})
	clearProgress()
	var se *collect.SourceError
	if err != nil && errors.As(err, &se) && strings.HasPrefix(se.Source, "swarm ") {
		// A manager that cannot be read makes membership unknown, not the
		// check impossible: check without it, and say so.
		r.swErrs = append(r.swErrs, strings.TrimPrefix(se.Source, "swarm ")+": "+oneLine(se.Err.Error()))
		fmt.Fprintf(out.stderr, "vmreconcile preclone: %s\n", redact(oneLine(err.Error())))
		cfg := r.cmd.cfg
		cfg.VCenters, cfg.Swarms = cfg.VCenters[:1], nil
		r.src.Close()
		r.src = audit.NewSources(cfg)
		o, err = audit.Run(ctx, r.src, audit.Options{History: hist, Probe: probe, Progress: progress()})
		clearProgress()
	}
	if err != nil {
		return sourceError(err, r.cmd.vcFromFlags)
	}
	r.out = o
	return nil
}

// probeSet is the selected VMs and their lineage sources that can be probed.
func probeSet(snap reconcile.Snapshot, sel []string) []reconcile.VM {
	want := map[string]bool{}
	for _, v := range snap.VMs {
		if slices.Contains(sel, v.Ref) {
			want[v.Ref] = true
			if v.Lineage != nil {
				want[v.Lineage.SourceRef] = true
			}
		}
	}
	var vms []reconcile.VM
	for _, v := range snap.VMs {
		if want[v.Ref] && v.PoweredOn() && !v.Template {
			vms = append(vms, v)
		}
	}
	return vms
}

// vm is one VM of the run by ref.
func (r *precloneRun) vm(ref string) (reconcile.VM, bool) {
	for _, v := range r.out.Snapshot.VMs {
		if v.Ref == ref && v.VCenter == r.vc {
			return v, true
		}
	}
	return reconcile.VM{}, false
}

// guestOf is the VM's identity: this run's probe, else the store's.
func (r *precloneRun) guestOf(ctx context.Context, v reconcile.VM) (g *reconcile.GuestIdentity, source, probeErr string) {
	for _, gi := range r.out.Snapshot.Guests {
		if gi.VMRef == v.Ref && gi.VCenter == v.VCenter {
			if gi.Error == "" {
				return &gi, preclone.SourceLive, ""
			}
			probeErr = gi.Error
		}
	}
	if probeErr == "" && !r.cmd.logins.Any() && v.PoweredOn() && !v.Template {
		probeErr = "no guest login (-l, GOVC_GUEST_LOGIN)"
	}
	if sg, ok, err := r.st.LastProbe(ctx, v.Ref); err == nil && ok && sg.Error == "" {
		return &sg, preclone.SourceStored, probeErr
	}
	if v.Template || !v.PoweredOn() {
		what := "VM is " + strings.ToLower(strings.TrimPrefix(v.PowerState, "powered"))
		if v.Template {
			what = "template"
		}
		probeErr = what + " (guest operations need it running) and the store has no probe of it"
	}
	return nil, preclone.SourceNone, probeErr
}

// input is everything preclone.Evaluate weighs for one VM.
func (r *precloneRun) input(ctx context.Context, v reconcile.VM) preclone.Input {
	g, source, probeErr := r.guestOf(ctx, v)
	in := preclone.Input{VM: v, Guest: g, GuestSource: source, ProbeError: probeErr,
		UUIDAction: r.uuidAction(ctx, v), Swarms: r.out.Snapshot.Swarms, SwarmErrors: r.swErrs, Now: r.now}
	if l := v.Lineage; l != nil {
		if s, ok := r.vm(l.SourceRef); ok {
			in.SourceGuest, _, _ = r.guestOf(ctx, s)
			for _, st := range r.out.Result.VMs {
				if st.VM.Ref == s.Ref && st.VM.VCenter == s.VCenter {
					in.SourceNodes = st.NodeIDs
				}
			}
		} else if sg, ok, err := r.st.LastProbe(ctx, l.SourceRef); err == nil && ok {
			in.SourceGuest = &sg
		}
	}
	for _, f := range r.out.Result.Findings {
		switch f.Kind {
		case reconcile.KindCloneOfSwarmNode, reconcile.KindTemplateCarriesSwarm, reconcile.KindSharedNodeID:
			for i, ref := range f.VMRefs {
				if ref == v.Ref && (i >= len(f.VMs) || f.VMs[i] != f.Original) {
					in.Findings = append(in.Findings, f)
				}
			}
		}
	}
	return in
}

// uuidAction reads the VM's extraConfig uuid.action (not part of the
// inventory: it is read for the VMs being checked only).
func (r *precloneRun) uuidAction(ctx context.Context, v reconcile.VM) string {
	c := r.src.Client(v.VCenter)
	if c == nil {
		return ""
	}
	var m mo.VirtualMachine
	ref := types.ManagedObjectReference{Type: "VirtualMachine", Value: v.Ref}
	if err := property.DefaultCollector(c).RetrieveOne(ctx, ref, []string{"config.extraConfig"}, &m); err != nil || m.Config == nil {
		return ""
	}
	for _, ov := range m.Config.ExtraConfig {
		if o := ov.GetOptionValue(); o != nil && strings.EqualFold(o.Key, "uuid.action") {
			return fmt.Sprint(o.Value)
		}
	}
	return ""
}

func (r *precloneRun) swarmSources() []preclone.SwarmSource {
	out := []preclone.SwarmSource{}
	for _, s := range r.out.Snapshot.Swarms {
		out = append(out, preclone.SwarmSource{Endpoint: s.Endpoint, ClusterID: s.ClusterID, Nodes: len(s.Nodes)})
	}
	for _, e := range r.swErrs {
		ep, msg, _ := strings.Cut(e, ": ")
		out = append(out, preclone.SwarmSource{Endpoint: ep, Error: msg})
	}
	return out
}

// check is `preclone VM...`: every VM judged, the worst verdict's exit code.
func (r *precloneRun) check(ctx context.Context, sel []string) error {
	o := preclone.Output{CheckedAt: r.now, Swarms: r.swarmSources()}
	var vs []preclone.Verdict
	for _, ref := range sel {
		v, ok := r.vm(ref)
		if !ok {
			continue
		}
		rep := preclone.Evaluate(r.input(ctx, v))
		o.VMs = append(o.VMs, rep)
		vs = append(vs, rep.Verdict)
	}
	o.Verdict = preclone.Worst(vs...)
	if r.cmd.json {
		if err := writeJSON(out.stdout, o); err != nil {
			return err
		}
	} else {
		preclone.WriteText(out.stdout, o, 100)
	}
	return verdictError(o.Verdict)
}

func verdictError(v preclone.Verdict) error {
	switch v {
	case preclone.Unsafe:
		return &findingsError{code: ExitFindings}
	case preclone.Unverified:
		return &findingsError{code: ExitUnverified}
	}
	return nil
}

// generalize is -generalize-plan TARGET [SOURCE] [-apply].
func (r *precloneRun) generalize(ctx context.Context, sel []string) error {
	target, ok := r.vm(sel[0])
	if !ok {
		return usagef("-generalize-plan %q is not in the inventory (fix: name a VM)", r.cmd.target)
	}
	var source reconcile.VM
	switch {
	case len(sel) > 2:
		return usagef("-generalize-plan takes one source VM, got %d (fix: vmreconcile preclone -generalize-plan COPY SOURCE)", len(sel)-1)
	case len(sel) == 2:
		source, _ = r.vm(sel[1])
	case target.Lineage != nil:
		if source, ok = r.vm(target.Lineage.SourceRef); !ok {
			return usagef("the source of %s (%s) is gone from the inventory (fix: name the source VM)", target.Name, target.Lineage.SourceRef)
		}
	default:
		// The copy named as its own source.
		if r.named {
			source = target
			break
		}
		return usagef("no source VM for copy %s and no clone event names one (fix: vmreconcile preclone -generalize-plan %s SOURCE)", target.Name, r.cmd.target)
	}
	tg, tsrc, tErr := r.guestOf(ctx, target)
	sg, _, _ := r.guestOf(ctx, source)
	if why := preclone.RefuseTarget(preclone.TargetInput{
		Target: target, Source: source, TargetGuest: tg, SourceGuest: sg, Swarms: r.out.Snapshot.Swarms,
	}); why != "" {
		return usagef("refusing -generalize-plan %s: %s", target.Name, why)
	}
	plan := preclone.GeneralizePlan(target, source, r.now)
	po := planOutput{Plan: plan, Swarms: r.swarmSources()}
	if !r.cmd.apply {
		if r.cmd.json {
			return writeJSON(out.stdout, po)
		}
		preclone.WritePlan(out.stdout, plan, 100)
		fmt.Fprintf(out.stdout, "\nTo run these steps in %s through VMware Tools (no network needed):\n  vmreconcile preclone -l USER:PASS -generalize-plan %s %s -apply\n",
			target.Name, target.Path, source.Path)
		return nil
	}
	if tsrc != preclone.SourceLive {
		if tErr == "" {
			tErr = "no live probe"
		}
		return usagef("cannot -apply on %s: %s (fix: power the copy on, NIC disconnected if you like, with VMware Tools running)", target.Name, tErr)
	}
	return r.apply(ctx, po, target, source)
}

// apply runs the generalization in the copy through the remediation
// Runner (skip markers, root preflight, journal), then checks it again.
func (r *precloneRun) apply(ctx context.Context, po planOutput, target, source reconcile.VM) error {
	if !r.cmd.json {
		preclone.WritePlan(out.stdout, po.Plan, 100)
		fmt.Fprintln(out.stdout)
	}
	runner := &remediate.Runner{Sessions: r.src, Auth: r.cmd.logins.For, Journal: r.st, GuestTimeout: r.cmd.cfg.Guest.Timeout}
	planID := "preclone-" + target.Ref + "-" + r.now.Format("20060102T150405Z")
	id, stdout, err := runner.Script(ctx, target, planID, "generalize",
		fmt.Sprintf("preclone -generalize-plan: copy of %s (%s)", source.Name, source.Ref), po.Plan.Script)
	var (
		skipped *remediate.SkippedError
		pre     *remediate.PreflightError
	)
	switch {
	case errors.As(err, &skipped):
		for _, w := range skipped.Warnings {
			fmt.Fprintln(out.stderr, "vmreconcile preclone: warning: "+redact(w))
		}
		return usagef("refusing -apply on %s: it carries the skip marker (%s)", target.Name, skipped.Why)
	case errors.As(err, &pre):
		return fmt.Errorf("nothing done: %s", redact(oneLine(pre.Error())))
	case err != nil && id == 0:
		return fmt.Errorf("%s", redact(oneLine(err.Error())))
	}
	ap := &appliedPlan{PlanID: planID, IntentID: id, Status: remediate.StatusDone, Detail: redact(oneLine(strings.ReplaceAll(strings.TrimSpace(stdout), "\n", "; ")))}
	po.Applied = ap
	if err != nil {
		ap.Status, ap.Detail = remediate.StatusFailed, redact(oneLine(err.Error()))
		if r.cmd.json {
			_ = writeJSON(out.stdout, po)
		}
		return fmt.Errorf("generalizing %s failed (journal intent #%d): %s", target.Name, id, ap.Detail)
	}
	// Check the copy again: probe it now.
	probe := &audit.Probe{Logins: r.cmd.logins, Concurrency: 1, Timeout: r.cmd.cfg.Guest.Timeout}
	fresh := audit.ProbeVMs(ctx, r.src, probe, []reconcile.VM{target})
	guests := r.out.Snapshot.Guests[:0:0]
	for _, g := range r.out.Snapshot.Guests {
		if g.VMRef != target.Ref {
			guests = append(guests, g)
		}
	}
	r.out.Snapshot.Guests = append(guests, fresh...)
	for _, g := range fresh {
		if g.Error == "" {
			_ = r.st.SaveProbe(ctx, g)
		}
	}
	// The findings of the run named the copy before it was generalized.
	r.out.Result = reconcile.Reconcile(r.out.Snapshot, reconcile.History{})
	rep := preclone.Evaluate(r.input(ctx, target))
	po.Recheck = &rep
	if r.cmd.json {
		if err := writeJSON(out.stdout, po); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out.stdout, "Applied to %s: %s (journal plan %s, intent #%d)\n\nRe-check of %s:\n",
			target.Name, lastLine(stdout), planID, id, target.Name)
		preclone.WriteText(out.stdout, preclone.Output{VMs: []preclone.Report{rep}, Verdict: rep.Verdict}, 100)
	}
	return verdictError(rep.Verdict)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
