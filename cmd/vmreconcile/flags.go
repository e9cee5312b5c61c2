package main

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmware/govmomi/vim25/soap"

	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/guest"
	"github.com/vmreconcile/vmreconcile/kube"
	"github.com/vmreconcile/vmreconcile/swarm"
)

// Limits of the observation flags: beyond them a value is a typo, and a
// lookback past the Unix epoch overflows the event filter.
const (
	maxObserve  = time.Hour
	maxLookback = 30 * 24 * time.Hour
)

// settingsFlag is what audit, remediate and preclone share: where the
// vCenter, the swarm and the guests are, how long to observe, the config
// file, the store. Process resolves all of it once into one config.Config:
// flag > environment > config file > default. It never changes the process
// environment.
type settingsFlag struct {
	configFile string
	storePath  string
	timeout    time.Duration

	// vCenter, as govc: -u, -k, -dc, -tls-ca-certs, -tls-known-hosts.
	vcURL, dc, caCerts, knownHosts string
	insecure                       bool

	// Swarm, as the docker CLI: -H, DOCKER_HOST, DOCKER_TLS_VERIFY,
	// DOCKER_CERT_PATH; -context, DOCKER_CONTEXT, currentContext.
	host, dockerContext string
	observe, lookback   time.Duration

	// Kubernetes, as kubectl: -kubeconfig, KUBECONFIG, -kube-context.
	kubeconfig, kubeContext string

	// Guest operations, as govc: -l, GOVC_GUEST_LOGIN.
	login       string
	concurrency int
	guestTO     time.Duration

	fs  *flag.FlagSet
	set map[string]bool

	// resolved by Process
	cfg    config.Config
	logins *guest.Logins
	// vcFromFlags: the vCenter came from -u or GOVC_URL (errors name the
	// flags), not from the config file (errors name its keys).
	vcFromFlags bool
	// notes say which default sources were skipped (absent), for stderr.
	notes []string
}

func (f *settingsFlag) Register(fs *flag.FlagSet) {
	env := os.Getenv
	fs.StringVar(&f.configFile, "config", env("VMRECONCILE_CONFIG"), "Config file (YAML) [VMRECONCILE_CONFIG]")
	fs.StringVar(&f.storePath, "store", "", "Store file: history, guest probes, the journal (default: store.path, else "+config.DefaultStorePath()+")")
	fs.DurationVar(&f.timeout, "timeout", 0, "Deadline of each network call: vCenter login and requests, manager API calls (default 1m; config: timeout)")
	fs.StringVar(&f.vcURL, "u", env("GOVC_URL"), "vCenter or ESXi URL, https://user:pass@host/sdk [GOVC_URL, GOVC_USERNAME, GOVC_PASSWORD]")
	fs.BoolVar(&f.insecure, "k", envTrue("GOVC_INSECURE"), "Skip verification of the vCenter's certificate [GOVC_INSECURE]")
	fs.StringVar(&f.dc, "dc", env("GOVC_DATACENTER"), "Datacenter (default: every datacenter) [GOVC_DATACENTER]")
	fs.StringVar(&f.caCerts, "tls-ca-certs", env("GOVC_TLS_CA_CERTS"), "TLS CA certificates file of the vCenter [GOVC_TLS_CA_CERTS]")
	fs.StringVar(&f.knownHosts, "tls-known-hosts", env("GOVC_TLS_KNOWN_HOSTS"), "TLS known hosts file (host thumbprint) [GOVC_TLS_KNOWN_HOSTS]")
	fs.StringVar(&f.host, "H", "", "Docker host of a swarm manager [DOCKER_HOST]; TLS from DOCKER_TLS_VERIFY, DOCKER_CERT_PATH")
	fs.StringVar(&f.dockerContext, "context", "", "Docker context of a swarm manager, as docker --context [DOCKER_CONTEXT] (default: the config's swarms, else currentContext of ~/.docker/config.json)")
	fs.DurationVar(&f.observe, "observe", 0, "Sample the manager's node list for this long (0 = one sample; at most 1h); a shared node shows one identity at a time")
	fs.DurationVar(&f.lookback, "lookback", 10*time.Minute, "Replay the manager's node events of this long ago (0 = none; at most 720h)")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "Kubernetes: kubeconfig file (default: KUBECONFIG, else ~/.kube/config when it exists)")
	fs.StringVar(&f.kubeContext, "kube-context", "", "Kubernetes: kubeconfig context (default: its current-context)")
	fs.StringVar(&f.login, "l", "", "Guest login user:password [GOVC_GUEST_LOGIN]")
	fs.IntVar(&f.concurrency, "guest-concurrency", 4, "Guest operations on at most this many VMs at once")
	fs.DurationVar(&f.guestTO, "guest-timeout", 2*time.Minute, "Give up on one VM's guest operations after this long")
	f.fs = fs
}

