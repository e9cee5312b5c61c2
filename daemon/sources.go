package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/client"
	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/collect"
	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/swarm"
	"github.com/vmreconcile/vmreconcile/vsphere"
)

// vcSource is one configured vCenter and its session, kept across runs and
// re-established when it fails.
type vcSource struct {
	cfg   config.VCenter
	host  string // host name, safe to print
	label string // "vcenter HOST", as collect.SourceError names it

	mu    sync.Mutex
	conn  *vsphere.Conn
	roots []types.ManagedObjectReference
}

func newVCSource(c config.VCenter) *vcSource {
	h := vsphere.HostOf(c.URL)
	return &vcSource{cfg: c, host: h, label: "vcenter " + h}
}

// get returns the logged-in session, connecting when there is none.
func (v *vcSource) get(ctx context.Context) (collect.VCenter, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.conn == nil {
		conn, err := vsphere.Connect(ctx, vsphere.ConnectOptions{
			URL: v.cfg.URL, Username: v.cfg.Username, Password: v.cfg.Password.Reveal(),
			Insecure: v.cfg.Insecure, CACerts: v.cfg.TLSCACerts, KnownHosts: v.cfg.TLSKnownHosts,
		})
		if err != nil {
			return collect.VCenter{}, &collect.SourceError{Source: v.label, Err: vcError(err)}
		}
		roots, err := conn.Datacenters(ctx, v.cfg.Datacenters)
		if err != nil {
			conn.Logout()
			return collect.VCenter{}, &collect.SourceError{Source: v.label, Err: err}
		}
		v.conn, v.roots = conn, roots
	}
	return collect.VCenter{Name: v.host, Client: v.conn.Client, Roots: v.roots, Include: v.cfg.Include, Exclude: v.cfg.Exclude}, nil
}

// reset drops the session so that the next get logs in again.
func (v *vcSource) reset() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.conn != nil {
		conn := v.conn
		v.conn = nil
		go conn.Logout() // may hang on a dead vCenter; never block a run on it
	}
}

func (v *vcSource) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() { v.conn.Logout(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
		}
		v.conn = nil
	}
}

// vcError keeps login failures free of anything but the host and the user.
func vcError(err error) error {
	switch {
	case fault.Is(err, &types.InvalidLogin{}):
		return errors.New("login failed: incorrect user name or password (fix: check username and password_file)")
	case soap.IsCertificateUntrusted(err):
		return errors.New("TLS certificate not trusted (fix: tls_ca_certs, tls_known_hosts, or insecure: true)")
	}
	return err
}

// swarmSource is one configured swarm: its managers in failover order, and
// which of them is in use.
type swarmSource struct {
	cfg   config.Swarm
	name  string // config name, else the first host
	label string // "swarm NAME"

	mu      sync.Mutex
	active  int
	clients map[int]client.APIClient
}

func newSwarmSource(c config.Swarm) *swarmSource {
	name := c.Name
	if name == "" {
		name = c.Hosts[0]
	}
	return &swarmSource{cfg: c, name: name, label: "swarm " + name, clients: map[int]client.APIClient{}}
}

func (s *swarmSource) clientFor(i int) (client.APIClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[i]; ok {
		return c, nil
	}
	c, err := swarm.NewClientTLS(s.cfg.Hosts[i], s.cfg.TLSVerify, s.cfg.CertPath)
	if err != nil {
		return nil, err
	}
	s.clients[i] = c
	return c, nil
}

// current returns a manager that answers, starting with the one in use and
// failing over to the next hosts in order. Only managers can list nodes, so
// a host that answers but is not (or no longer) a manager is skipped.
func (s *swarmSource) current(ctx context.Context) (string, client.APIClient, error) {
	s.mu.Lock()
	start := s.active
	s.mu.Unlock()
	var errs []string
	for k := range s.cfg.Hosts {
		i := (start + k) % len(s.cfg.Hosts)
		host := s.cfg.Hosts[i]
		cli, err := s.clientFor(i)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", host, err))
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		p, err := cli.Ping(pctx)
		cancel()
		if err == nil && p.SwarmStatus != nil && !p.SwarmStatus.ControlAvailable {
			err = errors.New("not a swarm manager")
		}
		if err != nil {
			if ctx.Err() != nil {
				return "", nil, ctx.Err()
			}
			errs = append(errs, fmt.Sprintf("%s: %v", host, oneLine(err.Error())))
			continue
		}
		s.mu.Lock()
		s.active = i
		s.mu.Unlock()
		return host, cli, nil
	}
	return "", nil, &collect.SourceError{Source: s.label, Err: fmt.Errorf("no manager answers: %s", strings.Join(errs, "; "))}
}

// next makes the following host the one to try first.
func (s *swarmSource) next() {
	s.mu.Lock()
	s.active = (s.active + 1) % len(s.cfg.Hosts)
	s.mu.Unlock()
}

func (s *swarmSource) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, c := range s.clients {
		_ = c.Close()
		delete(s.clients, i)
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
