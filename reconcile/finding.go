package reconcile

import (
	"sort"
	"strings"
)

// Severity ranks findings.
type Severity string

const (
	Info     Severity = "info"
	Warning  Severity = "warning"
	Critical Severity = "critical"
)

// Rank orders severities: info < warning < critical. Unknown ranks lowest.
func (s Severity) Rank() int {
	switch s {
	case Critical:
		return 3
	case Warning:
		return 2
	case Info:
		return 1
	}
	return 0
}

// Finding kinds.
const (
	KindSharedNodeID         = "shared-node-id"
	KindNodeFlapping         = "node-flapping"
	KindCloneOfSwarmNode     = "clone-of-swarm-node"
	KindTemplateCarriesSwarm = "template-carries-swarm-identity"
	KindDuplicateBIOSUUID    = "duplicate-bios-uuid"
	KindDuplicateMAC         = "duplicate-mac"
	KindDuplicateHostname    = "duplicate-hostname"
	KindNodeWithoutVM        = "node-without-vm"
	KindNodeReadyVMOff       = "node-ready-vm-off"
	KindSharedEngineID       = "shared-engine-id"
	KindSharedMachineID      = "shared-machine-id"

	// Kubernetes: one Node object written by two machines (a copy of a node
	// VM whose kubelet booted with the same hostname and client certificate).
	KindSharedK8sNode          = "shared-k8s-node"
	KindK8sNodeFlapping        = "k8s-node-flapping"
	KindCloneOfK8sNode         = "clone-of-k8s-node"
	KindTemplateCarriesKubelet = "template-carries-kubelet-identity"
)

// SwarmIdentityKinds are the findings about a copied swarm identity (the
// ones remediation acts on with disable-docker).
var SwarmIdentityKinds = []string{KindSharedNodeID, KindCloneOfSwarmNode, KindTemplateCarriesSwarm}

// KubeIdentityKinds are the findings about a copied kubelet identity (the
// ones remediation acts on with disable-kubelet).
var KubeIdentityKinds = []string{KindSharedK8sNode, KindCloneOfK8sNode, KindTemplateCarriesKubelet}

// Finding is one problem, with the evidence an admin needs to act on it.
type Finding struct {
	Kind     string   `json:"kind"`
	Severity Severity `json:"severity"`
	// NodeID is the swarm node ID, or for the Kubernetes kinds the Node's
	// name (its cluster in Cluster).
	NodeID string `json:"node_id,omitempty"`
	// Cluster is the Kubernetes cluster (KubeCluster.Name) of a Kubernetes
	// finding; empty for swarm findings.
	Cluster string   `json:"cluster,omitempty"`
	VMs     []string `json:"vms"`      // VM names
	VMPaths []string `json:"vm_paths"` // inventory paths, same order as VMs
	VMRefs  []string `json:"vm_refs"`  // morefs, same order as VMs
	// VMVCenters are the VMs' vCenters, same order as VMs: a moref names a
	// VM only inside its vCenter. "" for a VM of an unnamed vCenter.
	VMVCenters []string `json:"vm_vcenters"`
	// Original is the VM that rightfully owns the identity (never to be touched).
	Original string   `json:"original,omitempty"`
	Evidence []string `json:"evidence"`
	Remedy   string   `json:"remedy"`
	// Confirmed: guest operations read the same identity inside the VMs (audit -verify).
	Confirmed bool `json:"confirmed,omitempty"`
	// Dormant: a VM holds the identity but does not use it right now: it is
	// powered off or suspended (it takes over the node when powered on), or a
	// guest probe found its engine or kubelet stopped.
	Dormant bool `json:"dormant,omitempty"`
	// Machines, without a vCenter, are the machines the finding is about,
	// the original first when it is known (VMs, VMPaths and VMRefs are then
	// empty).
	Machines []Machine `json:"machines,omitempty"`
	// OriginalMachine is the Label of the machine that rightfully owns the
	// identity (without a vCenter; Original names VMs only).
	OriginalMachine string `json:"original_machine,omitempty"`
}

// Key identifies a finding across runs: the same problem on the same objects
// has the same key, whatever its evidence says this time. It is
// "KIND|NODE|KEYS": the VMs' keys (VMKey.String, "vc.example.com/vm-62"),
// sorted and comma-separated. A VM without a vCenter contributes its bare
// ref, as keys did before they named vCenters.
func (f Finding) Key() string {
	keys := f.VMKeys()
	refs := make([]string, len(keys))
	for i, k := range keys {
		refs[i] = k.String()
	}
	sort.Strings(refs)
	node := f.NodeID
	if f.Cluster != "" {
		node = f.Cluster + "/" + f.NodeID
	}
	return f.Kind + "|" + node + "|" + strings.Join(refs, ",")
}
