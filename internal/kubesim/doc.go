// Package kubesim is a small in-process Kubernetes API server that speaks
// the subset vmreconcile's Kubernetes source uses, for the embedded demo
// (which must run with nothing but Go installed) and for scale tests. It is
// NOT a stand-in for kube-apiserver in correctness tests: every behaviour of
// the source is also tested against a real kube-apiserver (package kube's
// real tests, on kubetest); this simulator only has to be faithful enough
// that the same client-go code path runs unchanged.
//
// It serves https on a loopback port with a self-signed certificate and
// bearer-token authentication (Kubeconfig writes a kubeconfig that trusts
// it), JSON only (client-go falls back from protobuf to JSON by the
// response's content type):
//
//   - GET /api/v1/nodes: the list, sorted by name, with limit and continue;
//     with watch=true, a watch from resourceVersion (every change after it;
//     without one, every Node as ADDED first), newline-delimited JSON
//     frames flushed per change, ended at timeoutSeconds; a resourceVersion
//     older than the kept history (Options.WatchHistory, or Expire) gets an
//     ERROR frame with a 410 Expired Status, as the watch cache sends it.
//   - GET /api/v1/nodes/NAME.
//   - GET /api/v1/events, /api/v1/namespaces/NS/events and their
//     events.k8s.io/v1 equivalents, with limit, continue and fieldSelector
//     on the fields the API server selects events by (involvedObject.* or
//     regarding.*, reason, type, source, reportingComponent, metadata.*);
//     other fields get 400, as from the API server.
//   - GET /version, /healthz, /readyz, /livez.
//   - 401 Unauthorized without the token, 403 for Options.Forbidden paths,
//     405 for other methods, 404 for other paths: metav1.Status bodies.
//
// The model: Nodes set whole (SetNode) or written by simulated kubelets
// (Write: registration, the Starting event, the Rebooted event when the
// stored bootID is another's, once per Node and boot ID, and a status with
// the machine's identity and a Ready heartbeat); Flap has several machines
// write one Node in turn (a VM and its clones); Backfill records the
// Rebooted events of such a story in the past, for the lookback replay;
// Populate adds many healthy Nodes for scale.
//
// Not covered: writes through the API, any other resource, protobuf, table
// output, label selectors, watch bookmarks, resourceVersionMatch,
// server-side apply, admission, RBAC beyond Options.Forbidden, the node
// lifecycle controller (no RegisteredNode events unless added), event TTL,
// aggregation of repeated events and the lease API.
package kubesim
