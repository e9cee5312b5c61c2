package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// tableLayout is how the table fits: width is the terminal's columns
// (math.MaxInt for -wide: nothing truncated or wrapped); quiet prints only
// the findings.
type tableLayout struct {
	width int
	quiet bool
}

// col is the width a truncated column gets: base at 100 columns, plus its
// share of the columns beyond 100; unlimited with -wide.
func (l tableLayout) col(base int) int {
	if l.width == math.MaxInt {
		return math.MaxInt
	}
	return base + max(0, l.width-defaultWidth)/4
}

// writeTable prints the human report, laid out for l. Everything that came
// from vCenter, a guest or a node is cleaned for the terminal.
func writeTable(w io.Writer, res reconcile.Result, l tableLayout) {
	if !l.quiet {
		writeSummary(w, res.Summary, l)
		s := res.Summary
		if len(res.Findings) == 0 {
			fmt.Fprintln(w, "No findings.")
		} else {
			fmt.Fprintf(w, "Findings: %d critical, %d warning, %d info\n", s.Critical, s.Warning, s.Info)
		}
	}
	writeFindings(w, res, l)
	if l.quiet {
		return
	}
	writeProbes(w, res, l)
	writeKubeNodes(w, res, l)
	writeNodes(w, res, l)
}

// writeSummary says what was audited: the sources, then the VMs and nodes
// (or, without a vCenter, the machines seen answering as the nodes).
func writeSummary(w io.Writer, s reconcile.Summary, l tableLayout) {
	if len(s.Sources) > 0 {
		writeField(w, "sources", clean(strings.Join(s.Sources, ", ")), l.width)
	}
	if len(s.Sources) > 0 && !strings.HasPrefix(s.Sources[0], "vcenter ") {
		fmt.Fprintf(w, "No vCenter: %s, %s, %s seen answering as them\n", plural(s.Swarms, "swarm"), plural(s.Nodes, "node"), plural(s.Machines, "machine"))
	} else {
		fmt.Fprintf(w, "%s (%s, %d powered on) · %s, %s (%d matched to VMs)\n",
			plural(s.VMs, "VM"), plural(s.Templates, "template"), s.PoweredOn, plural(s.Swarms, "swarm"), plural(s.Nodes, "node"), s.MatchedNodes)
	}
	if s.KubeClusters > 0 {
		fmt.Fprintf(w, "Kubernetes: %s, %s (%d matched to VMs)\n", plural(s.KubeClusters, "cluster"), plural(s.KubeNodes, "Node"), s.MatchedKubeNodes)
	}
}

// writeKubeNodes lists the Kubernetes Nodes: the identities each was written
// with (a Node written by two machines shows two boot IDs) and its VMs.
func writeKubeNodes(w io.Writer, res reconcile.Result, l tableLayout) {
	if len(res.KubeNodes) == 0 {
		return
	}
	fmt.Fprintln(w, "\nKUBERNETES NODES")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER/NODE\tREADY\tFLIPS\tBOOT IDS\tCPUS\tVMS")
	for _, n := range res.KubeNodes {
		var boots, cpus []string
		for _, id := range n.Identities {
			boots = append(boots, truncate(clean(id.BootID), 8))
			cpus = append(cpus, fmt.Sprint(id.CPUs))
		}
		vms := strings.Join(n.VMs, ", ")
		if vms == "" {
			vms = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", truncate(clean(n.Cluster+"/"+n.Name), l.col(32)), clean(n.Ready), n.Flips,
			truncate(strings.Join(boots, ", "), l.col(20)), strings.Join(cpus, "/"), truncate(clean(vms), l.col(26)))
	}
	tw.Flush()
}

// machineList names a no-vCenter finding's machines, the original first.
func machineList(f reconcile.Finding) string {
	var ls []string
	for _, m := range f.Machines {
		if m.Label == f.OriginalMachine {
			ls = append(ls, m.Label+" (original)")
		} else {
			ls = append(ls, m.Label)
		}
	}
	return strings.Join(ls, ", ")
}

