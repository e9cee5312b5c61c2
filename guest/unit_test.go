package guest

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/guest/guesttest"
)

func TestParseGuestLogin(t *testing.T) {
	a, err := ParseGuestLogin("root:pa:ss:word")
	if err != nil || a.Username != "root" || a.Password != "pa:ss:word" {
		t.Fatalf("got %+v, %v", a, err)
	}
	for _, in := range []string{"", "s3cretpass", ":s3cretpass", "root:"} {
		_, err := ParseGuestLogin(in)
		if err == nil {
			t.Errorf("%q: no error", in)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: error echoes the password: %v", in, err)
		}
	}
}

func TestStates(t *testing.T) {
	for _, c := range []struct{ svc, sock, want string }{
		{"enabled", "enabled", "yes"},
		{"disabled", "enabled", "yes"},
		{"disabled", "disabled", "no"},
		{"masked", "enabled", "no"},
		{"disabled", "", "no"},
		{"", "", "unknown"},
		{"", "disabled", "unknown"},
	} {
		if got := enabledState(c.svc, c.sock); got != c.want {
			t.Errorf("enabledState(%q, %q) = %q, want %q", c.svc, c.sock, got, c.want)
		}
	}
	for in, want := range map[string]string{"active": "yes", "inactive": "no", "failed": "no", "": "unknown", "unknown": "unknown"} {
		if got := activeState(in); got != want {
			t.Errorf("activeState(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseReport(t *testing.T) {
	if _, reason := parseReport([]byte("probe=vmreconcile/1\ncert=absent\n")); reason != "probe report truncated" {
		t.Errorf("truncated: %q", reason)
	}
	if _, reason := parseReport([]byte("sh: bad\n")); !strings.Contains(reason, "missing") {
		t.Errorf("garbage: %q", reason)
	}
	id, reason := parseReport([]byte("probe=vmreconcile/1\nuid=0\ncert=absent\nkubelet_cert=absent\nengine_id=e\x01id\nsystemctl=no\nend=ok\n"))
	if reason != "" || id.EngineID != "eid" || id.DockerEnabled != "unknown" || id.KubeletEnabled != "unknown" || id.KubeletCreds {
		t.Errorf("got %+v %q", id, reason)
	}
	_, reason = parseReport([]byte("probe=vmreconcile/1\nuid=1000\ncert=unreadable\nend=ok\n"))
	if !strings.Contains(reason, "not readable") || !strings.Contains(reason, "uid 1000") {
		t.Errorf("unreadable: %q", reason)
	}
	_, reason = parseReport([]byte("probe=vmreconcile/1\ncert.pem=begin\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\ncert.pem=end\nend=ok\n"))
	if !strings.HasPrefix(reason, "swarm-node.crt:") {
		t.Errorf("bad pem: %q", reason)
	}
}

// TestParseReportKubelet: the kubelet identity from the report, and the
// reasons a report's kubelet part cannot be trusted.
func TestParseReportKubelet(t *testing.T) {
	file, certPEM, _ := guesttest.KubeletClientCert(t, "kwk-01", time.Now().Add(time.Hour))
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	head := "probe=vmreconcile/1\nuid=0\ncert=absent\n"
	tail := "systemctl=yes\nenabled.kubelet.service=enabled\nactive.kubelet.service=active\nend=ok\n"
	cases := []struct {
		name, body, reason, node, server string
		creds                            bool
	}{
		{name: "client certificate", body: "kubelet_conf=yes\nkubelet_server=https://10.0.0.100:6443\nkubelet_pki=yes\nkubelet_cert.b64=" + b64(certPEM) + "\n",
			node: "kwk-01", server: "https://10.0.0.100:6443", creds: true},
		{name: "client certificate as PEM lines", body: "kubelet_pki=yes\nkubelet_cert.pem=begin\n" + certPEM + "kubelet_cert.pem=end\n", node: "kwk-01", creds: true},
		{name: "embedded in kubelet.conf", body: "kubelet_conf=yes\nkubelet_conf_cert.b64=" + b64(certPEM) + "\nkubelet_cert=absent\n", node: "kwk-01", creds: true},
		{name: "no kubelet", body: "kubelet_conf=no\nkubelet_pki=no\nkubelet_cert=absent\n"},
		{name: "garbage certificate: credentials, no Node name", body: "kubelet_pki=yes\nkubelet_cert.b64=" + b64("x") + "\n", creds: true},
		{name: "unreadable certificate", body: "kubelet_pki=yes\nkubelet_cert=unreadable\n", reason: "kubelet client certificate (/var/lib/kubelet/pki) not readable by the guest user (uid 0; use root)"},
		{name: "unreadable kubelet.conf", body: "kubelet_conf=unreadable\nkubelet_cert=absent\n", reason: "/etc/kubernetes/kubelet.conf not readable"},
		{name: "no status", body: "kubelet_pki=no\n", reason: "probe report has no kubelet certificate status"},
		{name: "two statuses", body: "kubelet_cert=absent\nkubelet_cert.b64=" + b64(certPEM) + "\n", reason: "probe report malformed: two kubelet client certificate statuses"},
		{name: "bad base64", body: "kubelet_cert.b64=%%%\n", reason: "kubelet client certificate: bad base64 from guest"},
	}
	for _, c := range cases {
		id, reason := parseReport([]byte(head + c.body + tail))
		if c.reason != "" {
			if !strings.Contains(reason, c.reason) {
				t.Errorf("%s: reason %q, want %q", c.name, reason, c.reason)
			}
			continue
		}
		if reason != "" || id.KubeletNode != c.node || id.KubeletServer != c.server || id.KubeletCreds != c.creds ||
			id.KubeletEnabled != "yes" || id.KubeletActive != "yes" || (c.node != "" && id.KubeletOrg != "system:nodes") {
			t.Errorf("%s: %+v %q", c.name, id, reason)
		}
	}
	// The file as the kubelet writes it (certificate and key) parses too.
	if id, _ := parseReport([]byte(head + "kubelet_cert.b64=" + b64(file) + "\n" + tail)); id.KubeletNode != "kwk-01" {
		t.Errorf("certificate followed by its key: %+v", id)
	}
}

func TestDescribe(t *testing.T) {
	soapErr := soap.WrapSoapFault(&soap.Fault{Code: "ServerFaultCode", String: "x", Detail: struct {
		// The anonymous type must be soap.Fault's own; typeattr is an option of govmomi's xml package.
		//lint:ignore SA5008 govmomi's vim25/xml defines the typeattr option
		Fault types.AnyType `xml:",any,typeattr"`
	}{Fault: &types.InvalidGuestLogin{}}})
	if got := Describe(fmt.Errorf("start: %w", soapErr)); !strings.Contains(got, "invalid guest login") {
		t.Errorf("InvalidGuestLogin: %q", got)
	}
	got := Describe(errors.New("Get \"https://esx1:443/guestFile?id=1&token=SECRET\": 500\nline2"))
	if strings.Contains(got, "SECRET") || strings.Contains(got, "\n") {
		t.Errorf("URL token or newline kept: %q", got)
	}
	if got := Describe(task.Error{LocalizedMethodFault: &types.LocalizedMethodFault{Fault: &types.InvalidPowerState{ExistingState: types.VirtualMachinePowerStatePoweredOff}}}); got != "VM is powered off" {
		t.Errorf("power: %q", got)
	}
}
