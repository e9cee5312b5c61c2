package guesttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// Kubelet file locations, as kubeadm lays them out.
const (
	KubeletClientPEM = "/var/lib/kubelet/pki/kubelet-client-current.pem"
	KubeletConf      = "/etc/kubernetes/kubelet.conf"
)

// KubeletRunning is the unit state of a Kubernetes node whose kubelet starts
// at boot and runs.
var KubeletRunning = map[string]Unit{"kubelet.service": {Enabled: "enabled", Active: "active"}}

// KubeletClientCert returns a kubelet client certificate file as the
// kubelet's certificate manager writes kubelet-client-current.pem: the
// certificate (CN "system:node:NODE", O "system:nodes", client auth), signed
// by a throwaway cluster CA, followed by its EC private key. Also returned:
// the PEM of the certificate alone, and of the private key alone (tests
// assert the key never leaves the guest).
func KubeletClientCert(t testing.TB, node string, notAfter time.Time) (file, certPEM, keyPEM string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
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
		Subject:      pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	return certPEM + keyPEM, certPEM, keyPEM
}

// KubeletConfig returns /etc/kubernetes/kubelet.conf as kubeadm writes it
// for a joined node: the API server, and the client credentials in the
// rotating certificate file. With embedded (not empty) the client
// certificate and key are embedded instead (client-certificate-data and
// client-key-data), as older kubeadm wrote it on control-plane nodes.
func KubeletConfig(server string, embedded ...string) string {
	user := "    client-certificate: " + KubeletClientPEM + "\n    client-key: " + KubeletClientPEM + "\n"
	if len(embedded) == 2 {
		user = "    client-certificate-data: " + base64.StdEncoding.EncodeToString([]byte(embedded[0])) +
			"\n    client-key-data: " + base64.StdEncoding.EncodeToString([]byte(embedded[1])) + "\n"
	}
	return `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
    server: ` + server + `
  name: default-cluster
contexts:
- context:
    cluster: default-cluster
    namespace: default
    user: default-auth
  name: default-context
current-context: default-context
kind: Config
preferences: {}
users:
- name: default-auth
  user:
` + user
}

// KubeletFiles returns the guest files of a joined kubeadm node named node
// of the cluster at server (VMSpec.Files): the client certificate file
// (mode 0600, as the kubelet writes it) and kubelet.conf. The key PEM is
// returned too.
func KubeletFiles(t testing.TB, node, server string, notAfter time.Time) (files map[string]string, modes map[string]int64, keyPEM string) {
	t.Helper()
	file, _, key := KubeletClientCert(t, node, notAfter)
	return map[string]string{KubeletClientPEM: file, KubeletConf: KubeletConfig(server)},
		map[string]int64{KubeletClientPEM: 0o600, KubeletConf: 0o600}, key
}
