package dockersim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/swarm"
)

// NodeSpec describes a node to add. Zero fields get defaults: a generated
// swarmkit-style ID, hostname "sim-node-N", role worker, 2 CPUs, 4 GiB,
// a unique 10.x.y.z address, the engine's version, state ready,
// availability active, CreatedAt now.
type NodeSpec struct {
	ID            string
	Hostname      string
	Role          swarm.NodeRole         // "worker" or "manager"
	NanoCPUs      int64                  // Description.Resources.NanoCPUs
	MemoryBytes   int64                  // Description.Resources.MemoryBytes
	Addr          string                 // Status.Addr (IP, no port)
	EngineVersion string                 // Description.Engine.EngineVersion
	State         swarm.NodeState        // Status.State
	Availability  swarm.NodeAvailability // Spec.Availability
	Labels        map[string]string      // Spec.Labels (node.label filter)
	EngineLabels  map[string]string      // Description.Engine.Labels (label filter)
	CreatedAt     time.Time
}

// Identity is what one engine reports when it registers with the manager:
// the part of a node that flips when two engines share a node ID. In
// SetDescription/Flap/Backfill, zero fields leave the node's value unchanged.
type Identity struct {
	Hostname      string
	NanoCPUs      int64
	MemoryBytes   int64
	Addr          string
	EngineVersion string
}

// node is the internal model; rendered into swarm.Node on demand.
type node struct {
	id           string
	created      time.Time
	updated      time.Time
	version      uint64
	role         swarm.NodeRole
	availability swarm.NodeAvailability
	state        swarm.NodeState
	labels       map[string]string
	engineLabels map[string]string
	ident        Identity
	leader       bool
}

const (
	defaultNanoCPUs = 2_000_000_000
	defaultMemory   = 4 << 30
)

var errNodeNotFound = errors.New("node not found")

// validID rejects IDs that could not be used in a URL path segment.
func validID(id string) bool {
	return id != "" && !strings.ContainsAny(id, "/?# \t\r\n%")
}

// newNodeLocked builds a node from spec with defaults. Caller holds e.mu
// (or is New, before the engine is shared).
func (e *Engine) newNodeLocked(spec NodeSpec, now time.Time) (*node, error) {
	id := spec.ID
	if id == "" {
		id = e.ids.next()
	} else if !validID(id) {
		return nil, fmt.Errorf("dockersim: invalid node ID %q", id)
	}
	if _, dup := e.nodes[id]; dup {
		return nil, fmt.Errorf("dockersim: node %s already exists", id)
	}
	role := spec.Role
	switch role {
	case "":
		role = swarm.NodeRoleWorker
	case swarm.NodeRoleWorker, swarm.NodeRoleManager:
	default:
		return nil, fmt.Errorf("dockersim: invalid role %q", role)
	}
	state := spec.State
	if state == "" {
		state = swarm.NodeStateReady
	}
	avail := spec.Availability
	if avail == "" {
		avail = swarm.NodeAvailabilityActive
	}
	created := spec.CreatedAt.UTC()
	if spec.CreatedAt.IsZero() {
		created = now
	}
	ident := Identity{
		Hostname:      spec.Hostname,
		NanoCPUs:      spec.NanoCPUs,
		MemoryBytes:   spec.MemoryBytes,
		Addr:          spec.Addr,
		EngineVersion: spec.EngineVersion,
	}
	if ident.Hostname == "" {
		e.hostSeq++
		ident.Hostname = fmt.Sprintf("sim-node-%d", e.hostSeq)
	}
	if ident.NanoCPUs == 0 {
		ident.NanoCPUs = defaultNanoCPUs
	}
	if ident.MemoryBytes == 0 {
		ident.MemoryBytes = defaultMemory
	}
	if ident.Addr == "" {
		ident.Addr = e.nextAddrLocked()
	}
	if ident.EngineVersion == "" {
		ident.EngineVersion = strings.TrimSuffix(e.opts.ServerVersion, "-sim")
	}
	e.version++
	return &node{
		id:           id,
		created:      created,
		updated:      created,
		version:      e.version,
		role:         role,
		availability: avail,
		state:        state,
		labels:       maps.Clone(spec.Labels),
		engineLabels: maps.Clone(spec.EngineLabels),
		ident:        ident,
	}, nil
}

