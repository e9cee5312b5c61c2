package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// Output formats of audit and demo.
const (
	formatTable    = "table"
	formatJSON     = "json"
	formatCSV      = "csv"
	formatMarkdown = "markdown"
)

// outputFlag is how audit and demo print a result: -format, -json (an alias
// of -format json), -q, -wide.
type outputFlag struct {
	format string
	json   bool
	quiet  bool
	wide   bool
	fs     *flag.FlagSet
}

func (o *outputFlag) Register(fs *flag.FlagSet) {
	fs.StringVar(&o.format, "format", formatTable, "Output format: table, json, csv or markdown (csv and markdown: one row per finding)")
	fs.BoolVar(&o.json, "json", false, "Print the result as JSON (same as -format json)")
	fs.BoolVar(&o.quiet, "q", false, "Print only the findings: no summary, nodes or probes (json: the findings array; csv: no header row)")
	fs.BoolVar(&o.wide, "wide", false, "Table: never truncate or wrap (default: fit the terminal's width, 100 columns when not a terminal)")
	o.fs = fs
}

func (o *outputFlag) Process() error {
	switch o.format {
	case formatTable, formatJSON, formatCSV, formatMarkdown:
	default:
		return usagef("-format %q is not table, json, csv or markdown (fix: e.g. -format csv)", o.format)
	}
	if o.json {
		formatSet := false
		o.fs.Visit(func(f *flag.Flag) { formatSet = formatSet || f.Name == "format" })
		if formatSet && o.format != formatJSON {
			return usagef("-json and -format %s disagree (fix: one of them; -json is -format json)", o.format)
		}
		o.format = formatJSON
	}
	return nil
}

// reportOptions say how to print a result: the same for audit and demo.
type reportOptions struct {
	output outputFlag
	failOn reconcile.Severity // or "never"
	// banner, when set, is printed above the table (the demo labels itself).
	banner string
	// width is the table's width; 0: the terminal's, or 100.
	width int
}

// report prints a result and returns exit 3 when a finding is at least
// as severe as failOn.
func report(res reconcile.Result, o reportOptions) error {
	if err := render(out.stdout, res, o); err != nil {
		return err
	}
	if exceeds(res, o.failOn) {
		return &findingsError{code: ExitFindings}
	}
	return nil
}

func render(w io.Writer, res reconcile.Result, o reportOptions) error {
	switch o.output.format {
	case formatJSON:
		if o.output.quiet {
			return writeJSON(w, nonNil(res.Findings))
		}
		return writeJSON(w, res)
	case formatCSV:
		return writeCSV(w, res.Findings, !o.output.quiet)
	case formatMarkdown:
		if !o.output.quiet {
			fmt.Fprintf(w, "%s\n\n", summaryLine(res.Summary))
		}
		writeMarkdown(w, res.Findings)
		return nil
	}
	if o.banner != "" && !o.output.quiet {
		fmt.Fprintln(w, o.banner)
		fmt.Fprintln(w)
	}
	l := tableLayout{width: o.width, quiet: o.output.quiet}
	switch {
	case o.output.wide:
		l.width = math.MaxInt
	case l.width == 0:
		l.width = outputWidth(out.stdout)
	}
	writeTable(w, res, l)
	return nil
}

func nonNil(fs []reconcile.Finding) []reconcile.Finding {
	if fs == nil {
		return []reconcile.Finding{}
	}
	return fs
}

// defaultWidth is the table's width when stdout is not a terminal (a file,
// a pipe): stable output for scripts.
const defaultWidth = 100

// outputWidth is the terminal's width when w is a terminal, else
// defaultWidth.
func outputWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if n := terminalWidth(f); n > 0 {
			return max(n, 60)
		}
	}
	return defaultWidth
}

// findingRow is a finding as a CSV row: severity, kind, node, VMs (the
// original marked), the original, whether it was confirmed in the guest,
// all the evidence (one string) and the remedy. Every cell is cleaned for
// a terminal.
func findingRow(f reconcile.Finding) []string {
	return []string{string(f.Severity), f.Kind, clean(f.NodeID), clean(vmList(f)), clean(f.Original),
		strconv.FormatBool(f.Confirmed), clean(strings.Join(f.Evidence, "; ")), clean(f.Remedy)}
}

var findingHeader = []string{"severity", "kind", "node_id", "vms", "original", "confirmed", "evidence", "remedy"}

// writeCSV writes one row per finding (RFC 4180), after a header row.
func writeCSV(w io.Writer, fs []reconcile.Finding, header bool) error {
	cw := csv.NewWriter(w)
	if header {
		_ = cw.Write(findingHeader)
	}
	for _, f := range fs {
		row := findingRow(f)
		for i, c := range row {
			row[i] = csvSafe(c)
		}
		_ = cw.Write(row)
	}
	cw.Flush()
	return cw.Error()
}

// csvSafe keeps a spreadsheet from reading a cell as a formula: names come
// from vCenter and the guests, and "=HYPERLINK(...)" is a valid VM name.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// writeMarkdown writes the findings as a GitHub-flavoured Markdown table
// for a ticket or a wiki: the evidence is summarized to its first line.
func writeMarkdown(w io.Writer, fs []reconcile.Finding) {
	if len(fs) == 0 {
		fmt.Fprintln(w, "No findings.")
		return
	}
	fmt.Fprintln(w, "| Severity | Kind | Node | VMs | Original | Evidence |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, f := range fs {
		ev := ""
		if len(f.Evidence) > 0 {
			ev = f.Evidence[0]
			if len(f.Evidence) > 1 {
				ev += fmt.Sprintf(" (+%d more)", len(f.Evidence)-1)
			}
		}
		if f.Confirmed {
			ev = "confirmed in guest; " + ev
		}
		row := []string{string(f.Severity), f.Kind, f.NodeID, vmList(f), f.Original, ev}
		for i, c := range row {
			row[i] = mdCell(clean(c))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
}

// mdCell escapes what would end a cell or turn into markup or HTML.
var mdEscaper = strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;", "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`)

func mdCell(s string) string {
	if s == "" {
		return "-"
	}
	return mdEscaper.Replace(s)
}

func summaryLine(s reconcile.Summary) string {
	return fmt.Sprintf("%s (%s, %d powered on) · %s, %s (%d matched to VMs) · findings: %d critical, %d warning, %d info",
		plural(s.VMs, "VM"), plural(s.Templates, "template"), s.PoweredOn, plural(s.Swarms, "swarm"), plural(s.Nodes, "node"),
		s.MatchedNodes, s.Critical, s.Warning, s.Info)
}
