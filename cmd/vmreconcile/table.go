package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/vmreconcile/vmreconcile/internal/textsafe"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

// writeTable prints the human report, laid out for a terminal of the given width.
func writeTable(w io.Writer, res reconcile.Result, width int) {
	s := res.Summary
	if len(s.Sources) > 0 {
		writeField(w, "sources", strings.Join(s.Sources, ", "), width)
	}
	if !strings.HasPrefix(strings.Join(s.Sources, ","), "vcenter ") {
		// No vCenter: the swarm alone, its node identities grouped into machines.
		fmt.Fprintf(w, "No vCenter: %s, %s, %s seen answering as them\n", plural(s.Swarms, "swarm"), plural(s.Nodes, "node"), plural(s.Machines, "machine"))
	} else {
		fmt.Fprintf(w, "%s (%s, %d powered on) · %s, %s (%d matched to VMs)\n",
			plural(s.VMs, "VM"), plural(s.Templates, "template"), s.PoweredOn, plural(s.Swarms, "swarm"), plural(s.Nodes, "node"), s.MatchedNodes)
	}
	if s.KubeClusters > 0 {
		fmt.Fprintf(w, "Kubernetes: %s, %s (%d matched to VMs)\n", plural(s.KubeClusters, "cluster"), plural(s.KubeNodes, "Node"), s.MatchedKubeNodes)
	}
	if len(res.Findings) == 0 {
		fmt.Fprintln(w, "No findings.")
	} else {
		fmt.Fprintf(w, "Findings: %d critical, %d warning, %d info\n", s.Critical, s.Warning, s.Info)
	}

	if len(res.Findings) > 0 {
		fmt.Fprintln(w, "\nFINDINGS")
		for i, f := range res.Findings {
			if i > 0 {
				fmt.Fprintln(w)
			}
			head := fmt.Sprintf("%-8s %s", strings.ToUpper(string(f.Severity)), f.Kind)
			switch {
			case f.Cluster != "":
				head += "  Node " + textsafe.Term(f.Cluster+"/"+f.NodeID)
			case f.NodeID != "":
				head += "  node " + textsafe.Term(f.NodeID)
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
			writeField(w, "vms", vmList(f), width)
			writeField(w, "machines", machineList(f), width)
			for _, e := range f.Evidence {
				writeField(w, "evidence", e, width)
			}
			writeField(w, "remedy", f.Remedy, width)
		}
	}

	writeProbes(w, res, width)
	writeKubeNodes(w, res)

	if len(res.Nodes) > 0 {
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
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", textsafe.Term(n.ID), textsafe.Term(n.Role), textsafe.Term(n.State), n.Flips,
				truncate(textsafe.Term(strings.Join(hs, ", ")), 24), truncate(textsafe.Term(vms), 26))
		}
		tw.Flush()
	}
}

// writeProbes lists what guest operations found in each probed VM (-verify):
// the identity it holds and whether Docker starts at boot and runs now; then
// the VMs that could not be probed, and why.
func writeProbes(w io.Writer, res reconcile.Result, width int) {
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
			node, role := g.NodeID, strings.TrimPrefix(g.Role, "swarm-")
			if node == "" {
				node, role = "(no swarm identity)", "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%s\t%s\n", truncate(textsafe.Term(v.Name), 24), textsafe.Term(node), textsafe.Term(role),
				textsafe.Term(orUnknown(g.DockerEnabled)), textsafe.Term(orUnknown(g.DockerActive)), truncate(textsafe.Term(g.EngineID), 13))
		}
		tw.Flush()
	}
	for _, v := range failed {
		writeField(w, "not probed", v.Name+": "+v.Guest.Error, width)
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

// writeField prints "  label: text", wrapping text at width with a hanging
// indent. Each word is escaped for the terminal (text carries names and
// evidence from guests, nodes and vCenter).
func writeField(w io.Writer, label, text string, width int) {
	if text == "" {
		return
	}
	prefix := fmt.Sprintf("  %-9s ", label+":")
	indent := strings.Repeat(" ", len(prefix))
	line, empty := prefix, true
	for _, word := range strings.Fields(text) {
		word = textsafe.Term(word)
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

// truncate shortens s to n characters, cutting between characters (a cut
// inside one would print a byte that is not UTF-8).
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// machineList names a no-vCenter finding's machines, the original first.
func machineList(f reconcile.Finding) string {
	var l []string
	for _, m := range f.Machines {
		if m.Label == f.OriginalMachine {
			l = append(l, m.Label+" (original)")
		} else {
			l = append(l, m.Label)
		}
	}
	return strings.Join(l, ", ")
}

// writeKubeNodes lists the Kubernetes Nodes: the identities each was written
// with (a Node written by two machines shows two boot IDs) and its VMs.
func writeKubeNodes(w io.Writer, res reconcile.Result) {
	if len(res.KubeNodes) == 0 {
		return
	}
	fmt.Fprintln(w, "\nKUBERNETES NODES")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER/NODE\tREADY\tFLIPS\tBOOT IDS\tCPUS\tVMS")
	for _, n := range res.KubeNodes {
		var boots, cpus []string
		for _, id := range n.Identities {
			boots = append(boots, truncate(id.BootID, 8))
			cpus = append(cpus, fmt.Sprint(id.CPUs))
		}
		vms := strings.Join(n.VMs, ", ")
		if vms == "" {
			vms = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", truncate(n.Cluster+"/"+n.Name, 32), n.Ready, n.Flips,
			truncate(strings.Join(boots, ", "), 20), strings.Join(cpus, "/"), truncate(vms, 26))
	}
	tw.Flush()
}
