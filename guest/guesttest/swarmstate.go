package guesttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// NodeCert returns a swarm-node.crt as swarmkit writes it: the node
// certificate (CN = node ID, OU = role such as "swarm-worker", O = cluster ID),
// signed by a throwaway root CA, followed by that CA.
func NodeCert(t testing.TB, nodeID, role, clusterID string, notAfter time.Time) string {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "swarm-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: nodeID, OrganizationalUnit: []string{role}, Organization: []string{clusterID}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
}

// DockerRoot prepares a host directory to mount at /var/lib/docker in a
// container-backed VM: swarm/certificates/swarm-node.crt holding cert and an
// engine-id, each only when not empty.
func DockerRoot(t testing.TB, cert, engineID string) string {
	t.Helper()
	dir := t.TempDir()
	if cert != "" {
		p := filepath.Join(dir, "swarm", "certificates", "swarm-node.crt")
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(cert), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if engineID != "" {
		if err := os.WriteFile(filepath.Join(dir, "engine-id"), []byte(engineID+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
