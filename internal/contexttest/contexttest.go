// Package contexttest helps the tests of Docker contexts and TLS client
// bundles (config, swarm, the command line): a self-signed certificate, and
// the real docker CLI run on a context store. It is test support only.
package contexttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// SelfSigned returns a self-signed certificate for 127.0.0.1 (usable as CA,
// server and client certificate) and its key, PEM-encoded.
func SelfSigned(t testing.TB, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// DockerCLI runs the real docker CLI with DOCKER_CONFIG=dir (the context
// store under test). It skips the test when the CLI is not installed, unless
// CI=true, where it fails.
func DockerCLI(t testing.TB, dir string, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("docker")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the docker CLI is needed (docker.io)")
		}
		t.Skip("no docker CLI (install docker.io)")
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"DOCKER_CONFIG=" + dir, "HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
