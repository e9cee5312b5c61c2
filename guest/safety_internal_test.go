package guest

import (
	"strings"
	"testing"
)

// A report in which a key repeats, or with two certificate statuses, is not
// trusted: a later line must not be able to overwrite an earlier one.
func TestParseReportRejectsRepeatedKeys(t *testing.T) {
	for name, report := range map[string]string{
		"cert hidden":         "probe=vmreconcile/1\nuid=0\ncert.b64=AAAA\ncloud_init_instance=i-1\ncert=absent\nsystemctl=no\nend=ok\n",
		"repeated":            "probe=vmreconcile/1\nuid=0\ncert=absent\nsystemctl=yes\nsystemctl=no\nend=ok\n",
		"crlf repeat":         "probe=vmreconcile/1\r\nuid=0\r\ncert=absent\r\nhostname=a\r\nhostname=b\r\nend=ok\r\n",
		"kubelet cert hidden": "probe=vmreconcile/1\nuid=0\ncert=absent\nkubelet_cert.b64=AAAA\nkubelet_cert=absent\nsystemctl=no\nend=ok\n",
		"kubelet pem twice":   "probe=vmreconcile/1\nuid=0\ncert=absent\nkubelet_cert.pem=begin\nkubelet_cert.pem=end\nkubelet_cert.pem=begin\nkubelet_cert.pem=end\nend=ok\n",
	} {
		if _, reason := parseReport([]byte(report)); !strings.Contains(reason, "malformed") {
			t.Errorf("%s: reason %q", name, reason)
		}
	}
	// A well-formed report still parses.
	id, reason := parseReport([]byte("probe=vmreconcile/1\r\nuid=0\r\ncert=absent\r\nkubelet_cert=absent\r\nhostname=wk-1\r\nsystemctl=no\r\nend=ok\r\n"))
	if reason != "" || id.Hostname != "wk-1" || id.DockerEnabled != "unknown" {
		t.Errorf("%+v %q", id, reason)
	}
}
