// Package preclone decides whether a VM (or template) is safe to copy: it
// looks for the identities a copy would share with the original (swarm node
// certificate, engine ID, machine ID, SSH host keys, kubelet credentials,
// cloud-init instance state, BIOS UUID kept by uuid.action = keep) and at what
// the swarm managers know of it, and says SAFE, UNSAFE or UNVERIFIED.
//
// It also writes the generalization plan for a copy: the steps that make the
// copy safe, to run on the copy, never on its live source.
//
// The package is pure: everything comes in through Input, nothing is read
// from the network, the disk or the clock.
package preclone

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// Status is the outcome of one check.
type Status string

const (
	Pass Status = "PASS"
	Warn Status = "WARN" // the copy shares something it should not; not a swarm impersonation
	Fail Status = "FAIL" // copies would impersonate a node, or must not be started at all
	// Unknown: the check could not be made (no guest probe, manager unreachable).
	Unknown Status = "UNKNOWN"
)

// Verdict is the answer for one VM.
type Verdict string

const (
	Safe       Verdict = "SAFE"       // no FAIL, nothing unknown (warnings allowed)
	Unsafe     Verdict = "UNSAFE"     // at least one FAIL
	Unverified Verdict = "UNVERIFIED" // no FAIL, but at least one check UNKNOWN
)

// Rank orders verdicts from best (0) to worst.
func (v Verdict) Rank() int {
	switch v {
	case Safe:
		return 0
	case Unverified:
		return 1
	case Unsafe:
		return 2
	}
	return 1
}

// Worst returns the worst of vs (Safe for none).
func Worst(vs ...Verdict) Verdict {
	w := Safe
	for _, v := range vs {
		if v.Rank() > w.Rank() {
			w = v
		}
	}
	return w
}

// Check IDs, in report order.
const (
	CheckSwarmIdentity = "swarm-identity" // swarm-node.crt: node ID, role, cluster; live in a visible swarm?
	CheckManagerRole   = "manager-role"   // OU=swarm-manager: a copy must never start
	CheckSwarmNode     = "swarm-node-now" // do the managers list this VM as a node?
	CheckDockerAtBoot  = "docker-at-boot" // docker.service/docker.socket enabled
	CheckEngineID      = "engine-id"      // /var/lib/docker/engine-id
	CheckMachineID     = "machine-id"     // /etc/machine-id non-empty
	CheckSSHHostKeys   = "ssh-host-keys"  // /etc/ssh/ssh_host_*_key
	CheckKubelet       = "kubelet-creds"  // kubelet client certificate, kubelet.conf or kubelet PKI: FAIL
	CheckCloudInit     = "cloud-init"     // per-instance state
	CheckLineage       = "lineage"        // is the VM itself an un-generalized copy?
	CheckUUIDAction    = "uuid-action"    // extraConfig uuid.action = keep
)

// CheckIDs lists every check in report order.
var CheckIDs = []string{
	CheckSwarmIdentity, CheckManagerRole, CheckSwarmNode, CheckDockerAtBoot, CheckEngineID,
	CheckMachineID, CheckSSHHostKeys, CheckKubelet, CheckCloudInit, CheckLineage, CheckUUIDAction,
}

// Check is one check's result.
type Check struct {
	ID       string   `json:"id"`
	Status   Status   `json:"status"`
	Summary  string   `json:"summary"`            // one line: what was found
	Evidence []string `json:"evidence,omitempty"` // the facts behind it
	Fix      string   `json:"fix,omitempty"`      // what to do (WARN, FAIL, UNKNOWN)
}

// Guest sources.
const (
	SourceLive   = "live"   // probed by this run
	SourceStored = "stored" // the last probe the store kept
	SourceNone   = "none"   // no probe
)

