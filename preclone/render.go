package preclone

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vmreconcile/vmreconcile/internal/textsafe"
)

// Output is the JSON document of `vmreconcile preclone -json`.
type Output struct {
	CheckedAt time.Time `json:"checked_at"`
	// Verdict is the worst verdict of VMs; it decides the exit code.
	Verdict Verdict       `json:"verdict"`
	VMs     []Report      `json:"vms"`
	Swarms  []SwarmSource `json:"swarms"`
}

// SwarmSource is one manager preclone read (or failed to read).
type SwarmSource struct {
	Endpoint  string `json:"endpoint"`
	ClusterID string `json:"cluster_id,omitempty"`
	Nodes     int    `json:"nodes"`
	Error     string `json:"error,omitempty"`
}

// WriteText prints reports for a terminal of the given width.
func WriteText(w io.Writer, o Output, width int) {
	for i, r := range o.VMs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		writeReport(w, r, width)
	}
	if len(o.VMs) > 1 {
		n := map[Verdict]int{}
		for _, r := range o.VMs {
			n[r.Verdict]++
		}
		fmt.Fprintf(w, "\nVerdict: %s (%d unsafe, %d unverified, %d safe of %d VMs)\n",
			o.Verdict, n[Unsafe], n[Unverified], n[Safe], len(o.VMs))
	}
}

func writeReport(w io.Writer, r Report, width int) {
	kind := "VM"
	if r.Template {
		kind = "template"
	}
	head := fmt.Sprintf("%s %s (%s, %s, %s)", kind, textsafe.Term(r.Name), textsafe.Term(r.Path), textsafe.Term(r.Ref),
		textsafe.Term(power(r.PowerState, r.Template)))
	v := string(r.Verdict)
	if pad := width - len(head) - len(v); pad >= 2 {
		head += strings.Repeat(" ", pad) + v
	} else {
		head += "  " + v
	}
	fmt.Fprintln(w, head)
	var gl string
	switch r.Guest.Source {
	case SourceLive:
		gl = "guest: probed now"
	case SourceStored:
		gl = "guest: last stored probe, " + r.Guest.ProbedAt.UTC().Format(time.RFC3339)
	default:
		gl = "guest: not probed"
	}
	if r.Guest.Error != "" {
		gl += " (" + r.Guest.Error + ")"
	}
	if r.Guest.NodeID != "" {
		gl += "; node " + r.Guest.NodeID + " " + r.Guest.Role
	}
	if r.Guest.KubeletNode != "" {
		gl += "; kubelet of Kubernetes Node " + r.Guest.KubeletNode
	}
	wrap(w, "  ", "    ", gl, width)
	wrap(w, "  ", "    ", "verdict: "+string(r.Verdict)+" - "+r.Reason, width)
	const col = 2 + 8 + 15 // indent, status, id
	for _, c := range r.Checks {
		wrap(w, fmt.Sprintf("  %-7s %-14s ", c.Status, c.ID), strings.Repeat(" ", col), c.Summary, width)
		if c.Status == Pass {
			continue
		}
		for _, e := range c.Evidence {
			wrap(w, strings.Repeat(" ", col)+"- ", strings.Repeat(" ", col+2), e, width)
		}
		if c.Fix != "" {
			wrap(w, strings.Repeat(" ", col)+"fix: ", strings.Repeat(" ", col+5), c.Fix, width)
		}
	}
}

func power(s string, template bool) string {
	switch {
	case template:
		return "template"
	case s == "poweredOn":
		return "powered on"
	case s == "poweredOff":
		return "powered off"
	case s == "":
		return "power unknown"
	}
	return s
}

// wrap prints text after first, wrapping at width with rest as the indent of
// the following lines. Words longer than a line are not broken. Each word is
// escaped for the terminal: text carries names and facts from vCenter and
// guests.
func wrap(w io.Writer, first, rest, text string, width int) {
	line := first
	empty := true
	for _, word := range strings.Fields(text) {
		word = textsafe.Term(word)
		if !empty && len(line)+1+len(word) > width {
			fmt.Fprintln(w, line)
			line, empty = rest, true
		}
		if empty {
			line += word
			empty = false
		} else {
			line += " " + word
		}
	}
	fmt.Fprintln(w, line)
}

// WritePlan prints a plan for a terminal.
func WritePlan(w io.Writer, p Plan, width int) {
	wrap(w, "", "", fmt.Sprintf("Generalization plan for the COPY %s (%s, %s), copied from %s (%s).",
		p.Target, p.TargetPath, p.TargetRef, p.Source, p.SourceRef), width)
	wrap(w, "", "", fmt.Sprintf("Run it on %s only, never on %s (the live source). It uses neither "+
		"'docker swarm leave' nor 'docker node rm', and deletes no Kubernetes Node: the node ID and the Node stay the original's.", p.Target, p.Source), width)
	fmt.Fprintln(w)
	for i, s := range p.Steps {
		wrap(w, fmt.Sprintf("%d. ", i+1), "   ", s.Title, width)
		for _, l := range strings.Split(s.Command, "\n") {
			fmt.Fprintln(w, "     "+textsafe.Term(l))
		}
	}
}
