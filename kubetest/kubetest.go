// Package kubetest runs a real Kubernetes API server for tests: Debian's etcd
// (etcd-server) and a kube-apiserver built from k8s.io/kubernetes by
// scripts/kube-apiserver, on free 127.0.0.1 ports with a temporary
// directory, and writes a kubeconfig for it.
//
// Nodes are written by test agents (see Agent), which write Node status as
// kubelet's node-status loop does. They are test agents, not real kubelets:
// no pods, no container runtime, no lease.
//
// The core API (Start, Server.Close, StartAgent) returns errors and works
// from any program; the testing.TB wrappers (Require, NewServer,
// Server.Agent) skip or fail the test and register cleanup with t.Cleanup.
package kubetest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// DefaultAPIServer is where scripts/kube-apiserver builds the binary.
const DefaultAPIServer = "/var/cache/vmreconcile/kube-v1.37.2/kube-apiserver"

// Options configures a server.
type Options struct {
	// APIServer is the kube-apiserver binary; default $KUBE_APISERVER, else
	// DefaultAPIServer.
	APIServer string
	// Etcd is the etcd binary; default $ETCD, else etcd from PATH.
	Etcd string
	// BaseDir is the parent of the server's temporary directory; default
	// os.TempDir().
	BaseDir string
	// ReadyTimeout bounds how long etcd and then the API server may take to
	// become ready; default 90s (a loaded two-core machine is slow).
	ReadyTimeout time.Duration
	// ExtraArgs are appended to the kube-apiserver command line.
	ExtraArgs []string
}

func (o *Options) defaults() {
	if o.APIServer == "" {
		o.APIServer = os.Getenv("KUBE_APISERVER")
	}
	if o.APIServer == "" {
		o.APIServer = DefaultAPIServer
	}
	if o.Etcd == "" {
		o.Etcd = os.Getenv("ETCD")
	}
	if o.Etcd == "" {
		o.Etcd = "etcd"
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 90 * time.Second
	}
}

// Server is a running etcd and kube-apiserver.
type Server struct {
	// URL is the API server's https URL.
	URL string
	// Kubeconfig is a kubeconfig file for it (context Context, token auth,
	// the server's own CA).
	Kubeconfig string
	// Context is the kubeconfig's only context, "kubetest".
	Context string
	// Token authenticates as a member of system:masters.
	Token string
	// Dir is the server's temporary directory (data, certificates, logs);
	// Close removes it.
	Dir string
	// EtcdURL is etcd's client URL (http://127.0.0.1:PORT).
	EtcdURL string

	etcd, apiserver *process
}

// Check reports why a server cannot be started here (a binary missing), or
// nil when it can.
func Check(opts Options) error {
	opts.defaults()
	if _, err := os.Stat(opts.APIServer); err != nil {
		return fmt.Errorf("kubetest: no kube-apiserver at %s (build it once with scripts/kube-apiserver, or set KUBE_APISERVER)", opts.APIServer)
	}
	if _, err := exec.LookPath(opts.Etcd); err != nil {
		return fmt.Errorf("kubetest: no etcd (%s) in PATH (apt-get install etcd-server, or set ETCD)", opts.Etcd)
	}
	if !supported {
		return errors.New("kubetest: needs Linux")
	}
	return nil
}

