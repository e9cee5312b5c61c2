package audit

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/client"
	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/collect"
	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/kube"
	"github.com/vmreconcile/vmreconcile/swarm"
	"github.com/vmreconcile/vmreconcile/vsphere"
)

// Sources are the sessions of a configuration's sources: one per vCenter
// (logged in on first use, kept across runs, logged in again after a
// failure) and one per swarm (its managers in failover order). The CLI makes
// one for a command, the daemon one for its lifetime. Every login and every
// manager ping has the configuration's timeout as deadline.
type Sources struct {
	timeout time.Duration
	vcs     []*VCenterSource
	sws     []*SwarmSource
	kubes   []*KubeSource
}

// NewSources prepares the sources of cfg; nothing is contacted yet.
func NewSources(cfg config.Config) *Sources {
	s := &Sources{timeout: cfg.Timeout}
	if s.timeout <= 0 {
		s.timeout = time.Minute
	}
	for i, vc := range cfg.VCenters {
		s.vcs = append(s.vcs, newVCSource(i, vc))
	}
	for i, sw := range cfg.Swarms {
		s.sws = append(s.sws, newSwarmSource(i, sw))
	}
	for i, k := range cfg.Kubernetes {
		s.kubes = append(s.kubes, newKubeSource(i, k))
	}
	return s
}

// Labels names the sources as errors, /readyz and the metrics do
// ("vcenter HOST", "swarm NAME").
func (s *Sources) Labels() []string {
	var out []string
	for _, v := range s.vcs {
		out = append(out, v.label)
	}
	for _, w := range s.sws {
		out = append(out, w.label)
	}
	for _, k := range s.kubes {
		out = append(out, k.label)
	}
	return out
}

// HasVCenter reports whether any vCenter is configured.
func (s *Sources) HasVCenter() bool { return len(s.vcs) > 0 }

// Connect returns every source of this run: each vCenter's session (logging
// in when needed), for each swarm the first manager that answers, each
// Kubernetes cluster's client. Its errors are *collect.SourceError.
func (s *Sources) Connect(ctx context.Context) (collect.Sources, error) {
	var out collect.Sources
	for _, w := range s.sws {
		name, cli, err := w.current(ctx, s.timeout)
		if err != nil {
			return collect.Sources{}, err
		}
		out.Swarms = append(out.Swarms, collect.Swarm{Name: name, Client: cli})
	}
	for _, k := range s.kubes {
		c, err := k.get(s.timeout)
		if err != nil {
			return collect.Sources{}, err
		}
		out.Kubernetes = append(out.Kubernetes, collect.Kube{Name: c.Name(), Client: c})
	}
	for _, v := range s.vcs {
		c, err := v.get(ctx, s.timeout)
		if err != nil {
			return collect.Sources{}, err
		}
		out.VCenters = append(out.VCenters, c)
	}
	return out, nil
}

// Failed makes the source an error names reconnect (a vCenter) or try its
// next manager first (a swarm) on the next run.
func (s *Sources) Failed(err error) {
	var se *collect.SourceError
	if !errors.As(err, &se) {
		return
	}
	if errors.Is(err, vsphere.ErrMirrorNotSynced) {
		// The mirror is (re-)syncing on this session; dropping it would
		// start the sync over.
		return
	}
	for _, v := range s.vcs {
		if v.label == se.Source {
			v.reset()
		}
	}
	for _, w := range s.sws {
		if w.label == se.Source {
			w.next()
		}
	}
}

// Client returns the session of a connected vCenter by name, or nil.
func (s *Sources) Client(vcenter string) *vim25.Client {
	for _, v := range s.vcs {
		if v.host == vcenter {
			v.mu.Lock()
			defer v.mu.Unlock()
			if v.conn != nil {
				return v.conn.Client
			}
		}
	}
	return nil
}

// Rest logs in to a connected vCenter's vAPI endpoint (tags) with the
// credentials of its session; done logs out.
func (s *Sources) Rest(ctx context.Context, vcenter string) (*rest.Client, func(), error) {
	for _, v := range s.vcs {
		if v.host != vcenter {
			continue
		}
		c := s.Client(vcenter)
		if c == nil {
			return nil, nil, fmt.Errorf("vcenter %s: not connected", vcenter)
		}
		ctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		rc := rest.NewClient(c)
		rc.Timeout = s.timeout // every vAPI request, not only the login, has a deadline
		if err := rc.Login(ctx, url.UserPassword(v.cfg.Username, v.cfg.Password.Reveal())); err != nil {
			return nil, nil, err
		}
		done := func() {
			lctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = rc.Logout(lctx)
		}
		return rc, done, nil
	}
	return nil, nil, fmt.Errorf("vcenter %s: not configured", vcenter)
}

