package guest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vmreconcile/vmreconcile/internal/textsafe"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

// The seeds are the real probe script's output for several guest states
// (testdata/probe, made by scripts/gen-guest-fixtures) and swarmkit-shaped
// node certificates (testdata/*.crt).

func probeFixtures(tb testing.TB) map[string][]byte {
	tb.Helper()
	files, err := filepath.Glob("testdata/probe/*.txt")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no probe fixtures: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func certFixtures(tb testing.TB) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, f := range []string{"testdata/worker.crt", "testdata/manager.crt"} {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestProbeFixtures pins what the real probe output of each guest state
// parses to, so the seeds are known to be good reports.
func TestProbeFixtures(t *testing.T) {
	fx := probeFixtures(t)
	worker := reconcile.GuestIdentity{NodeID: "x1kq7bq9vbyt0sbxbivvv1i5o", Role: "swarm-worker", ClusterID: "4pk3s0fsbm2xzbpq9hfmlxw1n",
		CertNotAfter: time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)}
	manager := worker
	manager.NodeID, manager.Role = "9ua3d0xq2h0t9c7h0d5y9pj4x", "swarm-manager"
	want := map[string]struct {
		id     reconcile.GuestIdentity
		reason string
	}{
		"worker-b64.txt": {withFacts(worker, "0b1f6c1e-3c1a-4f5e-9a55-0e3b0e8d1c22", "3f1c2a9e0d6b4c8f9a7e5d3c1b0a9f8e", "wk-1-clone", "yes", "yes", func(g *reconcile.GuestIdentity) {
			g.SSHHostKeys, g.CloudInitInstance = true, "i-0abc123"
		}), ""},
		"manager-b64.txt": {withFacts(manager, "7d2e4b6a-1c3d-4e5f-8a9b-0c1d2e3f4a5b", "9a8b7c6d5e4f30211203f4e5d6c7b8a9", "mgr-1", "yes", "yes", func(g *reconcile.GuestIdentity) {
			g.KubeletCreds = true
		}), ""},
		"manager-pem.txt": {withFacts(manager, "7d2e4b6a-1c3d-4e5f-8a9b-0c1d2e3f4a5b", "9a8b7c6d5e4f30211203f4e5d6c7b8a9", "mgr-1", "yes", "yes", func(g *reconcile.GuestIdentity) {
			g.KubeletCreds = true
		}), ""},
		"clean.txt":                {withFacts(reconcile.GuestIdentity{}, "", "", "tmpl-ubuntu", "no", "no", nil), ""},
		"unprivileged.txt":         {reconcile.GuestIdentity{}, "swarm-node.crt not readable by the guest user (uid 1000; use root)"},
		"data-root-no-systemd.txt": {withFacts(worker, "", "", "wk-3", "unknown", "unknown", nil), ""},
	}
	if len(fx) != len(want) {
		t.Errorf("%d fixtures, %d expectations", len(fx), len(want))
	}
	for name, report := range fx {
		id, reason := parseReport(report)
		w := want[name]
		if reason != w.reason || !reflect.DeepEqual(id, w.id) {
			t.Errorf("%s:\n got %+v %q\nwant %+v %q", name, id, reason, w.id, w.reason)
		}
	}
}

func withFacts(g reconcile.GuestIdentity, engine, machine, host, enabled, active string, more func(*reconcile.GuestIdentity)) reconcile.GuestIdentity {
	g.EngineID, g.MachineID, g.Hostname, g.DockerEnabled, g.DockerActive = engine, machine, host, enabled, active
	// No fixture guest has a kubelet unit: "no" where systemctl answers.
	g.KubeletEnabled, g.KubeletActive = "no", "no"
	if enabled == "unknown" {
		g.KubeletEnabled, g.KubeletActive = "unknown", "unknown"
	}
	if more != nil {
		more(&g)
	}
	return g
}

// renderReport writes id back as a probe report without a certificate: the
// parse of it must give id back (the round trip of everything but the
// certificate).
func renderReport(id reconcile.GuestIdentity) string {
	yn := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	var b strings.Builder
	b.WriteString("probe=vmreconcile/1\nuid=0\ndocker_root=/var/lib/docker\ncert=absent\nkubelet_cert=absent\n")
	b.WriteString("engine_id=" + id.EngineID + "\nmachine_id=" + id.MachineID + "\nkey_json=" + yn(id.KeyJSON) + "\n")
	b.WriteString("kubelet_conf=" + yn(id.KubeletCreds) + "\nkubelet_pki=no\nhostname=" + id.Hostname + "\n")
	b.WriteString("ssh_host_keys=" + yn(id.SSHHostKeys) + "\ncloud_init_instance=" + id.CloudInitInstance + "\n")
	if id.DockerEnabled == "unknown" && id.DockerActive == "unknown" && id.KubeletEnabled == "unknown" && id.KubeletActive == "unknown" {
		b.WriteString("systemctl=no\n")
	} else {
		en := map[string]string{"yes": "enabled", "no": "disabled", "unknown": ""}[id.DockerEnabled]
		ac := map[string]string{"yes": "active", "no": "inactive", "unknown": ""}[id.DockerActive]
		b.WriteString("systemctl=yes\nenabled.docker.service=" + en + "\nactive.docker.service=" + ac + "\n")
		b.WriteString("enabled.docker.socket=" + map[bool]string{true: "disabled", false: ""}[id.DockerEnabled == "no"] + "\n")
		b.WriteString("enabled.kubelet.service=" + map[string]string{"yes": "enabled", "no": "disabled", "unknown": ""}[id.KubeletEnabled] + "\n")
		b.WriteString("active.kubelet.service=" + map[string]string{"yes": "active", "no": "inactive", "unknown": ""}[id.KubeletActive] + "\n")
	}
	b.WriteString("end=ok\n")
	return b.String()
}

// printableValue: what cleanValue promises (short, printable ASCII, no space).
func printableValue(s string) bool {
	if len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func FuzzParseReport(f *testing.F) {
	for _, b := range probeFixtures(f) {
		f.Add(b)
	}
	f.Add([]byte("probe=vmreconcile/1\nuid=0\ncert.b64=AAAA\ncloud_init_instance=i-1\ncert=absent\nsystemctl=no\nend=ok\n"))
	f.Add([]byte("probe=vmreconcile/1\r\nuid=0\r\ncert=absent\r\nhostname=a\r\nhostname=b\r\nend=ok\r\n"))
	f.Add([]byte("sh: bad\n"))
	f.Fuzz(func(t *testing.T, report []byte) {
		id, reason := parseReport(report)
		if strings.ContainsAny(reason, "\r\n") || textsafe.Term(reason) != reason {
			t.Fatalf("reason is not one printable line: %q", reason)
		}
		if reason != "" {
			return
		}
		lines := strings.Split(string(report), "\n")
		for i := range lines {
			lines[i] = strings.TrimRight(lines[i], "\r") // as parseReport reads them
		}
		if !contains(lines, "probe=vmreconcile/1") || !contains(lines, "end=ok") {
			t.Fatalf("accepted a report without its first or last line: %q", report)
		}
		for _, v := range []string{id.EngineID, id.MachineID, id.Hostname, id.CloudInitInstance} {
			if !printableValue(v) {
				t.Fatalf("value %q is not short printable ASCII", v)
			}
		}
		for _, v := range []string{id.DockerEnabled, id.DockerActive} {
			if v != "yes" && v != "no" && v != "unknown" {
				t.Fatalf("docker state %q", v)
			}
		}
		if id.NodeID == "" && (id.Role != "" || id.ClusterID != "" || !id.CertNotAfter.IsZero()) {
			t.Fatalf("certificate fields without a node ID: %+v", id)
		}
		noCert := id
		noCert.NodeID, noCert.Role, noCert.ClusterID, noCert.CertNotAfter = "", "", "", time.Time{}
		again, reason := parseReport([]byte(renderReport(noCert)))
		if reason != "" || !reflect.DeepEqual(again, noCert) {
			t.Fatalf("round trip:\n got %+v %q\nwant %+v", again, reason, noCert)
		}
	})
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

// FuzzParseNodeCert: any bytes, PEM or not, give a certificate or one of
// two fixed errors; a leaf is preferred over a CA.
func FuzzParseNodeCert(f *testing.F) {
	for _, c := range certFixtures(f) {
		f.Add(c)
		block, rest := pem.Decode(c)
		f.Add(block.Bytes) // DER
		f.Add(rest)        // the CA alone
		f.Add(c[:len(c)/2])
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := parseNodeCert(raw)
		if err != nil {
			if c != nil || (err.Error() != "cannot parse certificate" && err.Error() != "no PEM certificate in file") {
				t.Fatalf("%v, %v", c, err)
			}
			return
		}
		if c == nil {
			t.Fatal("no certificate and no error")
		}
		if c.IsCA {
			for rest := raw; ; {
				var b *pem.Block
				if b, rest = pem.Decode(rest); b == nil {
					break
				}
				if other, err := x509.ParseCertificate(b.Bytes); b.Type == "CERTIFICATE" && err == nil && !other.IsCA {
					t.Fatalf("returned a CA although the file holds a leaf (%s)", other.Subject)
				}
			}
		}
	})
}

// FuzzNodeCertSubject: the node ID, role and cluster ID of any certificate
// swarmkit could write come out of the probe report exactly, through both
// the base64 and the PEM form of the report.
func FuzzNodeCertSubject(f *testing.F) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	notAfter := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "swarm-ca"}, NotBefore: notAfter.Add(-24 * time.Hour),
		NotAfter: notAfter.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		f.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range certFixtures(f) {
		block, _ := pem.Decode(c)
		leaf, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(leaf.Subject.CommonName, leaf.Subject.OrganizationalUnit[0], leaf.Subject.Organization[0])
	}
	f.Add("wk\x1b[31mRED\x1b[0m", "swarm-worker\u202e", "clu\u009b1")
	f.Fuzz(func(t *testing.T, cn, ou, o string) {
		if !utf8.ValidString(cn + ou + o) {
			t.Skip("x509 subjects are UTF-8")
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: notAfter.Add(-time.Hour), NotAfter: notAfter,
			Subject: pkix.Name{CommonName: cn, OrganizationalUnit: []string{ou}, Organization: []string{o}}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Skipf("not a certificate x509 writes: %v", err)
		}
		file := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})) +
			string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
		tail := "kubelet_cert=absent\nengine_id=e1\nsystemctl=no\nend=ok\n"
		for form, report := range map[string]string{
			"b64": "probe=vmreconcile/1\nuid=0\ncert.b64=" + base64.StdEncoding.EncodeToString([]byte(file)) + "\n" + tail,
			"pem": "probe=vmreconcile/1\nuid=0\ncert.pem=begin\n" + file + "cert.pem=end\n" + tail,
		} {
			id, reason := parseReport([]byte(report))
			if cn == "" {
				// No CN is no node ID: a probe error, never an identity
				// with a role and cluster but no node.
				if reason != "swarm-node.crt: no node ID (empty CN)" || id.NodeID != "" || id.Role != "" {
					t.Fatalf("%s: empty CN: got %+v (reason %q)", form, id, reason)
				}
				continue
			}
			if reason != "" || id.NodeID != cn || id.Role != ou || id.ClusterID != o || !id.CertNotAfter.Equal(notAfter) {
				t.Fatalf("%s: got %q/%q/%q %v (reason %q), want %q/%q/%q", form, id.NodeID, id.Role, id.ClusterID, id.CertNotAfter, reason, cn, ou, o)
			}
		}
	})
}