// Input is everything known about one VM.
type Input struct {
	VM reconcile.VM
	// Guest is the guest identity to judge, nil when there is none.
	Guest *reconcile.GuestIdentity
	// GuestSource says where Guest came from (SourceLive, SourceStored).
	GuestSource string
	// ProbeError is why a live probe was not possible or failed ("" when it
	// worked or was not attempted).
	ProbeError string
	// UUIDAction is the VM's extraConfig uuid.action ("" when not set).
	UUIDAction string
	// Swarms are the swarms observed through a manager.
	Swarms []reconcile.Swarm
	// SwarmErrors are managers that were asked for and could not be read.
	SwarmErrors []string
	// SourceGuest is the last known identity of the VM's lineage source, if any.
	SourceGuest *reconcile.GuestIdentity
	// SourceNodes are the swarm node IDs the VM's lineage source is the VM
	// of in this run (the pipeline's matching), if any.
	SourceNodes []string
	// Findings are the run's findings that name this VM as a copy (not as
	// the original): clone-of-swarm-node, template-carries-swarm-identity,
	// shared-node-id.
	Findings []reconcile.Finding
	// Skip is true when the VM carries the vmreconcile.skip marker.
	Skip bool
	// Now is the time of the check (for ages).
	Now time.Time
}

// Report is the result for one VM (one element of the JSON "vms" array).
type Report struct {
	Name       string  `json:"name"`
	Path       string  `json:"path"`
	Ref        string  `json:"ref"`
	VCenter    string  `json:"vcenter,omitempty"`
	PowerState string  `json:"power_state"`
	Template   bool    `json:"template"`
	Verdict    Verdict `json:"verdict"`
	// Reason is one line: why the verdict.
	Reason string    `json:"reason"`
	Guest  GuestInfo `json:"guest"`
	Checks []Check   `json:"checks"`
}

// GuestInfo says where the guest facts came from.
type GuestInfo struct {
	Source    string    `json:"source"` // live, stored, none
	ProbedAt  time.Time `json:"probed_at,omitzero"`
	Error     string    `json:"error,omitempty"` // why there is no live probe
	NodeID    string    `json:"node_id,omitempty"`
	Role      string    `json:"role,omitempty"`
	ClusterID string    `json:"cluster_id,omitempty"`
	Hostname  string    `json:"hostname,omitempty"`
	// KubeletNode is the Node of the guest's kubelet client certificate.
	KubeletNode string `json:"kubelet_node,omitempty"`
}

// Evaluate runs every check for one VM and derives the verdict.
func Evaluate(in Input) Report {
	r := Report{
		Name: in.VM.Name, Path: in.VM.Path, Ref: in.VM.Ref, VCenter: in.VM.VCenter,
		PowerState: in.VM.PowerState, Template: in.VM.Template,
		Guest: GuestInfo{Source: SourceNone, Error: in.ProbeError},
	}
	g := in.Guest
	if g != nil && g.Error != "" { // a failed probe is no identity
		if r.Guest.Error == "" {
			r.Guest.Error = g.Error
		}
		g = nil
	}
	if g != nil {
		r.Guest.Source = in.GuestSource
		if r.Guest.Source == "" {
			r.Guest.Source = SourceLive
		}
		r.Guest.ProbedAt = g.ProbedAt
		r.Guest.NodeID, r.Guest.Role, r.Guest.ClusterID, r.Guest.Hostname = g.NodeID, g.Role, g.ClusterID, g.Hostname
		r.Guest.KubeletNode = g.KubeletNode
	}
	c := &checker{in: in, g: g, nodes: liveNodes(in.Swarms)}
	r.Checks = []Check{
		c.swarmIdentity(), c.managerRole(), c.swarmNode(), c.dockerAtBoot(), c.engineID(),
		c.machineID(), c.sshHostKeys(), c.kubelet(), c.cloudInit(), c.lineage(), c.uuidAction(),
	}
	r.Verdict, r.Reason = verdict(r.Checks, r.Guest)
	if r.Verdict == Safe && r.Guest.Source == SourceStored && in.VM.PoweredOn() && in.ProbeError != "" {
		// A running VM can have changed since: its old probe cannot make it SAFE.
		r.Verdict = Unverified
		r.Reason = "running VM not probed now (" + in.ProbeError + "); its stored probe passes"
	}
	return r
}

