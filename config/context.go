package config

import (
	"fmt"

	"github.com/vmreconcile/vmreconcile/swarm"
)

// resolveContexts fills the hosts and TLS settings of every swarm that names
// a docker CLI context, from the context store of $DOCKER_CONFIG or
// ~/.docker, as `docker --context NAME` would connect.
func (c *Config) resolveContexts() error {
	for i := range c.Swarms {
		sw := &c.Swarms[i]
		if sw.Context == "" {
			continue
		}
		key := fmt.Sprintf("swarms[%d]", i)
		if len(sw.Hosts) > 0 || sw.CertPath != "" || sw.TLSVerify {
			return &Error{Key: key + ".context", Msg: fmt.Sprintf("context %q and hosts, tls_verify or cert_path are both set (fix: keep either the context or the hosts and TLS keys)", sw.Context)}
		}
		dir, err := swarm.DockerConfigDir()
		if err != nil {
			return &Error{Key: key + ".context", Msg: err.Error()}
		}
		resolved, err := SwarmFromContext(dir, sw.Context)
		if err != nil {
			return &Error{Key: key + ".context", Msg: err.Error()}
		}
		resolved.Name = sw.Name
		if resolved.Name == "" {
			resolved.Name = sw.Context // logs, metrics and /readyz say "swarm CONTEXT"
		}
		*sw = resolved
	}
	return nil
}

// SwarmFromContext is the swarm a docker CLI context points at: its host,
// and its TLS files as cert_path (tls_verify unless the context skips
// verification). The default context is the local socket. The swarm's
// Context is the context's name.
func SwarmFromContext(dir, name string) (Swarm, error) {
	dc, err := swarm.LoadContext(dir, name)
	if err != nil {
		return Swarm{}, err
	}
	host := dc.Host
	if host == "" {
		host = DefaultDockerHost
	}
	sw := Swarm{Hosts: []string{host}, Context: name}
	if dc.TLSDir != "" {
		if err := ValidateCertPath(dc.TLSDir); err != nil {
			return Swarm{}, fmt.Errorf("docker context %q: %s", name, err)
		}
		sw.CertPath, sw.TLSVerify = dc.TLSDir, !dc.SkipTLSVerify
	}
	return sw, nil
}

// DefaultDockerHost is the local engine's socket, the docker CLI's default.
const DefaultDockerHost = "unix:///var/run/docker.sock"
