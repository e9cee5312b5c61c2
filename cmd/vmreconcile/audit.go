package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vmreconcile/vmreconcile/audit"
	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

func init() { register("audit", func() command { return &auditCmd{} }) }

// auditCmd is `vmreconcile audit`: one run of the pipeline, one report, an
// exit code.
type auditCmd struct {
	settingsFlag

	output outputFlag

	verify bool
	failOn string
}

func (cmd *auditCmd) Register(ctx context.Context, f *flag.FlagSet) {
	cmd.settingsFlag.Register(f)
	f.BoolVar(&cmd.verify, "verify", false, "Probe candidate VMs from inside through guest operations (needs -l or GOVC_GUEST_LOGIN)")
	f.StringVar(&cmd.failOn, "fail-on", "warning", "Exit 3 when a finding is at least this severe: critical, warning, info or never (config: fail_on)")
	cmd.output.Register(f)
}

func (cmd *auditCmd) Process(ctx context.Context) error {
	if err := config.ValidateFailOn(cmd.failOn); err != nil {
		return usagef("-fail-on: %s", err)
	}
	if err := cmd.output.Process(); err != nil {
		return err
	}
	if err := cmd.settingsFlag.Process(); err != nil {
		return err
	}
	if cmd.verify && !cmd.logins.Any() {
		return usagef("-verify needs a guest login (fix: -l user:password, GOVC_GUEST_LOGIN, or guest.login in -config)")
	}
	if cmd.verify && len(cmd.cfg.VCenters) == 0 {
		return usagef("-verify needs a vCenter: guest operations go through vSphere (fix: -u URL or GOVC_URL, or vcenters in -config)")
	}
	if !cmd.set["fail-on"] && cmd.cfg.FailOn != "" {
		cmd.failOn = cmd.cfg.FailOn // the config's fail_on, unless -fail-on was given
	}
	return nil
}

func (cmd *auditCmd) Usage() string { return "" }

func (cmd *auditCmd) Description() string {
	return `Match vSphere VMs to swarm nodes and report VMs that impersonate a node.

Collects every VM and template (one property-collector pass), their clone
lineage (vCenter events), and what the swarm manager saw of each node (a replay
of recent node events plus NodeList samples over -observe), then reports
findings such as shared-node-id: one node ID answered by two VMs. Without a
vCenter it audits the swarm alone: a node ID answered by two machines.

vCenter: -u, -k, -dc and GOVC_URL, GOVC_USERNAME, GOVC_PASSWORD, GOVC_INSECURE,
GOVC_DATACENTER, GOVC_TLS_CA_CERTS, GOVC_TLS_KNOWN_HOSTS, as govc.
Swarm: -H or -context, or DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH,
DOCKER_CONTEXT, as the docker CLI (an MKE client bundle's env.sh works as it
is); else the config's swarms, else the currentContext of ~/.docker/config.json
(DOCKER_CONFIG), else the local socket.
Kubernetes: -kubeconfig, KUBECONFIG, -kube-context, as kubectl; default
~/.kube/config. A default that is absent is skipped with a note.

Exit: 0 clean, 1 runtime error, 2 usage or config error, 3 findings at or
above -fail-on.

Examples:
  vmreconcile audit -u 'admin@vsphere.local:PASS@vc.example.com' -H tcp://mgr:2376
  vmreconcile audit -H tcp://mgr:2376          # no vSphere: the swarm alone
  vmreconcile audit -observe 30s -json | jq '.findings[]'
  vmreconcile audit -format csv -q > findings.csv`
}

func (cmd *auditCmd) Run(ctx context.Context, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q (fix: audit takes only flags)", args[0])
	}
	if err := cmd.needCluster(); err != nil {
		return err
	}
	src := audit.NewSources(cmd.cfg)
	defer src.Close()
	opts := audit.Options{Observe: audit.Observe(cmd.cfg.Observe), Progress: progress()}
	if cmd.verify {
		opts.Probe = &audit.Probe{Logins: cmd.logins, Concurrency: cmd.cfg.Guest.Concurrency, Timeout: cmd.cfg.Guest.Timeout}
	}
	out, err := audit.Run(ctx, src, opts)
	clearProgress()
	if err != nil {
		return sourceError(err, cmd.vcFromFlags)
	}
	cmd.printNotes("audit") // on success only: an error stays one line
	return report(out.Result, reportOptions{output: cmd.output, failOn: reconcile.Severity(cmd.failOn)})
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// exceeds reports whether a finding is at least as severe as failOn.
func exceeds(res reconcile.Result, failOn reconcile.Severity) bool {
	if failOn == "never" {
		return false
	}
	return res.Summary.Highest != "" && res.Summary.Highest.Rank() >= failOn.Rank()
}

// progress returns a progress printer for stderr when it is a terminal, else nil.
func progress() func(string, ...any) {
	fi, err := os.Stderr.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 || out.stderr != os.Stderr {
		return nil
	}
	start := time.Now()
	return func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "\r\033[K[%4.1fs] %s", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
}

// clearProgress erases the progress line, if any.
func clearProgress() {
	if progress() != nil {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
}
