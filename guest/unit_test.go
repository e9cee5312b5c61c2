package guest

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
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
	id, reason := parseReport([]byte("probe=vmreconcile/1\nuid=0\ncert=absent\nengine_id=e\x01id\nsystemctl=no\nend=ok\n"))
	if reason != "" || id.EngineID != "eid" || id.DockerEnabled != "unknown" {
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
