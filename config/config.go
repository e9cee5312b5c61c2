// Package config loads and validates vmreconcile's configuration file.
//
// The file is YAML (or anything else viper reads, by extension). Every scalar
// key can be overridden from the environment as VMRECONCILE_<KEY>, with dots
// and dashes as underscores: VMRECONCILE_STORE_PATH, VMRECONCILE_SCHEDULES_AUDIT.
// Unknown keys are errors (a typo must not silently fall back to a default),
// and everything is validated before any work starts: a bad value gives one
// *Error naming the key, the value and the fix.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// Config is the whole configuration. The zero value is not valid; use Default.
type Config struct {
	VCenters []VCenter `mapstructure:"vcenters"`
	Swarms   []Swarm   `mapstructure:"swarms"`
	// Kubernetes lists clusters, reached as kubectl reaches them.
	Kubernetes []Kubernetes `mapstructure:"kubernetes"`
	Observe    Observe      `mapstructure:"observe"`
	Guest      Guest        `mapstructure:"guest"`
	Schedules  Schedules    `mapstructure:"schedules"`
	Policy     Policy       `mapstructure:"policy"`
	Alerts     Alerts       `mapstructure:"alerts"`
	Findings   Findings     `mapstructure:"findings"`
	Store      Store        `mapstructure:"store"`
	Listen     string       `mapstructure:"listen"`
	Ready      Ready        `mapstructure:"ready"`
	Log        Log          `mapstructure:"log"`
	FailOn     string       `mapstructure:"fail_on"`
	// Timeout bounds every network call to a source: a vCenter login or
	// request, a manager's API call, a guest operation's request.
	Timeout time.Duration `mapstructure:"timeout"`
}

// VCenter is one vCenter (or ESXi host) to inventory.
type VCenter struct {
	Name          string   `mapstructure:"name"`
	URL           string   `mapstructure:"url"`
	Username      string   `mapstructure:"username"`
	Password      Secret   `mapstructure:"password"`
	PasswordFile  string   `mapstructure:"password_file"`
	Insecure      bool     `mapstructure:"insecure"`
	TLSCACerts    string   `mapstructure:"tls_ca_certs"`
	TLSKnownHosts string   `mapstructure:"tls_known_hosts"`
	Datacenters   []string `mapstructure:"datacenters"`
	Include       []string `mapstructure:"include"`
	Exclude       []string `mapstructure:"exclude"`
}

// Swarm is one swarm, reached through one or more managers (failover order).
type Swarm struct {
	Name      string   `mapstructure:"name"`
	Hosts     []string `mapstructure:"hosts"` // DOCKER_HOST forms: unix:///var/run/docker.sock, tcp://mgr:2376
	TLSVerify bool     `mapstructure:"tls_verify"`
	CertPath  string   `mapstructure:"cert_path"` // a directory with ca.pem, cert.pem, key.pem (an MKE client bundle)
	// Context names a docker CLI context (docker context ls) in place of
	// hosts, tls_verify and cert_path: Load fills those from the context
	// store of $DOCKER_CONFIG or ~/.docker.
	Context string `mapstructure:"context"`
}

// Kubernetes is one cluster: a kubeconfig file and context, or the pod's
// service account (in_cluster).
type Kubernetes struct {
	Name       string `mapstructure:"name"`       // label in reports; default: the context
	Kubeconfig string `mapstructure:"kubeconfig"` // a kubeconfig file; empty: KUBECONFIG, else ~/.kube/config
	Context    string `mapstructure:"context"`    // empty: the kubeconfig's current-context
	InCluster  bool   `mapstructure:"in_cluster"` // the pod's service account; excludes kubeconfig and context
}

// Observe tunes swarm observation.
type Observe struct {
	Lookback time.Duration `mapstructure:"lookback"` // node event replay window
	Window   time.Duration `mapstructure:"window"`   // NodeList sampling window; 0 = one sample
	Interval time.Duration `mapstructure:"interval"` // sampling interval within the window
}

// Guest configures guest operations (audit -verify, remediate, preclone).
type Guest struct {
	Login       Secret        `mapstructure:"login"`      // user:password, as GOVC_GUEST_LOGIN
	LoginFile   string        `mapstructure:"login_file"` // file holding user:password
	Logins      []GuestLogin  `mapstructure:"logins"`     // per VM pattern; first match wins
	Concurrency int           `mapstructure:"concurrency"`
	Timeout     time.Duration `mapstructure:"timeout"` // per VM
	// LoginOverrides is set when Login came from the command line (-l or
	// GOVC_GUEST_LOGIN): it then wins over the Logins patterns.
	LoginOverrides bool `mapstructure:"-"`
}