func verdict(checks []Check, gi GuestInfo) (Verdict, string) {
	var fails, unknown, warns []string
	for _, c := range checks {
		switch c.Status {
		case Fail:
			fails = append(fails, c.ID)
		case Unknown:
			unknown = append(unknown, c.ID)
		case Warn:
			warns = append(warns, c.ID)
		}
	}
	switch {
	case len(fails) > 0:
		return Unsafe, "FAIL: " + strings.Join(fails, ", ")
	case len(unknown) > 0:
		why := "not verified: " + strings.Join(unknown, ", ")
		if gi.Source == SourceNone {
			why = "no guest probe"
			if gi.Error != "" {
				why += " (" + gi.Error + ")"
			}
			why += "; not verified: " + strings.Join(unknown, ", ")
		}
		return Unverified, why
	case len(warns) > 0:
		return Safe, "no FAIL; WARN: " + strings.Join(warns, ", ")
	}
	return Safe, "every check passed"
}

// liveNode is a node ID as one swarm lists it.
type liveNode struct {
	swarm reconcile.Swarm
	node  reconcile.Node
}

func liveNodes(sws []reconcile.Swarm) map[string][]liveNode {
	m := map[string][]liveNode{}
	for _, s := range sws {
		for _, n := range s.Nodes {
			m[n.ID] = append(m[n.ID], liveNode{s, n})
		}
	}
	return m
}

type checker struct {
	in    Input
	g     *reconcile.GuestIdentity
	nodes map[string][]liveNode
}

const (
	fixGeneralize = "generalize every copy before it reaches the network: vmreconcile preclone " +
		"-generalize-plan COPY SOURCE -apply (boot the copy with its NIC disconnected; guest operations need no network)"
	fixProbe = "power the VM on and run preclone with a guest login (-l user:password), " +
		"or let the daemon or audit -verify probe it while it runs"
)

func (c *checker) noGuest(id string) Check {
	ev := []string{"no guest probe of this VM"}
	if c.in.ProbeError != "" {
		ev = []string{"no guest probe: " + c.in.ProbeError}
	}
	if c.in.Guest != nil && c.in.Guest.Error != "" {
		ev = append(ev, "last probe failed: "+c.in.Guest.Error)
	}
	return Check{ID: id, Status: Unknown, Summary: "not checked: the guest was not probed", Evidence: ev, Fix: fixProbe}
}

func (c *checker) probeEvidence() string {
	g := c.g
	if c.in.GuestSource == SourceStored {
		s := "from the stored probe of " + g.ProbedAt.UTC().Format(time.RFC3339)
		if !c.in.Now.IsZero() && c.in.Now.After(g.ProbedAt) {
			s += " (" + age(c.in.Now.Sub(g.ProbedAt)) + " ago)"
		}
		return s
	}
	return "from the guest, probed " + g.ProbedAt.UTC().Format(time.RFC3339)
}