func writeFindings(w io.Writer, res reconcile.Result, l tableLayout) {
	if len(res.Findings) == 0 {
		return
	}
	if !l.quiet {
		fmt.Fprintln(w, "\nFINDINGS")
	}
	for i, f := range res.Findings {
		if i > 0 {
			fmt.Fprintln(w)
		}
		head := fmt.Sprintf("%-8s %s", strings.ToUpper(string(f.Severity)), f.Kind)
		switch {
		case f.Cluster != "":
			head += "  Node " + clean(f.Cluster+"/"+f.NodeID)
		case f.NodeID != "":
			head += "  node " + clean(f.NodeID)
		}
		var flags []string
		if f.Confirmed {
			flags = append(flags, "confirmed in guest")
		}
		if f.Dormant {
			flags = append(flags, "dormant")
		}
		if len(flags) > 0 {
			head += "  [" + strings.Join(flags, ", ") + "]"
		}
		fmt.Fprintln(w, head)
		writeField(w, "vms", clean(vmList(f)), l.width)
		writeField(w, "machines", clean(machineList(f)), l.width)
		for _, e := range f.Evidence {
			writeField(w, "evidence", clean(e), l.width)
		}
		writeField(w, "remedy", clean(f.Remedy), l.width)
	}
}

func writeNodes(w io.Writer, res reconcile.Result, l tableLayout) {
	if len(res.Nodes) == 0 {
		return
	}
	fmt.Fprintln(w, "\nNODES")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE ID\tROLE\tSTATE\tFLIPS\tHOSTNAMES SEEN\tVMS")
	for _, n := range res.Nodes {
		hosts := map[string]bool{}
		var hs []string
		for _, d := range n.Descriptions {
			short, _, _ := strings.Cut(d.Hostname, ".")
			if !hosts[short] {
				hosts[short] = true
				hs = append(hs, short)
			}
		}
		vms := strings.Join(n.VMs, ", ")
		if vms == "" {
			vms = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", clean(n.ID), clean(n.Role), clean(n.State), n.Flips,
			truncate(clean(strings.Join(hs, ", ")), l.col(24)), truncate(clean(vms), l.col(26)))
	}
	tw.Flush()
}

// writeProbes lists what guest operations found in each probed VM (-verify):
// the identity it holds and whether Docker starts at boot and runs now; then
// the VMs that could not be probed, and why.
func writeProbes(w io.Writer, res reconcile.Result, l tableLayout) {
	var ok, failed []reconcile.VMStatus
	for _, v := range res.VMs {
		switch {
		case v.Guest == nil:
		case v.Guest.Error != "":
			failed = append(failed, v)
		default:
			ok = append(ok, v)
		}
	}
	if len(ok)+len(failed) == 0 {
		return
	}
	fmt.Fprintln(w, "\nGUEST PROBES")
	if len(ok) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "VM\tNODE ID (CERT CN)\tROLE\tDOCKER BOOT/NOW\tENGINE ID")
		for _, v := range ok {
			g := v.Guest
			node, role := clean(g.NodeID), clean(strings.TrimPrefix(g.Role, "swarm-"))
			if node == "" {
				node, role = "(no swarm identity)", "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%s\t%s\n", truncate(clean(v.Name), l.col(24)), node, role,
				clean(orUnknown(g.DockerEnabled)), clean(orUnknown(g.DockerActive)), truncate(clean(g.EngineID), l.col(13)))
		}
		tw.Flush()
	}
	for _, v := range failed {
		writeField(w, "not probed", clean(v.Name+": "+v.Guest.Error), l.width)
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// vmList names the VMs of a finding, marking the original.
func vmList(f reconcile.Finding) string {
	names := make([]string, len(f.VMs))
	for i, n := range f.VMs {
		names[i] = n
		if f.Original != "" && n == f.Original {
			names[i] += " (original)"
		}
	}
	return strings.Join(names, ", ")
}

// writeField prints "  label: text", wrapping text at width with a hanging indent.
func writeField(w io.Writer, label, text string, width int) {
	if text == "" {
		return
	}
	prefix := fmt.Sprintf("  %-9s ", label+":")
	indent := strings.Repeat(" ", len(prefix))
	line, empty := prefix, true
	for _, word := range strings.Fields(text) {
		if !empty && len(line)+1+len(word) > width {
			fmt.Fprintln(w, line)
			line, empty = indent, true
		}
		if !empty {
			line += " "
		}
		line += word
		empty = false
	}
	fmt.Fprintln(w, line)
}

// plural says "1 node", "2 nodes".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// truncate shortens s to n runes, the last one an ellipsis.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
