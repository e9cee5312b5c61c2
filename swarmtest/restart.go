package swarmtest

import (
	"context"
	"errors"
	"testing"
)

// Restart kills e as Stop does (SIGKILL: a crash or a power loss, no
// graceful swarm shutdown) and starts a new dockerd on the same data root,
// exec root, socket and address, the way a VM reboots. It returns the new
// Engine once it answers /_ping and, when e was a swarm member, reports its
// swarm active again with the same node ID; e stays stopped. When e was the
// cluster's Manager, Manager becomes the new engine.
//
// A restarted manager keeps its raft state but loses its event history:
// what a client replays with `docker events --since` starts at the restart.
func (c *Cluster) Restart(ctx context.Context, e *Engine) (*Engine, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, errors.New("swarmtest: cluster is closed")
	}
	if err := e.Stop(); err != nil {
		return nil, err
	}
	n := &Engine{Name: e.Name, Host: e.Host, Dir: e.Dir, DataRoot: e.DataRoot, ExecRoot: e.ExecRoot, PIDFile: e.PIDFile,
		LogFile: e.LogFile, NodeID: e.NodeID, Addr: e.Addr, opts: e.opts, exited: make(chan struct{})}
	if err := c.launch(ctx, n); err != nil {
		return nil, err
	}
	if e.NodeID != "" {
		if err := n.awaitSwarmActive(ctx, c.opts.ReadyTimeout, e.NodeID); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	if c.Manager == e {
		c.Manager = n
	}
	c.mu.Unlock()
	return n, nil
}

// RestartT is Restart for tests: it fails the test when the engine does
// not come back.
func (c *Cluster) RestartT(t testing.TB, e *Engine) *Engine {
	t.Helper()
	n, err := c.Restart(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
