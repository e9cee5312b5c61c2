package audit

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vmreconcile/vmreconcile/collect"
	"github.com/vmreconcile/vmreconcile/swarm"
)

// SourceCheck is the result of connecting to one source: a vCenter, or one
// manager of a swarm.
type SourceCheck struct {
	Source string // "vcenter HOST", "swarm NAME"
	// Detail says what answered: the vCenter's product and the datacenters;
	// the manager, its cluster and engine version. Text from the source is
	// passed as it came: escape it before printing it on a terminal.
	Detail string
	// Err is why the source failed, a *collect.SourceError, nil when it answered.
	Err error
}

// Check logs in to every vCenter and asks every manager of every swarm
// (not only the first that answers) whether it is a swarm manager, each
// within the sources' timeout, and reports each result. It only reads:
// a login, the datacenters, docker info. `vmreconcile config validate
// -connect` runs it.
func (s *Sources) Check(ctx context.Context) []SourceCheck {
	var out []SourceCheck
	for _, v := range s.vcs {
		c := SourceCheck{Source: v.label}
		vc, err := v.get(ctx, s.timeout)
		if err != nil {
			c.Err = err
		} else {
			about := vc.Client.ServiceContent.About
			c.Detail = fmt.Sprintf("logged in as %s to %s; %s", v.cfg.Username, about.FullName, datacenters(v.cfg.Datacenters))
		}
		out = append(out, c)
	}
	for _, w := range s.sws {
		for i := range w.cfg.Hosts {
			out = append(out, w.check(ctx, i, s.timeout))
		}
	}
	return out
}

func datacenters(names []string) string {
	if len(names) == 0 {
		return "every datacenter"
	}
	return "datacenters " + strings.Join(names, ", ")
}

// check asks manager i of the swarm whether it is a manager.
func (s *SwarmSource) check(ctx context.Context, i int, timeout time.Duration) SourceCheck {
	c := SourceCheck{Source: s.label}
	cli, err := s.clientFor(i, timeout)
	if err != nil {
		c.Err = &collect.SourceError{Source: s.label, Err: &ClientError{Err: err}}
		return c
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m, err := swarm.CheckManager(cctx, cli)
	if err != nil {
		c.Err = &collect.SourceError{Source: s.label, Err: err}
		return c
	}
	c.Detail = fmt.Sprintf("%s is a manager (%s, engine %s) of cluster %s", m.Endpoint, m.Name, m.EngineVersion, m.ClusterID)
	return c
}
