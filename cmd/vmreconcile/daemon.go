package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"os"

	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/daemon"
	"github.com/vmreconcile/vmreconcile/store"
)

func init() { register("daemon", func() command { return &daemonCmd{} }) }

// daemonCmd is `vmreconcile daemon`: scheduled and event-driven audits with
// history, alerts, metrics and health endpoints.
type daemonCmd struct {
	configFile string
	listen     string
	storePath  string
	once       bool

	fs  *flag.FlagSet
	cfg config.Config
}

func (cmd *daemonCmd) Register(ctx context.Context, f *flag.FlagSet) {
	f.StringVar(&cmd.configFile, "config", os.Getenv("VMRECONCILE_CONFIG"), "Config file (YAML) [VMRECONCILE_CONFIG]")
	f.StringVar(&cmd.listen, "listen", "", "Serve /metrics, /livez and /readyz on this host:port (overrides listen; \"\" in the config disables)")
	f.StringVar(&cmd.storePath, "store", "", "History store file (overrides store.path)")
	f.BoolVar(&cmd.once, "once", false, "Run one audit (record, alert, remediate per policy) and exit")
	cmd.fs = f
}

// Process loads and validates everything before any work: the config (exit 2
// with its one-line error), the flag overrides.
func (cmd *daemonCmd) Process(ctx context.Context) error {
	cfg, err := config.Load(cmd.configFile)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	cmd.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["listen"] {
		cfg.Listen = cmd.listen
	}
	if set["store"] {
		cfg.Store.Path = cmd.storePath
	}
	for _, vc := range cfg.VCenters {
		addSecret(vc.Password.Reveal())
	}
	for _, wh := range cfg.Alerts.Webhooks {
		addSecret(wh.Secret.Reveal())
	}
	// The checks `config validate` makes: no cluster, a policy the guest
	// logins cannot carry out, an unusable store path are exit 2.
	if err := daemon.Preflight(cfg); err != nil {
		var ce *config.Error
		if errors.As(err, &ce) && set[flagOf(ce.Key)] {
			return usagef("-%s: %s", flagOf(ce.Key), ce.Msg)
		}
		return inFile(err, cmd.configFile)
	}
	cmd.cfg = cfg
	return nil
}

func flagOf(key string) string {
	if key == "store.path" {
		return "store"
	}
	return key
}

func (cmd *daemonCmd) Usage() string { return "" }

func (cmd *daemonCmd) Description() string {
	return `Run audits on a schedule and on change, keep history, alert and serve metrics.

Audits run on schedules.audit (default @every 10m) and, within seconds, when a
swarm node changes name (a clone and its original taking turns with one node
ID) or a VM is cloned or powered on in vCenter. Every run is recorded in the
store; a finding alerts the webhooks once when it opens and once when it
resolves, also across restarts. /metrics (Prometheus), /livez and /readyz are
served on listen (default 127.0.0.1:9477).

Only one daemon may use a store: a second one exits 1 naming the holder's pid.
SIGTERM or SIGINT stops it gracefully.

Exit: 0 stopped cleanly (-once: one audit done, whatever it found), 1 runtime error,
2 usage or config error.

Examples:
  vmreconcile daemon -config /etc/vmreconcile/config.yaml
  vmreconcile config validate -config /etc/vmreconcile/config.yaml   # check first`
}

func (cmd *daemonCmd) Run(ctx context.Context, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q (fix: daemon takes only flags)", args[0])
	}
	log := daemon.NewLogger(cmd.cfg.Log, out.stderr)
	st, err := store.Open(cmd.cfg.Store.Path, store.Options{Exclusive: true})
	if err != nil {
		// A LockedError reads "store PATH is in use by another vmreconcile
		// process (pid N)": a runtime condition, exit 1. An unusable path is
		// a configuration problem: exit 2, so that systemd stops restarting.
		return storeError(cmd.cfg.Store.Path, err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()
	daemon.Version = buildVersion // vmreconcile_build_info
	if cmd.once {
		d, err := daemon.New(daemon.Options{Config: cmd.cfg, Store: st, Logger: log})
		if err != nil {
			return err
		}
		return d.RunOnce(ctx)
	}
	return cmd.serve(ctx, st, log)
}

// serve runs the daemon under systemd's eyes (Type=notify): READY=1 once
// the store is open and the HTTP server listens, WATCHDOG=1 while the
// daemon's state can be read, STOPPING=1 on SIGTERM. Outside systemd the
// notifications are off.
func (cmd *daemonCmd) serve(ctx context.Context, st *store.Store, log *slog.Logger) error {
	var ln net.Listener
	if cmd.cfg.Listen != "" {
		var err error
		if ln, err = daemon.Listen(cmd.cfg.Listen); err != nil {
			return err
		}
	}
	d, err := daemon.New(daemon.Options{Config: cmd.cfg, Store: st, Logger: log, Listener: ln})
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	sd := daemon.NewNotifier()
	if err := sd.Ready(); err != nil {
		log.Warn("cannot notify systemd", "err", err)
	}
	wctx, stopWatchdog := context.WithCancel(ctx)
	defer stopWatchdog()
	go sd.Watchdog(wctx, func() { d.Ready() }) // Ready takes the daemon's lock: a deadlock stops the pings
	go func() {
		<-ctx.Done()
		_ = sd.Stopping()
	}()
	return d.Run(ctx)
}
