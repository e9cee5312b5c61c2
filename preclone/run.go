package preclone

import (
	"context"
	"errors"
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
	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/guest"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/remediate"
	"github.com/vmreconcile/vmreconcile/store"
)

// InputError is bad input (a VM that does not exist, a refused target):
// the command exits 2.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputf(format string, args ...any) error { return &InputError{fmt.Sprintf(format, args...)} }

// Options are what a preclone session needs: a configuration with one
// vCenter (the swarms are optional: a manager that cannot be read makes
// membership unknown, not the check impossible), the guest logins and the
// store (probes, history, journal).
type Options struct {
	Config   config.Config
	Logins   *guest.Logins
	Store    *store.Store
	Warn     func(string)
	Progress func(format string, args ...any)
}

// Selection names the VMs: arguments the govc way (name, inventory path,
// glob), or one govc search flag ("vm.uuid", "vm.ipath", "vm.ip",
// "vm.dns"); Target is -generalize-plan's copy.
type Selection struct {
	Args   []string
	Search map[string]string
	Target string
}

// Session is one preclone: the pipeline's outcome around the selected VMs.
type Session struct {
	opts   Options
	src    *audit.Sources
	vc     string
	out    audit.Outcome
	swErrs []string
	now    time.Time
	sel    []string // selected refs, the target first
	named  bool     // arguments or a search flag were given
}