// nextAddrLocked hands out 10.0.0.2, 10.0.0.3, ... (unique per engine).
func (e *Engine) nextAddrLocked() string {
	e.addrSeq++
	v := uint32(10)<<24 | (e.addrSeq + 1)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
}

// AddNode adds a node and emits a node "create" event (at CreatedAt) with
// Actor.Attributes["name"] = hostname, as dockerd does when a node joins.
// It returns the node's ID.
func (e *Engine) AddNode(spec NodeSpec) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n, err := e.newNodeLocked(spec, time.Now().UTC())
	if err != nil {
		return "", err
	}
	e.nodes[n.id] = n
	e.emitLocked(n, events.ActionCreate, n.created, nil, true)
	return n.id, nil
}

// Populate adds n healthy worker nodes named prefix0001, prefix0002, ...
// (zero-padded to at least 4 digits) with generated IDs and unique addresses,
// and returns their IDs in order. It emits no events: the nodes model a swarm
// that existed before the event window, so a large Populate does not push
// backfilled history out of the bounded event buffer.
func (e *Engine) Populate(n int, prefix string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now().UTC()
	width := max(4, len(fmt.Sprint(n)))
	ids := make([]string, 0, n)
	for i := 1; i <= n; i++ {
		nd, err := e.newNodeLocked(NodeSpec{Hostname: fmt.Sprintf("%s%0*d", prefix, width, i)}, now)
		if err != nil { // only a generated-ID collision; retry once
			nd, err = e.newNodeLocked(NodeSpec{Hostname: fmt.Sprintf("%s%0*d", prefix, width, i)}, now)
			if err != nil {
				panic(err)
			}
		}
		e.nodes[nd.id] = nd
		ids = append(ids, nd.id)
	}
	return ids
}

// RemoveNode deletes a node and emits a node "remove" event. The engine's
// own node cannot be removed.
func (e *Engine) RemoveNode(id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	n, ok := e.nodes[id]
	if !ok {
		return fmt.Errorf("dockersim: node %s: %w", id, errNodeNotFound)
	}
	if id == e.selfID {
		return fmt.Errorf("dockersim: cannot remove the engine's own node %s", id)
	}
	delete(e.nodes, id)
	e.version++
	e.emitLocked(n, events.ActionRemove, time.Now().UTC(), nil, true)
	return nil
}

// SetDescription models an engine (re-)registering with the manager under
// node ID id and reporting desc: it overwrites the node's hostname,
// resources, engine version and address (zero fields unchanged), sets it
// ready, bumps Version.Index and UpdatedAt, and emits a node "update" event
// with Actor.Attributes["name"] = the new hostname. Like swarmkit's
// dispatcher it emits the event even if nothing changed.
func (e *Engine) SetDescription(id string, desc Identity) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.registerLocked(id, desc, time.Now().UTC(), true)
}

func (e *Engine) registerLocked(id string, desc Identity, at time.Time, live bool) error {
	n, ok := e.nodes[id]
	if !ok {
		return fmt.Errorf("dockersim: node %s: %w", id, errNodeNotFound)
	}
	old := *n
	if at.After(n.updated) || at.Equal(n.updated) {
		applyIdentity(&n.ident, desc)
		n.state = swarm.NodeStateReady
		n.updated = at
		e.version++
		n.version = e.version
	}
	// The event carries the identity reported at that moment, even when a
	// backfilled (past) registration does not change the current node.
	snap := *n
	snap.ident = old.ident
	applyIdentity(&snap.ident, desc)
	snap.state = swarm.NodeStateReady
	e.emitLocked(&snap, events.ActionUpdate, at, &old, live)
	return nil
}