// GuestLogin is a guest login for VMs whose name or inventory path matches Pattern.
type GuestLogin struct {
	Pattern   string `mapstructure:"pattern"`
	Login     Secret `mapstructure:"login"`
	LoginFile string `mapstructure:"login_file"`
}

// Schedules are cron specs (robfig/cron: 5 fields, descriptors such as
// "@every 10m" or "@hourly", and a "CRON_TZ=Europe/Berlin " prefix).
type Schedules struct {
	Audit   string `mapstructure:"audit"`
	Lineage string `mapstructure:"lineage"`
	Prune   string `mapstructure:"prune"`
}

// Policy controls automatic remediation by the daemon.
type Policy struct {
	Remediate  string   `mapstructure:"remediate"` // off (default), dry-run, on
	Action     string   `mapstructure:"action"`    // disable-docker (default), power-off
	MaxActions int      `mapstructure:"max_actions"`
	MaxPercent float64  `mapstructure:"max_percent"`
	Exclude    []string `mapstructure:"exclude"` // VM name or path patterns never touched
}

// Alerts lists the alert sinks (docs/alerts.md).
type Alerts struct {
	Webhooks     []Webhook      `mapstructure:"webhooks"`
	Alertmanager []Alertmanager `mapstructure:"alertmanager"`
	Slack        []Slack        `mapstructure:"slack"`
}

// Alertmanager is a Prometheus Alertmanager that open findings are pushed
// to (POST URL/api/v2/alerts), re-sent every ResendInterval while open and
// sent with endsAt when they resolve.
type Alertmanager struct {
	URL             string        `mapstructure:"url"` // base URL, e.g. http://alertmanager:9093
	Username        string        `mapstructure:"username"`
	Password        Secret        `mapstructure:"password"`
	PasswordFile    string        `mapstructure:"password_file"`
	BearerToken     Secret        `mapstructure:"bearer_token"`
	BearerTokenFile string        `mapstructure:"bearer_token_file"`
	Retries         int           `mapstructure:"retries"`
	Timeout         time.Duration `mapstructure:"timeout"`         // per attempt; 0: 10s
	ResendInterval  time.Duration `mapstructure:"resend_interval"` // 0: 1m
}

// Slack is a Slack-compatible incoming webhook (text plus blocks). Its URL
// is a credential (the token is in the path): it is never printed.
type Slack struct {
	URL     Secret        `mapstructure:"url"`
	URLFile string        `mapstructure:"url_file"`
	Retries int           `mapstructure:"retries"`
	Timeout time.Duration `mapstructure:"timeout"` // per attempt; 0: 10s
}

// Findings tunes when an open finding resolves (docs/alerts.md,
// "Resolution"): only after ResolveRuns consecutive complete successful runs
// without it, the last at least ResolveAfter after the first, or after a
// remediation outcome. Failed runs and runs whose swarm manager restarted
// never count.
type Findings struct {
	ResolveRuns  int           `mapstructure:"resolve_runs"`
	ResolveAfter time.Duration `mapstructure:"resolve_after"`
}

// Webhook is a JSON POST sink, optionally signed with HMAC-SHA256.
type Webhook struct {
	URL        string        `mapstructure:"url"`
	Secret     Secret        `mapstructure:"secret"`
	SecretFile string        `mapstructure:"secret_file"`
	Retries    int           `mapstructure:"retries"`
	Timeout    time.Duration `mapstructure:"timeout"`
}

// Store is the history store.
type Store struct {
	Path      string        `mapstructure:"path"`
	Retention time.Duration `mapstructure:"retention"`
}

// Ready tunes /readyz: ready when every source was collected within MaxAge.
type Ready struct {
	MaxAge time.Duration `mapstructure:"max_age"`
}

// Log configures logging.
type Log struct {
	Format string `mapstructure:"format"` // text, json
	Level  string `mapstructure:"level"`  // debug, info, warn, error
}

// Secret is a string that never prints: fmt, %v, %q, JSON and logs all show
// "<redacted>". Use Reveal where the value is really needed.
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<redacted>"
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return s.String() }

