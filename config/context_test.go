package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmreconcile/vmreconcile/internal/contexttest"
)

// clientBundle writes ca.pem, cert.pem and key.pem (a valid key pair) into a
// new directory.
func clientBundle(t *testing.T) string {
	t.Helper()
	cert, key := contexttest.SelfSigned(t, "admin")
	dir := t.TempDir()
	for name, b := range map[string][]byte{"ca.pem": cert, "cert.pem": cert, "key.pem": key} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestSwarmContext: swarms[].context resolves through the docker CLI's
// context store ($DOCKER_CONFIG) into hosts and TLS; a context with hosts, a
// missing context and an ssh:// context are errors naming the key.
func TestSwarmContext(t *testing.T) {
	store := t.TempDir()
	b := clientBundle(t)
	contexttest.DockerCLI(t, store, "context", "create", "prod", "--docker", "host=tcp://mgr.example.com:2376,ca="+filepath.Join(b, "ca.pem")+
		",cert="+filepath.Join(b, "cert.pem")+",key="+filepath.Join(b, "key.pem"))
	contexttest.DockerCLI(t, store, "context", "create", "lab", "--docker", "host=tcp://10.0.0.5:2375")
	contexttest.DockerCLI(t, store, "context", "create", "tunnel", "--docker", "host=ssh://ops@mgr.example.com")
	t.Setenv("DOCKER_CONFIG", store)
	dir := t.TempDir()

	cfg, err := Load(write(t, dir, "ok.yaml", "swarms:\n  - context: prod\n  - name: lab-swarm\n    context: lab\n"))
	if err != nil {
		t.Fatal(err)
	}
	prod, lab := cfg.Swarms[0], cfg.Swarms[1]
	if prod.Name != "prod" || prod.Context != "prod" || len(prod.Hosts) != 1 || prod.Hosts[0] != "tcp://mgr.example.com:2376" ||
		!prod.TLSVerify || !strings.HasPrefix(prod.CertPath, filepath.Join(store, "contexts", "tls")) {
		t.Errorf("prod: %+v", prod)
	}
	if lab.Name != "lab-swarm" || lab.Hosts[0] != "tcp://10.0.0.5:2375" || lab.TLSVerify || lab.CertPath != "" {
		t.Errorf("lab (no TLS): %+v", lab)
	}
	// The effective configuration shows the contexts, with what they resolved to.
	y, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"- name: prod\n    context: prod # docker context: tcp://mgr.example.com:2376, TLS files in " + filepath.Join(store, "contexts", "tls"),
		"(tls_verify: true)\n",
		"- name: lab-swarm\n    context: lab # docker context: tcp://10.0.0.5:2375\n",
	} {
		if !strings.Contains(string(y), want) {
			t.Errorf("YAML lacks %q:\n%s", want, y)
		}
	}
	if strings.Contains(string(y), "hosts:") {
		t.Errorf("a context swarm shows hosts (context and hosts together do not load):\n%s", y)
	}
	// Resolved once: the daemon's second Validate accepts it.
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate after Load: %v", err)
	}

	for body, want := range map[string][]string{
		"swarms:\n  - context: prod\n    hosts: [\"tcp://x:2376\"]\n": {"swarms[0].context", "both set", "fix:"},
		"swarms:\n  - context: nosuch\n":                              {"swarms[0].context", `docker context "nosuch" not found`, "docker context ls"},
		"swarms:\n  - hosts: [\"tcp://a:1\"]\n  - context: tunnel\n":  {"swarms[1].context", "ssh://mgr.example.com", "SSH tunnel"},
	} {
		_, err := Load(write(t, dir, "bad.yaml", body))
		if err == nil {
			t.Errorf("%q loaded", body)
			continue
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: %q lacks %q", body, err, w)
			}
		}
	}
}
