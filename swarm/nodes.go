package swarm

import (
	"cmp"
	"slices"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// Sources of an Observation, as reconcile.Sighting.Source records them.
const (
	SourceList  = "list"  // a NodeList sample: the full description
	SourceEvent = "event" // a node event: the hostname only
)

// Observation is one timestamped sighting of a swarm node, from a NodeList
// sample or a node event.
type Observation struct {
	Time     time.Time
	NodeID   string
	Source   string // SourceList or SourceEvent
	Hostname string
	// The fields below are known for SourceList only: node events carry the
	// hostname in Actor.Attributes["name"] and nothing else.
	NanoCPUs      int64
	MemoryBytes   int64
	Addr          string
	EngineVersion string
	Role          string
	State         string
	Availability  string
	// SpecName is the node's Spec.Annotations.Name (usually empty). The
	// manager names node events by it when it is set, instead of by the
	// hostname, so such events say nothing about which machine answered.
	SpecName string
}

// identity is what distinguishes one description of a node from another.
type identity struct {
	hostname      string
	nanoCPUs      int64
	memoryBytes   int64
	addr          string
	engineVersion string
	eventsOnly    bool
}

func (o Observation) identity() identity {
	return identity{o.Hostname, o.NanoCPUs, o.MemoryBytes, o.Addr, o.EngineVersion, false}
}

// BuildNodes turns sightings into one reconcile.Node per node ID, sorted by
// ID. It is pure and deterministic: the same observations, in any order, give
// the same nodes.
//
// Observations are sorted by time first, so that replayed events and NodeList
// samples interleave as they happened. A list sighting's identity is its full
// description. An event knows only the hostname, so it is attributed to the
// full description with that hostname that was seen most recently before it
// (or, when the event predates every sample with that hostname, the first
// one); only a hostname never seen in any sample gets an EventsOnly
// description. Events with an empty name (the manager emits them while a node
// is being created) carry no identity and are ignored, and so are events
// named by the node's Spec.Annotations.Name (SpecName) as a sample saw it:
// dockerd prefers that name to the hostname when it is set.
//
// The Timeline holds the first sighting and every change of identity; Role,
// State and Availability come from the latest sample.
func BuildNodes(obs []Observation) []reconcile.Node {
	sorted := make([]Observation, 0, len(obs))
	for _, o := range obs {
		if o.NodeID == "" || (o.Source == SourceEvent && o.Hostname == "") {
			continue
		}
		sorted = append(sorted, o)
	}
	slices.SortStableFunc(sorted, compareObservations)

	byNode := map[string][]Observation{}
	var ids []string
	for _, o := range sorted {
		if _, ok := byNode[o.NodeID]; !ok {
			ids = append(ids, o.NodeID)
		}
		byNode[o.NodeID] = append(byNode[o.NodeID], o)
	}
	slices.Sort(ids)

	nodes := make([]reconcile.Node, 0, len(ids))
	for _, id := range ids {
		nodes = append(nodes, buildNode(id, byNode[id]))
	}
	return nodes
}

// buildNode builds one node from its observations, already in time order.
func buildNode(id string, obs []Observation) reconcile.Node {
	// Pass 1: the first full description per hostname, for events that
	// precede every sample of their hostname.
	firstFull := map[string]identity{}
	specNames := map[string]bool{}
	for _, o := range obs {
		if o.Source != SourceEvent {
			if _, ok := firstFull[o.Hostname]; !ok {
				firstFull[o.Hostname] = o.identity()
			}
			if o.SpecName != "" {
				specNames[o.SpecName] = true
			}
		}
	}

	// Pass 2: attribute every observation to an identity, in time order;
	// descriptions are numbered in order of first sighting.
	node := reconcile.Node{ID: id}
	index := map[identity]int{}
	latestFull := map[string]identity{} // hostname -> latest full identity so far
	for _, o := range obs {
		if o.Source == SourceEvent && specNames[o.Hostname] {
			// dockerd names node events by Spec.Annotations.Name when it
			// is set, whatever hostname the session presents; taken as a
			// hostname it became an events-only identity that "alternated"
			// with the sampled one (node-flapping on a healthy node).
			continue
		}
		var key identity
		switch {
		case o.Source != SourceEvent:
			key = o.identity()
			latestFull[o.Hostname] = key
			node.Role, node.State, node.Availability = o.Role, o.State, o.Availability
		default:
			var ok bool
			if key, ok = latestFull[o.Hostname]; !ok {
				if key, ok = firstFull[o.Hostname]; !ok {
					key = identity{hostname: o.Hostname, eventsOnly: true}
				}
			}
		}
		i, ok := index[key]
		if !ok {
			i = len(node.Descriptions)
			index[key] = i
			node.Descriptions = append(node.Descriptions, reconcile.Description{
				Hostname:      key.hostname,
				NanoCPUs:      key.nanoCPUs,
				MemoryBytes:   key.memoryBytes,
				Addr:          key.addr,
				EngineVersion: key.engineVersion,
				EventsOnly:    key.eventsOnly,
				FirstSeen:     o.Time,
			})
		}
		d := &node.Descriptions[i]
		d.Seen++
		d.LastSeen = o.Time
		if n := len(node.Timeline); n == 0 || node.Timeline[n-1].Description != i {
			node.Timeline = append(node.Timeline, reconcile.Sighting{Time: o.Time, Description: i, Source: sourceName(o.Source)})
		}
	}
	return node
}

func sourceName(s string) string {
	if s == SourceEvent {
		return SourceEvent
	}
	return SourceList
}

// compareObservations orders by time, then puts samples before events at the
// same instant (an event then resolves against the sample), then by every
// other field, so the order never depends on the input's.
func compareObservations(a, b Observation) int {
	return cmp.Or(
		a.Time.Compare(b.Time),
		cmp.Compare(sourceRank(a.Source), sourceRank(b.Source)),
		cmp.Compare(a.NodeID, b.NodeID),
		cmp.Compare(a.Hostname, b.Hostname),
		cmp.Compare(a.NanoCPUs, b.NanoCPUs),
		cmp.Compare(a.MemoryBytes, b.MemoryBytes),
		cmp.Compare(a.Addr, b.Addr),
		cmp.Compare(a.EngineVersion, b.EngineVersion),
		cmp.Compare(a.Role, b.Role),
		cmp.Compare(a.State, b.State),
		cmp.Compare(a.Availability, b.Availability),
		cmp.Compare(a.SpecName, b.SpecName),
	)
}

func sourceRank(s string) int {
	if s == SourceEvent {
		return 1
	}
	return 0
}