// MarshalText keeps encoders from printing the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// Default returns the configuration used when a key is not set.
func Default() Config {
	return Config{
		Observe:   Observe{Lookback: 10 * time.Minute, Interval: time.Second},
		Guest:     Guest{Concurrency: 4, Timeout: 2 * time.Minute},
		Schedules: Schedules{Audit: "@every 10m", Lineage: "@every 1h", Prune: "@daily"},
		Policy:    Policy{Remediate: "off", Action: "disable-docker", MaxActions: 1, MaxPercent: 10},
		Findings:  Findings{ResolveRuns: 3, ResolveAfter: 10 * time.Minute},
		Store:     Store{Path: DefaultStorePath(), Retention: 30 * 24 * time.Hour},
		Listen:    "127.0.0.1:9477",
		Ready:     Ready{MaxAge: 30 * time.Minute},
		Log:       Log{Format: "text", Level: "info"},
		FailOn:    "warning",
		Timeout:   time.Minute,
	}
}

// DefaultStorePath is the store of every command when neither -store nor
// store.path says otherwise: systemd's $STATE_DIRECTORY/state.db for the
// service, /var/lib/vmreconcile/state.db for root, else
// $XDG_STATE_HOME/vmreconcile/state.db or ~/.local/state/vmreconcile/state.db.
func DefaultStorePath() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" && filepath.IsAbs(d) && !strings.Contains(d, ":") {
		return filepath.Join(d, "state.db")
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "vmreconcile", "state.db")
	}
	if os.Geteuid() == 0 {
		return "/var/lib/vmreconcile/state.db"
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		return filepath.Join(home, ".local", "state", "vmreconcile", "state.db")
	}
	return filepath.Join(os.TempDir(), "vmreconcile-state.db")
}

// Error is a configuration error: the key, what is wrong with it and the fix.
type Error struct {
	File string // the config file, "" for flags and environment
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	where := "config"
	if e.File != "" {
		where = e.File
	}
	if e.Key == "" {
		return where + ": " + e.Msg
	}
	return where + ": " + e.Key + ": " + e.Msg
}

// Load reads the file at path (may be "" for defaults and environment only),
// applies VMRECONCILE_* environment overrides, reads secret files and
// validates the result. Every error is an *Error.
func Load(path string) (Config, error) {
	cfg := Default()
	v := viper.New()
	v.SetEnvPrefix("VMRECONCILE")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_", "-", "_"))
	v.AutomaticEnv()
	setDefaults(v, cfg)

	if path != "" {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return cfg, fileError(path, err)
		}
	}
	err := v.UnmarshalExact(&cfg, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	)))
	if err != nil {
		return cfg, decodeError(path, err)
	}
	if err := cfg.readSecretFiles(); err != nil {
		return cfg, inFile(path, err)
	}
	if err := cfg.resolveContexts(); err != nil {
		err.(*Error).File = path
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, inFile(path, err)
	}
	return cfg, nil
}

// inFile returns err as an *Error naming path as its file. An *Error found in
// err's chain keeps its key and message (a wrapper's text was formatted
// before the file was known, so it is dropped); any other error becomes a
// one-line *Error, so that Load keeps its promise whatever a validator returns.
func inFile(path string, err error) error {
	var ce *Error
	if errors.As(err, &ce) {
		return &Error{File: path, Key: ce.Key, Msg: ce.Msg}
	}
	return &Error{File: path, Msg: oneLine(err.Error())}
}

// setDefaults registers every scalar key with viper so that AutomaticEnv
// can override it (viper only consults the environment for keys it knows).
func setDefaults(v *viper.Viper, cfg Config) {
	m := map[string]any{}
	if err := mapstructure.Decode(cfg, &m); err != nil {
		panic(err) // a programming error: Config must always decode
	}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, val := range m {
			key := prefix + k
			switch x := val.(type) {
			case map[string]any:
				walk(key+".", x)
			case []VCenter, []Swarm, []Kubernetes, []GuestLogin, []Webhook, []Alertmanager, []Slack:
				// lists of sections come from the file only
			case time.Duration:
				v.SetDefault(key, x.String())
			case Secret:
				v.SetDefault(key, string(x))
			default:
				v.SetDefault(key, x)
			}
		}
	}
	walk("", m)
}

func fileError(path string, err error) error {
	var notFound viper.ConfigFileNotFoundError
	switch {
	case errors.As(err, &notFound), errors.Is(err, os.ErrNotExist):
		return &Error{File: path, Msg: "no such file (fix: give the path of an existing config file)"}
	case errors.As(err, new(viper.UnsupportedConfigError)):
		return &Error{File: path, Msg: fmt.Sprintf("unsupported file type %q (fix: use a .yaml, .yml, .json or .toml file)", filepath.Ext(path))}
	}
	return &Error{File: path, Msg: "cannot parse: " + oneLine(err.Error()) + " (fix: check the YAML syntax)"}
}

