package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/vmware/govmomi/vim25/soap"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vmreconcile/vmreconcile/swarm"
)

// CronParser is the parser for every schedule: standard 5-field specs,
// descriptors (@every 10m, @hourly) and a CRON_TZ= prefix.
var CronParser cron.ScheduleParser = safeCronParser{cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)}

// safeCronParser is robfig/cron's parser without its panics: v3.0.1 slices
// out of range on a TZ= or CRON_TZ= prefix with no space after it ("TZ=").
type safeCronParser struct{ p cron.Parser }

func (s safeCronParser) Parse(spec string) (sched cron.Schedule, err error) {
	if (strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=")) && !strings.Contains(spec, " ") {
		return nil, errors.New("a time zone prefix needs a space and a schedule after it")
	}
	defer func() {
		if r := recover(); r != nil {
			sched, err = nil, fmt.Errorf("cannot parse it (%v)", r)
		}
	}()
	return s.p.Parse(spec)
}

// Validate checks every value; the first problem is returned as an *Error.
func (c *Config) Validate() error {
	for _, check := range []func() error{c.validateVCenters, c.validateSwarms} {
		if err := check(); err != nil {
			return err
		}
	}
	if err := validateKubernetes(c.Kubernetes); err != nil {
		return err
	}
	if c.Observe.Lookback < 0 || c.Observe.Window < 0 || c.Observe.Interval < 0 {
		return &Error{Key: "observe", Msg: "durations must not be negative (fix: e.g. lookback: 10m, window: 30s)"}
	}
	if c.Guest.Concurrency < 1 {
		return &Error{Key: "guest.concurrency", Msg: fmt.Sprintf("%d is below 1 (fix: a small number such as 4)", c.Guest.Concurrency)}
	}
	if c.Guest.Login != "" && !strings.Contains(c.Guest.Login.Reveal(), ":") {
		return &Error{Key: "guest.login", Msg: "not in user:password form (fix: e.g. root:PASSWORD, as GOVC_GUEST_LOGIN)"}
	}
	for i, gl := range c.Guest.Logins {
		key := fmt.Sprintf("guest.logins[%d]", i)
		if err := validatePatterns(key+".pattern", []string{gl.Pattern}); err != nil {
			return err
		}
		if !strings.Contains(gl.Login.Reveal(), ":") {
			return &Error{Key: key + ".login", Msg: "missing or not in user:password form (fix: set login or login_file)"}
		}
	}
	for _, s := range []struct{ key, spec string }{
		{"schedules.audit", c.Schedules.Audit}, {"schedules.lineage", c.Schedules.Lineage}, {"schedules.prune", c.Schedules.Prune},
	} {
		if err := ValidateCron(s.key, s.spec); err != nil {
			return err
		}
	}
	switch c.Policy.Remediate {
	case "off", "dry-run", "on":
	default:
		return &Error{Key: "policy.remediate", Msg: fmt.Sprintf("%q is not off, dry-run or on (fix: pick one; off is the default)", c.Policy.Remediate)}
	}
	switch c.Policy.Action {
	case "disable-docker", "disable-kubelet", "power-off":
	default:
		return &Error{Key: "policy.action", Msg: fmt.Sprintf("%q is not disable-docker, disable-kubelet or power-off (fix: pick one)", c.Policy.Action)}
	}
	if c.Policy.MaxActions < 0 || c.Policy.MaxPercent < 0 || c.Policy.MaxPercent > 100 {
		return &Error{Key: "policy", Msg: "max_actions must be >= 0 and max_percent within 0..100"}
	}
	if err := validatePatterns("policy.exclude", c.Policy.Exclude); err != nil {
		return err
	}
	if err := c.validateAlerts(); err != nil {
		return err
	}
	if c.Store.Path == "" {
		return &Error{Key: "store.path", Msg: "empty (fix: a file path such as /var/lib/vmreconcile/state.db)"}
	}
	if c.Store.Retention < 0 {
		return &Error{Key: "store.retention", Msg: "must not be negative (fix: e.g. 720h)"}
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return &Error{Key: "listen", Msg: fmt.Sprintf("%q is not host:port (fix: e.g. 127.0.0.1:9477, or \"\" to disable)", c.Listen)}
		}
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return &Error{Key: "log.format", Msg: fmt.Sprintf("%q is not text or json", c.Log.Format)}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return &Error{Key: "log.level", Msg: fmt.Sprintf("%q is not debug, info, warn or error", c.Log.Level)}
	}
	if err := ValidateFailOn(c.FailOn); err != nil {
		return &Error{Key: "fail_on", Msg: err.Error()}
	}
	if c.Timeout <= 0 || c.Timeout > 24*time.Hour {
		return &Error{Key: "timeout", Msg: fmt.Sprintf("%s is outside (0, 24h] (fix: e.g. 1m)", c.Timeout)}
	}
	return nil
}

