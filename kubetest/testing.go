package kubetest

import (
	"os"
	"testing"
	"time"
)

// Require skips the test when a server cannot run here (see Check) or with
// -short. Under CI (env CI=true) a missing prerequisite fails the test
// instead: a CI job that silently skips its only real-API-server coverage is
// worse than a red one.
func Require(t testing.TB) {
	t.Helper()
	err := Check(Options{})
	if err == nil {
		if testing.Short() {
			t.Skip("kubetest: the real kube-apiserver is skipped with -short")
		}
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%v\nCI=true: real-API-server tests must run in CI; run scripts/kube-apiserver and install etcd-server on the runner instead of skipping", err)
	}
	t.Skipf("%v (skipping real-API-server test)", err)
}

// NewServer calls Require, starts a server and registers its Close with
// t.Cleanup. It fails the test, with the log tail, when the server does not
// come up.
func NewServer(t testing.TB, opts Options) *Server {
	t.Helper()
	Require(t)
	s, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("kubetest cleanup: %v", err)
		}
	})
	return s
}

// Agent starts a test agent (not a real kubelet; see Agent) writing through
// an admin client of s, and stops it at the end of the test.
func (s *Server) Agent(t testing.TB, opts AgentOptions) *Agent {
	t.Helper()
	cs, err := s.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	a, err := StartAgent(t.Context(), cs, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	return a
}

// Eventually polls cond every 100ms until it returns true, failing the test
// with what's description after timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