// Start starts etcd and the API server and waits until /readyz answers ok.
// On error everything already started is stopped and removed again; the
// error carries the tail of the failing process's log. The caller owns the
// Server and must Close it.
func Start(ctx context.Context, opts Options) (_ *Server, err error) {
	opts.defaults()
	if err := Check(opts); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(opts.BaseDir, "kubetest-")
	if err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	s := &Server{Dir: dir, Context: "kubetest"}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
		}
	}()
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	s.EtcdURL = "http://127.0.0.1:" + strconv.Itoa(ports[0])
	if err := s.startEtcd(ctx, opts, s.EtcdURL, ports[1]); err != nil {
		return nil, err
	}
	s.URL = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	if err := s.startAPIServer(ctx, opts, s.EtcdURL, ports[2]); err != nil {
		return nil, err
	}
	if err := s.writeKubeconfig(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) startEtcd(ctx context.Context, opts Options, clientURL string, peerPort int) error {
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	p, err := startProcess(opts.Etcd, filepath.Join(s.Dir, "etcd.log"),
		"--name", "kubetest", "--data-dir", filepath.Join(s.Dir, "etcd"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "kubetest="+peerURL,
		"--logger", "zap", "--log-outputs", "stderr")
	if err != nil {
		return err
	}
	s.etcd = p
	err = waitReady(ctx, p, opts.ReadyTimeout, func(c *http.Client) bool {
		resp, err := c.Get(clientURL + "/health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if err != nil {
		return fmt.Errorf("kubetest: etcd: %w%s", err, p.logTail())
	}
	return nil
}

func (s *Server) startAPIServer(ctx context.Context, opts Options, etcdURL string, port int) error {
	key := filepath.Join(s.Dir, "sa.key")
	if err := writeRSAKey(key); err != nil {
		return err
	}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return fmt.Errorf("kubetest: token: %w", err)
	}
	s.Token = hex.EncodeToString(tok)
	tokens := filepath.Join(s.Dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(s.Token+",kubetest-admin,kubetest-admin,system:masters\n"), 0o600); err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	args := []string{
		"--etcd-servers", etcdURL,
		"--secure-port", strconv.Itoa(port), "--bind-address", "127.0.0.1",
		"--cert-dir", filepath.Join(s.Dir, "certs"),
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", key, "--service-account-signing-key-file", key,
		"--token-auth-file", tokens, "--authorization-mode", "AlwaysAllow",
		"--service-cluster-ip-range", "10.96.0.0/16",
	}
	p, err := startProcess(opts.APIServer, filepath.Join(s.Dir, "apiserver.log"), append(args, opts.ExtraArgs...)...)
	if err != nil {
		return err
	}
	s.apiserver = p
	err = waitReady(ctx, p, opts.ReadyTimeout, func(c *http.Client) bool {
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+s.Token)
		resp, err := c.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if err != nil {
		return fmt.Errorf("kubetest: kube-apiserver: %w%s", err, p.logTail())
	}
	return nil
}

// writeKubeconfig writes Kubeconfig, trusting the server's self-signed
// certificate (the cert dir's apiserver.crt holds it and its CA).
func (s *Server) writeKubeconfig() error {
	ca, err := os.ReadFile(filepath.Join(s.Dir, "certs", "apiserver.crt"))
	if err != nil {
		return fmt.Errorf("kubetest: the API server's certificate: %w", err)
	}
	cfg := clientcmdConfig(s.URL, s.Context, s.Token, ca)
	s.Kubeconfig = filepath.Join(s.Dir, "kubeconfig")
	if err := clientcmd.WriteToFile(cfg, s.Kubeconfig); err != nil {
		return fmt.Errorf("kubetest: write kubeconfig: %w", err)
	}
	return nil
}

// RESTConfig returns a client config for the server (the kubeconfig's).
func (s *Server) RESTConfig() (*rest.Config, error) {
	return clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
}

// Clientset returns an admin client for the server.
func (s *Server) Clientset() (kubernetes.Interface, error) {
	cfg, err := s.RESTConfig()
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 30 * time.Second
	return kubernetes.NewForConfig(cfg)
}

// Close stops the API server and etcd and removes Dir.
func (s *Server) Close() error {
	var errs []error
	for _, p := range []*process{s.apiserver, s.etcd} {
		if p != nil {
			errs = append(errs, p.stop())
		}
	}
	s.apiserver, s.etcd = nil, nil
	if s.Dir != "" {
		errs = append(errs, os.RemoveAll(s.Dir))
	}
	return errors.Join(errs...)
}

// waitReady polls ready until it returns true, the process exits, or
// timeout passes.
func waitReady(ctx context.Context, p *process, timeout time.Duration, ready func(*http.Client) bool) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // readiness only; clients verify
	}}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for {
		if ready(c) {
			return nil
		}
		if p.exited() {
			return errors.New("exited before it was ready")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("kubetest: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func writeRSAKey(path string) error {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("kubetest: service account key: %w", err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	return os.WriteFile(path, b, 0o600)
}

// process is a started binary with its log file.
type process struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startProcess(bin, logPath string, args ...string) (*process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if a := goarchForEtcd(); a != "amd64" {
		cmd.Env = append(os.Environ(), "ETCD_UNSUPPORTED_ARCH="+a)
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("kubetest: start %s: %w", filepath.Base(bin), err)
	}
	p := &process{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, and SIGKILL after 10 seconds.
func (p *process) stop() error {
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(sigterm)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("kubetest: %s (pid %d) does not exit", filepath.Base(p.cmd.Path), p.cmd.Process.Pid)
	}
}

// logTail returns the last lines of the process's log, for errors.
func (p *process) logTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "\n--- " + filepath.Base(p.log) + " (tail) ---\n" + strings.Join(lines, "\n")
}
