// Package dockersim is a small Docker Engine API server that behaves like a
// swarm manager, for the embedded demo (`vmreconcile demo`, which must run
// with nothing but Go installed) and for scale tests. It is NOT a stand-in
// for dockerd in correctness tests: every swarm behaviour vmreconcile relies
// on is also tested against a real dockerd; this simulator only has to be
// faithful enough that the same client code path runs unchanged.
//
// The tool talks to it with the real github.com/docker/docker/client
// (client.WithHost(e.Host()) + client.WithAPIVersionNegotiation()), so the
// simulator speaks the real wire format, encoding the api/types structs:
//
//   - GET/HEAD /_ping with Api-Version, Ostype and Swarm ("active/manager",
//     "active/worker" or "inactive") headers; every response carries
//     Api-Version, Ostype and Server headers, as dockerd's version middleware does.
//   - GET /version, /info, /swarm, /nodes, /nodes/{id}, /events, each with or
//     without the /vX.YY prefix. A prefix outside [MinAPIVersion, APIVersion]
//     gets dockerd's 400 "client version X is too old/new" error.
//   - /nodes filters exactly as dockerd accepts them: id (prefix), name
//     (hostname prefix), role, membership, node.label, label (engine labels);
//     any other filter key is rejected with 400 "invalid filter 'KEY'", like
//     dockerd. Nodes are listed sorted by ID, as swarmkit returns them.
//   - /nodes/{id} resolves full ID, then exact hostname, then ID prefix, with
//     dockerd's 404 "node X not found" and 400 "node X is ambiguous (N matches
//     found)" errors.
//   - /events: since/until (unix seconds with optional fractional part),
//     filters (type, event, scope, node, label, ...: a port of dockerd's
//     events filter), replay of the buffered events in [since, until] (none
//     when both are absent, as in dockerd), then live streaming until `until`
//     or disconnect, newline-delimited JSON flushed per event. Node events
//     look like dockerd's: Type "node", Scope "swarm", Action
//     create/update/remove, Actor.ID = node ID, Actor.Attributes["name"] =
//     hostname, plus state/availability/role .old/.new attributes on change.
//     Only the newest Options.EventLimit events are kept (default 256, the
//     value dockerd uses).
//   - Worker and inactive modes, where node and swarm endpoints answer 503
//     with dockerd's exact messages.
//   - Errors are JSON {"message": "..."} with the status dockerd uses, so
//     github.com/containerd/errdefs' IsNotFound, IsUnavailable etc. work;
//     unknown paths answer 404 {"message":"page not found"}.
//
// The model: the engine's own node (Options.Self, a leader manager in
// ModeManager) plus nodes added with AddNode or Populate. SetDescription
// models an engine (re-)registering under a node ID, which in swarmkit
// replaces the node's description and status address, bumps Version.Index
// and UpdatedAt, and emits an update event. Flap drives that periodically
// among several identities (two VMs sharing one node ID); Backfill writes
// such flips into the past so a replay with `since` shows them at once.
//
// Not covered: containers, services, tasks, networks, secrets, configs,
// plugins, images, any write endpoint (swarm init/join, node update/rm),
// TLS, authentication, raft/quorum behaviour, heartbeats and node-down
// detection (use SetState), daemon-scope events, API-version-dependent
// response shapes, and dockerd's 100ms drop policy for slow event readers
// (here a reader more than 1024 events behind loses events).
package dockersim
