package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/vmreconcile/vmreconcile/internal/textsafe"
	"github.com/vmreconcile/vmreconcile/preclone"
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

func (cmd *precloneCmd) Run(ctx context.Context, args []string) error {
	sel := preclone.Selection{Args: args, Search: map[string]string{}, Target: cmd.target}
	for n, v := range cmd.search {
		sel.Search[n] = *v
	}
	if len(args) == 0 && cmd.searchGiven() == "" && cmd.target == "" {
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
	warn := func(msg string) { fmt.Fprintln(out.stderr, "vmreconcile preclone: "+textsafe.Term(redact(msg))) }
	s, err := preclone.Open(ctx, preclone.Options{Config: cfg, Logins: cmd.logins, Store: st, Warn: warn, Progress: progress()}, sel)
	clearProgress()
	if err != nil {
		return precloneError(err, cmd.vcFromFlags)
	}
	defer s.Close()
	if cmd.target == "" {
		o := s.Check(ctx)
		if cmd.json {
			if err := writeJSON(out.stdout, o); err != nil {
				return err
			}
		} else {
			preclone.WriteText(out.stdout, o, 100)
		}
		return verdictError(o.Verdict)
	}
	g, err := s.Generalize(ctx, cmd.apply)
	if err != nil {
		if cmd.json && g.Applied != nil {
			g.Applied.Detail = redact(g.Applied.Detail)
			_ = writeJSON(out.stdout, g)
		}
		return precloneError(err, cmd.vcFromFlags)
	}
	return cmd.printGeneralization(g)
}

// printGeneralization prints -generalize-plan's plan, and what -apply did.
func (cmd *precloneCmd) printGeneralization(g preclone.Generalization) error {
	if g.Applied != nil { // guest output: never a secret on the terminal or in JSON
		g.Applied.Detail = redact(g.Applied.Detail)
	}
	if cmd.json {
		if err := writeJSON(out.stdout, g); err != nil {
			return err
		}
	} else {
		preclone.WritePlan(out.stdout, g.Plan, 100)
		if g.Applied == nil {
			fmt.Fprintf(out.stdout, "\nTo run these steps in %s through VMware Tools (no network needed):\n  vmreconcile preclone -l USER:PASS -generalize-plan %s %s -apply\n",
				textsafe.Term(g.Target.Name), textsafe.Term(g.Target.Path), textsafe.Term(g.Source.Path))
			return nil
		}
		fmt.Fprintf(out.stdout, "\nApplied to %s: %s (journal plan %s, intent #%d)\n\nRe-check of %s:\n",
			textsafe.Term(g.Target.Name), textsafe.Term(redact(g.Output)), g.Applied.PlanID, g.Applied.IntentID, textsafe.Term(g.Target.Name))
		preclone.WriteText(out.stdout, preclone.Output{VMs: []preclone.Report{*g.Recheck}, Verdict: g.Recheck.Verdict}, 100)
	}
	if g.Recheck != nil {
		return verdictError(g.Recheck.Verdict)
	}
	return nil
}

func precloneError(err error, fromFlags bool) error {
	var ie *preclone.InputError
	if errors.As(err, &ie) {
		return usagef("%s", ie.Msg)
	}
	return sourceError(err, fromFlags)
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

// searchGiven reports whether a govc search flag was given.
func (cmd *precloneCmd) searchGiven() string {
	for _, n := range searchFlags {
		if v := *cmd.search[n]; v != "" {
			return "-" + n
		}
	}
	return ""
}
