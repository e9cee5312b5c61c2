package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// hostileResult has names a vCenter or a guest could hand over: a terminal
// escape, a spreadsheet formula, Markdown table syntax and HTML.
func hostileResult() reconcile.Result {
	return reconcile.Result{
		Summary: reconcile.Summary{VMs: 2, PoweredOn: 2, Swarms: 1, Nodes: 1, MatchedNodes: 1, Critical: 1, Highest: reconcile.Critical},
		Nodes:   []reconcile.NodeStatus{{ID: "n1", Role: "worker", State: "ready", VMs: []string{"wk1"}}},
		Findings: []reconcile.Finding{{Kind: reconcile.KindSharedNodeID, Severity: reconcile.Critical, NodeID: "n1",
			VMs: []string{"wk1", "=HYPERLINK(\"http://x\")", "evil\x1b[2Jvm", "a|b<script>"}, Original: "wk1", Confirmed: true,
			Evidence: []string{"first line", "second line"}, Remedy: "Leave wk1 alone."}},
	}
}

func renderString(t *testing.T, res reconcile.Result, o outputFlag, width int) string {
	t.Helper()
	var b bytes.Buffer
	if err := render(&b, res, reportOptions{output: o, width: width}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestOutputFormats: csv and markdown are one row per finding, with what
// came from vCenter made harmless (escape sequences, formulas, table syntax);
// -q keeps only the findings.
func TestOutputFormats(t *testing.T) {
	res := hostileResult()

	out := renderString(t, res, outputFlag{format: formatCSV}, 0)
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("csv: %v, %d rows:\n%s", err, len(rows), out)
	}
	if strings.Join(rows[0], ",") != "severity,kind,node_id,vms,original,confirmed,evidence,remedy" {
		t.Errorf("csv header %v", rows[0])
	}
	want := []string{"critical", "shared-node-id", "n1", `wk1 (original), =HYPERLINK("http://x"), evil\x1b[2Jvm, a|b<script>`, "wk1", "true",
		"first line; second line", "Leave wk1 alone."}
	if strings.Join(rows[1], "\x00") != strings.Join(want, "\x00") {
		t.Errorf("csv row\n%q\nwant\n%q", rows[1], want)
	}
	if strings.Contains(out, "\x1b") {
		t.Error("csv carries a raw escape character")
	}
	one := hostileResult()
	one.Findings[0].VMs = []string{"=cmd|' /C calc'!A0", "wk1"}
	if rows, _ := csv.NewReader(strings.NewReader(renderString(t, one, outputFlag{format: formatCSV, quiet: true}, 0))).ReadAll(); len(rows) != 1 ||
		rows[0][3] != "'=cmd|' /C calc'!A0, wk1 (original)" {
		t.Errorf("csv -q: a formula cell not neutralised, or a header: %q", rows)
	}

	md := renderString(t, res, outputFlag{format: formatMarkdown}, 0)
	lines := strings.Split(strings.TrimSpace(md), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "2 VMs (0 templates, 2 powered on)") ||
		lines[2] != "| Severity | Kind | Node | VMs | Original | Evidence |" {
		t.Fatalf("markdown:\n%s", md)
	}
	if want := `| critical | shared-node-id | n1 | wk1 (original), =HYPERLINK("http://x"), evil\x1b\[2Jvm, a\|b&lt;script&gt; | wk1 | confirmed in guest; first line (+1 more) |`; lines[4] != want {
		t.Errorf("markdown row\n%s\nwant\n%s", lines[4], want)
	}
	if strings.Count(lines[4], " | ") != 5 {
		t.Errorf("a name split the markdown cell: %s", lines[4])
	}
	if q := renderString(t, res, outputFlag{format: formatMarkdown, quiet: true}, 0); strings.Contains(q, "2 VMs") || !strings.HasPrefix(q, "| Severity") {
		t.Errorf("markdown -q:\n%s", q)
	}

	var fs []reconcile.Finding
	if err := json.Unmarshal([]byte(renderString(t, res, outputFlag{format: formatJSON, quiet: true}, 0)), &fs); err != nil || len(fs) != 1 || fs[0].NodeID != "n1" {
		t.Errorf("json -q: the findings array: %v %+v", err, fs)
	}
	if s := renderString(t, reconcile.Result{}, outputFlag{format: formatJSON, quiet: true}, 0); strings.TrimSpace(s) != "[]" {
		t.Errorf("json -q without findings: %q, want []", s)
	}

	table := renderString(t, res, outputFlag{format: formatTable}, 100)
	for _, want := range []string{"Findings: 1 critical", "NODES", `evil\x1b[2Jvm`} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	q := renderString(t, res, outputFlag{format: formatTable, quiet: true}, 100)
	if !strings.HasPrefix(q, "CRITICAL shared-node-id  node n1") || strings.Contains(q, "Findings:") || strings.Contains(q, "NODES") || strings.Contains(q, "VMs (") {
		t.Errorf("table -q is not only the findings:\n%s", q)
	}
	if strings.Contains(table+q, "\x1b") {
		t.Error("the table carries a raw escape character")
	}
}

// TestTableWidth: truncation and wrapping follow the width; -wide never
// truncates or wraps.
func TestTableWidth(t *testing.T) {
	res := hostileResult()
	res.Findings[0].Evidence = []string{strings.Repeat("word ", 60)}
	res.Nodes[0].VMs = []string{"a-very-long-vm-name-that-is-longer-than-twenty-six", "another-long-vm-name"}
	longest := func(s string) int {
		n := 0
		for _, l := range strings.Split(s, "\n") {
			n = max(n, len([]rune(l)))
		}
		return n
	}
	at100, at200 := renderString(t, res, outputFlag{}, 100), renderString(t, res, outputFlag{}, 200)
	wide := renderString(t, res, outputFlag{wide: true}, 100)
	if n := longest(at100); n > 100 {
		t.Errorf("width 100: a line of %d columns", n)
	}
	if n := longest(at200); n <= 100 || n > 200 {
		t.Errorf("width 200: longest line %d columns, want within (100, 200]", n)
	}
	if !strings.Contains(at100, "a-very-long-vm-name-that-…") || strings.Contains(at100, "another-long-vm-name") {
		t.Errorf("width 100: the VMs column is not truncated at 26:\n%s", at100)
	}
	if !strings.Contains(wide, "a-very-long-vm-name-that-is-longer-than-twenty-six, another-long-vm-name") ||
		!strings.Contains(wide, strings.TrimSpace(strings.Repeat("word ", 60))) {
		t.Errorf("-wide truncated or wrapped:\n%s", wide)
	}
}

// TestOutputFlags: -json is -format json; contradictions and unknown
// formats are exit 2 with the fix; -xml and -dump are neither offered nor
// accepted.
func TestOutputFlags(t *testing.T) {
	a, b := runBin(t, nil, "demo", "-observe", "0", "-json"), runBin(t, nil, "demo", "-observe", "0", "-format", "json")
	var ra, rb reconcile.Result
	if json.Unmarshal([]byte(a.stdout), &ra) != nil || json.Unmarshal([]byte(b.stdout), &rb) != nil || len(ra.Findings) == 0 || len(ra.Findings) != len(rb.Findings) {
		t.Errorf("-json and -format json differ:\n%s\n%s", a.stdout, b.stdout)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"audit", "-format", "xml"}, `-format "xml" is not table, json, csv or markdown (fix:`},
		{[]string{"audit", "-json", "-format", "csv"}, "-json and -format csv disagree (fix:"},
		{[]string{"audit", "-xml"}, "flag provided but not defined: -xml"},
		{[]string{"audit", "-dump"}, "flag provided but not defined: -dump"},
	} {
		r := runBin(t, nil, tc.args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d: %q, want %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	h := runBin(t, nil, "audit", "-h")
	for _, flag := range []string{"-format", "-json", "-q", "-wide"} {
		if !regexp.MustCompile(`(?m)^  ` + flag + `[ \t\n]`).MatchString(h.stderr) {
			t.Errorf("audit -h does not offer %s", flag)
		}
	}
	if strings.Contains(h.stderr, "-xml") || strings.Contains(h.stderr, "-dump") {
		t.Error("audit -h offers -xml or -dump")
	}
}
