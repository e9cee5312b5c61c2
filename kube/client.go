// Package kube observes a Kubernetes cluster through its API server.
//
// A clone of a node VM boots with kubelet enabled and the same hostname and
// /var/lib/kubelet/pki client certificate, so its kubelet writes the same
// Node object as the original's. The Node's status.nodeInfo (bootID,
// systemUUID, machineID) and capacity then alternate between the two
// machines, and each kubelet that finds the other's bootID records a Warning
// event with reason Rebooted. One Node list shows one side; this package
// therefore observes, like package swarm: it lists Nodes, watches them over a
// window, replays the Node events of a lookback and reports every identity
// each Node was written with, with the timeline of the flips (see Observe and
// BuildNodes).
//
// Clusters are reached the way kubectl reaches them (see NewClient).
package kube

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/homedir"
)

// Options says which cluster to reach, as kubectl's flags and environment do.
type Options struct {
	// Name is how the cluster is named in reports (the config file's
	// kubernetes[].name); default: the kubeconfig context, or "in-cluster".
	Name string
	// Kubeconfig is an explicit kubeconfig file (-kubeconfig, or the config
	// file's kubernetes[].kubeconfig). Empty: the KUBECONFIG list of files
	// (merged as kubectl merges them), else ~/.kube/config.
	Kubeconfig string
	// Context is the kubeconfig context to use (-context); empty: the
	// kubeconfig's current-context.
	Context string
	// InCluster uses the pod's service account (KUBERNETES_SERVICE_HOST and
	// /var/run/secrets/kubernetes.io/serviceaccount), as a daemon running
	// in the cluster does. It excludes Kubeconfig and Context.
	InCluster bool
	// Timeout bounds every request but watches (which are bounded by the
	// observation window); default 30s.
	Timeout time.Duration
}

// DefaultTimeout bounds one API request when Options.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Explicit reports whether o names a cluster (a kubeconfig, a context,
// in-cluster) or KUBECONFIG is set. A cluster named explicitly that cannot
// be reached is an error; with nothing named, NewClient falls back to
// ~/.kube/config and then to in-cluster config, and reports
// IsNotConfigured when neither is there.
func (o Options) Explicit() bool {
	return o.Kubeconfig != "" || o.Context != "" || o.InCluster || os.Getenv(clientcmd.RecommendedConfigPathEnvVar) != ""
}

// Client is a connection to one cluster's API server.
type Client struct {
	// Clientset makes requests bounded by the client's Timeout.
	Clientset kubernetes.Interface
	// watch has no client-side timeout (it would cut a watch stream);
	// every watch runs under a context with a deadline instead.
	watch   kubernetes.Interface
	name    string
	context string
	server  string // host:port
	timeout time.Duration
}

// Name is the cluster's name in reports: Options.Name, else the context.
func (c *Client) Name() string { return c.name }

// Context is the kubeconfig context used ("" for in-cluster config).
func (c *Client) Context() string { return c.context }

// Server is the API server's host:port, without credentials or path.
func (c *Client) Server() string { return c.server }

// String describes the client safely: "kubernetes NAME (host:port)", with
// the context when it differs from the name. It never carries credentials.
func (c *Client) String() string {
	if c.context != "" && c.context != c.name {
		return fmt.Sprintf("kubernetes %s (context %s, %s)", c.name, c.context, c.server)
	}
	return fmt.Sprintf("kubernetes %s (%s)", c.name, c.server)
}

// errNotConfigured is wrapped by NewClient's error when nothing names a
// cluster and no default configuration exists; test with IsNotConfigured.
var errNotConfigured = errors.New("no Kubernetes configuration")

// IsNotConfigured reports whether err says that no cluster was named and
// none is configured by default (no KUBECONFIG, no ~/.kube/config, not in a
// pod). A caller trying the defaults skips Kubernetes with a note then.
func IsNotConfigured(err error) bool { return errors.Is(err, errNotConfigured) }