// Close logs out of every vCenter (each within 5 s) and closes the clients.
func (s *Sources) Close() {
	var wg sync.WaitGroup
	for _, v := range s.vcs {
		wg.Add(1)
		go func() { defer wg.Done(); v.close() }()
	}
	wg.Wait()
	for _, w := range s.sws {
		w.close()
	}
}

// VCenters returns the vCenter sources (the daemon's change watchers use them).
func (s *Sources) VCenters() []*VCenterSource { return s.vcs }

// Swarms returns the swarm sources.
func (s *Sources) Swarms() []*SwarmSource { return s.sws }

// Get returns the vCenter's session, logging in when there is none.
func (v *VCenterSource) Get(ctx context.Context, timeout time.Duration) (collect.VCenter, error) {
	return v.get(ctx, timeout)
}

// Reset drops the session: the next Get logs in again.
func (v *VCenterSource) Reset() { v.reset() }

// Label is "vcenter HOST"; Host the host name.
func (v *VCenterSource) Label() string { return v.label }
func (v *VCenterSource) Host() string  { return v.host }

// Current returns the manager in use (see current).
func (s *SwarmSource) Current(ctx context.Context, timeout time.Duration) (string, client.APIClient, error) {
	return s.current(ctx, timeout)
}

// Next makes the following manager the one to try first.
func (s *SwarmSource) Next() { s.next() }

// Label is "swarm NAME".
func (s *SwarmSource) Label() string { return s.label }

// Timeout is the deadline of each network call.
func (s *Sources) Timeout() time.Duration { return s.timeout }

// VCenterSource is one configured vCenter and its session.
type VCenterSource struct {
	key   string // the config key, "vcenters[0]"
	cfg   config.VCenter
	host  string // host name, safe to print
	label string // "vcenter HOST", as collect.SourceError names it

	mu     sync.Mutex
	conn   *vsphere.Conn
	roots  []types.ManagedObjectReference
	mirror *vsphere.Mirror
}

// SetMirror makes every later collection read the vCenter from m (the
// daemon's live mirror) instead of collecting it.
func (v *VCenterSource) SetMirror(m *vsphere.Mirror) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.mirror = m
}

// Mirror returns the mirror set by SetMirror, or nil.
func (v *VCenterSource) Mirror() *vsphere.Mirror {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.mirror
}

func newVCSource(i int, c config.VCenter) *VCenterSource {
	h := vsphere.HostOf(c.URL)
	return &VCenterSource{key: fmt.Sprintf("vcenters[%d]", i), cfg: c, host: h, label: "vcenter " + h}
}

// LoginError is a vCenter login (or datacenter) failure of the vCenter the
// configuration names Key ("vcenters[0]"); the command line turns it into a
// message naming the flag or the config key to fix.
type LoginError struct {
	Key  string
	Host string
	Err  error
}

func (e *LoginError) Error() string { return e.Err.Error() }
func (e *LoginError) Unwrap() error { return e.Err }

func (v *VCenterSource) get(ctx context.Context, timeout time.Duration) (collect.VCenter, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.conn == nil {
		lctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		conn, err := vsphere.Connect(lctx, vsphere.ConnectOptions{
			URL: v.cfg.URL, Username: v.cfg.Username, Password: v.cfg.Password.Reveal(),
			Insecure: v.cfg.Insecure, CACerts: v.cfg.TLSCACerts, KnownHosts: v.cfg.TLSKnownHosts,
			Timeout: timeout,
		})
		if err != nil {
			if ctx.Err() == nil && lctx.Err() != nil {
				err = fmt.Errorf("login timed out after %s: %w", timeout, context.DeadlineExceeded)
			}
			return collect.VCenter{}, &collect.SourceError{Source: v.label, Err: &LoginError{Key: v.key, Host: v.host, Err: err}}
		}
		roots, err := conn.Datacenters(lctx, v.cfg.Datacenters)
		if err != nil {
			conn.Logout(context.WithoutCancel(ctx))
			return collect.VCenter{}, &collect.SourceError{Source: v.label, Err: &LoginError{Key: v.key, Host: v.host, Err: &DatacenterError{err}}}
		}
		v.conn, v.roots = conn, roots
	}
	return collect.VCenter{Name: v.host, Client: v.conn.Client, Roots: v.roots, Include: v.cfg.Include, Exclude: v.cfg.Exclude, Mirror: v.mirror}, nil
}

// DatacenterError is a datacenter name that matches nothing.
type DatacenterError struct{ Err error }

func (e *DatacenterError) Error() string { return e.Err.Error() }

// reset drops the session so that the next get logs in again. The logout
// runs in the background, bounded: a dead vCenter must not hold a run.
func (v *VCenterSource) reset() {
	v.mu.Lock()
	conn := v.conn
	v.conn = nil
	v.mu.Unlock()
	if conn != nil {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn.Logout(ctx)
		}()
	}
}

func (v *VCenterSource) close() {
	v.mu.Lock()
	conn := v.conn
	v.conn = nil
	v.mu.Unlock()
	if conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Logout(ctx)
	}
}

