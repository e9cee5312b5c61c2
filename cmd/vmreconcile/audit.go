package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vmware/govmomi/cli/flags"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/collect"
	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/swarm"
	"github.com/vmreconcile/vmreconcile/vsphere"
)

func init() { register("audit", func() command { return &audit{} }) }

// audit is `vmreconcile audit`: one collection, one report, an exit code.
type audit struct {
	*flags.DatacenterFlag
	*commonFlag

	verify bool
	failOn string
}

func (cmd *audit) Register(ctx context.Context, f *flag.FlagSet) {
	cmd.DatacenterFlag, ctx = flags.NewDatacenterFlag(ctx)
	cmd.DatacenterFlag.Register(ctx, f)
	cmd.commonFlag = newCommonFlag(ctx, f)
	f.BoolVar(&cmd.verify, "verify", false, "Probe candidate VMs from inside through guest operations (needs -l or GOVC_GUEST_LOGIN)")
	f.StringVar(&cmd.failOn, "fail-on", "warning", "Exit 3 when a finding is at least this severe: critical, warning, info or never (config: fail_on)")
}

func (cmd *audit) Process(ctx context.Context) error {
	if err := config.ValidateFailOn(cmd.failOn); err != nil {
		return usagef("-fail-on: %s", err)
	}
	if err := cmd.commonFlag.process(ctx, cmd.OutputFlag); err != nil {
		return err
	}
	if cmd.verify && !cmd.guestFlag.hasLogin() {
		return usagef("-verify needs a guest login (fix: -l user:password, GOVC_GUEST_LOGIN, or guest.login in -config)")
	}
	if !cmd.swarmFlag.set["fail-on"] && cmd.cfg.FailOn != "" {
		cmd.failOn = cmd.cfg.FailOn // the config's fail_on, unless -fail-on was given
	}
	return nil
}

func (cmd *audit) Usage() string { return "" }

func (cmd *audit) Description() string {
	return `Match vSphere VMs to swarm nodes and report VMs that impersonate a node.

Collects every VM and template (one property-collector pass), their clone
lineage (vCenter events), and what the swarm manager saw of each node (a replay
of recent node events plus NodeList samples over -observe), then reports
findings such as shared-node-id: one node ID answered by two VMs.

vCenter: -u, -k, -dc and GOVC_URL, GOVC_USERNAME, GOVC_PASSWORD, GOVC_INSECURE,
GOVC_DATACENTER, GOVC_TLS_CA_CERTS, GOVC_TLS_KNOWN_HOSTS, as govc.
Swarm: -H, or DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, as the docker
CLI (an MKE client bundle's env.sh works as it is).

Exit: 0 clean, 1 runtime error, 2 usage or config error, 3 findings at or
above -fail-on.

Examples:
  vmreconcile audit -u 'admin@vsphere.local:PASS@vc.example.com' -H tcp://mgr:2376
  vmreconcile audit -observe 30s -json | jq '.findings[]'`
}

func (cmd *audit) Run(ctx context.Context, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q (fix: audit takes only flags)", args[0])
	}
	vcs, sws, logout, err := cmd.connect(ctx)
	if err != nil {
		return err
	}
	defer logout()
	a := auditRun{
		vcenters: vcs,
		swarms:   sws,
		observe:  cmd.swarmFlag.observeOptions(cmd.cfg),
		failOn:   reconcile.Severity(cmd.failOn),
		json:     cmd.OutputFlag.JSON,
	}
	if cmd.verify {
		a.verify = &verifier{clients: map[string]*vim25.Client{}, guest: cmd.guestFlag}
		for _, vc := range vcs {
			a.verify.clients[vc.Name] = vc.Client
		}
	}
	return a.execute(ctx)
}

