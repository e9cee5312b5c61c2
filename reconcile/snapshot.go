// Package reconcile matches vSphere VMs against swarm nodes and derives findings.
//
// It is pure: a Snapshot (what the collectors saw) and a History (what earlier
// runs saw) go in, a Result comes out. No I/O, no clocks, no randomness: the
// same input always gives the same output, in the same order.
package reconcile

import "time"

// Snapshot is everything one collection saw.
type Snapshot struct {
	CollectedAt time.Time `json:"collected_at"`
	// VCenters names the vCenters the VMs came from (host names, never credentials).
	VCenters []string `json:"vcenters"`
	// VCenterUUIDs maps each vCenter name to its instance UUID
	// (ServiceContent.About.InstanceUuid): a name says where a vCenter was
	// reached, the UUID which vCenter answered. Saved plans are bound to it.
	VCenterUUIDs map[string]string `json:"vcenter_uuids,omitempty"`
	VMs          []VM              `json:"vms"`
	Swarms       []Swarm           `json:"swarms"`
	// Kubernetes holds what was observed of each Kubernetes cluster.
	Kubernetes []KubeCluster `json:"kubernetes,omitempty"`
	// Guests holds what guest operations found inside VMs (audit -verify); empty otherwise.
	Guests []GuestIdentity `json:"guests,omitempty"`
}

// VM is one virtual machine or template, as the property collector returned it.
type VM struct {
	VCenter       string    `json:"vcenter,omitempty"`
	Name          string    `json:"name"`
	Path          string    `json:"path"` // inventory path, "/DC0/vm/web-01"
	Ref           string    `json:"ref"`  // managed object id, "vm-42"
	BIOSUUID      string    `json:"bios_uuid"`
	InstanceUUID  string    `json:"instance_uuid"`
	NumCPU        int32     `json:"cpus"`
	MemoryMB      int32     `json:"memory_mb"`
	Template      bool      `json:"template"`
	PowerState    string    `json:"power_state"` // poweredOn, poweredOff, suspended
	ToolsRunning  bool      `json:"tools_running"`
	GuestHostname string    `json:"guest_hostname,omitempty"`
	IPs           []string  `json:"ips,omitempty"`
	MACs          []string  `json:"macs,omitempty"`
	Created       time.Time `json:"created,omitzero"`
	Lineage       *Lineage  `json:"lineage,omitempty"`
}

// PoweredOn reports whether the VM is running.
func (v VM) PoweredOn() bool { return v.PowerState == "poweredOn" }

// Lineage says where a VM was copied from.
type Lineage struct {
	SourceRef string `json:"source_ref"` // moref of the source VM or template
	// SourceName is the source's current name when it is still in the inventory,
	// else its name at the time of the copy.
	SourceName string    `json:"source_name"`
	Kind       string    `json:"kind"` // "clone", "deploy" (from template), "linked-clone"
	Time       time.Time `json:"time"`
}

// Swarm is what was observed of one swarm through one manager.
type Swarm struct {
	Endpoint     string    `json:"endpoint"` // DOCKER_HOST of the manager (no credentials)
	ClusterID    string    `json:"cluster_id"`
	ObservedFrom time.Time `json:"observed_from"`
	ObservedTo   time.Time `json:"observed_to"`
	Samples      int       `json:"samples"` // NodeList calls
	Events       int       `json:"events"`  // node events replayed or received
	Nodes        []Node    `json:"nodes"`
}

// Node is one swarm node ID and every identity it was seen with.
type Node struct {
	ID           string `json:"id"`
	Role         string `json:"role"`         // worker, manager
	State        string `json:"state"`        // ready, down, unknown, disconnected (latest sample)
	Availability string `json:"availability"` // active, pause, drain
	// Descriptions are the distinct identities seen, in order of first sighting.
	Descriptions []Description `json:"descriptions"`
	// Timeline holds the first sighting and then every change of identity, in time
	// order; consecutive entries always differ.
	Timeline []Sighting `json:"timeline"`
}

// Flips is the number of identity changes observed.
func (n Node) Flips() int {
	if len(n.Timeline) == 0 {
		return 0
	}
	return len(n.Timeline) - 1
}