// SwarmSource is one configured swarm: its managers in failover order, and
// which of them is in use.
type SwarmSource struct {
	cfg   config.Swarm
	label string // "swarm NAME"

	mu      sync.Mutex
	active  int
	clients map[int]client.APIClient
}

func newSwarmSource(i int, c config.Swarm) *SwarmSource {
	name := c.Name
	if name == "" && len(c.Hosts) > 0 {
		name = swarm.RedactHost(c.Hosts[0])
	}
	return &SwarmSource{cfg: c, label: "swarm " + name, clients: map[int]client.APIClient{}}
}

func (s *SwarmSource) clientFor(i int, timeout time.Duration) (client.APIClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[i]; ok {
		return c, nil
	}
	c, err := swarm.NewClientTLS(s.cfg.Hosts[i], s.cfg.TLSVerify, s.cfg.CertPath, timeout)
	if err != nil {
		return nil, err
	}
	s.clients[i] = c
	return c, nil
}

// current returns the manager in use, or the next one that answers a ping
// as a manager, in failover order. With a single host it is returned
// unpinged: the collection then fails with that host's own error (a worker
// given as manager is bad input, not a failover).
func (s *SwarmSource) current(ctx context.Context, timeout time.Duration) (string, client.APIClient, error) {
	s.mu.Lock()
	start := s.active
	s.mu.Unlock()
	var errs []string
	for k := range s.cfg.Hosts {
		i := (start + k) % len(s.cfg.Hosts)
		host := swarm.RedactHost(s.cfg.Hosts[i])
		cli, err := s.clientFor(i, timeout)
		if err != nil {
			return "", nil, &collect.SourceError{Source: s.label, Err: &ClientError{Err: err}}
		}
		if len(s.cfg.Hosts) == 1 {
			return host, cli, nil
		}
		pctx, cancel := context.WithTimeout(ctx, min(timeout, 5*time.Second))
		p, err := cli.Ping(pctx)
		cancel()
		if err == nil && p.SwarmStatus != nil && !p.SwarmStatus.ControlAvailable {
			err = errors.New("not a swarm manager")
		}
		if err != nil {
			if ctx.Err() != nil {
				return "", nil, ctx.Err()
			}
			errs = append(errs, fmt.Sprintf("%s: %s", host, oneLine(err.Error())))
			continue
		}
		s.mu.Lock()
		s.active = i
		s.mu.Unlock()
		return host, cli, nil
	}
	return "", nil, &collect.SourceError{Source: s.label, Err: fmt.Errorf("no manager answers: %s", strings.Join(errs, "; "))}
}

// ClientError is a Docker client that cannot be made (bad TLS files): bad
// input, not a runtime failure.
type ClientError struct{ Err error }

func (e *ClientError) Error() string { return e.Err.Error() }
func (e *ClientError) Unwrap() error { return e.Err }

func (s *SwarmSource) next() {
	s.mu.Lock()
	s.active = (s.active + 1) % len(s.cfg.Hosts)
	s.mu.Unlock()
}

func (s *SwarmSource) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, c := range s.clients {
		_ = c.Close()
		delete(s.clients, i)
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// KubeSource is one configured Kubernetes cluster and its client.
type KubeSource struct {
	cfg   config.Kubernetes
	key   string // the config key, "kubernetes[0]"
	label string // "kubernetes NAME"

	mu     sync.Mutex
	client *kube.Client
}

func newKubeSource(i int, c config.Kubernetes) *KubeSource {
	name := c.Name
	switch {
	case name != "":
	case c.Context != "":
		name = c.Context
	case c.InCluster:
		name = "in-cluster"
	default:
		name = "current-context"
	}
	return &KubeSource{cfg: c, key: fmt.Sprintf("kubernetes[%d]", i), label: "kubernetes " + name}
}

// Kubernetes returns the Kubernetes sources.
func (s *Sources) Kubernetes() []*KubeSource { return s.kubes }

// Label is "kubernetes NAME".
func (k *KubeSource) Label() string { return k.label }

// Get returns the cluster's client (made on first use; no network call).
func (k *KubeSource) Get(timeout time.Duration) (*kube.Client, error) { return k.get(timeout) }

// get makes the client on first use. A kubeconfig that cannot be read or
// names no such context is bad input (*ClientError).
func (k *KubeSource) get(timeout time.Duration) (*kube.Client, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.client == nil {
		c, err := kube.NewClient(kube.Options{Name: k.cfg.Name, Kubeconfig: k.cfg.Kubeconfig, Context: k.cfg.Context,
			InCluster: k.cfg.InCluster, Timeout: timeout})
		if err != nil {
			return nil, &collect.SourceError{Source: k.label, Err: &ClientError{Err: fmt.Errorf("%s: %w", k.key, err)}}
		}
		k.client = c
	}
	return k.client, nil
}
