package preclone

import (
	"fmt"
	"strings"
	"time"

	"github.com/vmreconcile/vmreconcile/internal/textsafe"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

// Plan is the generalization plan for one copy.
type Plan struct {
	Target     string `json:"target"`
	TargetRef  string `json:"target_ref"`
	TargetPath string `json:"target_path"`
	Source     string `json:"source"`
	SourceRef  string `json:"source_ref"`
	// BackupDir is where the swarm state, the engine-id and the kubelet
	// credentials are moved, in the copy.
	BackupDir string `json:"backup_dir"`
	Steps     []Step `json:"steps"`
	// Script is what -apply runs in the copy (/bin/sh): the steps, idempotent.
	Script string `json:"script"`
}

// Step is one step of a plan.
type Step struct {
	Title   string `json:"title"`
	Command string `json:"command"`
}

// BackupRoot is the directory of the copy where plans move state aside.
const BackupRoot = "/var/backups"

// GeneralizePlan returns the steps that make target, a copy of source, safe:
// stop and disable Docker, move the swarm state and engine-id into a
// timestamped backup directory, stop and disable kubelet, move its
// credentials (/var/lib/kubelet/pki, /etc/kubernetes/kubelet.conf) into the
// same backup directory, empty /etc/machine-id, remove the SSH host keys,
// cloud-init clean. at names the backup directory. The script can be run
// again: a step with nothing left to do does nothing.
func GeneralizePlan(target, source reconcile.VM, at time.Time) Plan {
	backup := BackupRoot + "/vmreconcile-generalize-" + at.UTC().Format("20060102T150405Z")
	p := Plan{
		Target: target.Name, TargetRef: target.Ref, TargetPath: target.Path,
		Source: source.Name, SourceRef: source.Ref, BackupDir: backup,
	}
	p.Steps = []Step{
		{
			Title: "Stop and disable Docker, so the copy never starts it with the copied identity",
			// Without systemctl the is-active check says nothing: refuse to go
			// on while a dockerd runs (its swarm state would be moved from
			// under a live engine that still answers as the node).
			Command: `systemctl disable --now docker.socket docker.service 2>/dev/null || true
if systemctl is-active --quiet docker.service 2>/dev/null; then
  echo "docker.service still running" >&2; exit 1
fi
if ! command -v systemctl >/dev/null 2>&1 && pidof dockerd >/dev/null 2>&1; then
  echo "dockerd running and no systemctl: stop Docker first" >&2; exit 1
fi`,
		},
		{
			Title: "Move the swarm state and engine-id aside into " + backup,
			Command: `b=` + backup + `
` + rootLine + `
for f in swarm engine-id; do
  [ -e "$root/$f" ] || [ -L "$root/$f" ] || continue
  [ ! -e "$b/$f" ] || { echo "$b/$f exists" >&2; exit 1; }
  mkdir -p -m 0700 "$b" || exit 1
  mv "$root/$f" "$b/$f"
done`,
		},
		{
			Title: "Stop and disable kubelet, so the copy never writes the source's Kubernetes Node",
			// Docker is stopped already (MKE runs its kubelet under Docker):
			// a kubelet still running is one no unit stops; its credentials
			// must not be moved from under it (it keeps them in memory).
			Command: `systemctl disable --now kubelet 2>/dev/null || true
if systemctl is-active --quiet kubelet 2>/dev/null; then
  echo "kubelet.service still running" >&2; exit 1
fi
if pidof kubelet >/dev/null 2>&1; then
  echo "a kubelet runs outside kubelet.service: stop it first" >&2; exit 1
fi`,
		},
		{
			Title: "Move the kubelet credentials (/var/lib/kubelet/pki, /etc/kubernetes/kubelet.conf) aside into " + backup,
			Command: `b=` + backup + `
for f in /var/lib/kubelet/pki /etc/kubernetes/kubelet.conf; do
  [ -e "$f" ] || [ -L "$f" ] || continue
  case "$f" in */pki) d="$b/kubelet-pki" ;; *) d="$b/kubelet.conf" ;; esac
  [ ! -e "$d" ] || { echo "$d exists" >&2; exit 1; }
  mkdir -p -m 0700 "$b" || exit 1
  mv "$f" "$d"
done`,
		},
		{
			Title:   "Empty /etc/machine-id (truncate, do not delete: systemd makes a new ID at next boot)",
			Command: `if [ -s /etc/machine-id ]; then : > /etc/machine-id; fi`,
		},
		{
			Title:   "Remove the SSH host keys (cloud-init or ssh-keygen -A makes new ones)",
			Command: `rm -f /etc/ssh/ssh_host_*`,
		},
		{
			Title:   "Clean cloud-init's instance state, so first-boot setup runs again",
			Command: `if command -v cloud-init >/dev/null 2>&1; then cloud-init clean; fi`,
		},
	}
	p.Script = script(p)
	return p
}

// rootLine stands for dataRoot in the printed steps.
const rootLine = "root=/var/lib/docker   # or the data-root of /etc/docker/daemon.json"

// dataRoot is the same data-root lookup the guest probe does.
const dataRoot = `root=/var/lib/docker
if [ -r /etc/docker/daemon.json ]; then
  r=$(head -c 65536 /etc/docker/daemon.json | tr -d '\n' | sed -n 's/.*"data-root"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' 2>/dev/null)
  case "$r" in /*) root=$r ;; esac
fi`

func script(p Plan) string {
	var b strings.Builder
	// Names come from vCenter: escaped, a newline in one cannot end the
	// comment and start a command.
	b.WriteString("# vmreconcile generalize: copy " + textsafe.Term(p.Target+" ("+p.TargetRef+") of "+p.Source+" ("+p.SourceRef+")") + "\n")
	b.WriteString("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nexport PATH\nset -eu\numask 077\n")
	for i, s := range p.Steps {
		cmd := strings.Replace(s.Command, rootLine, dataRoot, 1)
		fmt.Fprintf(&b, "echo 'step %d: %s'\n%s\n", i+1, strings.ReplaceAll(s.Title, "'", ""), cmd)
	}
	b.WriteString("echo 'generalized'\n")
	return b.String()
}

// TargetInput is what RefuseTarget weighs.
type TargetInput struct {
	Target, Source           reconcile.VM
	TargetGuest, SourceGuest *reconcile.GuestIdentity // nil when unknown
	Swarms                   []reconcile.Swarm
}

// RefuseTarget returns why the plan must not run on the target ("" when it
// may): the target is the source itself, the original the source was copied
// from, or a live swarm member that is not known to be a copy of the source.
func RefuseTarget(in TargetInput) string {
	t, s := in.Target, in.Source
	if t.Ref == s.Ref {
		return fmt.Sprintf("%s is the source itself: the plan runs on a copy, never on the live source", t.Name)
	}
	if s.Lineage != nil && s.Lineage.SourceRef == t.Ref {
		return fmt.Sprintf("%s is the original %s was copied from, not a copy of it (swap the arguments?)", t.Name, s.Name)
	}
	// Without a clone event, a copy cannot be older than its source: when the
	// target was created first, the arguments are most likely swapped, and
	// the shared node ID below would otherwise let the plan run on the
	// live original.
	if (t.Lineage == nil || t.Lineage.SourceRef != s.Ref) && !t.Created.IsZero() && !s.Created.IsZero() && t.Created.Before(s.Created) {
		return fmt.Sprintf("%s was created (%s) before %s (%s): it cannot be a copy of it (swap the arguments?)",
			t.Name, t.Created.UTC().Format(time.RFC3339), s.Name, s.Created.UTC().Format(time.RFC3339))
	}
	tg := in.TargetGuest
	if tg == nil || tg.Error != "" || tg.NodeID == "" {
		return ""
	}
	live := liveNodes(in.Swarms)[tg.NodeID]
	if len(live) == 0 {
		return ""
	}
	if sg := in.SourceGuest; sg != nil && sg.Error == "" && sg.NodeID == tg.NodeID {
		return "" // the copy shares the source's node ID: exactly what the plan fixes
	}
	if t.Lineage != nil && t.Lineage.SourceRef == s.Ref {
		return "" // vCenter says the target is a copy of the source
	}
	return fmt.Sprintf("%s is live swarm node %s (%s) and is not known to be a copy of %s: "+
		"it looks like the live member itself", t.Name, tg.NodeID, nodeDesc(live[0]), s.Name)
}
