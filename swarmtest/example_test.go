package swarmtest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/docker/docker/api/types/swarm"
	"github.com/vmreconcile/vmreconcile/swarmtest"
)

// A test that needs a swarm whose worker has been cloned. NewCluster skips
// the test without root or dockerd (and fails it under CI=true); everything
// is torn down by t.Cleanup.
func ExampleNewCluster() {
	var t *testing.T // the test's *testing.T
	c := swarmtest.NewCluster(t, swarmtest.Options{Workers: []swarmtest.EngineOptions{{Hostname: "wk"}}})
	c.Clone(t, c.Workers[0], "clone", true) // same node ID, 1 CPU, hostname "clone"
	nodes, err := c.Manager.Client().NodeList(t.Context(), swarm.NodeListOptions{})
	fmt.Println(len(nodes), err)
}

// A program that is not a test (a benchmark script) uses Run, which always
// cleans up.
func ExampleRun() {
	err := swarmtest.Run(context.Background(), swarmtest.Options{
		Workers: []swarmtest.EngineOptions{{Hostname: "wk1"}, {Hostname: "wk2", OneCPU: true}},
	}, func(c *swarmtest.Cluster) error {
		fmt.Println("manager at", c.Manager.Host, "worker IDs", c.Workers[0].NodeID, c.Workers[1].NodeID)
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
}
