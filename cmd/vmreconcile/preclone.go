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
	"time"

	"github.com/vmware/govmomi/cli/flags"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/guest"
	"github.com/vmreconcile/vmreconcile/preclone"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/remediate"
	"github.com/vmreconcile/vmreconcile/store"
	"github.com/vmreconcile/vmreconcile/swarm"
	"github.com/vmreconcile/vmreconcile/vsphere"
)

func init() { register("preclone", func() command { return &precloneCmd{} }) }

// precloneCmd is `vmreconcile preclone [flags] VM...`: is it safe to copy
// these VMs, and the generalization plan of a copy.
type precloneCmd struct {
	*flags.SearchFlag
	*commonFlag

	storePath string
	target    string // -generalize-plan
	apply     bool

	fs *flag.FlagSet
}

func (cmd *precloneCmd) Register(ctx context.Context, f *flag.FlagSet) {
	cmd.SearchFlag, ctx = flags.NewSearchFlag(ctx, flags.SearchVirtualMachines)
	cmd.SearchFlag.Register(ctx, f)
	cmd.commonFlag = newCommonFlag(ctx, f)
	f.StringVar(&cmd.storePath, "store", "", "Store file for guest probes and the journal, shared with remediate (default: store.path when a config is given, else $XDG_STATE_HOME/vmreconcile/state.db or ~/.local/state/vmreconcile/state.db)")
	f.StringVar(&cmd.target, "generalize-plan", "", "Print the steps that make the COPY `TARGET` of the VM argument (its source) safe; run them on TARGET only")
	f.BoolVar(&cmd.apply, "apply", false, "With -generalize-plan: run the steps in TARGET through guest operations (journaled; needs -l)")
	cmd.fs = f
}