// validateKubernetes checks the kubernetes list: names unique, in_cluster
// alone, and a kubeconfig given that exists, parses and has the context.
func validateKubernetes(clusters []Kubernetes) error {
	names := map[string]int{}
	for i, k := range clusters {
		key := fmt.Sprintf("kubernetes[%d]", i)
		if k.Name != "" {
			if j, dup := names[k.Name]; dup {
				return &Error{Key: key + ".name", Msg: fmt.Sprintf("%q is already the name of kubernetes[%d] (fix: give each cluster its own name)", k.Name, j)}
			}
			names[k.Name] = i
		}
		if k.InCluster && (k.Kubeconfig != "" || k.Context != "") {
			return &Error{Key: key + ".in_cluster", Msg: "in_cluster excludes kubeconfig and context (fix: remove one or the other)"}
		}
		if k.Kubeconfig == "" {
			continue
		}
		kc, err := clientcmd.LoadFromFile(k.Kubeconfig)
		switch {
		case errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission):
			return &Error{Key: key + ".kubeconfig", Msg: fmt.Sprintf("cannot read %q (fix: give an existing kubeconfig file, readable by this user)", k.Kubeconfig)}
		case err != nil:
			// never echo the parse error: a kubeconfig holds tokens and keys
			return &Error{Key: key + ".kubeconfig", Msg: fmt.Sprintf("%q is not a kubeconfig (fix: check it with kubectl config view --kubeconfig %s)", k.Kubeconfig, k.Kubeconfig)}
		}
		ctx := k.Context
		if ctx == "" {
			ctx = kc.CurrentContext
		}
		if ctx == "" {
			return &Error{Key: key + ".context", Msg: fmt.Sprintf("empty, and %q sets no current-context (fix: name one of its contexts)", k.Kubeconfig)}
		}
		if _, ok := kc.Contexts[ctx]; !ok {
			return &Error{Key: key + ".context", Msg: fmt.Sprintf("%q has no context %q (fix: kubectl config get-contexts --kubeconfig %s lists them)", k.Kubeconfig, ctx, k.Kubeconfig)}
		}
	}
	return nil
}

// ValidateCron parses a schedule and says what is wrong in one line.
func ValidateCron(key, spec string) error {
	if spec == "" {
		return &Error{Key: key, Msg: "empty schedule (fix: a cron spec such as \"*/10 * * * *\" or \"@every 10m\")"}
	}
	if _, err := CronParser.Parse(spec); err != nil {
		return &Error{Key: key, Msg: fmt.Sprintf("bad cron spec %q: %v (fix: 5 fields \"min hour dom month dow\", or @every 10m, @hourly, @daily; optional CRON_TZ=Zone prefix)", spec, err)}
	}
	// robfig/cron accepts "@every -5s" and "@every 0s" (it then fires every
	// second): a typo, not a schedule.
	if rest, ok := strings.CutPrefix(strings.TrimSpace(spec[strings.Index(spec, "@")+1:]), "every"); ok && strings.Contains(spec, "@every") {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil || d < time.Second {
			return &Error{Key: key, Msg: fmt.Sprintf("%q is not a positive interval of at least 1s (fix: e.g. @every 10m)", spec)}
		}
	}
	return nil
}

// ValidateFailOn checks a -fail-on / fail_on value.
func ValidateFailOn(s string) error {
	switch s {
	case "critical", "warning", "info", "never":
		return nil
	}
	return fmt.Errorf("%q is not critical, warning, info or never (fix: -fail-on warning is the default)", s)
}

// ValidateVCenterURL checks a vCenter URL the way govc accepts it: a host name,
// host:port, or https://host/sdk.
func ValidateVCenterURL(key, raw string) error {
	if raw == "" {
		return &Error{Key: key, Msg: "empty (fix: the vCenter address, e.g. https://vcenter.example.com/sdk)"}
	}
	u, err := soap.ParseURL(raw)
	if err != nil || u == nil || u.Hostname() == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return &Error{Key: key, Msg: fmt.Sprintf("%q is not a vCenter URL (fix: e.g. https://vcenter.example.com/sdk or vcenter.example.com)", redactURL(raw))}
	}
	if u.User != nil && u.User.Username() != "" {
		// In the config file, credentials belong in their own keys: a
		// password in a URL ends up in shell history, ps and logs.
		return &Error{Key: key, Msg: fmt.Sprintf("%q carries credentials (fix: put them in username and password_file, and give the URL without user info)", redactURL(raw))}
	}
	return nil
}