func envTrue(name string) bool {
	switch strings.ToLower(os.Getenv(name)) {
	case "1", "true":
		return true
	}
	return false
}

// Process loads the config file and lays the flags and the environment
// over it. It is idempotent: a second call changes nothing.
func (f *settingsFlag) Process() error {
	if f.set != nil {
		return nil
	}
	f.set = map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	cfg, err := config.Load(f.configFile)
	if err != nil {
		return err
	}
	for _, step := range []func(*config.Config) error{f.vcenter, f.swarm, f.kubernetes, f.observation, f.guest, f.rest} {
		if err := step(&cfg); err != nil {
			return err
		}
	}
	logins, err := guest.NewLogins(cfg.Guest, f.loginSource())
	if err != nil {
		return err
	}
	for _, s := range logins.Secrets() {
		addSecret(s)
	}
	for _, vc := range cfg.VCenters {
		addSecret(vc.Password.Reveal())
	}
	f.cfg, f.logins = cfg, logins
	return nil
}

// vcenter: -u or GOVC_URL (with GOVC_USERNAME, GOVC_PASSWORD) replaces the
// config's vCenters.
func (f *settingsFlag) vcenter(cfg *config.Config) error {
	source := "-u"
	if !f.set["u"] {
		source = "GOVC_URL"
	}
	if f.vcURL == "" {
		if f.dc != "" && len(cfg.VCenters) == 1 {
			cfg.VCenters[0].Datacenters = []string{f.dc}
		}
		return nil
	}
	u, err := soap.ParseURL(f.vcURL)
	if err != nil || u == nil || u.Hostname() == "" {
		return usagef("%s: %s", source, urlParseFix)
	}
	user, pass := "", ""
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
	}
	if v := os.Getenv("GOVC_USERNAME"); v != "" {
		user = v
	}
	if v := os.Getenv("GOVC_PASSWORD"); v != "" {
		pass = v
	}
	addSecret(pass)
	if user == "" {
		return usagef("%s: no user name (fix: https://user:pass@%s/sdk, or GOVC_USERNAME and GOVC_PASSWORD)", source, u.Host)
	}
	if err := checkTLSFiles([]tlsFile{{"tls-ca-certs", "GOVC_TLS_CA_CERTS", f.caCerts}, {"tls-known-hosts", "GOVC_TLS_KNOWN_HOSTS", f.knownHosts}}); err != nil {
		return err
	}
	u.User = nil
	vc := config.VCenter{URL: u.String(), Username: user, Password: config.Secret(pass), Insecure: f.insecure,
		TLSCACerts: f.caCerts, TLSKnownHosts: f.knownHosts}
	if f.dc != "" {
		vc.Datacenters = []string{f.dc}
	}
	cfg.VCenters = []config.VCenter{vc}
	f.vcFromFlags = true
	return nil
}

func (f *settingsFlag) loginSource() string {
	switch {
	case f.set["l"]:
		return "-l"
	case os.Getenv("GOVC_GUEST_LOGIN") != "":
		return "GOVC_GUEST_LOGIN"
	}
	return "guest.login"
}

// swarm resolves the swarm as the docker CLI does: -H, else -context, else
// DOCKER_HOST, else DOCKER_CONTEXT; each replaces the config's swarms. With
// none of them, the config's swarms; with none of those, the currentContext
// of $DOCKER_CONFIG/config.json (~/.docker), else the local socket.
func (f *settingsFlag) swarm(cfg *config.Config) error {
	if f.host != "" && f.dockerContext != "" {
		return usagef("-H and -context are both given (fix: one of them: -H names a manager, -context a docker context)")
	}
	switch {
	case f.host != "":
		return f.hostSwarm(cfg, f.host, "-H")
	case f.dockerContext != "":
		return f.contextSwarm(cfg, f.dockerContext, "-context")
	case os.Getenv("DOCKER_HOST") != "":
		return f.hostSwarm(cfg, os.Getenv("DOCKER_HOST"), "DOCKER_HOST")
	case os.Getenv("DOCKER_CONTEXT") != "":
		return f.contextSwarm(cfg, os.Getenv("DOCKER_CONTEXT"), "DOCKER_CONTEXT")
	case len(cfg.Swarms) > 0:
		return nil
	}
	dir, err := swarm.DockerConfigDir()
	if err != nil {
		return f.defaultSwarm(cfg)
	}
	name, err := swarm.CurrentContext(dir)
	if err != nil {
		return usagef("%s", err)
	}
	if name != "" {
		return f.contextSwarm(cfg, name, "currentContext of "+filepath.Join(dir, "config.json"))
	}
	return f.defaultSwarm(cfg)
}

