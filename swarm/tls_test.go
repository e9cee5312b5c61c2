package swarm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/internal/contexttest"
)

// TestNewClientTLS: a config-file swarm with an MKE-style bundle directory.
// The server demands the bundle's client certificate; tls_verify decides
// whether the server's own certificate is checked against ca.pem.
func TestNewClientTLS(t *testing.T) {
	srvCert, srvKey := contexttest.SelfSigned(t, "manager")
	cliCert, cliKey := contexttest.SelfSigned(t, "admin")
	pair, err := tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AppendCertsFromPEM(cliCert)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/version") {
			w.Write([]byte(`{"ApiVersion":"1.41","Version":"20.10.24"}`))
			return
		}
		w.Write([]byte("OK"))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	srv.StartTLS()
	defer srv.Close()
	host := "tcp://" + srv.Listener.Addr().String()

	bundle := func(ca []byte) string {
		dir := t.TempDir()
		for name, b := range map[string][]byte{"ca.pem": ca, "cert.pem": cliCert, "key.pem": cliKey} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	otherCA, _ := contexttest.SelfSigned(t, "some other CA")
	ping := func(verify bool, dir string) error {
		cli, err := NewClientTLS(host, verify, dir, 10*time.Second)
		if err != nil {
			return err
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		v, err := cli.ServerVersion(ctx)
		if err == nil && v.APIVersion != "1.41" {
			t.Errorf("version %+v", v)
		}
		return err
	}
	if err := ping(true, bundle(srvCert)); err != nil {
		t.Errorf("tls_verify with the right CA: %v", err)
	}
	if err := ping(false, bundle(otherCA)); err != nil {
		t.Errorf("without tls_verify the server certificate is not checked: %v", err)
	}
	err = ping(true, bundle(otherCA))
	if err == nil {
		t.Fatal("tls_verify with the wrong CA connected")
	}
	if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), string(cliKey[30:60])) {
		t.Errorf("error leaks key material: %v", err)
	}
	// No client certificate at all: the server refuses.
	if err := ping(false, ""); err == nil {
		t.Error("no client certificate, yet connected")
	}
	if _, err := NewClientTLS(host, true, t.TempDir(), 10*time.Second); err == nil || !strings.Contains(err.Error(), "ca.pem") {
		t.Errorf("empty bundle dir: %v", err)
	}
}