func (cmd *precloneCmd) Process(ctx context.Context) error {
	if err := cmd.commonFlag.process(ctx, cmd.OutputFlag); err != nil {
		return err
	}
	if cmd.apply && cmd.target == "" {
		return usagef("-apply needs -generalize-plan TARGET (fix: vmreconcile preclone -generalize-plan COPY SOURCE -apply)")
	}
	if cmd.apply && !cmd.guestFlag.hasLogin() {
		return usagef("-apply needs a guest login (fix: -l user:password, GOVC_GUEST_LOGIN, or guest.login in -config)")
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
kubelet credentials, cloud-init instance state, the VM's own clone lineage and
extraConfig uuid.action = keep. A powered-on VM is probed through guest
operations (-l) and the probe is stored; a powered-off VM or a template is
judged from its last stored probe.

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
vmreconcile.skip custom attribute.

Examples:
  vmreconcile preclone -l root:PASS -H tcp://mgr:2376 /DC0/vm/golden-01
  vmreconcile preclone -json -vm.ipath /DC0/vm/tmpl-ubuntu | jq .verdict
  vmreconcile preclone -l root:PASS -generalize-plan wk-07-copy wk-07 -apply`
}

// precloneVM is one VM being judged.
type precloneVM struct {
	obj        *object.VirtualMachine
	vm         reconcile.VM
	uuidAction string
	guest      *reconcile.GuestIdentity
	source     string // preclone.SourceLive, SourceStored
	probeErr   string
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

func (cmd *precloneCmd) Run(ctx context.Context, args []string) error {
	// Flags may follow the VMs: "preclone -generalize-plan COPY SOURCE -apply".
	var vmArgs []string
	for len(args) > 0 {
		if strings.HasPrefix(args[0], "-") && args[0] != "-" {
			if err := cmd.fs.Parse(args); err != nil {
				if urlFlagFailed(cmd.fs) { // never quote the value: it may hold a password
					return usagef("-u: %s", urlParseFix)
				}
				return usagef("%s (fix: see 'vmreconcile preclone -h')", err)
			}
			args = cmd.fs.Args()
			continue
		}
		vmArgs = append(vmArgs, args[0])
		args = args[1:]
	}
	args = vmArgs
	if err := cmd.Process(ctx); err != nil { // again: flags after the VMs
		return err
	}
	// Not SearchFlag.IsSet: it is only true after SearchFlag.Process, which
	// runs below, so a lone -vm.uuid (-vm.ipath, ...) was refused as "no VM".
	search := cmd.searchFlagGiven()
	if len(args) == 0 && search == "" && cmd.target == "" {
		return usagef("no VM given (fix: vmreconcile preclone [flags] VM..., or -vm.uuid / -vm.ipath / -vm.ip / -vm.dns)")
	}
	if cmd.target != "" && len(args) > 1 {
		return usagef("-generalize-plan takes one source VM, got %d (fix: vmreconcile preclone -generalize-plan COPY SOURCE)", len(args))
	}
	fromConfig := (cmd.ClientFlag.Session.URL == nil || cmd.ClientFlag.Session.URL.Host == "") && len(cmd.cfg.VCenters) > 0
	note, err := cmd.govcFlagsFromConfig(cmd.fs, cmd.ClientFlag)
	if err != nil {
		return err
	}
	if note != "" {
		fmt.Fprintln(out.stderr, "vmreconcile preclone: "+note)
	}
	if err := cmd.SearchFlag.Process(ctx); err != nil {
		if strings.Contains(err.Error(), "search flag") {
			return usagef("%s (fix: one of -vm.uuid, -vm.ipath, -vm.ip, -vm.dns, -vm.path)", err)
		}
		return usagef("%s (fix: -u URL or GOVC_URL, e.g. https://user:pass@vcenter.example.com/sdk, or vcenters in -config)", err)
	}
	u := cmd.ClientFlag.Session.URL
	if u == nil || u.Host == "" {
		return usagef("no vCenter (fix: -u URL or GOVC_URL, e.g. https://user:pass@vcenter.example.com/sdk, or vcenters in -config)")
	}
	if p, ok := u.User.Password(); ok {
		addSecret(p)
	}
	host := u.Hostname()
	c, err := cmd.ClientFlag.Client()
	if err != nil {
		if fromConfig {
			return configFix(0, vcenterError(host, err))
		}
		return vcenterError(host, err)
	}
	defer func() { _ = cmd.ClientFlag.Logout(context.Background()) }()

	var objs []*object.VirtualMachine
	if cmd.SearchFlag.IsSet() {
		vms, err := cmd.SearchFlag.VirtualMachines(nil)
		if err != nil {
			return usagef("%s matches no VM: %s (fix: check the value; 'govc find / -type m' lists the VMs)", search, oneLine(err.Error()))
		}
		objs = append(objs, vms...)
	}
	for _, a := range args {
		vms, err := cmd.findVMs(a)
		if err != nil {
			return err
		}
		objs = append(objs, vms...)
	}
	objs = dedupe(objs)

	st, err := store.Open(cmd.storeFile(cmd.storePath), store.Options{})
	if err != nil {
		return fmt.Errorf("store: %s", oneLine(err.Error()))
	}
	defer st.Close()

	sws, swErrs := cmd.observeSwarms(ctx)

	if cmd.target != "" {
		return cmd.generalize(ctx, c, st, objs, sws, swErrs, host)
	}

	vms, err := cmd.load(ctx, c, st, objs, host)
	if err != nil {
		return err
	}
	cmd.probe(ctx, c, st, vms)
	now := time.Now().UTC()
	o := preclone.Output{CheckedAt: now, Swarms: swarmSources(sws, swErrs)}
	for _, v := range vms {
		r := preclone.Evaluate(cmd.input(ctx, st, v, vms, sws, swErrs, now))
		o.VMs = append(o.VMs, r)
	}
	var vs []preclone.Verdict
	for _, r := range o.VMs {
		vs = append(vs, r.Verdict)
	}
	o.Verdict = preclone.Worst(vs...)
	if cmd.OutputFlag.JSON {
		if err := writeJSON(out.stdout, o); err != nil {
			return err
		}
	} else {
		preclone.WriteText(out.stdout, o, 100)
	}
	return verdictError(o.Verdict)
}

// searchFlagGiven returns the govc search flag given (`-vm.uuid "X"`), or "".
func (cmd *precloneCmd) searchFlagGiven() string {
	for _, name := range []string{"vm.uuid", "vm.ipath", "vm.ip", "vm.dns", "vm.path"} {
		if f := cmd.fs.Lookup(name); f != nil && f.Value.String() != "" {
			return fmt.Sprintf("-%s %q", name, f.Value.String())
		}
	}
	return ""
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

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// findVMs resolves one argument the govc way (name, inventory path, glob).
func (cmd *precloneCmd) findVMs(arg string) ([]*object.VirtualMachine, error) {
	finder, err := cmd.SearchFlag.Finder()
	if err != nil {
		return nil, usagef("%s (fix: -dc or GOVC_DATACENTER)", oneLine(err.Error()))
	}
	vms, err := finder.VirtualMachineList(context.Background(), arg)
	if err != nil {
		var nf *find.NotFoundError
		if errors.As(err, &nf) {
			return nil, usagef("VM %q not found (fix: a VM name or inventory path, as govc ls shows it)", arg)
		}
		return nil, fmt.Errorf("finding VM %q: %s", arg, oneLine(err.Error()))
	}
	return vms, nil
}

func dedupe(objs []*object.VirtualMachine) []*object.VirtualMachine {
	seen := map[string]bool{}
	var out []*object.VirtualMachine
	for _, o := range objs {
		if !seen[o.Reference().Value] {
			seen[o.Reference().Value] = true
			out = append(out, o)
		}
	}
	return out
}

// observeSwarms reads the managers of -H, DOCKER_HOST or the config (none
// when no manager is given: preclone then does not check membership).
func (cmd *precloneCmd) observeSwarms(ctx context.Context) ([]reconcile.Swarm, []string) {
	if cmd.swarmFlag.host == "" && os.Getenv("DOCKER_HOST") == "" && len(cmd.cfg.Swarms) == 0 {
		return nil, nil
	}
	srcs, err := cmd.swarmFlag.connect(ctx, cmd.cfg)
	if err != nil {
		return nil, []string{oneLine(err.Error())}
	}
	var (
		sws  []reconcile.Swarm
		errs []string
	)
	for _, s := range srcs {
		sw, err := swarm.Observe(ctx, s.Client, cmd.swarmFlag.observeOptions(cmd.cfg))
		if err != nil {
			errs = append(errs, s.Name+": "+oneLine(err.Error()))
			fmt.Fprintf(out.stderr, "vmreconcile preclone: swarm %s: %s\n", s.Name, redact(oneLine(err.Error())))
			continue
		}
		if sw.Endpoint == "" {
			sw.Endpoint = s.Name
		}
		sws = append(sws, sw)
	}
	return sws, errs
}

func swarmSources(sws []reconcile.Swarm, errs []string) []preclone.SwarmSource {
	out := []preclone.SwarmSource{}
	for _, s := range sws {
		out = append(out, preclone.SwarmSource{Endpoint: s.Endpoint, ClusterID: s.ClusterID, Nodes: len(s.Nodes)})
	}
	for _, e := range errs {
		ep, msg, _ := strings.Cut(e, ": ")
		out = append(out, preclone.SwarmSource{Endpoint: ep, Error: msg})
	}
	return out
}

// load reads the VMs' properties (one property collect), extraConfig
// uuid.action and lineage (vCenter events, else what the store kept).
func (cmd *precloneCmd) load(ctx context.Context, c *vim25.Client, st *store.Store, objs []*object.VirtualMachine, vcenter string) ([]*precloneVM, error) {
	if len(objs) == 0 {
		return nil, nil
	}
	refs := make([]types.ManagedObjectReference, len(objs))
	for i, o := range objs {
		refs[i] = o.Reference()
	}
	var mos []mo.VirtualMachine
	props := []string{"name", "config.template", "config.uuid", "config.instanceUuid", "config.extraConfig",
		"runtime.powerState", "guest.toolsRunningStatus", "guest.hostName", "guest.ipAddress", "guest.net"}
	if err := property.DefaultCollector(c).Retrieve(ctx, refs, props, &mos); err != nil {
		return nil, fmt.Errorf("reading VMs: %s", oneLine(guest.Describe(err)))
	}
	byRef := map[string]mo.VirtualMachine{}
	for _, m := range mos {
		byRef[m.Self.Value] = m
	}
	hist, _ := st.History(ctx, time.Time{})
	var out []*precloneVM
	for _, o := range objs {
		m := byRef[o.Reference().Value]
		v := &precloneVM{obj: o}
		v.vm = reconcile.VM{VCenter: vcenter, Name: m.Name, Path: o.InventoryPath, Ref: m.Self.Value,
			PowerState: string(m.Runtime.PowerState)}
		if v.vm.Path == "" {
			v.vm.Path = m.Name
		}
		if cfg := m.Config; cfg != nil {
			v.vm.Template, v.vm.BIOSUUID, v.vm.InstanceUUID = cfg.Template, cfg.Uuid, cfg.InstanceUuid
			for _, ov := range cfg.ExtraConfig {
				if o := ov.GetOptionValue(); o != nil && strings.EqualFold(o.Key, "uuid.action") {
					v.uuidAction = fmt.Sprint(o.Value)
				}
			}
		}
		if g := m.Guest; g != nil {
			v.vm.ToolsRunning = g.ToolsRunningStatus == string(types.VirtualMachineToolsRunningStatusGuestToolsRunning)
			v.vm.GuestHostname = g.HostName
			if g.IpAddress != "" {
				v.vm.IPs = append(v.vm.IPs, g.IpAddress)
			}
			for _, n := range g.Net {
				for _, ip := range n.IpAddress {
					if ip != g.IpAddress {
						v.vm.IPs = append(v.vm.IPs, ip)
					}
				}
			}
		}
		lin, err := vsphere.Lineage(ctx, c, o.Reference(), vsphere.LineageOptions{})
		if l, ok := lin[v.vm.Ref]; err == nil && ok {
			v.vm.Lineage = &l
		} else if l, ok := hist.Lineage[v.vm.Ref]; ok {
			v.vm.Lineage = &l
		}
		if l := v.vm.Lineage; l != nil {
			var src mo.ManagedEntity
			if err := property.DefaultCollector(c).RetrieveOne(ctx, types.ManagedObjectReference{Type: "VirtualMachine", Value: l.SourceRef}, []string{"name"}, &src); err == nil {
				l.SourceName = src.Name
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// probe probes the powered-on VMs (not templates), saves good probes, and
// falls back to the last stored probe for the others.
func (cmd *precloneCmd) probe(ctx context.Context, c *vim25.Client, st *store.Store, vms []*precloneVM) {
	var on []reconcile.VM
	for _, v := range vms {
		if v.vm.PoweredOn() && !v.vm.Template {
			on = append(on, v.vm)
		}
	}
	live := map[string]reconcile.GuestIdentity{}
	if len(on) > 0 && cmd.guestFlag.hasLogin() {
		for _, g := range guest.ProbeAll(ctx, c, on, cmd.guestFlag.authFor, cmd.guestFlag.concurrency, cmd.guestFlag.timeout) {
			live[g.VMRef] = g
		}
	}
	for _, v := range vms {
		switch g, ok := live[v.vm.Ref]; {
		case ok && g.Error == "":
			v.guest, v.source = &g, preclone.SourceLive
			if err := st.SaveProbe(ctx, g); err != nil {
				fmt.Fprintf(out.stderr, "vmreconcile preclone: %s\n", oneLine(err.Error()))
			}
			continue
		case ok:
			v.probeErr = g.Error
		case !cmd.guestFlag.hasLogin() && v.vm.PoweredOn() && !v.vm.Template:
			v.probeErr = "no guest login (-l, GOVC_GUEST_LOGIN)"
		}
		if g, ok, err := st.LastProbe(ctx, v.vm.Key()); err == nil && ok && g.Error == "" {
			v.guest, v.source = &g, preclone.SourceStored
		} else if v.vm.Template || !v.vm.PoweredOn() {
			what := "VM is " + strings.ToLower(strings.TrimPrefix(v.vm.PowerState, "powered"))
			if v.vm.Template {
				what = "template"
			}
			v.probeErr = what + " (guest operations need it running) and the store has no probe of it"
		}
	}
}

func (cmd *precloneCmd) input(ctx context.Context, st *store.Store, v *precloneVM, all []*precloneVM, sws []reconcile.Swarm, swErrs []string, now time.Time) preclone.Input {
	in := preclone.Input{
		VM: v.vm, Guest: v.guest, GuestSource: v.source, ProbeError: v.probeErr,
		UUIDAction: v.uuidAction, Swarms: sws, SwarmErrors: swErrs, Now: now,
	}
	if l := v.vm.Lineage; l != nil {
		for _, o := range all {
			if o.vm.Ref == l.SourceRef && o.guest != nil {
				in.SourceGuest = o.guest
			}
		}
		if in.SourceGuest == nil {
			if g, ok, err := st.LastProbe(ctx, reconcile.VMKey{VCenter: v.vm.VCenter, Ref: l.SourceRef}); err == nil && ok {
				in.SourceGuest = &g
			}
		}
	}
	return in
}

// generalize is -generalize-plan TARGET [-apply].
func (cmd *precloneCmd) generalize(ctx context.Context, c *vim25.Client, st *store.Store, sources []*object.VirtualMachine, sws []reconcile.Swarm, swErrs []string, vcenter string) error {
	targets, err := cmd.findVMs(cmd.target)
	if err != nil {
		return err
	}
	if len(targets) != 1 {
		return usagef("-generalize-plan %q names %d VMs (fix: name exactly one copy)", cmd.target, len(targets))
	}
	objs := append([]*object.VirtualMachine{targets[0]}, sources...)
	vms, err := cmd.load(ctx, c, st, objs, vcenter)
	if err != nil {
		return err
	}
	target := vms[0]
	var source *precloneVM
	switch {
	case len(vms) > 2:
		return usagef("-generalize-plan takes one source VM, got %d (fix: vmreconcile preclone -generalize-plan COPY SOURCE)", len(vms)-1)
	case len(vms) == 2:
		source = vms[1]
	case len(sources) == 1: // the target was given as its own source
		source = vms[0]
	case target.vm.Lineage != nil:
		srcObj := object.NewVirtualMachine(c, types.ManagedObjectReference{Type: "VirtualMachine", Value: target.vm.Lineage.SourceRef})
		more, err := cmd.load(ctx, c, st, []*object.VirtualMachine{srcObj}, vcenter)
		if err != nil || len(more) == 0 || more[0].vm.Name == "" {
			return usagef("the source of %s (%s) is gone from the inventory (fix: name the source VM)", target.vm.Name, target.vm.Lineage.SourceRef)
		}
		source = more[0]
	default:
		return usagef("no source VM for copy %s and no clone event names one (fix: vmreconcile preclone -generalize-plan %s SOURCE)", target.vm.Name, cmd.target)
	}
	pair := []*precloneVM{target}
	if source != target {
		pair = append(pair, source)
	}
	cmd.probe(ctx, c, st, pair)

	if why := preclone.RefuseTarget(preclone.TargetInput{
		Target: target.vm, Source: source.vm, TargetGuest: target.guest, SourceGuest: source.guest, Swarms: sws,
	}); why != "" {
		return usagef("refusing -generalize-plan %s: %s", target.vm.Name, why)
	}
	now := time.Now().UTC()
	plan := preclone.GeneralizePlan(target.vm, source.vm, now)
	po := planOutput{Plan: plan, Swarms: swarmSources(sws, swErrs)}

	if !cmd.apply {
		if cmd.OutputFlag.JSON {
			return writeJSON(out.stdout, po)
		}
		preclone.WritePlan(out.stdout, plan, 100)
		fmt.Fprintf(out.stdout, "\nTo run these steps in %s through VMware Tools (no network needed):\n  vmreconcile preclone -l USER:PASS -generalize-plan %s %s -apply\n",
			target.vm.Name, target.vm.Path, source.vm.Path)
		return nil
	}

	// -apply: the same safety rules as remediate.
	skip, err := remediate.SkipMarkers(ctx, c, target.vm.VCenter, []reconcile.VMKey{target.vm.Key()})
	if err != nil {
		return fmt.Errorf("%s", oneLine(err.Error()))
	}
	restFor := func(context.Context) (*rest.Client, func(), error) {
		rc, err := cmd.ClientFlag.RestClient()
		return rc, func() {}, err // logged out with the SOAP session
	}
	if w := skipTags(ctx, target.vm.VCenter, restFor, []reconcile.VMKey{target.vm.Key()}, skip, false); w != "" {
		fmt.Fprintln(out.stderr, "vmreconcile preclone: warning: "+w)
	}
	if why, ok := skip[target.vm.Key()]; ok {
		return usagef("refusing -apply on %s: it carries the skip marker (%s)", target.vm.Name, why)
	}
	if target.source != preclone.SourceLive {
		why := target.probeErr
		if why == "" {
			why = "no live probe"
		}
		return usagef("cannot -apply on %s: %s (fix: power the copy on, NIC disconnected if you like, with VMware Tools running)", target.vm.Name, why)
	}
	if !cmd.OutputFlag.JSON {
		preclone.WritePlan(out.stdout, plan, 100)
		fmt.Fprintln(out.stdout)
	}
	planID := "preclone-" + target.vm.Ref + "-" + now.Format("20060102T150405Z")
	id, err := st.JournalIntent(ctx, store.JournalRecord{
		PlanID: planID, VMRef: target.vm.Ref, VMName: target.vm.Name, Action: "generalize",
		Reason: fmt.Sprintf("preclone -generalize-plan: copy of %s (%s)", source.vm.Name, source.vm.Ref),
	})
	if err != nil {
		return fmt.Errorf("journal: %s (nothing done on %s)", oneLine(err.Error()), target.vm.Name)
	}
	rctx, cancel := context.WithTimeout(ctx, cmd.guestFlag.timeout)
	code, stdout, stderr, rerr := guest.Run(rctx, c, target.obj, cmd.guestFlag.authFor(target.vm), plan.Script)
	cancel()
	ap := &appliedPlan{PlanID: planID, IntentID: id, Status: remediate.StatusDone}
	switch {
	case rerr != nil:
		ap.Status, ap.Detail = remediate.StatusFailed, guest.Describe(rerr)
	case code != 0:
		ap.Status, ap.Detail = remediate.StatusFailed, fmt.Sprintf("script exited %d: %s", code, oneLine(lastLines(string(stderr)+string(stdout), 2)))
	default:
		ap.Detail = oneLine(strings.ReplaceAll(strings.TrimSpace(string(stdout)), "\n", "; "))
	}
	ap.Detail = redact(ap.Detail) // guest output or error text, printed, journaled and in -json
	jctx, jcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	jerr := st.JournalOutcome(jctx, id, ap.Status, ap.Detail)
	jcancel()
	po.Applied = ap
	if ap.Status != remediate.StatusDone {
		if cmd.OutputFlag.JSON {
			_ = writeJSON(out.stdout, po)
		}
		return fmt.Errorf("generalizing %s failed (journal intent #%d): %s", target.vm.Name, id, ap.Detail)
	}
	if jerr != nil {
		fmt.Fprintf(out.stderr, "vmreconcile preclone: journal: %s\n", oneLine(jerr.Error()))
	}

	// Check the copy again.
	target.guest, target.source, target.probeErr = nil, "", ""
	cmd.probe(ctx, c, st, []*precloneVM{target})
	r := preclone.Evaluate(cmd.input(ctx, st, target, pair, sws, swErrs, time.Now().UTC()))
	po.Recheck = &r
	if cmd.OutputFlag.JSON {
		if err := writeJSON(out.stdout, po); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out.stdout, "Applied to %s: %s (journal plan %s, intent #%d)\n\nRe-check of %s:\n",
			target.vm.Name, lastLines(string(stdout), 1), planID, id, target.vm.Name)
		preclone.WriteText(out.stdout, preclone.Output{VMs: []preclone.Report{r}, Verdict: r.Verdict}, 100)
	}
	return verdictError(r.Verdict)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " ")
}
