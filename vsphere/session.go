package vsphere

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// ConnectOptions say how to reach one vCenter (the config-file path; the
// command line goes through govc's cli/flags.ClientFlag instead).
type ConnectOptions struct {
	URL        string // host, host:port or https://host/sdk; user info is ignored
	Username   string
	Password   string
	Insecure   bool
	CACerts    string // PEM file of trusted CAs
	KnownHosts string // govc-style known hosts file (host thumbprint pairs)
	// Timeout bounds each request of the session (0: none). Connect itself
	// is bounded by its context.
	Timeout time.Duration
}

// Conn is a logged-in vCenter session.
type Conn struct {
	Host   string // host name only, safe to print
	Client *vim25.Client
	mgr    *session.Manager
}

// HostOf returns the host of a vCenter URL without credentials, for messages.
func HostOf(raw string) string {
	u, err := soap.ParseURL(raw)
	if err != nil || u == nil {
		return "(unparsable URL)"
	}
	return u.Hostname()
}

// Connect logs in. Errors never contain the password: the URL it dials
// carries no user info, and the login fault only names the user.
func Connect(ctx context.Context, o ConnectOptions) (*Conn, error) {
	u, err := soap.ParseURL(o.URL)
	if err != nil || u == nil {
		return nil, fmt.Errorf("bad URL %q", HostOf(o.URL))
	}
	u.User = nil
	sc := soap.NewClient(u, o.Insecure)
	sc.Timeout = o.Timeout
	if o.CACerts != "" {
		if err := sc.SetRootCAs(o.CACerts); err != nil {
			return nil, fmt.Errorf("CA certificates %s: %w", o.CACerts, err)
		}
	}
	if o.KnownHosts != "" {
		if err := sc.LoadThumbprints(o.KnownHosts); err != nil {
			return nil, fmt.Errorf("known hosts %s: %w", o.KnownHosts, err)
		}
	}
	c, err := vim25.NewClient(ctx, sc)
	if err != nil {
		return nil, err
	}
	mgr := session.NewManager(c)
	if err := mgr.Login(ctx, url.UserPassword(o.Username, o.Password)); err != nil {
		return nil, err
	}
	return &Conn{Host: u.Hostname(), Client: c, mgr: mgr}, nil
}

// Logout ends the session within ctx; errors are ignored (the session
// times out anyway).
func (c *Conn) Logout(ctx context.Context) { _ = c.mgr.Logout(ctx) }

// Datacenters resolves datacenter names to morefs; no names means the root
// folder (every datacenter). A name that matches nothing is an error that
// lists the names that exist.
func (c *Conn) Datacenters(ctx context.Context, names []string) ([]types.ManagedObjectReference, error) {
	if len(names) == 0 {
		return []types.ManagedObjectReference{c.Client.ServiceContent.RootFolder}, nil
	}
	f := find.NewFinder(c.Client, false)
	var refs []types.ManagedObjectReference
	for _, n := range names {
		dc, err := f.Datacenter(ctx, n)
		if err != nil {
			var have []string
			if all, err := f.DatacenterList(ctx, "*"); err == nil {
				for _, d := range all {
					have = append(have, d.Name())
				}
			}
			sort.Strings(have)
			return nil, fmt.Errorf("datacenter %q not found (fix: one of %s)", n, strings.Join(have, ", "))
		}
		// Each datacenter once: "DC0" listed twice (or as "DC0" and "/DC0")
		// would inventory its VMs twice, and every VM would then be reported
		// as its own duplicate-bios-uuid and duplicate-mac.
		if !slices.Contains(refs, dc.Reference()) {
			refs = append(refs, dc.Reference())
		}
	}
	return refs, nil
}