// defaultSwarm is the local engine when nothing names a swarm: used when
// its socket exists, else skipped with a note.
func (f *settingsFlag) defaultSwarm(cfg *config.Config) error {
	if _, err := os.Stat(defaultDockerSocket); err != nil {
		f.notes = append(f.notes, "no swarm manager given and "+defaultDockerSocket+" absent: swarm side skipped (fix: -H, -context or DOCKER_HOST)")
		return nil
	}
	return f.hostSwarm(cfg, config.DefaultDockerHost, "the default Docker socket")
}

// contextSwarm makes the docker context name the one swarm. The default
// context is DOCKER_HOST, else the local socket, as for the docker CLI.
func (f *settingsFlag) contextSwarm(cfg *config.Config, name, source string) error {
	if name == swarm.DefaultContextName {
		if h := os.Getenv("DOCKER_HOST"); h != "" {
			return f.hostSwarm(cfg, h, "DOCKER_HOST")
		}
		return f.hostSwarm(cfg, config.DefaultDockerHost, "the default Docker socket")
	}
	dir, err := swarm.DockerConfigDir()
	if err != nil {
		return usagef("%s %s: %s", source, name, err)
	}
	sw, err := config.SwarmFromContext(dir, name)
	if err != nil {
		return usagef("%s: %s", source, err)
	}
	sw.Name = name
	cfg.Swarms = []config.Swarm{sw}
	return nil
}

// hostSwarm makes host the one swarm, with TLS from DOCKER_TLS_VERIFY and
// DOCKER_CERT_PATH, as the docker CLI.
func (f *settingsFlag) hostSwarm(cfg *config.Config, host, source string) error {
	if err := config.ValidateDockerHost(host); err != nil {
		return usagef("%s: %s", source, err)
	}
	sw := config.Swarm{Hosts: []string{host}, TLSVerify: os.Getenv("DOCKER_TLS_VERIFY") != "", CertPath: os.Getenv("DOCKER_CERT_PATH")}
	// The docker CLI takes the TLS files from its config directory when
	// DOCKER_TLS_VERIFY is set without DOCKER_CERT_PATH: so do we, so that
	// asking for TLS never silently gives none.
	if sw.TLSVerify && sw.CertPath == "" {
		dir, err := swarm.DockerConfigDir()
		if err != nil {
			return usagef("DOCKER_TLS_VERIFY is set but DOCKER_CERT_PATH is not, and there is no home directory (fix: set DOCKER_CERT_PATH to the directory holding ca.pem, cert.pem and key.pem)")
		}
		if err := config.ValidateCertPath(dir); err != nil {
			return usagef("DOCKER_TLS_VERIFY is set but DOCKER_CERT_PATH is not, and %s cannot be read (fix: set DOCKER_CERT_PATH to the directory holding ca.pem, cert.pem and key.pem, such as an unzipped client bundle)", filepath.Join(dir, "ca.pem"))
		}
		sw.CertPath = dir
	}
	if sw.CertPath != "" {
		if err := config.ValidateCertPath(sw.CertPath); err != nil {
			return usagef("DOCKER_CERT_PATH: %s", err)
		}
	}
	cfg.Swarms = []config.Swarm{sw}
	return nil
}

// defaultDockerSocket is the local engine's socket, the docker CLI's default.
const defaultDockerSocket = "/var/run/docker.sock"

// kubernetes: -kubeconfig, -kube-context or KUBECONFIG replace the config's
// clusters; with neither and none in the config, ~/.kube/config when it
// exists (kubectl's default), else no Kubernetes side.
func (f *settingsFlag) kubernetes(cfg *config.Config) error {
	explicit := f.kubeconfig != "" || f.kubeContext != "" || os.Getenv("KUBECONFIG") != ""
	if !explicit && len(cfg.Kubernetes) > 0 {
		return nil
	}
	o := kube.Options{Kubeconfig: f.kubeconfig, Context: f.kubeContext}
	if _, err := kube.NewClient(o); err != nil {
		if kube.IsNotConfigured(err) && !explicit {
			f.notes = append(f.notes, "no Kubernetes cluster given and no ~/.kube/config: Kubernetes side skipped (fix: -kubeconfig or KUBECONFIG)")
			return nil
		}
		return usagef("%s", oneLine(err.Error()))
	}
	cfg.Kubernetes = []config.Kubernetes{{Kubeconfig: f.kubeconfig, Context: f.kubeContext}}
	return nil
}

