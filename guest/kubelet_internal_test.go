package guest

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/guest/guesttest"
)

// keyBody returns the base64 body lines of a PEM key, the part that must
// never leave the guest.
func keyBody(keyPEM string) []string {
	var out []string
	for _, l := range strings.Split(keyPEM, "\n") {
		if l != "" && !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	return out
}

// TestProbeScriptKeepsKubeletKeyInGuest: kubelet-client-current.pem holds
// the certificate and its private key. Only the certificate leaves the
// guest: with base64 and without (PEM lines), for a well-formed file and for
// one whose certificate lacks its END line (the key would follow inside the
// certificate's range), and for a kubelet.conf that embeds the key.
func TestProbeScriptKeepsKubeletKeyInGuest(t *testing.T) {
	ctx, c, _ := guesttest.Simulator(t)
	file, certPEM, keyPEM := guesttest.KubeletClientCert(t, "kwk-1", time.Now().Add(time.Hour))
	broken := strings.Replace(certPEM, "-----END CERTIFICATE-----\n", "", 1) + keyPEM
	vms := guesttest.NewVMs(t, ctx, c,
		guesttest.VMSpec{Name: "pem", Files: map[string]string{guesttest.KubeletClientPEM: file, guesttest.KubeletConf: guesttest.KubeletConfig("https://a:6443")}},
		guesttest.VMSpec{Name: "broken", Files: map[string]string{guesttest.KubeletClientPEM: broken}},
		guesttest.VMSpec{Name: "embedded", Files: map[string]string{guesttest.KubeletConf: guesttest.KubeletConfig("https://a:6443", certPEM, keyPEM)}},
	)
	auth := &types.NamePasswordAuthentication{Username: "root", Password: "x"}
	leaks := func(name string, out []byte) {
		t.Helper()
		texts := []string{string(out)}
		for _, line := range strings.Split(string(out), "\n") {
			if _, v, ok := strings.Cut(line, ".b64="); ok {
				if b, err := base64.StdEncoding.DecodeString(v); err == nil {
					texts = append(texts, string(b))
				}
			}
		}
		for _, text := range texts {
			if strings.Contains(text, "PRIVATE KEY") {
				t.Errorf("%s: a private key left the guest", name)
			}
			for _, l := range keyBody(keyPEM) {
				if strings.Contains(text, l) {
					t.Errorf("%s: key material (a base64 line of the private key) left the guest", name)
				}
			}
			if strings.Contains(text, base64.StdEncoding.EncodeToString([]byte(keyPEM))) {
				t.Errorf("%s: client-key-data left the guest", name)
			}
		}
	}
	for pass, setup := range []string{"", "rm /bin/base64"} { // second pass: no base64, PEM lines
		for i, name := range []string{"pem", "broken", "embedded"} {
			if setup != "" {
				guesttest.Exec(t, vms[i], setup)
			}
			code, out, stderr, err := Run(ctx, c, vms[i], auth, probeScript)
			if err != nil || code != 0 {
				t.Fatalf("%s: %d %v %s", name, code, err, stderr)
			}
			leaks(name, out)
			id, reason := parseReport(out)
			switch name {
			case "pem", "embedded":
				if reason != "" || id.KubeletNode != "kwk-1" || !id.KubeletCreds {
					t.Errorf("%s (pass %d): %+v %q", name, pass, id, reason)
				}
			case "broken":
				if reason != "" || id.KubeletNode != "" || !id.KubeletCreds {
					t.Errorf("%s (pass %d): a broken file still means credentials, with no Node name: %+v %q", name, pass, id, reason)
				}
			}
		}
	}

	// An unprivileged guest user cannot read the key file (0600): an error,
	// never "no kubelet identity".
	guesttest.Exec(t, vms[0], "chmod 0600 "+guesttest.KubeletClientPEM+" "+guesttest.KubeletConf)
	code, out, stderr, err := Run(ctx, c, vms[0], auth, "su -s /bin/sh nobody -c "+shellQuote(probeScript))
	if err != nil || code != 0 {
		t.Fatalf("run: %d %v %s", code, err, stderr)
	}
	if _, reason := parseReport(out); !strings.Contains(reason, "not readable by the guest user (uid 65534") {
		t.Errorf("unprivileged: reason %q", reason)
	}
}