// NewClient builds a client the way kubectl does: Kubeconfig (an explicit
// file) or else the files of KUBECONFIG (merged, the first to set a value
// wins) or else ~/.kube/config; Context or else the current-context; or the
// in-cluster service account. With nothing named and no ~/.kube/config it
// uses in-cluster config when running in a pod (as kubectl does) and
// otherwise fails with IsNotConfigured.
//
// It does not contact the server. Errors are one line naming the source and
// never carry tokens, passwords or key material.
func NewClient(opts Options) (*Client, error) {
	if opts.InCluster && (opts.Kubeconfig != "" || opts.Context != "") {
		return nil, errors.New("kubernetes: in-cluster config excludes -kubeconfig and -context (fix: give one or the other)")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	var (
		cfg *rest.Config
		ctx string
		err error
	)
	switch {
	case opts.InCluster:
		cfg, err = inCluster()
	case !opts.Explicit() && !defaultKubeconfigExists():
		if !inPod() {
			return nil, fmt.Errorf("kubernetes: %w (KUBECONFIG unset, %s absent, not in a pod)", errNotConfigured, displayHome(homeKubeconfig()))
		}
		cfg, err = inCluster()
	default:
		cfg, ctx, err = fromKubeconfig(opts.Kubeconfig, opts.Context)
	}
	if err != nil {
		return nil, err
	}
	return newClient(opts, cfg, ctx)
}

// NewClientFromConfig wraps an existing rest.Config (tests, embedding). name
// names the cluster in reports and errors.
func NewClientFromConfig(name string, cfg *rest.Config, timeout time.Duration) (*Client, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return newClient(Options{Name: name, Timeout: timeout}, cfg, "")
}

func newClient(opts Options, cfg *rest.Config, context string) (*Client, error) {
	c := &Client{name: opts.Name, context: context, server: serverHostPort(cfg.Host), timeout: opts.Timeout}
	if c.name == "" {
		c.name = context
	}
	if c.name == "" {
		c.name = "in-cluster"
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = "vmreconcile"
	}
	if cfg.ContentType == "" {
		// Protobuf, as controllers use it: Node lists and watches of a
		// large cluster are several times smaller than in JSON. A server
		// that answers JSON is understood too.
		cfg.ContentType = runtime.ContentTypeProtobuf
		cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	}
	if cfg.QPS == 0 && cfg.RateLimiter == nil {
		// client-go's default client-side limit (5/s, burst 10) turned
		// the list pages of a 5000-Node cluster into seconds of waiting;
		// these are the limits kubectl gives its discovery client. The
		// server's priority and fairness still protects it.
		cfg.QPS, cfg.Burst = 50, 300
	}
	watchCfg := rest.CopyConfig(cfg)
	watchCfg.Timeout = 0
	cfg.Timeout = opts.Timeout
	var err error
	if c.Clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("%s: %s", c, oneLine(err))
	}
	if c.watch, err = kubernetes.NewForConfig(watchCfg); err != nil {
		return nil, fmt.Errorf("%s: %s", c, oneLine(err))
	}
	return c, nil
}

// fromKubeconfig loads the client config as kubectl does and returns it with
// the context it uses.
func fromKubeconfig(path, context string) (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if os.Getenv(clientcmd.RecommendedConfigPathEnvVar) == "" {
		// client-go fixes the home file when the process starts; HOME is
		// read now, as kubectl (a fresh process) would read it.
		rules.Precedence = []string{homeKubeconfig()}
	}
	rules.ExplicitPath = path
	where := describeFiles(rules)
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return nil, "", fmt.Errorf("kubernetes: kubeconfig %q: cannot read it (fix: give an existing kubeconfig file)", path)
		}
	} else if !anyExists(rules.Precedence) {
		return nil, "", fmt.Errorf("kubernetes: kubeconfig %s: no such file (fix: point KUBECONFIG at existing files, or give -kubeconfig)", where)
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context})
	raw, err := cc.RawConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes: kubeconfig %s: %s (fix: check the file's YAML)", where, oneLine(err))
	}
	if context == "" {
		context = raw.CurrentContext
	}
	if context == "" {
		return nil, "", fmt.Errorf("kubernetes: kubeconfig %s sets no current-context (fix: give -context, or kubectl config use-context NAME)", where)
	}
	if _, ok := raw.Contexts[context]; !ok {
		return nil, "", fmt.Errorf("kubernetes: kubeconfig %s has no context %q (fix: kubectl config get-contexts lists the names)", where, context)
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes %s: kubeconfig %s: %s", context, where, oneLine(err))
	}
	return cfg, context, nil
}

func inCluster() (*rest.Config, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes in-cluster: %s (fix: run in a pod with a service account, or give -kubeconfig)", oneLine(err))
	}
	return cfg, nil
}

// inPod reports whether in-cluster config is available, as client-go checks
// it: the service's environment and the service account token.
func inPod() bool {
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" || os.Getenv("KUBERNETES_SERVICE_PORT") == "" {
		return false
	}
	_, err := os.Stat("/var/run/secrets/kubernetes.io/serviceaccount/token")
	return err == nil
}

func anyExists(paths []string) bool {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

func defaultKubeconfigExists() bool {
	_, err := os.Stat(homeKubeconfig())
	return err == nil
}

// homeKubeconfig is ~/.kube/config.
func homeKubeconfig() string {
	return filepath.Join(homedir.HomeDir(), clientcmd.RecommendedHomeDir, clientcmd.RecommendedFileName)
}

// describeFiles names the kubeconfig files the rules read, for errors.
func describeFiles(rules *clientcmd.ClientConfigLoadingRules) string {
	if rules.ExplicitPath != "" {
		return fmt.Sprintf("%q", rules.ExplicitPath)
	}
	if os.Getenv(clientcmd.RecommendedConfigPathEnvVar) == "" {
		return displayHome(homeKubeconfig())
	}
	return fmt.Sprintf("%s=%q", clientcmd.RecommendedConfigPathEnvVar, strings.Join(rules.Precedence, string(filepath.ListSeparator)))
}

func displayHome(p string) string {
	if home := homedir.HomeDir(); home != "" && strings.HasPrefix(p, home+"/") {
		return "~" + p[len(home):]
	}
	return p
}

// serverHostPort reduces a rest.Config Host (a URL or host:port) to
// host:port, dropping user info, path and query.
func serverHostPort(host string) string {
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	u, err := url.Parse(host)
	if err != nil || u.Host == "" {
		return "unknown-server"
	}
	if u.Port() != "" {
		return u.Host
	}
	port := "443"
	if u.Scheme == "http" {
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// oneLine renders err on one line, other control characters (an escape
// sequence in a server's message) shown as \xNN.
func oneLine(err error) string {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	var b strings.Builder
	for _, r := range msg {
		if unicode.IsControl(r) {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
