package swarm

import (
	"context"
	"fmt"

	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
)

// Manager is what a swarm manager says of itself.
type Manager struct {
	Endpoint      string // the host, without credentials
	Name          string // the engine's host name
	ClusterID     string
	EngineVersion string
}

// CheckManager asks the engine cli talks to whether it is a swarm manager
// (docker info; read only) and says which cluster it manages. Its errors
// are Observe's: one line naming the host; IsNotManager for a worker or an
// engine outside a swarm.
func CheckManager(ctx context.Context, cli client.APIClient) (Manager, error) {
	host := cli.DaemonHost()
	info, err := cli.Info(ctx)
	if err != nil {
		return Manager{}, newHostError(host, "docker info", err)
	}
	id, err := managerCluster(ctx, cli, info)
	if err != nil {
		return Manager{}, err
	}
	return Manager{Endpoint: RedactHost(host), Name: info.Name, ClusterID: id, EngineVersion: info.ServerVersion}, nil
}

// managerCluster returns the cluster ID of the manager whose docker info is
// info, or an error wrapping errNotManager.
func managerCluster(ctx context.Context, cli client.APIClient, info system.Info) (string, error) {
	host := cli.DaemonHost()
	if info.Swarm.LocalNodeState != swarm.LocalNodeStateActive || !info.Swarm.ControlAvailable {
		role := "a worker"
		if info.Swarm.LocalNodeState != swarm.LocalNodeStateActive {
			role = fmt.Sprintf("swarm state %q", info.Swarm.LocalNodeState)
		}
		return "", fmt.Errorf("docker host %s (%s) is %w (%s): point -H at a manager",
			RedactHost(host), info.Name, errNotManager, role)
	}
	if info.Swarm.Cluster != nil {
		return info.Swarm.Cluster.ID, nil
	}
	sw, err := cli.SwarmInspect(ctx)
	if err != nil {
		return "", newHostError(host, "swarm inspect", err)
	}
	return sw.ID, nil
}