func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "under a minute"
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func nodeDesc(ln liveNode) string {
	n := ln.node
	s := fmt.Sprintf("node %s is a %s, state %s, in swarm %s (manager %s)", n.ID, orUnknown(n.Role), orUnknown(n.State),
		orUnknown(ln.swarm.ClusterID), ln.swarm.Endpoint)
	if len(n.Descriptions) > 0 {
		var hs []string
		for _, d := range n.Descriptions {
			if d.Hostname != "" && !slices.Contains(hs, d.Hostname) {
				hs = append(hs, d.Hostname)
			}
		}
		if len(hs) > 0 {
			s += "; reports hostname " + strings.Join(hs, ", ")
		}
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func (c *checker) swarmIdentity() Check {
	id := CheckSwarmIdentity
	if c.g == nil {
		return c.noGuest(id)
	}
	g := c.g
	if g.NodeID == "" {
		return Check{ID: id, Status: Pass, Summary: "no swarm node certificate", Evidence: []string{c.probeEvidence()}}
	}
	ev := []string{
		fmt.Sprintf("swarm-node.crt: CN (node ID) %s, OU (role) %s, O (cluster) %s", g.NodeID, orUnknown(g.Role), orUnknown(g.ClusterID)),
		c.probeEvidence(),
	}
	if live := c.nodes[g.NodeID]; len(live) > 0 {
		for _, ln := range live {
			ev = append(ev, nodeDesc(ln))
		}
		return Check{ID: id, Status: Fail,
			Summary:  fmt.Sprintf("every clone will connect as node %s, a live member of the swarm", g.NodeID),
			Evidence: ev,
			Fix: "do not boot a copy on the network as it is; " + fixGeneralize +
				". Never 'docker node rm' this ID: it is the original's, and removal blacklists it for both",
		}
	}
	for _, s := range c.in.Swarms {
		if s.ClusterID != "" && s.ClusterID == g.ClusterID {
			ev = append(ev, fmt.Sprintf("swarm %s (manager %s) does not list node %s: it was removed", s.ClusterID, s.Endpoint, g.NodeID))
			return Check{ID: id, Status: Warn, Summary: "stale swarm identity of a removed node " + g.NodeID,
				Evidence: ev, Fix: "move the swarm state aside on the copies (-generalize-plan), or once on this VM if it is retired"}
		}
	}
	if len(c.in.SwarmErrors) > 0 {
		for _, e := range c.in.SwarmErrors {
			ev = append(ev, "manager not readable: "+e)
		}
		return Check{ID: id, Status: Unknown, Summary: "carries swarm node " + g.NodeID + "; membership not verified",
			Evidence: ev, Fix: "make the manager reachable (-H, DOCKER_HOST) and run again"}
	}
	if len(c.in.Swarms) == 0 {
		ev = append(ev, "no swarm manager given (-H, DOCKER_HOST or swarms in -config)")
	} else {
		ev = append(ev, "cluster "+orUnknown(g.ClusterID)+" is none of the swarms read")
	}
	return Check{ID: id, Status: Warn, Summary: "carries swarm node " + g.NodeID + "; membership not checked",
		Evidence: ev, Fix: "point -H at a manager of cluster " + orUnknown(g.ClusterID) + "; " + fixGeneralize}
}

func (c *checker) managerRole() Check {
	id := CheckManagerRole
	if c.g == nil {
		return c.noGuest(id)
	}
	if c.g.NodeID == "" {
		return Check{ID: id, Status: Pass, Summary: "no swarm role"}
	}
	if c.g.Role == "swarm-manager" {
		return Check{ID: id, Status: Fail,
			Summary: "swarm MANAGER: a copy must never start",
			Evidence: []string{
				"swarm-node.crt OU = swarm-manager, node " + c.g.NodeID,
				"a copied manager joins raft with the same node and raft identity as the original: " +
					"it can split the raft quorum and corrupt the cluster state",
			},
			Fix: "never power on a copy with its NIC connected; clone a worker, or generalize the copy offline " +
				"(-generalize-plan COPY SOURCE -apply) before it ever reaches the network",
		}
	}
	return Check{ID: id, Status: Pass, Summary: "role " + orUnknown(c.g.Role) + " (not a manager)"}
}

// swarmNode: do the managers list a node that is this VM (by the node ID of
// its certificate, its host name or an IP)?
func (c *checker) swarmNode() Check {
	id := CheckSwarmNode
	if len(c.in.Swarms) == 0 {
		if len(c.in.SwarmErrors) > 0 {
			return Check{ID: id, Status: Unknown, Summary: "managers not readable",
				Evidence: c.in.SwarmErrors, Fix: "make the manager reachable (-H, DOCKER_HOST) and run again"}
		}
		return Check{ID: id, Status: Warn, Summary: "not checked: no swarm manager given",
			Fix: "add -H tcp://MANAGER:2376 (or DOCKER_HOST, or swarms in -config)"}
	}
	names := []string{c.in.VM.Name, c.in.VM.GuestHostname}
	if c.g != nil {
		names = append(names, c.g.Hostname)
	}
	var ev []string
	var byID, byName bool
	for _, s := range c.in.Swarms {
		for _, n := range s.Nodes {
			why := ""
			if c.g != nil && c.g.NodeID != "" && n.ID == c.g.NodeID {
				why = "its certificate's node ID"
				byID = true
			} else if m := matchDesc(n, names, c.in.VM.IPs); m != "" {
				why = m
				byName = true
			}
			if why != "" {
				ev = append(ev, nodeDesc(liveNode{s, n})+"; matches this VM by "+why)
			}
		}
	}
	for _, e := range c.in.SwarmErrors {
		ev = append(ev, "manager not readable: "+e)
	}
	switch {
	case byID:
		return Check{ID: id, Status: Fail, Summary: "the managers list this VM's node ID as a member",
			Evidence: ev, Fix: fixGeneralize}
	case byName && c.g == nil:
		return Check{ID: id, Status: Fail, Summary: "the managers list a node with this VM's name or address",
			Evidence: append(ev, "its disk most likely holds that node's swarm state (not probed)"),
			Fix:      "probe it (power on, -l) to confirm; treat copies as that node until generalized"}
	case byName:
		return Check{ID: id, Status: Warn, Summary: "a node with this VM's name or address is a member, not with its node ID",
			Evidence: ev, Fix: "check which VM is that node (vmreconcile audit -verify)"}
	case len(c.in.SwarmErrors) > 0:
		return Check{ID: id, Status: Unknown, Summary: "not every manager was readable", Evidence: ev,
			Fix: "make the manager reachable (-H, DOCKER_HOST) and run again"}
	}
	var eps []string
	for _, s := range c.in.Swarms {
		eps = append(eps, fmt.Sprintf("%s (%d nodes)", s.Endpoint, len(s.Nodes)))
	}
	return Check{ID: id, Status: Pass, Summary: "no manager lists this VM",
		Evidence: []string{"managers read: " + strings.Join(eps, ", ")}}
}

func matchDesc(n reconcile.Node, names, ips []string) string {
	for _, d := range n.Descriptions {
		for _, name := range names {
			if reconcile.HostnameMatches(d.Hostname, name) {
				return "hostname " + d.Hostname
			}
		}
		if d.Addr != "" && slices.Contains(ips, d.Addr) {
			return "address " + d.Addr
		}
	}
	return ""
}

func (c *checker) dockerAtBoot() Check {
	id := CheckDockerAtBoot
	if c.g == nil {
		return c.noGuest(id)
	}
	g := c.g
	ev := []string{"docker.service/docker.socket enabled: " + orUnknown(g.DockerEnabled) + ", running: " + orUnknown(g.DockerActive)}
	fix := "on the copy: systemctl disable --now docker.socket docker.service (part of -generalize-plan)"
	switch {
	case g.DockerEnabled == "yes" && g.NodeID != "":
		return Check{ID: id, Status: Fail, Summary: "Docker starts at boot with the copied swarm identity",
			Evidence: append(ev, "clones start Docker and connect as node "+g.NodeID+" before anyone can reconfigure them"), Fix: fix}
	case g.DockerEnabled == "yes" && g.EngineID != "":
		return Check{ID: id, Status: Warn, Summary: "Docker starts at boot with the copied engine ID", Evidence: ev, Fix: fix}
	case g.DockerEnabled == "yes":
		return Check{ID: id, Status: Pass, Summary: "enabled, with no swarm state or engine ID to copy", Evidence: ev}
	case g.DockerEnabled == "no":
		return Check{ID: id, Status: Pass, Summary: "Docker does not start at boot", Evidence: ev}
	case g.NodeID != "":
		return Check{ID: id, Status: Warn, Summary: "cannot tell whether Docker starts at boot (no systemctl answer)", Evidence: ev, Fix: fix}
	}
	return Check{ID: id, Status: Pass, Summary: "no systemd answer; nothing to start with", Evidence: ev}
}

func (c *checker) engineID() Check {
	id := CheckEngineID
	if c.g == nil {
		return c.noGuest(id)
	}
	if c.g.EngineID == "" {
		return Check{ID: id, Status: Pass, Summary: "no engine-id"}
	}
	return Check{ID: id, Status: Warn, Summary: "engine-id present: copies share the Docker engine ID",
		Evidence: []string{"engine-id " + c.g.EngineID},
		Fix:      "on the copy: move /var/lib/docker/engine-id aside (part of -generalize-plan); Docker makes a new one"}
}

func (c *checker) machineID() Check {
	id := CheckMachineID
	if c.g == nil {
		return c.noGuest(id)
	}
	if c.g.MachineID == "" {
		return Check{ID: id, Status: Pass, Summary: "/etc/machine-id empty or absent: systemd makes a new one at first boot"}
	}
	return Check{ID: id, Status: Warn, Summary: "/etc/machine-id set: copies share DHCP DUID, journald and Kubernetes machine ID",
		Evidence: []string{"machine-id " + c.g.MachineID},
		Fix:      "on the copy: truncate /etc/machine-id (do not delete it) (part of -generalize-plan)"}
}

func (c *checker) sshHostKeys() Check {
	id := CheckSSHHostKeys
	if c.g == nil {
		return c.noGuest(id)
	}
	if !c.g.SSHHostKeys {
		return Check{ID: id, Status: Pass, Summary: "no SSH host keys"}
	}
	return Check{ID: id, Status: Warn, Summary: "SSH host keys present: copies share them",
		Evidence: []string{"/etc/ssh/ssh_host_*_key exist"},
		Fix:      "on the copy: rm /etc/ssh/ssh_host_* (part of -generalize-plan); regenerate at first boot (cloud-init, or ssh-keygen -A)"}
}

// kubelet: a kubelet identity (client certificate, kubelet.conf) makes
// every copy write the source's Kubernetes Node: FAIL.
func (c *checker) kubelet() Check {
	id := CheckKubelet
	if c.g == nil {
		return c.noGuest(id)
	}
	g := c.g
	if !g.KubeletCreds && g.KubeletNode == "" {
		return Check{ID: id, Status: Pass, Summary: "no kubelet credentials"}
	}
	var ev []string
	summary := "kubelet credentials present: every copy's kubelet acts as the same Kubernetes node"
	if g.KubeletNode != "" {
		summary = "kubelet identity of Node " + g.KubeletNode + ": every copy's kubelet writes that Node (its boot ID, systemUUID and capacity flip; pods get evicted)"
		ev = append(ev, fmt.Sprintf("kubelet client certificate: CN system:node:%s, O %s", g.KubeletNode, orUnknown(g.KubeletOrg)))
	} else {
		ev = append(ev, "/etc/kubernetes/kubelet.conf or /var/lib/kubelet/pki present (no readable client certificate naming a Node)")
	}
	if g.KubeletServer != "" {
		ev = append(ev, "API server "+g.KubeletServer+" (kubelet.conf)")
	}
	ev = append(ev, "kubelet.service enabled: "+orUnknown(g.KubeletEnabled)+", running: "+orUnknown(g.KubeletActive), c.probeEvidence())
	return Check{ID: id, Status: Fail, Summary: summary, Evidence: ev,
		Fix: "do not boot a copy on the network as it is; " + fixGeneralize +
			" (it disables kubelet and moves /var/lib/kubelet/pki and /etc/kubernetes/kubelet.conf aside); then join each copy under its own name with its own certificate (kubeadm join). " +
			"Never delete the source's Node from the cluster: that drops its labels and taints"}
}

func (c *checker) cloudInit() Check {
	id := CheckCloudInit
	if c.g == nil {
		return c.noGuest(id)
	}
	if c.g.CloudInitInstance == "" {
		return Check{ID: id, Status: Pass, Summary: "no cloud-init instance state"}
	}
	return Check{ID: id, Status: Warn, Summary: "cloud-init instance state present: copies may skip first-boot setup",
		Evidence: []string{"instance " + c.g.CloudInitInstance},
		Fix:      "on the copy: cloud-init clean (part of -generalize-plan)"}
}

func (c *checker) lineage() Check {
	id := CheckLineage
	l := c.in.VM.Lineage
	if l == nil {
		return Check{ID: id, Status: Pass, Summary: "no clone or deploy event recorded for this VM"}
	}
	src := fmt.Sprintf("%s of %s (%s) on %s", l.Kind, orUnknown(l.SourceName), l.SourceRef, l.Time.UTC().Format(time.RFC3339))
	ev := []string{"this VM is a " + src}
	if c.g == nil {
		// A copy of a swarm node VM holds that node's identity until it is
		// proven generalized: the same conclusion the audit reaches.
		if node, why := c.copyOfNode(); node != "" {
			return Check{ID: id, Status: Fail, Summary: "a copy of swarm node " + node + "'s VM " + orUnknown(l.SourceName) + ", not proven generalized",
				Evidence: append(ev, why),
				Fix:      "treat it as that node until generalized: vmreconcile preclone -generalize-plan " + c.in.VM.Name + " " + orUnknown(l.SourceName) + " -apply (on a running copy), or probe it to prove it clean"}
		}
		return Check{ID: id, Status: Warn, Summary: "a copy itself; contents not verified", Evidence: ev, Fix: fixProbe}
	}
	g := c.g
	if sg := c.in.SourceGuest; sg != nil && sg.Error == "" && g.NodeID != "" && sg.NodeID == g.NodeID {
		return Check{ID: id, Status: Fail, Summary: "an un-generalized copy: shares node " + g.NodeID + " with its source",
			Evidence: append(ev, "its source's last probe has the same node ID"),
			Fix:      "generalize this VM first: vmreconcile preclone -generalize-plan " + c.in.VM.Name + " " + orUnknown(l.SourceName) + " -apply"}
	}
	if sg := c.in.SourceGuest; sg != nil && sg.Error == "" && g.KubeletNode != "" && strings.EqualFold(sg.KubeletNode, g.KubeletNode) {
		return Check{ID: id, Status: Fail, Summary: "an un-generalized copy: holds the kubelet identity of Node " + g.KubeletNode + " like its source",
			Evidence: append(ev, "its source's last probe has a kubelet client certificate for the same Node"),
			Fix:      "generalize this VM first: vmreconcile preclone -generalize-plan " + c.in.VM.Name + " " + orUnknown(l.SourceName) + " -apply"}
	}
	var carries []string
	if g.NodeID != "" {
		carries = append(carries, "swarm state")
	}
	if g.EngineID != "" {
		carries = append(carries, "engine-id")
	}
	if g.MachineID != "" {
		carries = append(carries, "machine-id")
	}
	if g.KubeletCreds || g.KubeletNode != "" {
		carries = append(carries, "kubelet credentials")
	}
	if len(carries) > 0 {
		return Check{ID: id, Status: Warn, Summary: "a copy that was not generalized: carries " + strings.Join(carries, ", "),
			Evidence: ev, Fix: "generalize it (-generalize-plan " + c.in.VM.Name + " " + orUnknown(l.SourceName) + ")"}
	}
	return Check{ID: id, Status: Pass, Summary: "a copy, generalized", Evidence: ev}
}

// copyOfNode returns the node ID this VM's source holds, and how that is
// known: a finding of the run, the source matched to a node, or the
// source's last probe.
func (c *checker) copyOfNode() (node, why string) {
	for _, f := range c.in.Findings {
		if f.NodeID != "" {
			return f.NodeID, "the audit reports " + f.Kind + " for node " + f.NodeID + " naming this VM"
		}
	}
	if len(c.in.SourceNodes) > 0 {
		return c.in.SourceNodes[0], "its source is the VM of swarm node " + strings.Join(c.in.SourceNodes, ", ")
	}
	if sg := c.in.SourceGuest; sg != nil && sg.Error == "" && sg.NodeID != "" {
		return sg.NodeID, "its source's last probe holds node " + sg.NodeID
	}
	return "", ""
}

func (c *checker) uuidAction() Check {
	id := CheckUUIDAction
	v := strings.ToLower(strings.TrimSpace(c.in.UUIDAction))
	if v == "keep" {
		return Check{ID: id, Status: Fail, Summary: "uuid.action = keep: copies keep this VM's BIOS UUID",
			Evidence: []string{"extraConfig uuid.action = " + c.in.UUIDAction, "BIOS UUID " + orUnknown(c.in.VM.BIOSUUID)},
			Fix:      "before cloning: govc vm.change -vm '" + c.in.VM.Path + "' -e uuid.action=create (or remove the key)"}
	}
	if v == "" {
		return Check{ID: id, Status: Pass, Summary: "uuid.action not set: copies get a new BIOS UUID"}
	}
	return Check{ID: id, Status: Pass, Summary: "uuid.action = " + c.in.UUIDAction + ": copies get a new BIOS UUID"}
}