// ValidateDockerHost checks a DOCKER_HOST value (see swarm.ValidateHost).
func ValidateDockerHost(h string) error { return swarm.ValidateHost(h) }

// ValidateCertPath checks a DOCKER_CERT_PATH-style directory (an MKE client
// bundle): ca.pem, cert.pem and key.pem must be there and the key pair must load.
func ValidateCertPath(dir string) error {
	for _, f := range []string{"ca.pem", "cert.pem", "key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("cannot read %s in %q (fix: point at a directory holding ca.pem, cert.pem and key.pem, such as an unzipped MKE client bundle)", f, dir)
		}
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")); err != nil {
		// never echo the parse error: it may quote key material
		return fmt.Errorf("cert.pem and key.pem in %q do not form a valid key pair (fix: use the files of one client bundle)", dir)
	}
	return nil
}

func validatePatterns(key string, patterns []string) error {
	for _, p := range patterns {
		if p == "" {
			return &Error{Key: key, Msg: "empty pattern (fix: a VM name or inventory path glob such as /DC0/vm/swarm/*)"}
		}
		if _, err := path.Match(p, ""); err != nil {
			return &Error{Key: key, Msg: fmt.Sprintf("bad pattern %q (fix: a glob with *, ? and [...], e.g. /DC0/vm/swarm/*)", p)}
		}
	}
	return nil
}

// redactURL drops user info from a URL so that it can be printed.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				return raw[:j+3] + "REDACTED@" + raw[i+1:]
			}
			return "REDACTED@" + raw[i+1:]
		}
		return raw
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED" // webhook URLs often carry a token there
	}
	u.Fragment = ""
	return u.String()
}

// validateVCenters checks each vCenter entry.
func (c *Config) validateVCenters() error {
	hosts := map[string]int{}
	for i, vc := range c.VCenters {
		key := fmt.Sprintf("vcenters[%d]", i)
		if err := ValidateVCenterURL(key+".url", vc.URL); err != nil {
			return err
		}
		// VMs are keyed by their vCenter's host name (morefs repeat across
		// vCenters): two entries on one host would share the keys, and a
		// skip marker or an action could be looked up in the wrong one.
		if u, err := soap.ParseURL(vc.URL); err == nil && u != nil {
			h := strings.ToLower(u.Hostname())
			if j, dup := hosts[h]; dup {
				return &Error{Key: key + ".url", Msg: fmt.Sprintf("host %s is vcenters[%d]'s too (fix: list each vCenter once; its datacenters go in datacenters)", h, j)}
			}
			hosts[h] = i
		}
		for _, f := range []struct{ key, path string }{
			{key + ".tls_ca_certs", vc.TLSCACerts}, {key + ".tls_known_hosts", vc.TLSKnownHosts},
		} {
			if f.path == "" {
				continue
			}
			if _, err := os.Stat(f.path); err != nil {
				return &Error{Key: f.key, Msg: fmt.Sprintf("cannot read %q (fix: give an existing file)", f.path)}
			}
		}
		if err := validatePatterns(key+".include", vc.Include); err != nil {
			return err
		}
		if err := validatePatterns(key+".exclude", vc.Exclude); err != nil {
			return err
		}
	}
	return nil
}

// validateSwarms checks each swarm entry.
func (c *Config) validateSwarms() error {
	for i, sw := range c.Swarms {
		key := fmt.Sprintf("swarms[%d]", i)
		if len(sw.Hosts) == 0 {
			return &Error{Key: key + ".hosts", Msg: "no manager host (fix: list at least one, e.g. [\"tcp://manager-1:2376\"])"}
		}
		for j, h := range sw.Hosts {
			if err := ValidateDockerHost(h); err != nil {
				return &Error{Key: fmt.Sprintf("%s.hosts[%d]", key, j), Msg: err.Error()}
			}
		}
		if sw.CertPath != "" {
			if err := ValidateCertPath(sw.CertPath); err != nil {
				return &Error{Key: key + ".cert_path", Msg: err.Error()}
			}
		}
	}
	return nil
}
