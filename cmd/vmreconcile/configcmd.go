package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vmreconcile/vmreconcile/audit"
	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/daemon"
	"github.com/vmreconcile/vmreconcile/swarm"
)

func init() {
	register("config validate", func() command { return &configValidate{} })
	register("config defaults", func() command { return &configDefaults{} })
}

// configValidate is `vmreconcile config validate`: the daemon's start-up
// checks, and with -connect a read-only login to each source; nothing else.
type configValidate struct {
	configFile string
	connect    bool
}

func (cmd *configValidate) Register(ctx context.Context, f *flag.FlagSet) {
	f.StringVar(&cmd.configFile, "config", os.Getenv("VMRECONCILE_CONFIG"), "Config file (YAML) [VMRECONCILE_CONFIG]")
	f.BoolVar(&cmd.connect, "connect", false, "Also log in to each vCenter and ask each swarm manager, read only, and report each result")
}

func (cmd *configValidate) Process(ctx context.Context) error { return nil }
func (cmd *configValidate) Usage() string                     { return "" }

func (cmd *configValidate) Description() string {
	return `Check a config file as the daemon does at start, with no side effect.

Every check the daemon makes before it starts: the file's syntax and keys,
every value, the secret files, docker contexts, the guest logins, the
remediation policy, at least one swarm, and a usable store path. Nothing is
contacted, sent, remediated or written (the store is not even created). With
-connect, each vCenter is logged in to and each manager of each swarm asked
whether it is a manager (docker info), read only, within the config's timeout.

Exit: 0 valid (and, with -connect, every source answered), 1 a source could
not be reached, 2 the config is invalid or a source refused it (credentials,
certificate, not a manager).

Examples:
  vmreconcile config validate -config /etc/vmreconcile/config.yaml
  vmreconcile config validate -config config.yaml -connect`
}

func (cmd *configValidate) Run(ctx context.Context, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q (fix: config validate takes only flags; the file goes in -config)", args[0])
	}
	cfg, err := loadConfig(cmd.configFile)
	if err != nil {
		return err
	}
	if err := daemon.Preflight(cfg); err != nil {
		return inFile(err, cmd.configFile)
	}
	name := cmd.configFile
	if name == "" {
		name = "(no config file: defaults and VMRECONCILE_* only)"
	}
	fmt.Fprintf(out.stdout, "%s: valid\n", name)
	summarize(out.stdout, cfg)
	if !cmd.connect {
		return nil
	}
	return connectAll(ctx, cfg)
}

// loadConfig loads a config file and registers its secrets for redaction.
func loadConfig(file string) (config.Config, error) {
	cfg, err := config.Load(file)
	if err != nil {
		return cfg, err
	}
	for _, vc := range cfg.VCenters {
		addSecret(vc.Password.Reveal())
	}
	for _, wh := range cfg.Alerts.Webhooks {
		addSecret(wh.Secret.Reveal())
	}
	addSecretLogin(cfg.Guest.Login.Reveal())
	for _, gl := range cfg.Guest.Logins {
		addSecretLogin(gl.Login.Reveal())
	}
	return cfg, nil
}

// inFile names the config file in a *config.Error that has no file.
func inFile(err error, file string) error {
	var ce *config.Error
	if errors.As(err, &ce) && ce.File == "" {
		ce.File = file
	}
	return err
}

