package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io/fs"
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
	// govc ignores a GOVC_URL that does not parse, which then read as "no
	// vCenter given" (or silently fell back to the config's vCenters).
	if v := os.Getenv("GOVC_URL"); v != "" && !c.swarmFlag.set["u"] {
		if _, err := soap.ParseURL(v); err != nil {
			return usagef("GOVC_URL: %s", urlParseFix)
		}
	}
	if err := checkTLSFiles(c.swarmFlag.fs); err != nil {
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
	// govc's -trace -verbose dumps every request after login as Go values to
	// stderr, unmasked: the guest operations' NamePasswordAuthentication
	// would print the guest password (-trace and -debug alone mask it).
	if c.guestFlag.hasLogin() && flagTrue(c.swarmFlag.fs, "trace") && flagTrue(c.swarmFlag.fs, "verbose") {
		return usagef("-trace with -verbose prints guest operation requests unmasked, guest password included (fix: -trace or -debug alone, which mask passwords)")
	}
	if output != nil && (output.XML || output.Dump) {
		return usagef("-xml and -dump are not supported (fix: -json for machine-readable output)")
	}
	return nil
}

// checkTLSFiles checks govc's TLS file flags before any connection. govc
// reports a missing -tls-ca-certs or -cert as a bare "open FILE: no such
// file" at login (exit 1, no fix), a CA file without certificates as an
// untrusted server certificate, and ignores a missing -tls-known-hosts,
// which then also reads as an untrusted server certificate.
func checkTLSFiles(fset *flag.FlagSet) error {
	for _, f := range []struct{ flag, env string }{
		{"tls-ca-certs", "GOVC_TLS_CA_CERTS"}, {"tls-known-hosts", "GOVC_TLS_KNOWN_HOSTS"},
		{"cert", "GOVC_CERTIFICATE"}, {"key", "GOVC_PRIVATE_KEY"},
	} {
		fl := fset.Lookup(f.flag)
		if fl == nil || fl.Value.String() == "" {
			continue
		}
		for _, name := range filepath.SplitList(fl.Value.String()) {
			b, err := os.ReadFile(filepath.Clean(name))
			if err != nil {
				reason := "cannot read"
				switch {
				case errors.Is(err, fs.ErrNotExist):
					reason = "no such file"
				case errors.Is(err, fs.ErrPermission):
					reason = "permission denied"
				}
				return usagef("-%s (%s) %q: %s (fix: name a readable file)", f.flag, f.env, name, reason)
			}
			if f.flag == "tls-ca-certs" && !x509.NewCertPool().AppendCertsFromPEM(b) {
				return usagef("-%s (%s) %q: no PEM certificate in it (fix: the vCenter's CA certificate(s) in PEM form)", f.flag, f.env, name)
			}
		}
	}
	return nil
}

// flagTrue reports whether fs has a boolean flag name that is set to true.
func flagTrue(fs *flag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	return f != nil && f.Value.String() == "true"
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
