package reconcile

import (
	"slices"
	"time"
)

// Result is what Reconcile derives from a snapshot. Its JSON form is the
// documented output of `vmreconcile audit -json` (see README, "JSON schema").
type Result struct {
	Summary Summary      `json:"summary"`
	VMs     []VMStatus   `json:"vms"`
	Nodes   []NodeStatus `json:"nodes"`
	// Machines, only for a snapshot without a vCenter (NoVCenter), are the
	// distinct machines seen answering as each node, by cluster and node.
	Machines []Machine `json:"machines,omitempty"`
	Findings []Finding `json:"findings"` // most severe first, then by kind, node ID, VMs
	// KubeNodes are the Kubernetes Nodes, by cluster and name (absent when
	// no Kubernetes cluster was observed).
	KubeNodes []KubeNodeStatus `json:"kube_nodes,omitempty"`
}

// Summary counts what was seen and found.
type Summary struct {
	CollectedAt time.Time `json:"collected_at"`
	// Sources names what the snapshot was collected from: "vcenter HOST",
	// "swarm ENDPOINT", "kubernetes NAME".
	Sources      []string `json:"sources"`
	VMs          int      `json:"vms"` // VMs and templates
	Templates    int      `json:"templates"`
	PoweredOn    int      `json:"powered_on"`
	Swarms       int      `json:"swarms"`
	Nodes        int      `json:"nodes"`
	MatchedNodes int      `json:"matched_nodes"`
	// Machines counts Result.Machines (snapshots without a vCenter only).
	Machines int `json:"machines,omitempty"`
	// Kubernetes clusters and Nodes observed, and the Nodes matched to a VM.
	KubeClusters     int `json:"kube_clusters,omitempty"`
	KubeNodes        int `json:"kube_nodes,omitempty"`
	MatchedKubeNodes int `json:"matched_kube_nodes,omitempty"`
	Critical         int `json:"critical"`
	Warning          int `json:"warning"`
	Info             int `json:"info"`
	// Highest is the most severe finding's severity, "" when there is none.
	Highest Severity `json:"highest,omitempty"`
}

// VMStatus is a VM with the swarm nodes it was matched to.
type VMStatus struct {
	VM
	NodeIDs []string `json:"node_ids,omitempty"`
	// KubeNodes are the Kubernetes Nodes it was matched to, as
	// KubeNodeKey ("CLUSTER/NODE"), sorted.
	KubeNodes []string `json:"kube_nodes,omitempty"`
	// Guest is the latest guest probe of the VM (audit -verify), errors included.
	Guest *GuestIdentity `json:"guest,omitempty"`
}

// NodeStatus is a node with the VMs each of its descriptions matched.
type NodeStatus struct {
	ClusterID    string               `json:"cluster_id"`
	ID           string               `json:"id"`
	Role         string               `json:"role"`
	State        string               `json:"state"`
	Availability string               `json:"availability"`
	Flips        int                  `json:"flips"`
	Descriptions []MatchedDescription `json:"descriptions"`
	VMs          []string             `json:"vms"`     // names of the distinct VMs matched
	VMRefs       []string             `json:"vm_refs"` // same order as VMs
}

// MatchedDescription is one identity of a node and the VMs it matched.
type MatchedDescription struct {
	Description
	VMRefs   []string `json:"vm_refs"`
	Evidence []string `json:"evidence"` // why it matched ("hostname wk-01 = guest hostname of wk-01", ...)
}

// Sources names what a snapshot was collected from: vCenters, swarms,
// Kubernetes clusters, each group sorted (the order of the input does not
// matter).
func Sources(snap Snapshot) []string {
	var vcs, sws, ks []string
	for _, vc := range snap.VCenters {
		vcs = append(vcs, "vcenter "+vc)
	}
	for _, sw := range snap.Swarms {
		sws = append(sws, "swarm "+sw.Endpoint)
	}
	for _, k := range snap.Kubernetes {
		ks = append(ks, "kubernetes "+k.Name)
	}
	out := []string{}
	for _, g := range [][]string{vcs, sws, ks} {
		slices.Sort(g)
		out = append(out, g...)
	}
	return out
}

// KubeNodeStatus is a Kubernetes Node with the VMs each of its identities
// matched.
type KubeNodeStatus struct {
	Cluster      string                `json:"cluster"`
	Name         string                `json:"name"`
	UID          string                `json:"uid,omitempty"`
	Ready        string                `json:"ready"`
	ControlPlane bool                  `json:"control_plane,omitempty"`
	Flips        int                   `json:"flips"`
	Identities   []MatchedKubeIdentity `json:"identities"`
	VMs          []string              `json:"vms"`     // names of the distinct VMs matched
	VMRefs       []string              `json:"vm_refs"` // same order as VMs
}

// MatchedKubeIdentity is one identity of a Node and the VMs it matched.
type MatchedKubeIdentity struct {
	KubeIdentity
	VMRefs   []string `json:"vm_refs"`
	Evidence []string `json:"evidence"` // why it matched ("systemUUID … = BIOS UUID of VM wk-01", ...)
}
