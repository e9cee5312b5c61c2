package swarm

import (
	"fmt"
	"path/filepath"

	"github.com/docker/docker/client"
)

// NewClientTLS returns a client for one manager of the config file: host, and
// the TLS files of certPath (ca.pem, cert.pem, key.pem — an MKE client bundle),
// which are used whenever certPath is set; tlsVerify also checks the server's
// certificate against ca.pem, as DOCKER_TLS_VERIFY does. The environment is
// not consulted: the config file says everything.
func NewClientTLS(host string, tlsVerify bool, certPath string) (*client.Client, error) {
	if err := ValidateHost(host); err != nil {
		return nil, err
	}
	opts := []client.Opt{client.WithHost(host), client.WithAPIVersionNegotiation()}
	if certPath != "" {
		ca := ""
		if tlsVerify {
			ca = filepath.Join(certPath, "ca.pem")
		}
		opts = append(opts, client.WithTLSClientConfig(ca, filepath.Join(certPath, "cert.pem"), filepath.Join(certPath, "key.pem")))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %s: %s", RedactHost(host), scrub(err, host))
	}
	return cli, nil
}