// Open connects to the vCenter (and the managers, when they can be read),
// resolves the selection and runs the pipeline once, probing the selected
// VMs and their lineage sources (probes are saved to the store).
func Open(ctx context.Context, opts Options, sel Selection) (*Session, error) {
	s := &Session{opts: opts, now: time.Now().UTC(), named: len(sel.Args) > 0 || searchValue(sel) != ""}
	cfg := opts.Config
	s.src = audit.NewSources(cfg)
	conn, err := s.src.Connect(ctx)
	if isSwarmError(err) {
		s.swarmFailed(err)
		conn, err = s.src.Connect(ctx)
	}
	if err != nil {
		s.src.Close()
		return nil, err
	}
	s.vc = conn.VCenters[0].Name
	if s.sel, err = s.resolve(ctx, conn.VCenters[0].Client, sel); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.pipeline(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close ends the sessions.
func (s *Session) Close() { s.src.Close() }

func isSwarmError(err error) bool {
	var se *collect.SourceError
	return errors.As(err, &se) && strings.HasPrefix(se.Source, "swarm ")
}

// swarmFailed records a manager that could not be read and goes on without
// the managers.
func (s *Session) swarmFailed(err error) {
	var se *collect.SourceError
	errors.As(err, &se)
	s.swErrs = append(s.swErrs, strings.TrimPrefix(se.Source, "swarm ")+": "+oneLine(se.Err.Error()))
	if s.opts.Warn != nil {
		s.opts.Warn(oneLine(err.Error()))
	}
	cfg := s.opts.Config
	cfg.Swarms = nil
	s.src.Close()
	s.src = audit.NewSources(cfg)
}

func searchValue(sel Selection) string {
	for _, n := range []string{"vm.uuid", "vm.ipath", "vm.ip", "vm.dns"} {
		if v := sel.Search[n]; v != "" {
			return fmt.Sprintf("-%s %q", n, v)
		}
	}
	return ""
}

// resolve finds the VMs the selection names, the govc way, and returns
// their refs (the target first).
func (s *Session) resolve(ctx context.Context, c *vim25.Client, sel Selection) ([]string, error) {
	var refs []string
	add := func(ref string) {
		if !slices.Contains(refs, ref) {
			refs = append(refs, ref)
		}
	}
	finder := find.NewFinder(c, false)
	if dcs := s.opts.Config.VCenters[0].Datacenters; len(dcs) == 1 {
		dc, err := finder.Datacenter(ctx, dcs[0])
		if err != nil {
			return nil, inputf("datacenter %q not found (fix: -dc or GOVC_DATACENTER naming an existing datacenter)", dcs[0])
		}
		finder.SetDatacenter(dc)
	} else if dc, err := finder.DefaultDatacenter(ctx); err == nil {
		finder.SetDatacenter(dc)
	}
	if sel.Target != "" {
		vms, err := findVMs(ctx, finder, sel.Target)
		if err != nil {
			return nil, err
		}
		if len(vms) != 1 {
			return nil, inputf("-generalize-plan %q names %d VMs (fix: name exactly one copy)", sel.Target, len(vms))
		}
		add(vms[0].Reference().Value)
	}
	if search := searchValue(sel); search != "" {
		ref, err := s.searchIndex(ctx, c, sel.Search)
		if err != nil {
			return nil, err
		}
		if ref == "" {
			return nil, inputf("%s matches no VM (fix: check the value; 'govc find / -type m' lists the VMs)", search)
		}
		add(ref)
	}
	for _, a := range sel.Args {
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

func (s *Session) searchIndex(ctx context.Context, c *vim25.Client, search map[string]string) (string, error) {
	si := object.NewSearchIndex(c)
	var (
		ref object.Reference
		err error
	)
	switch {
	case search["vm.uuid"] != "":
		ref, err = si.FindByUuid(ctx, nil, search["vm.uuid"], true, nil)
	case search["vm.ipath"] != "":
		ref, err = si.FindByInventoryPath(ctx, search["vm.ipath"])
	case search["vm.ip"] != "":
		ref, err = si.FindByIp(ctx, nil, search["vm.ip"], true)
	case search["vm.dns"] != "":
		ref, err = si.FindByDnsName(ctx, nil, search["vm.dns"], true)
	}
	if err != nil {
		return "", fmt.Errorf("vcenter %s: search: %s", s.vc, oneLine(err.Error()))
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
			return nil, inputf("VM %q not found (fix: a VM name or inventory path, as govc ls shows it)", arg)
		}
		return nil, fmt.Errorf("finding VM %q: %s", arg, oneLine(err.Error()))
	}
	return vms, nil
}

// pipeline runs the audit pipeline with the store's history, probing the
// selected VMs and their lineage sources.
func (s *Session) pipeline(ctx context.Context) error {
	hist, err := s.opts.Store.History(ctx, time.Time{})
	if err != nil {
		return fmt.Errorf("store: %s", oneLine(err.Error()))
	}
	g := s.opts.Config.Guest
	probe := &audit.Probe{Logins: s.opts.Logins, Concurrency: g.Concurrency, Timeout: g.Timeout,
		Select: func(snap reconcile.Snapshot, _ reconcile.Result) []reconcile.VM { return probeSet(snap, s.sel) },
		Keep: func(gi reconcile.GuestIdentity) {
			if gi.Error == "" {
				if err := s.opts.Store.SaveProbe(ctx, gi); err != nil && s.opts.Warn != nil {
					s.opts.Warn(oneLine(err.Error()))
				}
			}
		}}
	o := s.opts.Config.Observe
	run := func() (audit.Outcome, error) {
		return audit.Run(ctx, s.src, audit.Options{History: hist, Probe: probe, Progress: s.opts.Progress,
			Observe: audit.Observe(o)})
	}
	out, err := run()
	if isSwarmError(err) {
		s.swarmFailed(err)
		out, err = run()
	}
	if err != nil {
		return err
	}
	s.out = out
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
func (s *Session) vm(ref string) (reconcile.VM, bool) {
	for _, v := range s.out.Snapshot.VMs {
		if v.Ref == ref && v.VCenter == s.vc {
			return v, true
		}
	}
	return reconcile.VM{}, false
}

// guestOf is the VM's identity: this run's probe, else the store's.
func (s *Session) guestOf(ctx context.Context, v reconcile.VM) (g *reconcile.GuestIdentity, source, probeErr string) {
	for _, gi := range s.out.Snapshot.Guests {
		if gi.VMRef == v.Ref && gi.VCenter == v.VCenter {
			if gi.Error == "" {
				return &gi, SourceLive, ""
			}
			probeErr = gi.Error
		}
	}
	if probeErr == "" && !s.opts.Logins.Any() && v.PoweredOn() && !v.Template {
		probeErr = "no guest login (-l, GOVC_GUEST_LOGIN)"
	}
	if sg, ok, err := s.opts.Store.LastProbe(ctx, v.Key()); err == nil && ok && sg.Error == "" {
		return &sg, SourceStored, probeErr
	}
	if v.Template || !v.PoweredOn() {
		what := "VM is " + strings.ToLower(strings.TrimPrefix(v.PowerState, "powered"))
		if v.Template {
			what = "template"
		}
		probeErr = what + " (guest operations need it running) and the store has no probe of it"
	}
	return nil, SourceNone, probeErr
}

// input is everything Evaluate weighs for one VM: the same snapshot and
// findings the audit reports.
func (s *Session) input(ctx context.Context, v reconcile.VM) Input {
	g, source, probeErr := s.guestOf(ctx, v)
	in := Input{VM: v, Guest: g, GuestSource: source, ProbeError: probeErr,
		UUIDAction: s.uuidAction(ctx, v), Swarms: s.out.Snapshot.Swarms, SwarmErrors: s.swErrs, Now: s.now}
	if l := v.Lineage; l != nil {
		if src, ok := s.vm(l.SourceRef); ok {
			in.SourceGuest, _, _ = s.guestOf(ctx, src)
			for _, st := range s.out.Result.VMs {
				if st.VM.Ref == src.Ref && st.VM.VCenter == src.VCenter {
					in.SourceNodes = st.NodeIDs
				}
			}
		} else if sg, ok, err := s.opts.Store.LastProbe(ctx, reconcile.VMKey{VCenter: v.VCenter, Ref: l.SourceRef}); err == nil && ok {
			in.SourceGuest = &sg
		}
	}
	for _, f := range s.out.Result.Findings {
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
func (s *Session) uuidAction(ctx context.Context, v reconcile.VM) string {
	c := s.src.Client(v.VCenter)
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

// SwarmSources says which managers were read (or not).
func (s *Session) SwarmSources() []SwarmSource {
	out := []SwarmSource{}
	for _, sw := range s.out.Snapshot.Swarms {
		out = append(out, SwarmSource{Endpoint: sw.Endpoint, ClusterID: sw.ClusterID, Nodes: len(sw.Nodes)})
	}
	for _, e := range s.swErrs {
		ep, msg, _ := strings.Cut(e, ": ")
		out = append(out, SwarmSource{Endpoint: ep, Error: msg})
	}
	return out
}

// Check judges every selected VM; the Output's verdict is the worst.
func (s *Session) Check(ctx context.Context) Output {
	o := Output{CheckedAt: s.now, Swarms: s.SwarmSources()}
	var vs []Verdict
	for _, ref := range s.sel {
		v, ok := s.vm(ref)
		if !ok {
			continue
		}
		rep := Evaluate(s.input(ctx, v))
		o.VMs = append(o.VMs, rep)
		vs = append(vs, rep.Verdict)
	}
	o.Verdict = Worst(vs...)
	return o
}

// Generalization is -generalize-plan's result: the plan, and with apply
// what was done and the copy's re-check.
type Generalization struct {
	Plan    Plan          `json:"plan"`
	Applied *Applied      `json:"applied,omitempty"`
	Recheck *Report       `json:"recheck,omitempty"`
	Swarms  []SwarmSource `json:"swarms"`
	// Target and Source are the copy and the VM it was copied from.
	Target reconcile.VM `json:"-"`
	Source reconcile.VM `json:"-"`
	// Output is the generalization script's last line.
	Output string `json:"-"`
}

// Applied is what -apply did.
type Applied struct {
	PlanID   string `json:"plan_id"`
	IntentID int64  `json:"intent_id"`
	Status   string `json:"status"` // done, failed
	Detail   string `json:"detail"`
}

// Generalize plans (and with apply runs, through the remediation Runner:
// skip markers, root preflight, journal) the generalization of the selected
// copy; its source is the second VM named, else the copy's clone event.
func (s *Session) Generalize(ctx context.Context, apply bool) (Generalization, error) {
	target, source, err := s.pair()
	if err != nil {
		return Generalization{}, err
	}
	tg, tsrc, tErr := s.guestOf(ctx, target)
	sg, _, _ := s.guestOf(ctx, source)
	if why := RefuseTarget(TargetInput{Target: target, Source: source, TargetGuest: tg, SourceGuest: sg, Swarms: s.out.Snapshot.Swarms}); why != "" {
		return Generalization{}, inputf("refusing -generalize-plan %s: %s", target.Name, why)
	}
	g := Generalization{Plan: GeneralizePlan(target, source, s.now), Swarms: s.SwarmSources(), Target: target, Source: source}
	if !apply {
		return g, nil
	}
	if tsrc != SourceLive {
		if tErr == "" {
			tErr = "no live probe"
		}
		return g, inputf("cannot -apply on %s: %s (fix: power the copy on, NIC disconnected if you like, with VMware Tools running)", target.Name, tErr)
	}
	return s.apply(ctx, g)
}

// pair is the copy and its source.
func (s *Session) pair() (target, source reconcile.VM, err error) {
	target, ok := s.vm(s.sel[0])
	if !ok {
		return target, source, inputf("the copy %s is not in the inventory (fix: name a VM)", s.sel[0])
	}
	switch {
	case len(s.sel) > 2:
		return target, source, inputf("-generalize-plan takes one source VM, got %d (fix: vmreconcile preclone -generalize-plan COPY SOURCE)", len(s.sel)-1)
	case len(s.sel) == 2:
		source, _ = s.vm(s.sel[1])
	case target.Lineage != nil:
		if source, ok = s.vm(target.Lineage.SourceRef); !ok {
			return target, source, inputf("the source of %s (%s) is gone from the inventory (fix: name the source VM)", target.Name, target.Lineage.SourceRef)
		}
	case s.named: // the copy named as its own source
		source = target
	default:
		return target, source, inputf("no source VM for copy %s and no clone event names one (fix: vmreconcile preclone -generalize-plan %s SOURCE)", target.Name, target.Name)
	}
	return target, source, nil
}

// apply runs the generalization in the copy, then checks it again.
func (s *Session) apply(ctx context.Context, g Generalization) (Generalization, error) {
	target, source := g.Target, g.Source
	runner := &remediate.Runner{Sessions: s.src, Auth: s.opts.Logins.For, Journal: s.opts.Store, GuestTimeout: s.opts.Config.Guest.Timeout,
		Settings: remediate.Settings{Exclude: s.opts.Config.Policy.Exclude}}
	planID := "preclone-" + target.Ref + "-" + s.now.Format("20060102T150405Z")
	id, stdout, err := runner.Script(ctx, target, planID, "generalize",
		fmt.Sprintf("preclone -generalize-plan: copy of %s (%s)", source.Name, source.Ref), g.Plan.Script)
	var (
		skipped *remediate.SkippedError
		pre     *remediate.PreflightError
	)
	switch {
	case errors.As(err, &skipped):
		for _, w := range skipped.Warnings {
			if s.opts.Warn != nil {
				s.opts.Warn("warning: " + w)
			}
		}
		return g, inputf("refusing -apply on %s: %s", target.Name, strings.TrimPrefix(skipped.Error(), target.Name+" "))
	case errors.As(err, &pre):
		return g, fmt.Errorf("nothing done: %s", oneLine(pre.Error()))
	case err != nil && id == 0:
		return g, err
	}
	g.Applied = &Applied{PlanID: planID, IntentID: id, Status: remediate.StatusDone, Detail: oneLine(strings.ReplaceAll(strings.TrimSpace(stdout), "\n", "; "))}
	if err != nil {
		g.Applied.Status, g.Applied.Detail = remediate.StatusFailed, oneLine(err.Error())
		return g, fmt.Errorf("generalizing %s failed (journal intent #%d): %s", target.Name, id, g.Applied.Detail)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	g.Output = lines[len(lines)-1]
	rep := s.recheck(ctx, target)
	g.Recheck = &rep
	return g, nil
}

// recheck probes the copy again and judges it with a fresh reconcile (the
// run's findings named it before it was generalized).
func (s *Session) recheck(ctx context.Context, target reconcile.VM) Report {
	g := s.opts.Config.Guest
	fresh := audit.ProbeVMs(ctx, s.src, &audit.Probe{Logins: s.opts.Logins, Concurrency: 1, Timeout: g.Timeout}, []reconcile.VM{target})
	guests := s.out.Snapshot.Guests[:0:0]
	for _, gi := range s.out.Snapshot.Guests {
		if gi.VMRef != target.Ref {
			guests = append(guests, gi)
		}
	}
	s.out.Snapshot.Guests = append(guests, fresh...)
	for _, gi := range fresh {
		if gi.Error == "" {
			_ = s.opts.Store.SaveProbe(ctx, gi)
		}
	}
	s.out.Result = reconcile.Reconcile(s.out.Snapshot, reconcile.History{})
	return Evaluate(s.input(ctx, target))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
