package swarm

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmreconcile/vmreconcile/internal/contexttest"
)

// writePEMs writes a client bundle (ca.pem, cert.pem, key.pem) into a new
// directory and returns it.
func writePEMs(t *testing.T) (dir string, ca, cert, key []byte) {
	t.Helper()
	ca, _ = contexttest.SelfSigned(t, "ca")
	cert, key = contexttest.SelfSigned(t, "client")
	dir = t.TempDir()
	for name, b := range map[string][]byte{"ca.pem": ca, "cert.pem": cert, "key.pem": key} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, ca, cert, key
}

// TestLoadContext reads a context store made by the real `docker context
// create`: endpoints, TLS files, currentContext, and the contexts it refuses
// (ssh://, partial TLS material) with the fix.
func TestLoadContext(t *testing.T) {
	store := t.TempDir()
	pems, ca, cert, key := writePEMs(t)
	p := func(f string) string { return filepath.Join(pems, f) }
	contexttest.DockerCLI(t, store, "context", "create", "plain", "--docker", "host=tcp://127.0.0.1:2375")
	contexttest.DockerCLI(t, store, "context", "create", "bundle", "--docker", "host=tcp://mgr.example.com:2376,ca="+p("ca.pem")+",cert="+p("cert.pem")+",key="+p("key.pem"))
	contexttest.DockerCLI(t, store, "context", "create", "insecure", "--docker", "host=tcp://mgr.example.com:2376,ca="+p("ca.pem")+",cert="+p("cert.pem")+",key="+p("key.pem")+",skip-tls-verify=true")
	contexttest.DockerCLI(t, store, "context", "create", "sock", "--docker", "host=unix:///run/other.sock")
	contexttest.DockerCLI(t, store, "context", "create", "caonly", "--docker", "host=tcp://mgr.example.com:2376,ca="+p("ca.pem"))
	contexttest.DockerCLI(t, store, "context", "create", "skipnofiles", "--docker", "host=tcp://mgr.example.com:2376,skip-tls-verify=true")
	contexttest.DockerCLI(t, store, "context", "create", "viassh", "--docker", "host=ssh://admin@mgr.example.com")

	if cur, err := CurrentContext(store); err != nil || cur != "" {
		t.Errorf("before `docker context use`: %q, %v; want none", cur, err)
	}
	contexttest.DockerCLI(t, store, "context", "use", "bundle")
	if cur, err := CurrentContext(store); err != nil || cur != "bundle" {
		t.Errorf("currentContext = %q, %v; want bundle", cur, err)
	}

	c, err := LoadContext(store, "plain")
	if err != nil || c.Host != "tcp://127.0.0.1:2375" || c.TLSDir != "" || c.SkipTLSVerify {
		t.Errorf("plain: %+v, %v", c, err)
	}
	c, err = LoadContext(store, "sock")
	if err != nil || c.Host != "unix:///run/other.sock" || c.TLSDir != "" {
		t.Errorf("sock: %+v, %v", c, err)
	}
	c, err = LoadContext(store, "bundle")
	if err != nil || c.Host != "tcp://mgr.example.com:2376" || c.SkipTLSVerify || c.TLSDir == "" {
		t.Fatalf("bundle: %+v, %v", c, err)
	}
	// The TLS directory holds the files given to `docker context create`, as
	// the DOCKER_CERT_PATH-style bundle NewClientTLS takes.
	for f, want := range map[string][]byte{"ca.pem": ca, "cert.pem": cert, "key.pem": key} {
		got, err := os.ReadFile(filepath.Join(c.TLSDir, f))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("bundle's %s in %s: %v (content differs: %v)", f, c.TLSDir, err, !bytes.Equal(got, want))
		}
	}
	if cli, err := NewClientTLS(c.Host, !c.SkipTLSVerify, c.TLSDir, 0); err != nil {
		t.Errorf("client from the bundle context: %v", err)
	} else {
		cli.Close()
	}
	c, err = LoadContext(store, "insecure")
	if err != nil || !c.SkipTLSVerify || c.TLSDir == "" {
		t.Errorf("skip-tls-verify with a bundle: %+v, %v", c, err)
	}
	if c, err := LoadContext(store, DefaultContextName); err != nil || c.Host != "" {
		t.Errorf("default: %+v, %v", c, err)
	}

	for name, want := range map[string][]string{
		"viassh":      {`docker context "viassh"`, "ssh://mgr.example.com", "tcp:// endpoint and TLS", "ssh -NL"},
		"caonly":      {`"caonly" has ca.pem but not cert.pem, key.pem`, "docker context update caonly"},
		"skipnofiles": {"skip-tls-verify without TLS files", "docker context update skipnofiles"},
		"nosuch":      {`docker context "nosuch" not found in ` + store, "docker context ls", "DOCKER_CONFIG"},
		"-bad":        {"not a valid context name"},
	} {
		_, err := LoadContext(store, name)
		if err == nil {
			t.Errorf("%s: loaded; want an error", name)
			continue
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", name, err, w)
			}
		}
		if strings.Contains(err.Error(), "admin@") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %q: user info or several lines", name, err)
		}
	}
}

func TestDockerConfigDir(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", "/etc/vmreconcile/docker")
	if d, err := DockerConfigDir(); err != nil || d != "/etc/vmreconcile/docker" {
		t.Errorf("DOCKER_CONFIG: %q, %v", d, err)
	}
	t.Setenv("DOCKER_CONFIG", "")
	t.Setenv("HOME", "/home/ops")
	if d, err := DockerConfigDir(); err != nil || d != "/home/ops/.docker" {
		t.Errorf("~/.docker: %q, %v", d, err)
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "config.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := CurrentContext(bad); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Errorf("broken config.json: %v", err)
	}
}