// Description is one identity a node ID presented to the manager.
type Description struct {
	Hostname      string    `json:"hostname"`
	NanoCPUs      int64     `json:"nano_cpus,omitempty"`
	MemoryBytes   int64     `json:"memory_bytes,omitempty"`
	Addr          string    `json:"addr,omitempty"`
	EngineVersion string    `json:"engine_version,omitempty"`
	FirstSeen     time.Time `json:"first_seen"`
	LastSeen      time.Time `json:"last_seen"`
	Seen          int       `json:"seen"` // sightings (samples and events)
	// EventsOnly is true when the identity is known only from event names
	// (node events carry the hostname, not the resources).
	EventsOnly bool `json:"events_only,omitempty"`
}

// CPUs returns the whole CPU count the description reports (0 when unknown).
func (d Description) CPUs() int { return int(d.NanoCPUs / 1e9) }

// MemoryMB returns the memory the description reports, in MiB (0 when unknown).
func (d Description) MemoryMB() int64 { return d.MemoryBytes / (1 << 20) }

// Sighting is one entry of a node's timeline.
type Sighting struct {
	Time        time.Time `json:"time"`
	Description int       `json:"description"` // index into Node.Descriptions
	Source      string    `json:"source"`      // "event", "list"
}

// GuestIdentity is what guest operations read inside one VM.
type GuestIdentity struct {
	VMRef string `json:"vm_ref"`
	// VCenter is the probed VM's vCenter (VM.VCenter): morefs repeat across
	// vCenters, so a ref alone does not name a VM when there are several.
	VCenter  string    `json:"vcenter,omitempty"`
	ProbedAt time.Time `json:"probed_at"`
	// Error says why the probe failed or was not possible (tools not running,
	// invalid login, VM off); the other fields are then empty.
	Error string `json:"error,omitempty"`

	NodeID       string    `json:"node_id,omitempty"`    // swarm-node.crt CN
	Role         string    `json:"role,omitempty"`       // swarm-node.crt OU, e.g. "swarm-worker"
	ClusterID    string    `json:"cluster_id,omitempty"` // swarm-node.crt O
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
	EngineID     string    `json:"engine_id,omitempty"`
	KeyJSON      bool      `json:"key_json,omitempty"` // /etc/docker/key.json exists (old engines)
	MachineID    string    `json:"machine_id,omitempty"`
	// DockerEnabled and DockerActive are "yes", "no" or "unknown".
	DockerEnabled string `json:"docker_enabled,omitempty"`
	DockerActive  string `json:"docker_active,omitempty"`
	KubeletCreds  bool   `json:"kubelet_creds,omitempty"`
	// KubeletNode is the Node name of the kubelet's client certificate
	// (CN "system:node:NAME"), KubeletOrg its O ("system:nodes"), and
	// KubeletServer the API server of /etc/kubernetes/kubelet.conf.
	KubeletNode   string `json:"kubelet_node,omitempty"`
	KubeletOrg    string `json:"kubelet_org,omitempty"`
	KubeletServer string `json:"kubelet_server,omitempty"`
	// KubeletEnabled and KubeletActive are "yes", "no" or "unknown"
	// (kubelet.service at boot and now).
	KubeletEnabled string `json:"kubelet_enabled,omitempty"`
	KubeletActive  string `json:"kubelet_active,omitempty"`
	// Hostname is the guest's kernel host name (uname -n), the name Docker
	// reports to the swarm manager.
	Hostname string `json:"hostname,omitempty"`
	// SSHHostKeys is true when /etc/ssh/ssh_host_*_key files exist.
	SSHHostKeys bool `json:"ssh_host_keys,omitempty"`
	// CloudInitInstance is the instance ID of cloud-init's per-instance state
	// (/var/lib/cloud/data/instance-id, else the /var/lib/cloud/instance link);
	// "" when there is none.
	CloudInitInstance string `json:"cloud_init_instance,omitempty"`
}

// History is what earlier runs saw, as the store keeps it. The zero value is an
// empty history (a first run, or the one-shot audit without a store).
type History struct {
	// Nodes holds the descriptions each node ID showed in earlier runs.
	Nodes map[string][]Description
	// Lineage holds VM lineage learned earlier, by VM ref; vCenter's event
	// retention may since have dropped the events.
	Lineage map[string]Lineage
	// KubeNodes holds the identities each Kubernetes Node showed in earlier
	// runs, keyed by KubeNodeKey(cluster, node name).
	KubeNodes map[string][]KubeIdentity
}

// KubeNodeKey is the key of a Kubernetes Node across clusters and runs
// (History.KubeNodes, VMStatus.KubeNodes): "CLUSTER/NODE".
func KubeNodeKey(cluster, node string) string { return cluster + "/" + node }