// connect makes the swarm clients (first: a bad DOCKER_CERT_PATH or host
// fails before any vCenter login) and logs in to the vCenters; logout ends
// the vCenter sessions.
func (cmd *audit) connect(ctx context.Context) ([]collect.VCenter, []collect.Swarm, func(), error) {
	sws, err := cmd.swarmFlag.connect(ctx, cmd.cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	vcs, logout, err := cmd.connectVCenters(ctx)
	if err != nil {
		for _, sw := range sws {
			sw.Client.Close()
		}
		return nil, nil, nil, err
	}
	return vcs, sws, logout, nil
}

// connectVCenters logs in to the vCenter of the flags (govc style), or else
// to every vCenter of the config file.
func (cmd *audit) connectVCenters(ctx context.Context) ([]collect.VCenter, func(), error) {
	if cmd.ClientFlag.Session.URL != nil && cmd.ClientFlag.Session.URL.Host != "" || len(cmd.cfg.VCenters) == 0 {
		if err := cmd.DatacenterFlag.Process(ctx); err != nil {
			return nil, nil, usagef("%s (fix: -u URL or GOVC_URL, e.g. https://user:pass@vcenter.example.com/sdk)", err)
		}
		u := cmd.ClientFlag.Session.URL
		if p, ok := u.User.Password(); ok {
			addSecret(p)
		}
		host := u.Hostname()
		c, err := cmd.ClientFlag.Client()
		if err != nil {
			return nil, nil, vcenterError(host, err)
		}
		roots := []types.ManagedObjectReference{c.ServiceContent.RootFolder}
		if cmd.DatacenterFlag.Name != "" {
			dc, err := cmd.DatacenterFlag.Datacenter()
			if err != nil {
				return nil, nil, usagef("vcenter %s: datacenter %q not found (fix: -dc or GOVC_DATACENTER naming an existing datacenter)", host, cmd.DatacenterFlag.Name)
			}
			roots = []types.ManagedObjectReference{dc.Reference()}
		}
		logout := func() { _ = cmd.ClientFlag.Logout(context.Background()) }
		return []collect.VCenter{{Name: host, Client: c, Roots: roots}}, logout, nil
	}
	var (
		vcs     []collect.VCenter
		logouts []func()
	)
	logoutAll := func() {
		for _, l := range logouts {
			l()
		}
	}
	for i, vc := range cmd.cfg.VCenters {
		addSecret(vc.Password.Reveal())
		conn, err := vsphere.Connect(ctx, vsphere.ConnectOptions{
			URL: vc.URL, Username: vc.Username, Password: vc.Password.Reveal(),
			Insecure: vc.Insecure, CACerts: vc.TLSCACerts, KnownHosts: vc.TLSKnownHosts,
		})
		if err != nil {
			logoutAll()
			return nil, nil, configFix(i, vcenterError(vsphere.HostOf(vc.URL), err))
		}
		logouts = append(logouts, conn.Logout)
		roots, err := conn.Datacenters(ctx, vc.Datacenters)
		if err != nil {
			logoutAll()
			return nil, nil, usagef("vcenter %s: %s", conn.Host, err)
		}
		vcs = append(vcs, collect.VCenter{Name: conn.Host, Client: conn.Client, Roots: roots, Include: vc.Include, Exclude: vc.Exclude})
	}
	return vcs, logoutAll, nil
}

// auditRun is one audit: the same path for `audit` and `demo`.
type auditRun struct {
	vcenters []collect.VCenter
	swarms   []collect.Swarm
	observe  swarm.ObserveOptions
	history  reconcile.History
	failOn   reconcile.Severity // or "never"
	// verify, when set, probes candidate VMs from inside and reconciles again.
	verify *verifier
	json   bool
	// banner, when set, is printed above the table (the demo labels itself).
	banner string
}

func (a *auditRun) execute(ctx context.Context) error {
	snap, err := collect.Snapshot(ctx, a.vcenters, a.swarms, collect.Options{
		Observe:  a.observe,
		Progress: progress(),
	})
	if err != nil {
		return sourceError(err)
	}
	res := reconcile.Reconcile(snap, a.history)
	if a.verify != nil {
		if p := progress(); p != nil {
			p("probing candidate VMs through guest operations")
		}
		snap.Guests = a.verify.probe(ctx, snap, res)
		res = reconcile.Reconcile(snap, a.history)
	}
	clearProgress()
	if err := a.render(out.stdout, res); err != nil {
		return err
	}
	if exceeds(res, a.failOn) {
		return &findingsError{code: ExitFindings}
	}
	return nil
}

func (a *auditRun) render(w io.Writer, res reconcile.Result) error {
	if a.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(res)
	}
	if a.banner != "" {
		fmt.Fprintln(w, a.banner)
		fmt.Fprintln(w)
	}
	writeTable(w, res, 100)
	return nil
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

// persistOff makes govc-style session persistence opt-in: a scheduled tool
// should not leave session cookies in ~/.govmomi unless asked.
func persistOff() {
	if _, ok := os.LookupEnv("GOVC_PERSIST_SESSION"); !ok {
		os.Setenv("GOVC_PERSIST_SESSION", "false")
	}
}
