package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/vmware/govmomi/cli/flags"
	"github.com/vmware/govmomi/vim25/soap"

	"github.com/vmreconcile/vmreconcile/config"
)

// commonFlag is what audit, remediate and preclone share besides the vCenter
// flags: the swarm side, guest logins and the config file.
type commonFlag struct {
	*swarmFlag
	*guestFlag

	configFile string
	cfg        config.Config
}

func newCommonFlag(ctx context.Context, f *flag.FlagSet) *commonFlag {
	persistOff()
	c := &commonFlag{swarmFlag: &swarmFlag{}, guestFlag: &guestFlag{}}
	c.swarmFlag.Register(ctx, f)
	c.guestFlag.Register(ctx, f)
	f.StringVar(&c.configFile, "config", os.Getenv("VMRECONCILE_CONFIG"), "Config file (YAML) [VMRECONCILE_CONFIG]")
	return c
}

// process validates the swarm flags, loads the config file and resolves the
// guest logins, in that order; output is the command's govc output flag.
func (c *commonFlag) process(ctx context.Context, output *flags.OutputFlag) error {
	if err := c.swarmFlag.Process(ctx); err != nil {
		return err
	}
	cfg, err := config.Load(c.configFile)
	if err != nil {
		return err
	}
	c.cfg = cfg
	if err := c.guestFlag.Process(cfg); err != nil {
		return err
	}
	if output != nil && (output.XML || output.Dump) {
		return usagef("-xml and -dump are not supported (fix: -json for machine-readable output)")
	}
	return nil
}

// govcFlagsFromConfig points govc's flags (-u, -k, -tls-ca-certs,
// -tls-known-hosts, -dc) at the config file's first vCenter when none was
// given on the command line or in GOVC_URL, for commands that find VMs the
// govc way (one vCenter). It says which vCenter it chose when there are several.
func (c *commonFlag) govcFlagsFromConfig(fs *flag.FlagSet, cf *flags.ClientFlag) (note string, err error) {
	if u := cf.Session.URL; (u != nil && u.Host != "") || len(c.cfg.VCenters) == 0 {
		return "", nil
	}
	vc := c.cfg.VCenters[0]
	u, err := soap.ParseURL(vc.URL)
	if err != nil || u == nil {
		return "", usagef("vcenters[0].url: not a vCenter URL (fix: e.g. https://vcenter.example.com/sdk)")
	}
	addSecret(vc.Password.Reveal())
	u.User = url.UserPassword(vc.Username, vc.Password.Reveal())
	set := map[string]string{"u": u.String(), "tls-ca-certs": vc.TLSCACerts, "tls-known-hosts": vc.TLSKnownHosts}
	if vc.Insecure {
		set["k"] = "true"
	}
	if len(vc.Datacenters) == 1 && fs.Lookup("dc") != nil && fs.Lookup("dc").Value.String() == "" {
		set["dc"] = vc.Datacenters[0]
	}
	for name, value := range set {
		if value == "" {
			continue
		}
		if err := fs.Set(name, value); err != nil {
			return "", usagef("vcenters[0]: %s", redact(err.Error()))
		}
	}
	if len(c.cfg.VCenters) > 1 {
		note = fmt.Sprintf("using vCenter %s, the first of the config's %d (fix: -u to choose another)", u.Hostname(), len(c.cfg.VCenters))
	}
	return note, nil
}

// storeFile is where remediate and preclone keep probes and the journal:
// -store (flagValue); else store.path when a config file or
// VMRECONCILE_STORE_PATH is given (shared with the daemon); else the
// per-user state directory.
func (c *commonFlag) storeFile(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if c.configFile != "" || os.Getenv("VMRECONCILE_STORE_PATH") != "" {
		return c.cfg.Store.Path
	}
	return defaultStatePath()
}

// defaultStatePath is $XDG_STATE_HOME/vmreconcile/state.db, else
// ~/.local/state/vmreconcile/state.db.
func defaultStatePath() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "vmreconcile", "state.db")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return filepath.Join(os.TempDir(), "vmreconcile-state.db")
	}
	return filepath.Join(home, ".local", "state", "vmreconcile", "state.db")
}
