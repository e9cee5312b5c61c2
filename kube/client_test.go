package kube

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const secretToken = "SECRET-TOKEN-must-not-print"

// kubeconfigFile writes a kubeconfig with one cluster/user/context per name
// (server https://NAME.example:6443) and current-context current.
func kubeconfigFile(t *testing.T, dir, file, current string, names ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Config\n")
	if current != "" {
		b.WriteString("current-context: " + current + "\n")
	}
	b.WriteString("clusters:\n")
	for _, n := range names {
		b.WriteString("- name: " + n + "\n  cluster:\n    server: https://" + n + ".example:6443\n")
	}
	b.WriteString("users:\n")
	for _, n := range names {
		b.WriteString("- name: " + n + "\n  user:\n    token: " + secretToken + "\n")
	}
	b.WriteString("contexts:\n")
	for _, n := range names {
		b.WriteString("- name: " + n + "\n  context:\n    cluster: " + n + "\n    user: " + n + "\n")
	}
	p := filepath.Join(dir, file)
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// isolate points HOME at an empty directory and clears the variables that
// select a cluster, so the machine's own configuration never leaks in.
func isolate(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	return home
}

func noSecret(t *testing.T, s string) {
	t.Helper()
	if strings.Contains(s, secretToken) {
		t.Errorf("output carries the token: %q", s)
	}
}

func TestNewClientKUBECONFIGList(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	a := kubeconfigFile(t, dir, "a.yaml", "", "alpha")
	b := kubeconfigFile(t, dir, "b.yaml", "beta", "beta")
	t.Setenv("KUBECONFIG", a+string(filepath.ListSeparator)+b)

	// current-context comes from the second file: kubectl merges the list.
	c, err := NewClient(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "beta" || c.Context() != "beta" || c.Server() != "beta.example:6443" {
		t.Errorf("client = %q %q %q, want beta from the second file", c.Name(), c.Context(), c.Server())
	}
	if got := c.String(); got != "kubernetes beta (beta.example:6443)" {
		t.Errorf("String() = %q", got)
	}

	// -context picks a context of the first file.
	c, err = NewClient(Options{Context: "alpha", Name: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Server() != "alpha.example:6443" || c.String() != "kubernetes prod (context alpha, alpha.example:6443)" {
		t.Errorf("with -context alpha: %q", c)
	}
	noSecret(t, c.String())
}

func TestNewClientExplicitPathOverridesKUBECONFIG(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	env := kubeconfigFile(t, dir, "env.yaml", "env", "env")
	explicit := kubeconfigFile(t, dir, "explicit.yaml", "mine", "mine")
	t.Setenv("KUBECONFIG", env)
	c, err := NewClient(Options{Kubeconfig: explicit})
	if err != nil {
		t.Fatal(err)
	}
	if c.Context() != "mine" || c.Server() != "mine.example:6443" {
		t.Errorf("explicit kubeconfig not used: %s", c)
	}
}

func TestNewClientHomeDefault(t *testing.T) {
	home := isolate(t)
	if err := os.MkdirAll(filepath.Join(home, ".kube"), 0o700); err != nil {
		t.Fatal(err)
	}
	kubeconfigFile(t, filepath.Join(home, ".kube"), "config", "home", "home")
	o := Options{}
	if o.Explicit() {
		t.Error("Options{} without KUBECONFIG is explicit")
	}
	c, err := NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	if c.Context() != "home" {
		t.Errorf("~/.kube/config not used: %s", c)
	}
}

func TestNewClientErrors(t *testing.T) {
	home := isolate(t)
	dir := t.TempDir()
	good := kubeconfigFile(t, dir, "good.yaml", "", "one")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("clusters: [\n  token: "+secretToken+"\n"), 0o600)
	cases := []struct {
		name string
		env  string
		opts Options
		want []string
	}{
		{"nothing configured", "", Options{}, []string{"no Kubernetes configuration", "KUBECONFIG unset", "~/.kube/config absent"}},
		{"missing file", "", Options{Kubeconfig: filepath.Join(dir, "nope")}, []string{"nope", "cannot read", "fix:"}},
		{"KUBECONFIG files missing", filepath.Join(dir, "x") + ":" + filepath.Join(dir, "y"), Options{}, []string{"KUBECONFIG=", "no such file", "fix:"}},
		{"no current context", "", Options{Kubeconfig: good}, []string{"no current-context", "-context"}},
		{"unknown context", "", Options{Kubeconfig: good, Context: "two"}, []string{`no context "two"`, "get-contexts"}},
		{"malformed", "", Options{Kubeconfig: bad}, []string{"bad.yaml", "fix:"}},
		{"in-cluster and kubeconfig", "", Options{InCluster: true, Kubeconfig: good}, []string{"excludes -kubeconfig"}},
		{"in-cluster outside a pod", "", Options{InCluster: true}, []string{"kubernetes in-cluster", "fix:"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tc.env)
			_, err := NewClient(tc.opts)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("multi-line error: %q", msg)
			}
			noSecret(t, msg)
			if got := IsNotConfigured(err); got != (tc.name == "nothing configured") {
				t.Errorf("IsNotConfigured = %v", got)
			}
		})
	}
	_ = home
}

func TestServerHostPort(t *testing.T) {
	for in, want := range map[string]string{
		"https://10.0.0.1:6443":           "10.0.0.1:6443",
		"https://api.example.com":         "api.example.com:443",
		"http://localhost":                "localhost:80",
		"https://u:pw@api.example/prefix": "api.example:443",
		"10.0.0.1:6443":                   "10.0.0.1:6443",
		"https://[fd00::1]:6443/x?y=z":    "[fd00::1]:6443",
	} {
		if got := serverHostPort(in); got != want {
			t.Errorf("serverHostPort(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOneLine(t *testing.T) {
	got := oneLine(errors.New("nodes \"a\x1b[31mb\" is forbidden:\n\tUser \"x\"\u0085 cannot"))
	if want := `nodes "a\x1b[31mb" is forbidden: User "x" cannot`; got != want {
		t.Errorf("oneLine = %q, want %q", got, want)
	}
}
