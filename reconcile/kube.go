package reconcile

import "time"

// KubeCluster is what was observed of one Kubernetes cluster through its API
// server: every Node, and every distinct identity each Node was written with.
// A Node written by two machines (a clone of a node VM whose kubelet booted
// with the same hostname and client certificate) shows identities that
// alternate: bootID, systemUUID and capacity flip back and forth.
type KubeCluster struct {
	Name         string     `json:"name"`   // kubeconfig context or config name
	Server       string     `json:"server"` // API server host:port (never credentials)
	ObservedFrom time.Time  `json:"observed_from"`
	ObservedTo   time.Time  `json:"observed_to"`
	Samples      int        `json:"samples"` // Node lists and watch events applied
	Events       int        `json:"events"`  // Node events (Rebooted, Starting, RegisteredNode) replayed or received
	Nodes        []KubeNode `json:"nodes"`
}

// KubeNode is one Node object and every identity it was seen with.
type KubeNode struct {
	Name  string `json:"name"`
	UID   string `json:"uid"`
	Ready string `json:"ready"` // the Ready condition's status in the latest sample: True, False, Unknown
	// ControlPlane is true when the Node carries the control-plane role label.
	ControlPlane bool `json:"control_plane,omitempty"`
	// Identities are the distinct identities seen, in order of first sighting.
	Identities []KubeIdentity `json:"identities"`
	// Timeline holds the first sighting and then every change of identity, in
	// time order; consecutive entries always differ. Sighting.Description
	// indexes Identities.
	Timeline []Sighting `json:"timeline"`
	// Events are the Node's events of interest (Rebooted, Starting,
	// RegisteredNode), oldest first.
	Events []KubeEvent `json:"events,omitempty"`
}

// Flips is the number of identity changes observed.
func (n KubeNode) Flips() int {
	if len(n.Timeline) == 0 {
		return 0
	}
	return len(n.Timeline) - 1
}

// KubeIdentity is one identity a Node object was written with: what its
// kubelet reports of the machine it runs on (status.nodeInfo, capacity,
// addresses).
type KubeIdentity struct {
	BootID         string    `json:"boot_id"`
	MachineID      string    `json:"machine_id,omitempty"`
	SystemUUID     string    `json:"system_uuid,omitempty"` // the VM's BIOS UUID (maybe byte-swapped, see UUIDMatches)
	KernelVersion  string    `json:"kernel_version,omitempty"`
	KubeletVersion string    `json:"kubelet_version,omitempty"`
	CPUs           int64     `json:"cpus,omitempty"`         // capacity cpu, whole cores
	MemoryBytes    int64     `json:"memory_bytes,omitempty"` // capacity memory
	InternalIP     string    `json:"internal_ip,omitempty"`
	Hostname       string    `json:"hostname,omitempty"` // the Hostname address
	FirstSeen      time.Time `json:"first_seen"`
	LastSeen       time.Time `json:"last_seen"`
	Seen           int       `json:"seen"`
	// EventsOnly is true when the identity is known only from events (a
	// Rebooted event names a boot ID that no sample showed).
	EventsOnly bool `json:"events_only,omitempty"`
}

// KubeEvent is one (possibly aggregated) event about a Node.
type KubeEvent struct {
	Reason  string    `json:"reason"` // Rebooted, Starting, RegisteredNode
	Type    string    `json:"type"`   // Normal, Warning
	Message string    `json:"message"`
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
	Count   int       `json:"count"`
	// Source is the reporting component and host (kubelet, NODE).
	Source string `json:"source,omitempty"`
}
