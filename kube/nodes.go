package kube

import (
	"cmp"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// Sources of an Observation, as reconcile.Sighting.Source records them.
const (
	SourceList  = "list"  // a Node list: the full status
	SourceWatch = "watch" // a Node watch event (added, modified): the full status
	SourceEvent = "event" // a Rebooted event: the boot ID only
)

// Observation is one timestamped sighting of a Node: from a list or a watch
// event (the whole status), or from a Rebooted event (the boot ID only).
type Observation struct {
	Time   time.Time
	Node   string // the Node's name
	Source string // SourceList, SourceWatch or SourceEvent
	BootID string
	// The fields below are known for SourceList and SourceWatch only.
	UID            string
	MachineID      string
	SystemUUID     string
	KernelVersion  string
	KubeletVersion string
	CPUs           int64
	MemoryBytes    int64
	InternalIP     string
	Hostname       string
	Ready          string
	ControlPlane   bool
}

// identity is what distinguishes one writer of a Node from another.
type identity struct {
	bootID, machineID, systemUUID, kernel, kubelet string
	cpus, memory                                   int64
	internalIP, hostname                           string
	eventsOnly                                     bool
}

func (o Observation) identity() identity {
	return identity{o.BootID, o.MachineID, o.SystemUUID, o.KernelVersion, o.KubeletVersion,
		o.CPUs, o.MemoryBytes, o.InternalIP, o.Hostname, false}
}

// Control-plane role labels: the current one and the one kubeadm set before
// v1.24.
const (
	labelControlPlane       = "node-role.kubernetes.io/control-plane"
	labelControlPlaneLegacy = "node-role.kubernetes.io/master"
)

// NodeObservation turns a Node, as listed or watched at time at, into an
// observation.
func NodeObservation(at time.Time, source string, n *corev1.Node) Observation {
	info := n.Status.NodeInfo
	o := Observation{
		Time: at, Node: n.Name, Source: source, UID: string(n.UID),
		BootID: info.BootID, MachineID: info.MachineID, SystemUUID: info.SystemUUID,
		KernelVersion: info.KernelVersion, KubeletVersion: info.KubeletVersion,
		Ready: "Unknown",
	}
	if q, ok := n.Status.Capacity[corev1.ResourceCPU]; ok {
		o.CPUs = q.Value() // whole cores, rounded up
	}
	if q, ok := n.Status.Capacity[corev1.ResourceMemory]; ok {
		o.MemoryBytes = q.Value()
	}
	for _, a := range n.Status.Addresses {
		switch {
		case a.Type == corev1.NodeInternalIP && o.InternalIP == "":
			o.InternalIP = a.Address
		case a.Type == corev1.NodeHostName && o.Hostname == "":
			o.Hostname = a.Address
		}
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			o.Ready = string(c.Status)
		}
	}
	_, cp := n.Labels[labelControlPlane]
	_, legacy := n.Labels[labelControlPlaneLegacy]
	o.ControlPlane = cp || legacy
	return o
}

// NodeEvent is one event about a Node (see reconcile.KubeEvent).
type NodeEvent struct {
	Node string
	reconcile.KubeEvent
}

// BuildNodes turns sightings and events into one reconcile.KubeNode per Node
// name, sorted by name. It is pure and deterministic: the same input, in any
// order, gives the same nodes.
//
// A list or watch sighting's identity is the whole of what the kubelet
// reports of its machine (bootID, machineID, systemUUID, kernel, kubelet
// version, CPU and memory capacity, InternalIP, Hostname address). Every
// Rebooted event names the boot ID of the kubelet that recorded it, at the
// event's first and at its last time (kubelet aggregates repeats); such a
// sighting is attributed to the full identity with that boot ID seen most
// recently before it (or the first one, when the event predates every
// sample with it); a boot ID that no sample showed gets an EventsOnly
// identity. Events that name no boot ID (Starting, RegisteredNode) are kept
// in KubeNode.Events only.
//
// The Timeline holds the first sighting and every change of identity; UID,
// Ready and ControlPlane come from the latest sample. A Node known only from
// events (deleted since) is reported with those alone.
func BuildNodes(obs []Observation, events []NodeEvent) []reconcile.KubeNode {
	all := make([]Observation, 0, len(obs)+2*len(events))
	for _, o := range obs {
		if o.Node != "" && o.Source != SourceEvent {
			all = append(all, o)
		}
	}
	byNodeEvents := map[string][]reconcile.KubeEvent{}
	for _, e := range events {
		if e.Node == "" {
			continue
		}
		byNodeEvents[e.Node] = append(byNodeEvents[e.Node], e.KubeEvent)
		all = append(all, eventObservations(e)...)
	}
	slices.SortStableFunc(all, compareObservations)

	byNode := map[string][]Observation{}
	for _, o := range all {
		byNode[o.Node] = append(byNode[o.Node], o)
	}
	for name := range byNodeEvents {
		if _, ok := byNode[name]; !ok {
			byNode[name] = nil
		}
	}
	names := make([]string, 0, len(byNode))
	for name := range byNode {
		names = append(names, name)
	}
	slices.Sort(names)

	nodes := make([]reconcile.KubeNode, 0, len(names))
	for _, name := range names {
		n := buildNode(name, snapEvents(byNode[name]))
		n.Events = sortedEvents(byNodeEvents[name])
		nodes = append(nodes, n)
	}
	return nodes
}