func applyIdentity(dst *Identity, src Identity) {
	if src.Hostname != "" {
		dst.Hostname = src.Hostname
	}
	if src.NanoCPUs != 0 {
		dst.NanoCPUs = src.NanoCPUs
	}
	if src.MemoryBytes != 0 {
		dst.MemoryBytes = src.MemoryBytes
	}
	if src.Addr != "" {
		dst.Addr = src.Addr
	}
	if src.EngineVersion != "" {
		dst.EngineVersion = src.EngineVersion
	}
}

// matchesIdentity reports whether cur already shows every non-zero field of id.
func matchesIdentity(cur, id Identity) bool {
	next := cur
	applyIdentity(&next, id)
	return next == cur
}

// SetState changes Status.State (e.g. "down") and emits an update event with
// state.old/state.new attributes, as dockerd does.
func (e *Engine) SetState(id string, state swarm.NodeState) error {
	return e.updateSpec(id, func(n *node) { n.state = state })
}

// SetAvailability changes Spec.Availability and emits an update event with
// availability.old/availability.new attributes.
func (e *Engine) SetAvailability(id string, a swarm.NodeAvailability) error {
	return e.updateSpec(id, func(n *node) { n.availability = a })
}

func (e *Engine) updateSpec(id string, f func(*node)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	n, ok := e.nodes[id]
	if !ok {
		return fmt.Errorf("dockersim: node %s: %w", id, errNodeNotFound)
	}
	old := *n
	f(n)
	now := time.Now().UTC()
	if now.After(n.updated) {
		n.updated = now
	}
	e.version++
	n.version = e.version
	e.emitLocked(n, events.ActionUpdate, now, &old, true)
	return nil
}

// Flap starts a background driver that models two (or more) engines fighting
// over one node ID: every `every` the node re-registers with the next
// identity in the list (via SetDescription, so each flip is an update
// event). The first flip goes to the first identity that differs from the
// node's current description; after that it cycles through the list. It
// returns at once; the driver stops when ctx is done, the node is removed,
// or the engine is closed.
func (e *Engine) Flap(ctx context.Context, nodeID string, identities []Identity, every time.Duration) error {
	if len(identities) == 0 {
		return errors.New("dockersim: Flap needs at least one identity")
	}
	if every <= 0 {
		return errors.New("dockersim: Flap interval must be positive")
	}
	identities = slices.Clone(identities)
	e.mu.RLock()
	n, ok := e.nodes[nodeID]
	next := 0
	if ok && len(identities) > 1 && matchesIdentity(n.ident, identities[0]) {
		next = 1
	}
	e.mu.RUnlock()
	if !ok {
		return fmt.Errorf("dockersim: node %s: %w", nodeID, errNodeNotFound)
	}
	select {
	case <-e.done:
		return errors.New("dockersim: engine closed")
	default:
	}
	e.flappers.Add(1)
	go func() {
		defer e.flappers.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-e.done:
				return
			case <-t.C:
				if err := e.SetDescription(nodeID, identities[next]); err != nil {
					return // node removed
				}
				next = (next + 1) % len(identities)
			}
		}
	}()
	return nil
}