// summarize says what the config will watch and do.
func summarize(w io.Writer, cfg config.Config) {
	for i, vc := range cfg.VCenters {
		dcs := "every datacenter"
		if len(vc.Datacenters) > 0 {
			dcs = "datacenters " + strings.Join(vc.Datacenters, ", ")
		}
		fmt.Fprintf(w, "  vcenters[%d]  %s as %s, %s\n", i, hostOnly(vc.URL), vc.Username, dcs)
	}
	for i, sw := range cfg.Swarms {
		var hosts []string
		for _, h := range sw.Hosts {
			hosts = append(hosts, swarm.RedactHost(h))
		}
		via := ""
		if sw.Context != "" {
			via = ", docker context " + sw.Context
		}
		tls := "no TLS"
		switch {
		case sw.CertPath != "" && sw.TLSVerify:
			tls = "TLS from " + sw.CertPath + ", manager verified"
		case sw.CertPath != "":
			tls = "TLS from " + sw.CertPath + ", manager not verified"
		}
		fmt.Fprintf(w, "  swarms[%d]    %s: %s (%s%s)\n", i, swarmLabel(sw), strings.Join(hosts, ", "), tls, via)
	}
	fmt.Fprintf(w, "  store       %s\n", cfg.Store.Path)
	fmt.Fprintf(w, "  schedules   audit %q, lineage %q, prune %q\n", cfg.Schedules.Audit, cfg.Schedules.Lineage, cfg.Schedules.Prune)
	fmt.Fprintf(w, "  policy      remediate %s", cfg.Policy.Remediate)
	if cfg.Policy.Remediate != "off" {
		fmt.Fprintf(w, " (%s, at most %d VM(s) and %g%% per run)", cfg.Policy.Action, cfg.Policy.MaxActions, cfg.Policy.MaxPercent)
	}
	fmt.Fprintf(w, "\n  alerts      %s\n", plural(len(cfg.Alerts.Webhooks), "webhook"))
	listen := cfg.Listen
	if listen == "" {
		listen = "off"
	}
	fmt.Fprintf(w, "  listen      %s\n", listen)
}

func swarmLabel(sw config.Swarm) string {
	if sw.Name != "" {
		return sw.Name
	}
	return swarm.RedactHost(sw.Hosts[0])
}

// connectAll checks every source and prints one line each; the error's
// exit code is the worst of theirs (2 for refused input, else 1).
func connectAll(ctx context.Context, cfg config.Config) error {
	src := audit.NewSources(cfg)
	defer src.Close()
	fmt.Fprintf(out.stdout, "Connecting, read only (each call within %s):\n", config.FormatDuration(src.Timeout()))
	failed, worst := 0, ExitOK
	for _, c := range src.Check(ctx) {
		if c.Err == nil {
			fmt.Fprintf(out.stdout, "  ok    %s: %s\n", clean(c.Source), clean(c.Detail))
			continue
		}
		if errors.Is(c.Err, context.Canceled) {
			return c.Err
		}
		err := sourceError(c.Err, false)
		failed++
		worst = max(worst, exitCode(err))
		fmt.Fprintf(out.stdout, "  FAIL  %s\n", clean(redact(oneLine(err.Error()))))
	}
	switch {
	case failed == 0:
		return nil
	case worst == ExitUsage:
		return usagef("%s failed (see above)", plural(failed, "source"))
	}
	return fmt.Errorf("%s failed (see above)", plural(failed, "source"))
}

// configDefaults is `vmreconcile config defaults`: the effective configuration.
type configDefaults struct {
	configFile string
}

func (cmd *configDefaults) Register(ctx context.Context, f *flag.FlagSet) {
	f.StringVar(&cmd.configFile, "config", os.Getenv("VMRECONCILE_CONFIG"), "Config file (YAML) [VMRECONCILE_CONFIG]")
}

func (cmd *configDefaults) Process(ctx context.Context) error { return nil }
func (cmd *configDefaults) Usage() string                     { return "" }

func (cmd *configDefaults) Description() string {
	return `Print the effective configuration: defaults, the file and VMRECONCILE_* overrides.

Every key, as YAML the daemon reads back: the defaults, overlaid by -config's
file, overlaid by the VMRECONCILE_* environment. Secrets print as <redacted>
(their *_file keys are shown), URLs without credentials or query. A swarm
from a docker context shows the endpoint it resolves to as a comment.

Exit: 0 printed, 2 the config is invalid.

Examples:
  vmreconcile config defaults > config.yaml     # a complete file to edit
  VMRECONCILE_LOG_LEVEL=debug vmreconcile config defaults -config config.yaml`
}

func (cmd *configDefaults) Run(ctx context.Context, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q (fix: config defaults takes only flags; the file goes in -config)", args[0])
	}
	cfg, err := loadConfig(cmd.configFile)
	if err != nil {
		return err
	}
	b, err := cfg.YAML()
	if err != nil {
		return err
	}
	src := "defaults"
	if cmd.configFile != "" {
		src = "defaults, " + cmd.configFile
	}
	fmt.Fprintf(out.stdout, "# vmreconcile effective configuration (%s, VMRECONCILE_* environment); secrets redacted\n", src)
	_, err = io.WriteString(out.stdout, redact(string(b)))
	return err
}