// eventObservations are the sightings a Rebooted event gives: its boot ID at
// its first and (when later) its last time.
func eventObservations(e NodeEvent) []Observation {
	if e.Reason != ReasonRebooted {
		return nil
	}
	boot := RebootedBootID(e.Message)
	if boot == "" {
		return nil
	}
	out := []Observation{{Time: e.First, Node: e.Node, Source: SourceEvent, BootID: boot}}
	if e.Last.After(e.First) {
		out = append(out, Observation{Time: e.Last, Node: e.Node, Source: SourceEvent, BootID: boot})
	}
	return out
}

// snapEvents moves each event sighting that has whole-second precision onto
// the first sample with its boot ID within that second, and returns the
// observations in time order again. Kubelet records events with core/v1
// firstTimestamp and lastTimestamp, which keep whole seconds only: an event
// written together with the status that carried its boot ID reads up to a
// second early, before the other writer's last samples, which looked like
// one more flip (A, B(event), A, B) on a Node that changed once.
func snapEvents(obs []Observation) []Observation {
	moved := false
	for i := range obs {
		e := &obs[i]
		if e.Source != SourceEvent || e.Time.Nanosecond() != 0 {
			continue
		}
		for _, o := range obs {
			if o.Source != SourceEvent && o.BootID == e.BootID && !o.Time.Before(e.Time) && o.Time.Before(e.Time.Add(time.Second)) {
				e.Time, moved = o.Time, true
				break
			}
		}
	}
	if moved {
		slices.SortStableFunc(obs, compareObservations)
	}
	return obs
}

// buildNode builds one Node from its observations, already in time order.
func buildNode(name string, obs []Observation) reconcile.KubeNode {
	// Pass 1: the first full identity per boot ID, for events that precede
	// every sample with their boot ID.
	firstFull := map[string]identity{}
	for _, o := range obs {
		if o.Source != SourceEvent {
			if _, ok := firstFull[o.BootID]; !ok {
				firstFull[o.BootID] = o.identity()
			}
		}
	}

	// Pass 2: attribute every observation to an identity, in time order;
	// identities are numbered in order of first sighting.
	node := reconcile.KubeNode{Name: name, Identities: []reconcile.KubeIdentity{}, Timeline: []reconcile.Sighting{}}
	index := map[identity]int{}
	latestFull := map[string]identity{} // boot ID -> latest full identity so far
	for _, o := range obs {
		var key identity
		if o.Source != SourceEvent {
			key = o.identity()
			latestFull[o.BootID] = key
			node.UID, node.Ready, node.ControlPlane = o.UID, o.Ready, o.ControlPlane
		} else {
			var ok bool
			if key, ok = latestFull[o.BootID]; !ok {
				if key, ok = firstFull[o.BootID]; !ok {
					key = identity{bootID: o.BootID, eventsOnly: true}
				}
			}
		}
		i, ok := index[key]
		if !ok {
			i = len(node.Identities)
			index[key] = i
			node.Identities = append(node.Identities, kubeIdentity(key, o.Time))
		}
		id := &node.Identities[i]
		id.Seen++
		id.LastSeen = o.Time
		if n := len(node.Timeline); n == 0 || node.Timeline[n-1].Description != i {
			node.Timeline = append(node.Timeline, reconcile.Sighting{Time: o.Time, Description: i, Source: o.Source})
		}
	}
	return node
}

func kubeIdentity(k identity, first time.Time) reconcile.KubeIdentity {
	return reconcile.KubeIdentity{
		BootID: k.bootID, MachineID: k.machineID, SystemUUID: k.systemUUID,
		KernelVersion: k.kernel, KubeletVersion: k.kubelet,
		CPUs: k.cpus, MemoryBytes: k.memory, InternalIP: k.internalIP, Hostname: k.hostname,
		EventsOnly: k.eventsOnly, FirstSeen: first,
	}
}

func sortedEvents(evs []reconcile.KubeEvent) []reconcile.KubeEvent {
	if len(evs) == 0 {
		return nil
	}
	out := slices.Clone(evs)
	slices.SortStableFunc(out, func(a, b reconcile.KubeEvent) int {
		return cmp.Or(a.First.Compare(b.First), a.Last.Compare(b.Last),
			cmp.Compare(a.Reason, b.Reason), cmp.Compare(a.Message, b.Message),
			cmp.Compare(a.Source, b.Source), cmp.Compare(a.Type, b.Type), cmp.Compare(a.Count, b.Count))
	})
	return out
}

// compareObservations orders by time, then puts samples before events at the
// same instant (an event then resolves against the sample), then by every
// other field, so the order never depends on the input's.
func compareObservations(a, b Observation) int {
	return cmp.Or(
		a.Time.Compare(b.Time),
		cmp.Compare(sourceRank(a.Source), sourceRank(b.Source)),
		cmp.Compare(a.Node, b.Node),
		cmp.Compare(a.BootID, b.BootID),
		cmp.Compare(a.UID, b.UID),
		cmp.Compare(a.MachineID, b.MachineID),
		cmp.Compare(a.SystemUUID, b.SystemUUID),
		cmp.Compare(a.KernelVersion, b.KernelVersion),
		cmp.Compare(a.KubeletVersion, b.KubeletVersion),
		cmp.Compare(a.CPUs, b.CPUs),
		cmp.Compare(a.MemoryBytes, b.MemoryBytes),
		cmp.Compare(a.InternalIP, b.InternalIP),
		cmp.Compare(a.Hostname, b.Hostname),
		cmp.Compare(a.Ready, b.Ready),
		cmp.Compare(boolRank(a.ControlPlane), boolRank(b.ControlPlane)),
	)
}

func sourceRank(s string) int {
	switch s {
	case SourceList:
		return 0
	case SourceWatch:
		return 1
	}
	return 2
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}