// decodeError turns mapstructure's multi-line errors into one line that names
// the first bad key.
func decodeError(path string, err error) error {
	msg := oneLine(err.Error())
	if i := strings.Index(msg, "has invalid keys: "); i >= 0 {
		keys := strings.TrimSpace(msg[i+len("has invalid keys: "):])
		if j := strings.IndexAny(keys, " ;"); j > 0 {
			keys = keys[:j]
		}
		prefix := strings.TrimSpace(msg[:i])
		if k := strings.LastIndex(prefix, "'"); k > 0 {
			if s := strings.LastIndex(prefix[:k], "'"); s >= 0 && prefix[s+1:k] != "" {
				keys = prefix[s+1:k] + "." + keys
			}
		}
		return &Error{File: path, Key: strings.TrimSuffix(keys, ","), Msg: "unknown key (fix: check the spelling against the README's config reference)"}
	}
	if i := strings.Index(msg, "'"); i >= 0 {
		if j := strings.Index(msg[i+1:], "'"); j > 0 {
			return &Error{File: path, Key: msg[i+1 : i+1+j], Msg: "bad value: " + msg + " (fix: see the README's config reference for the type)"}
		}
	}
	return &Error{File: path, Msg: msg}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.TrimPrefix(s, "decoding failed due to the following error(s): ")
	s = strings.TrimPrefix(s, "1 error(s) decoding: * ")
	return s
}

// readSecretFiles fills passwords and logins from their *_file keys.
func (c *Config) readSecretFiles() error {
	for i := range c.VCenters {
		vc := &c.VCenters[i]
		if vc.PasswordFile != "" {
			s, err := readSecret(fmt.Sprintf("vcenters[%d].password_file", i), vc.PasswordFile)
			if err != nil {
				return err
			}
			vc.Password = s
		}
	}
	if c.Guest.LoginFile != "" {
		s, err := readSecret("guest.login_file", c.Guest.LoginFile)
		if err != nil {
			return err
		}
		c.Guest.Login = s
	}
	for i := range c.Guest.Logins {
		gl := &c.Guest.Logins[i]
		if gl.LoginFile != "" {
			s, err := readSecret(fmt.Sprintf("guest.logins[%d].login_file", i), gl.LoginFile)
			if err != nil {
				return err
			}
			gl.Login = s
		}
	}
	for i := range c.Alerts.Webhooks {
		wh := &c.Alerts.Webhooks[i]
		if err := readSecretInto(&wh.Secret, fmt.Sprintf("alerts.webhooks[%d].secret_file", i), wh.SecretFile); err != nil {
			return err
		}
	}
	for i := range c.Alerts.Alertmanager {
		am := &c.Alerts.Alertmanager[i]
		if err := readSecretInto(&am.Password, fmt.Sprintf("alerts.alertmanager[%d].password_file", i), am.PasswordFile); err != nil {
			return err
		}
		if err := readSecretInto(&am.BearerToken, fmt.Sprintf("alerts.alertmanager[%d].bearer_token_file", i), am.BearerTokenFile); err != nil {
			return err
		}
	}
	for i := range c.Alerts.Slack {
		sl := &c.Alerts.Slack[i]
		if err := readSecretInto(&sl.URL, fmt.Sprintf("alerts.slack[%d].url_file", i), sl.URLFile); err != nil {
			return err
		}
	}
	return nil
}

// readSecretInto sets *dst from the file at path, when path is set.
func readSecretInto(dst *Secret, key, path string) error {
	if path == "" {
		return nil
	}
	s, err := readSecret(key, path)
	if err != nil {
		return err
	}
	*dst = s
	return nil
}

func readSecret(key, path string) (Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		reason := "cannot read"
		switch {
		case errors.Is(err, os.ErrNotExist):
			reason = "no such file"
		case errors.Is(err, os.ErrPermission):
			reason = "permission denied"
		}
		return "", &Error{Key: key, Msg: fmt.Sprintf("%s %q (fix: create it, readable by this user, holding only the secret)", reason, path)}
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", &Error{Key: key, Msg: fmt.Sprintf("%q is empty (fix: write the secret into it)", path)}
	}
	return Secret(s), nil
}