// observation: -observe and -lookback over observe.window and
// observe.lookback; -lookback 0 turns the event replay off.
func (f *settingsFlag) observation(cfg *config.Config) error {
	if f.observe < 0 || f.lookback < 0 {
		return usagef("-observe and -lookback must not be negative (fix: e.g. -observe 30s -lookback 10m)")
	}
	if f.observe > maxObserve {
		return usagef("-observe %s is longer than %s (fix: a window of seconds to minutes, e.g. -observe 30s)", f.observe, maxObserve)
	}
	if f.lookback > maxLookback {
		return usagef("-lookback %s is longer than %s (fix: e.g. -lookback 10m; managers keep only recent events)", f.lookback, maxLookback)
	}
	if f.set["observe"] {
		cfg.Observe.Window = f.observe
	}
	if f.set["lookback"] {
		cfg.Observe.Lookback = f.lookback
		if f.lookback == 0 {
			cfg.Observe.Lookback = -1 // no event replay, samples only
		}
	}
	return nil
}

// guest: -l or GOVC_GUEST_LOGIN override the config's logins.
func (f *settingsFlag) guest(cfg *config.Config) error {
	login := f.login
	if login == "" {
		login = os.Getenv("GOVC_GUEST_LOGIN")
	}
	if login != "" {
		addSecretLogin(login)
		cfg.Guest.Login, cfg.Guest.LoginOverrides = config.Secret(login), true
	}
	if f.set["guest-concurrency"] {
		cfg.Guest.Concurrency = f.concurrency
	}
	if f.set["guest-timeout"] {
		cfg.Guest.Timeout = f.guestTO
	}
	if cfg.Guest.Concurrency < 1 || cfg.Guest.Timeout <= 0 {
		return usagef("-guest-concurrency must be >= 1 and -guest-timeout > 0 (fix: e.g. -guest-concurrency 4 -guest-timeout 2m)")
	}
	return nil
}

func (f *settingsFlag) rest(cfg *config.Config) error {
	if f.set["store"] {
		cfg.Store.Path = f.storePath
	}
	if f.set["timeout"] {
		if f.timeout <= 0 || f.timeout > 24*time.Hour {
			return usagef("-timeout %s is outside (0, 24h] (fix: e.g. -timeout 1m)", f.timeout)
		}
		cfg.Timeout = f.timeout
	}
	return nil
}

// addSecretLogin registers a user:password login and its password as secrets.
func addSecretLogin(login string) {
	addSecret(login)
	if _, pw, ok := strings.Cut(login, ":"); ok {
		addSecret(pw)
	}
}

type tlsFile struct{ flag, env, value string }

// checkTLSFiles checks the vCenter TLS files before any connection: a
// missing file or a CA file without certificates would otherwise read as an
// untrusted server certificate at login.
func checkTLSFiles(files []tlsFile) error {
	for _, f := range files {
		if f.value == "" {
			continue
		}
		for _, name := range filepath.SplitList(f.value) {
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

// urlParseFix is the message for a vCenter URL that does not parse; it never
// quotes the URL, which may carry a password.
const urlParseFix = "not a valid vCenter URL (value not shown: it may hold a password) (fix: https://user:pass@host/sdk with " +
	"@ : / ? # % in the user name or password percent-encoded (%40 for @), or the password in GOVC_PASSWORD)"

// hostOnly is a URL's host, for messages.
func hostOnly(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Hostname()
}

// printNotes says on stderr which default sources were skipped.
func (f *settingsFlag) printNotes(command string) {
	for _, n := range f.notes {
		fmt.Fprintf(out.stderr, "vmreconcile %s: note: %s\n", command, n)
	}
}

// needCluster refuses a run with no cluster to audit.
func (f *settingsFlag) needCluster() error {
	if len(f.cfg.Swarms) == 0 && len(f.cfg.Kubernetes) == 0 {
		return usagef("no cluster to audit: no swarm manager and no Kubernetes cluster (fix: -H tcp://MANAGER:2376 or DOCKER_HOST, -kubeconfig or KUBECONFIG, or swarms/kubernetes in -config)")
	}
	return nil
}
