package swarm

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

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
//
// timeout bounds connecting, the TLS handshake and the wait for a response's
// headers, so that a manager that accepts the connection but never answers
// fails the call instead of holding it forever (0: 30 s).
func NewClientTLS(host string, tlsVerify bool, certPath string, timeout time.Duration) (*client.Client, error) {
	if err := ValidateHost(host); err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		IdleConnTimeout:       90 * time.Second,
	}
	if certPath != "" {
		tc, err := tlsconfig.Client(tlsconfig.Options{
			CAFile:             filepath.Join(certPath, "ca.pem"),
			CertFile:           filepath.Join(certPath, "cert.pem"),
			KeyFile:            filepath.Join(certPath, "key.pem"),
			InsecureSkipVerify: !tlsVerify,
		})
		if err != nil {
			// tlsconfig names the files, never their content.
			return nil, fmt.Errorf("docker TLS files in %s for %s: %s", certPath, RedactHost(host), scrub(err, host))
		}
		tr.TLSClientConfig = tc
	}
	// The HTTP client before WithHost, which configures its transport for
	// the host's scheme (unix socket, tcp).
	opts := []client.Opt{client.WithHTTPClient(&http.Client{Transport: tr}), client.WithHost(host), client.WithAPIVersionNegotiation()}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %s: %s", RedactHost(host), scrub(err, host))
	}
	return cli, nil
}
