package swarmtest

import (
	"os"
	"testing"
)

// Require skips the test when real engines cannot run here (see Check) or
// with -short. Under CI (env CI=true) a missing prerequisite fails the test
// instead: a CI job that silently skips its only real-swarm coverage is worse
// than a red one.
func Require(t testing.TB) {
	t.Helper()
	err := Check()
	if err == nil {
		if testing.Short() {
			t.Skip("swarmtest: real dockerd engines are skipped with -short")
		}
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%v\nCI=true: real-swarm tests must run in CI; fix the runner (root, docker.io, util-linux) instead of skipping", err)
	}
	t.Skipf("%v (skipping real-swarm test)", err)
}

// NewCluster calls Require, starts a cluster and registers its Close with
// t.Cleanup. It fails the test, with the dockerd log tail, when the cluster
// does not come up.
func NewCluster(t testing.TB, opts Options) *Cluster {
	t.Helper()
	Require(t)
	c, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("swarmtest cleanup: %v", err)
		}
	})
	return c
}

// Clone starts a clone of worker (see StartClone) and fails the test if it
// does not come up. The cluster's cleanup stops it.
func (c *Cluster) Clone(t testing.TB, worker *Engine, hostname string, oneCPU bool) *Engine {
	t.Helper()
	e, err := c.StartClone(t.Context(), worker, EngineOptions{Hostname: hostname, OneCPU: oneCPU})
	if err != nil {
		t.Fatal(err)
	}
	return e
}