// Backfill writes past flapping history: at from, from+every, ... up to and
// including to, the node re-registers with identities[0], identities[1], ...
// (cycling), each an update event stamped with that time. Replaying
// /events with a since before `from` therefore shows the flips at once.
// The node's current description ends as the last identity written, unless
// the node was already updated after `to`. Backfilled events are history:
// they are stored for replay but not pushed to streams already open. Only
// the newest Options.EventLimit events are kept, so keep
// (to-from)/every below it.
func (e *Engine) Backfill(nodeID string, identities []Identity, from, to time.Time, every time.Duration) error {
	if len(identities) == 0 {
		return errors.New("dockersim: Backfill needs at least one identity")
	}
	if every <= 0 {
		return errors.New("dockersim: Backfill interval must be positive")
	}
	if to.Before(from) {
		return errors.New("dockersim: Backfill: to is before from")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.nodes[nodeID]; !ok {
		return fmt.Errorf("dockersim: node %s: %w", nodeID, errNodeNotFound)
	}
	i := 0
	for t := from.UTC(); !t.After(to); t = t.Add(every) {
		if err := e.registerLocked(nodeID, identities[i%len(identities)], t, false); err != nil {
			return err
		}
		i++
	}
	return nil
}

// Node returns the node as /nodes/{id} would render it.
func (e *Engine) Node(id string) (swarm.Node, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	n, ok := e.nodes[id]
	if !ok {
		return swarm.Node{}, false
	}
	return e.renderLocked(n), true
}

// Nodes returns all nodes, sorted by ID as swarmkit lists them.
func (e *Engine) Nodes() []swarm.Node {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]swarm.Node, 0, len(e.nodes))
	for _, n := range e.sortedNodesLocked() {
		out = append(out, e.renderLocked(n))
	}
	return out
}

// StoredEvents returns a copy of the events currently kept for replay, oldest first.
func (e *Engine) StoredEvents() []events.Message {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]events.Message, len(e.events))
	for i, ev := range e.events {
		out[i] = cloneMessage(ev)
	}
	return out
}

func (e *Engine) sortedNodesLocked() []*node {
	ns := make([]*node, 0, len(e.nodes))
	for _, n := range e.nodes {
		ns = append(ns, n)
	}
	slices.SortFunc(ns, func(a, b *node) int { return strings.Compare(a.id, b.id) })
	return ns
}

var enginePlugins = []swarm.PluginDescription{
	{Type: "Log", Name: "awslogs"}, {Type: "Log", Name: "fluentd"}, {Type: "Log", Name: "gcplogs"},
	{Type: "Log", Name: "gelf"}, {Type: "Log", Name: "journald"}, {Type: "Log", Name: "json-file"},
	{Type: "Log", Name: "local"}, {Type: "Log", Name: "splunk"}, {Type: "Log", Name: "syslog"},
	{Type: "Network", Name: "bridge"}, {Type: "Network", Name: "host"}, {Type: "Network", Name: "ipvlan"},
	{Type: "Network", Name: "macvlan"}, {Type: "Network", Name: "null"}, {Type: "Network", Name: "overlay"},
	{Type: "Volume", Name: "local"},
}

func (e *Engine) renderLocked(n *node) swarm.Node {
	out := swarm.Node{
		ID: n.id,
		Meta: swarm.Meta{
			Version:   swarm.Version{Index: n.version},
			CreatedAt: n.created,
			UpdatedAt: n.updated,
		},
		Spec: swarm.NodeSpec{
			Annotations:  swarm.Annotations{Labels: maps.Clone(n.labels)},
			Role:         n.role,
			Availability: n.availability,
		},
		Description: swarm.NodeDescription{
			Hostname: n.ident.Hostname,
			Platform: swarm.Platform{Architecture: "x86_64", OS: "linux"},
			Resources: swarm.Resources{
				NanoCPUs:    n.ident.NanoCPUs,
				MemoryBytes: n.ident.MemoryBytes,
			},
			Engine: swarm.EngineDescription{
				EngineVersion: n.ident.EngineVersion,
				Labels:        maps.Clone(n.engineLabels),
				Plugins:       slices.Clone(enginePlugins),
			},
		},
		Status: swarm.NodeStatus{State: n.state, Addr: n.ident.Addr},
	}
	if out.Spec.Annotations.Labels == nil {
		out.Spec.Annotations.Labels = map[string]string{} // dockerd always sends "Labels": {}
	}
	if n.role == swarm.NodeRoleManager {
		out.ManagerStatus = &swarm.ManagerStatus{
			Leader:       n.leader,
			Reachability: swarm.ReachabilityReachable,
			Addr:         n.ident.Addr + ":2377",
		}
	}
	return out
}
