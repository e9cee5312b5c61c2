package swarm

import (
	"net"
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/docker/client"
)

// FuzzValidateHost: a host ValidateHost accepts is one the Docker API client
// parses into a unix socket path or a tcp host and port it can dial; a
// rejected host gives one line that carries neither the URL's user info nor
// its query.
func FuzzValidateHost(f *testing.F) {
	for _, s := range []string{
		"unix:///var/run/docker.sock", "tcp://10.0.0.1:2376", "tcp://ucp.example.com:443", "tcp://[fd00::1]:2376",
		"tcp://user:pw@10.0.0.1:2376", "10.0.0.1:2376", "ssh://admin@mgr", "http://10.0.0.1:2375", "tcp://10.0.0.1",
		"unix://run/docker.sock", "tcp://user:s3cret@mgr.local", "tcp://mgr:2376/base?token=s3cret#frag",
		"tcp://manager-1.example.com:2376", // contrib/vmreconcile.example.yaml
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		err := ValidateHost(host)
		if err != nil {
			msg := err.Error()
			if strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("error is not one line: %q", msg)
			}
			if _, rest, ok := strings.Cut(host, "://"); ok {
				authority, _, _ := strings.Cut(rest, "/")
				authority, _, _ = strings.Cut(authority, "?")
				if i := strings.LastIndex(authority, "@"); i >= 4 && strings.Count(host, authority[:i]) == 1 &&
					strings.Contains(msg, authority[:i]) {
					t.Fatalf("error carries the user info %q: %q", authority[:i], msg)
				}
				// The query leaks when the error holds it more often than
				// the error for the same host without it does (the message's
				// own words may contain it: "?dock" and "docker").
				if _, q, ok := strings.Cut(rest, "?"); ok && len(q) >= 4 && strings.Count(host, q) == 1 && strings.Contains(msg, q) {
					without := ""
					if err := ValidateHost(strings.Replace(host, "?"+q, "", 1)); err != nil {
						without = err.Error()
					}
					if strings.Count(msg, q) > strings.Count(without, q) {
						t.Fatalf("error carries the query %q: %q", q, msg)
					}
				}
			}
			return
		}
		u, perr := client.ParseHostURL(host)
		if perr != nil {
			t.Fatalf("accepted %q, which the Docker client cannot parse: %v", host, perr)
		}
		switch u.Scheme {
		case "unix":
			if !path.IsAbs(u.Host) {
				t.Fatalf("accepted %q: socket path %q is not absolute", host, u.Host)
			}
		case "tcp":
			h, port, err := net.SplitHostPort(u.Host)
			if n, perr := strconv.Atoi(port); err != nil || h == "" || perr != nil || n < 1 || n > 65535 {
				t.Fatalf("accepted %q: the client would dial %q", host, u.Host)
			}
		default:
			t.Fatalf("accepted %q: the client's scheme is %q", host, u.Scheme)
		}
		if _, err := client.NewClientWithOpts(client.WithHost(host)); err != nil {
			t.Fatalf("accepted %q, which the Docker client refuses: %v", host, err)
		}
	})
}
