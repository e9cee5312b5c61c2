package swarm

import (
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/docker/docker/client"
	"github.com/docker/go-connections/tlsconfig"
)

// NewClientTLS returns a client for one manager of the config file: host, and
// the TLS files of certPath (ca.pem, cert.pem, key.pem — an MKE client bundle)
// when certPath is set. tlsVerify checks the server's certificate against
// ca.pem, as DOCKER_TLS_VERIFY does; without it the client certificate is
// still presented but the server's is not verified (the docker CLI's
// DOCKER_CERT_PATH without DOCKER_TLS_VERIFY). The environment is not
// consulted: the config file says everything.
func NewClientTLS(host string, tlsVerify bool, certPath string) (*client.Client, error) {
	if err := ValidateHost(host); err != nil {
		return nil, err
	}
	var opts []client.Opt
	if certPath != "" {
		tc, err := tlsconfig.Client(tlsconfig.Options{
			CAFile:             filepath.Join(certPath, "ca.pem"),
			CertFile:           filepath.Join(certPath, "cert.pem"),
			KeyFile:            filepath.Join(certPath, "key.pem"),
			InsecureSkipVerify: !tlsVerify,
		})
		if err != nil {
			// tlsconfig names the files, never their content.
			return nil, fmt.Errorf("docker TLS files in %s: %s", certPath, scrub(err, host))
		}
		// Before WithHost, which configures this transport for the host's scheme.
		opts = append(opts, client.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: tc}}))
	}
	opts = append(opts, client.WithHost(host), client.WithAPIVersionNegotiation())
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %s: %s", RedactHost(host), scrub(err, host))
	}
	return cli, nil
}