// FuzzParseGuestLogin: a login parses into a user without ':' and a
// password that give the input back; an error is one printable line that
// never holds the password (or, with no ':', the whole input).
func FuzzParseGuestLogin(f *testing.F) {
	for _, s := range []string{"root:pa:ss:word", "", "s3cretpass", ":s3cretpass", "root:", "Administrator@vsphere.local:Pw#1",
		"us\u009ber:x", strings.Repeat("é", 40) + ":pw"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseGuestLogin(s)
		if err == nil {
			if a.Username == "" || a.Password == "" || strings.Contains(a.Username, ":") || a.Username+":"+a.Password != s {
				t.Fatalf("%q parsed as %q / %q", s, a.Username, a.Password)
			}
			return
		}
		msg := err.Error()
		if strings.ContainsAny(msg, "\r\n") || textsafe.Term(msg) != msg {
			t.Fatalf("error is not one printable line: %q", msg)
		}
		secret := s
		if _, pw, ok := strings.Cut(s, ":"); ok {
			secret = pw
		}
		// The fixed wording may hold a short "password" by chance.
		const wording = "guest login is empty: want user:password / has no ':' / has an empty user name / for user has an empty password"
		if len(secret) >= 4 && strings.Contains(msg, secret) && !strings.Contains(wording, secret) {
			t.Fatalf("error %q holds the password %q", msg, secret)
		}
	})
}
