package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmreconcile/vmreconcile/internal/contexttest"
	"github.com/vmreconcile/vmreconcile/internal/dockersim"
)

// tlsFront serves TLS on a loopback port, demands a client certificate
// signed by clientCA, and forwards to backend (host:port): a manager behind
// dockerd's --tlsverify. It returns the tcp:// host.
func tlsFront(t *testing.T, srvCert, srvKey, clientCA []byte, backend string) string {
	t.Helper()
	pair, err := tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(clientCA)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				b, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				defer b.Close()
				go io.Copy(b, c)
				io.Copy(c, b)
			}()
		}
	}()
	return "tcp://" + ln.Addr().String()
}

// newSim starts an Engine API simulator (a manager) of cluster clusterID.
func newSim(t *testing.T, clusterID string) *dockersim.Engine {
	t.Helper()
	sim := dockersim.New(dockersim.Options{ClusterID: clusterID, Self: dockersim.NodeSpec{Hostname: "mgr-" + clusterID}})
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

// TestDockerContexts: audit connects where the docker CLI would, through a
// context store made by the real `docker context create`: -context,
// DOCKER_CONTEXT and currentContext, a context's TLS client bundle (the
// manager refuses clients without it), the precedence -H/-context >
// DOCKER_HOST > DOCKER_CONTEXT > config swarms > currentContext, and a
// missing or ssh:// context refused with exit 2. Which manager answered is
// read from the report's cluster ID.
func TestDockerContexts(t *testing.T) {
	plain, secure, current := newSim(t, "clusterplain"), newSim(t, "clustersecure"), newSim(t, "clustercurrent")
	srvCert, srvKey := contexttest.SelfSigned(t, "manager")
	cliCert, cliKey := contexttest.SelfSigned(t, "admin")
	secureHost := tlsFront(t, srvCert, srvKey, cliCert, strings.TrimPrefix(secure.Host(), "tcp://"))

	pems := t.TempDir()
	for name, b := range map[string][]byte{"ca.pem": srvCert, "cert.pem": cliCert, "key.pem": cliKey} {
		writeCfg(t, pems, name, string(b))
	}
	store := t.TempDir()
	contexttest.DockerCLI(t, store, "context", "create", "plain", "--docker", "host="+plain.Host())
	contexttest.DockerCLI(t, store, "context", "create", "secure", "--docker", "host="+secureHost+",ca="+filepath.Join(pems, "ca.pem")+
		",cert="+filepath.Join(pems, "cert.pem")+",key="+filepath.Join(pems, "key.pem"))
	contexttest.DockerCLI(t, store, "context", "create", "current", "--docker", "host="+current.Host())
	contexttest.DockerCLI(t, store, "context", "create", "tunnel", "--docker", "host=ssh://ops@mgr.example.com")
	contexttest.DockerCLI(t, store, "context", "use", "current")
	cfgFile := writeCfg(t, t.TempDir(), "c.yaml", "swarms:\n  - context: plain\n")

	dc := "DOCKER_CONFIG=" + store
	cases := []struct {
		name    string
		env     []string
		args    []string
		cluster string
	}{
		{"currentContext", []string{dc}, nil, "clustercurrent"},
		{"DOCKER_CONTEXT", []string{dc, "DOCKER_CONTEXT=plain"}, nil, "clusterplain"},
		{"-context with a TLS bundle", []string{dc}, []string{"-context", "secure"}, "clustersecure"},
		{"-context over DOCKER_HOST, as docker", []string{dc, "DOCKER_HOST=" + plain.Host()}, []string{"-context", "secure"}, "clustersecure"},
		{"DOCKER_HOST over DOCKER_CONTEXT", []string{dc, "DOCKER_HOST=" + plain.Host(), "DOCKER_CONTEXT=secure"}, nil, "clusterplain"},
		{"-H over currentContext", []string{dc}, []string{"-H", plain.Host()}, "clusterplain"},
		{"config swarm's context over currentContext", []string{dc}, []string{"-config", cfgFile}, "clusterplain"},
		{"DOCKER_CONTEXT over the config's swarms", []string{dc, "DOCKER_CONTEXT=secure"}, []string{"-config", cfgFile}, "clustersecure"},
		{"-context default is DOCKER_HOST", []string{dc, "DOCKER_HOST=" + current.Host()}, []string{"-context", "default"}, "clustercurrent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runBin(t, tc.env, append([]string{"audit", "-json", "-lookback", "0"}, tc.args...)...)
			if r.code != ExitOK {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			res := decode(t, r)
			if len(res.Nodes) == 0 || res.Nodes[0].ClusterID != tc.cluster {
				t.Errorf("nodes %+v; want the manager of %s", res.Nodes, tc.cluster)
			}
		})
	}

	// The TLS context's manager refuses a client without the bundle: the
	// successful -context secure above did present it.
	if r := runBin(t, nil, "audit", "-json", "-H", secureHost); r.code == ExitOK {
		t.Errorf("the TLS front accepted a client without a certificate: %s", r.stdout)
	}

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"missing context", []string{dc, "DOCKER_CONTEXT=nosuch"}, nil, []string{"DOCKER_CONTEXT", `docker context "nosuch" not found`, "docker context ls"}},
		{"ssh context", []string{dc}, []string{"-context", "tunnel"}, []string{"-context", "ssh://mgr.example.com", "SSH tunnel", "ssh -NL"}},
		{"-H and -context", []string{dc}, []string{"-H", plain.Host(), "-context", "plain"}, []string{"-H and -context are both given", "fix:"}},
	} {
		r := runBin(t, tc.env, append([]string{"audit"}, tc.args...)...)
		if r.code != ExitUsage || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%s: exit %d, want 2 with one line: %q", tc.name, r.code, r.stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: %q lacks %q", tc.name, r.stderr, w)
			}
		}
		if strings.Contains(r.stderr, "ops@") {
			t.Errorf("%s: user info printed: %q", tc.name, r.stderr)
		}
	}
}
