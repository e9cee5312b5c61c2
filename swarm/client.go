// Package swarm observes a Docker Swarm through one of its managers.
//
// A cloned worker VM that boots with the original's /var/lib/docker/swarm
// state connects to the manager as the same node ID. The manager keeps
// whichever session registered last, so the node's description (hostname,
// CPUs, memory, address) flips back and forth every few seconds, and every
// flip is a node "update" event carrying the hostname of the moment. One
// NodeList call sees only one side; this package therefore observes: it
// replays the manager's recent node events, samples NodeList across a window
// while following live events, and reports every identity each node ID
// presented, with a timeline of the flips (see Observe and BuildNodes).
package swarm

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/docker/docker/client"
)

// ValidateHost checks that host is a Docker endpoint this tool can dial:
// unix:///absolute/path or tcp://host:port. ssh:// (which the docker CLI
// implements by running ssh, outside the API client) is rejected explicitly.
func ValidateHost(host string) error {
	bad := func(why string) error {
		return fmt.Errorf("invalid docker host %q: %s; expected unix:///path/to/docker.sock or tcp://host:port (ssh:// is not supported)",
			RedactHost(host), why)
	}
	scheme, rest, ok := strings.Cut(host, "://")
	if !ok {
		return bad("missing scheme")
	}
	if l := strings.ToLower(scheme); l != scheme && (l == "unix" || l == "tcp") {
		// The API client takes the scheme as it is: "TCP" is no network.
		return bad(fmt.Sprintf("scheme %q must be lower case", scheme))
	}
	switch strings.ToLower(scheme) {
	case "unix":
		if !path.IsAbs(rest) {
			return bad("unix socket path must be absolute")
		}
		return nil
	case "tcp":
		// Parse as the API client does (client.ParseHostURL), which then
		// dials the URL's host: an unparsable URL or a port that is not a
		// number would only fail at the first call.
		u, err := url.Parse("tcp://" + rest)
		if err != nil {
			return bad("tcp needs host:port")
		}
		h, port, err := net.SplitHostPort(u.Host)
		if err != nil || h == "" || port == "" {
			return bad("tcp needs host:port")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("the port must be a number from 1 to 65535")
		}
		return nil
	case "ssh":
		return fmt.Errorf("invalid docker host %q: ssh needs the docker CLI's ssh helper, and ssh:// is not supported "+
			"(fix: a tcp://host:port endpoint with TLS, or an SSH tunnel: ssh -NL /tmp/mgr.sock:/var/run/docker.sock USER@HOST, then unix:///tmp/mgr.sock)",
			RedactHost(host))
	default:
		return bad(fmt.Sprintf("unsupported scheme %q", scheme))
	}
}

// RedactHost returns host without user info, query or fragment, so that it
// can be logged and stored (reconcile.Swarm.Endpoint): tcp://u:p@h:2376/x?t=1
// becomes tcp://h:2376/x.
func RedactHost(host string) string {
	scheme, rest, ok := strings.Cut(host, "://")
	if !ok {
		// Not a URL; still drop anything that looks like user info.
		if i := strings.LastIndex(host, "@"); i >= 0 {
			return host[i+1:]
		}
		return host
	}
	rest, _, _ = strings.Cut(rest, "?")
	rest, _, _ = strings.Cut(rest, "#")
	authority, p, hasPath := strings.Cut(rest, "/")
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		authority = authority[i+1:]
	}
	if hasPath {
		return scheme + "://" + authority + "/" + p
	}
	return scheme + "://" + authority
}

// scrub renders err on one line with the user info of the raw host (which
// may carry credentials) removed wherever it appears.
func scrub(err error, host string) string {
	msg := err.Error()
	if host != "" {
		if r := RedactHost(host); r != host {
			msg = strings.ReplaceAll(msg, host, r)
		}
		if _, rest, ok := strings.Cut(host, "://"); ok {
			authority, _, _ := strings.Cut(rest, "/")
			if i := strings.LastIndex(authority, "@"); i >= 0 {
				msg = strings.ReplaceAll(msg, authority[:i+1], "")
			}
		}
	}
	return strings.Join(strings.Fields(msg), " ")
}

// hostError is an API error rendered on one line, naming the redacted host.
// It unwraps to the original error so that errors.Is(err, context.Canceled)
// and client.IsErrConnectionFailed still work; its message is scrubbed.
type hostError struct {
	msg string
	err error
}

func (e *hostError) Error() string { return e.msg }
func (e *hostError) Unwrap() error { return e.err }

// newHostError describes err from doing what against host; a connection
// failure says so plainly, as the one line an operator needs.
func newHostError(host, what string, err error) error {
	if client.IsErrConnectionFailed(err) {
		cause := scrub(err, host)
		if strings.HasPrefix(cause, "Cannot connect to the Docker daemon") {
			// The client's own wording repeats the host and hides the cause.
			cause = "no daemon answers there (is dockerd running, and the address and port right?)"
		}
		return &hostError{fmt.Sprintf("cannot connect to docker host %s: %s", RedactHost(host), cause), err}
	}
	return &hostError{fmt.Sprintf("%s on docker host %s: %s", what, RedactHost(host), scrub(err, host)), err}
}
