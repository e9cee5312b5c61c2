package swarm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidateHost(t *testing.T) {
	for _, ok := range []string{
		"unix:///var/run/docker.sock",
		"tcp://10.0.0.1:2376",
		"tcp://ucp.example.com:443",
		"tcp://[fd00::1]:2376",
		"tcp://user:pw@10.0.0.1:2376",
	} {
		if err := ValidateHost(ok); err != nil {
			t.Errorf("ValidateHost(%q) = %v, want ok", ok, err)
		}
	}
	for host, why := range map[string]string{
		"10.0.0.1:2376":               "missing scheme",
		"ssh://admin@mgr":             "ssh needs the docker CLI",
		"http://10.0.0.1:2375":        `unsupported scheme "http"`,
		"tcp://10.0.0.1":              "tcp needs host:port",
		"unix://run/docker.sock":      "must be absolute",
		"tcp://user:s3cret@mgr.local": "tcp needs host:port",
		// The API client takes the scheme as it is and dials the parsed
		// URL's host: these failed only at the first call.
		"TCP://10.0.0.1:2376":            `scheme "TCP" must be lower case`,
		"tcp://mgr:docker":               "tcp needs host:port",
		"tcp://mgr:70000":                "the port must be a number from 1 to 65535",
		"tcp://mgr:0":                    "the port must be a number from 1 to 65535",
		"tcp://user:s3cret@mgr:2376 x/y": "tcp needs host:port",
	} {
		err := ValidateHost(host)
		if err == nil {
			t.Errorf("ValidateHost(%q) = nil, want an error", host)
			continue
		}
		msg := err.Error()
		for _, want := range []string{why, "unix:///", "tcp://host:port", "ssh:// is not supported"} {
			if !strings.Contains(msg, want) {
				t.Errorf("ValidateHost(%q) = %q: missing %q", host, msg, want)
			}
		}
		if strings.Contains(msg, "s3cret") {
			t.Errorf("ValidateHost(%q) leaks the password: %q", host, msg)
		}
	}
}

func TestRedactHost(t *testing.T) {
	for in, want := range map[string]string{
		"unix:///var/run/docker.sock":            "unix:///var/run/docker.sock",
		"tcp://10.0.0.1:2376":                    "tcp://10.0.0.1:2376",
		"tcp://admin:pw@10.0.0.1:2376":           "tcp://10.0.0.1:2376",
		"tcp://a:b@c@10.0.0.1:2376/base?tok=1#x": "tcp://10.0.0.1:2376/base",
		"admin:pw@10.0.0.1:2376":                 "10.0.0.1:2376",
	} {
		if got := RedactHost(in); got != want {
			t.Errorf("RedactHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewClientErrors(t *testing.T) {
	t.Setenv("DOCKER_TLS_VERIFY", "")
	t.Setenv("DOCKER_CERT_PATH", "")
	t.Setenv("DOCKER_API_VERSION", "")

	_, err := NewClientTLS("ssh://root:hunter2@mgr", false, "", time.Second)
	if err == nil || !strings.Contains(err.Error(), "ssh://mgr") {
		t.Errorf("bad host: %v; want an error naming the redacted value", err)
	}
	if err != nil && strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks the password: %v", err)
	}

	// A client bundle with a broken key: the error names files, never the
	// key's content.
	dir := t.TempDir()
	const secret = "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYMATERIAL\n-----END PRIVATE KEY-----\n"
	for _, f := range []string{"ca.pem", "cert.pem", "key.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(secret), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err = NewClientTLS("tcp://user:hunter2@10.0.0.1:2376", true, dir, time.Second)
	if err == nil {
		t.Fatal("NewClient with a garbage client bundle succeeded")
	}
	if msg := err.Error(); strings.Contains(msg, "TOPSECRET") || strings.Contains(msg, "hunter2") {
		t.Errorf("error leaks secrets: %q", msg)
	} else if !strings.Contains(msg, "tcp://10.0.0.1:2376") {
		t.Errorf("error %q does not name the host", msg)
	}
}

// TestObserveUnreachable checks the one-line error for a host nobody listens
// on, with credentials scrubbed.
func TestObserveUnreachable(t *testing.T) {
	t.Setenv("DOCKER_TLS_VERIFY", "")
	t.Setenv("DOCKER_CERT_PATH", "")
	t.Setenv("DOCKER_API_VERSION", "")
	sock := filepath.Join(t.TempDir(), "nobody.sock")
	for _, host := range []string{"unix://" + sock, "tcp://admin:hunter2@127.0.0.1:1"} {
		cli, err := NewClientTLS(host, false, "", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err = Observe(ctx, cli, ObserveOptions{})
		cancel()
		if err == nil {
			t.Fatalf("Observe(%s) succeeded", RedactHost(host))
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "cannot connect to docker host "+RedactHost(host)+": ") || strings.Contains(msg, "\n") {
			t.Errorf("Observe(%s) error %q: want one line naming the host", RedactHost(host), msg)
		}
		if strings.Contains(msg, "hunter2") || strings.Contains(msg, "admin") {
			t.Errorf("error leaks credentials: %q", msg)
		}
	}
}
