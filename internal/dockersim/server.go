package dockersim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	timetypes "github.com/docker/docker/api/types/time"
	"github.com/docker/docker/api/types/versions"
)

// Error texts copied from dockerd (daemon/cluster).
const (
	errMsgInactive = `This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.`
	errMsgWorker   = "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager."
)

// apiError is an error with the HTTP status dockerd would map it to.
type apiError struct {
	status int
	msg    string
}

func (e apiError) Error() string { return e.msg }

func errf(status int, format string, args ...any) apiError {
	return apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// versionPrefix is dockerd's route matcher "/v{version:[0-9.]+}".
var versionPrefix = regexp.MustCompile(`^/v([0-9.]+)(/.*)$`)

func (e *Engine) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// VersionMiddleware: these headers go on every response.
	h := w.Header()
	h.Set("Server", fmt.Sprintf("Docker/%s (linux)", e.opts.ServerVersion))
	h.Set("Api-Version", e.opts.APIVersion)
	h.Set("Ostype", "linux")
	h.Set("Docker-Experimental", "false")

	if e.reqHook != nil {
		e.reqHook(r)
	}
	if e.opts.OnRequest != nil {
		e.opts.OnRequest(r)
	}
	path := r.URL.Path
	version := ""
	if m := versionPrefix.FindStringSubmatch(path); m != nil {
		version, path = m[1], m[2]
	}

	route := e.route(r.Method, path)
	if route == nil {
		writeJSON(w, http.StatusNotFound, types.ErrorResponse{Message: "page not found"})
		return
	}
	apiVersion := version
	if apiVersion == "" {
		apiVersion = e.opts.APIVersion
	}
	var err error
	switch {
	case versions.LessThan(apiVersion, e.opts.MinAPIVersion):
		err = errf(http.StatusBadRequest, "client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", apiVersion, e.opts.MinAPIVersion)
	case versions.GreaterThan(apiVersion, e.opts.APIVersion):
		err = errf(http.StatusBadRequest, "client version %s is too new. Maximum supported API version is %s", apiVersion, e.opts.APIVersion)
	default:
		err = route(w, r)
	}
	if err != nil {
		status := http.StatusInternalServerError
		if ae, ok := err.(apiError); ok {
			status = ae.status
		}
		if version != "" && versions.LessThan(version, "1.24") {
			http.Error(w, err.Error(), status)
			return
		}
		writeJSON(w, status, types.ErrorResponse{Message: err.Error()})
	}
}

type handler func(w http.ResponseWriter, r *http.Request) error

func (e *Engine) route(method, path string) handler {
	if path == "/_ping" && (method == http.MethodGet || method == http.MethodHead) {
		return e.handlePing
	}
	if method != http.MethodGet {
		return nil
	}
	switch path {
	case "/version":
		return e.handleVersion
	case "/info":
		return e.handleInfo
	case "/swarm":
		return e.handleSwarm
	case "/nodes":
		return e.handleNodeList
	case "/events":
		return e.handleEvents
	}
	if id, ok := strings.CutPrefix(path, "/nodes/"); ok && id != "" && !strings.Contains(id, "/") {
		return func(w http.ResponseWriter, r *http.Request) error { return e.handleNodeInspect(w, id) }
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func swarmHeader(m Mode) string {
	switch m {
	case ModeManager:
		return "active/manager"
	case ModeWorker:
		return "active/worker"
	}
	return string(swarm.LocalNodeStateInactive)
}

func (e *Engine) handlePing(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Add("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Add("Pragma", "no-cache")
	h.Set("Builder-Version", "2")
	h.Set("Swarm", swarmHeader(e.Mode()))
	if r.Method == http.MethodHead {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Length", "0")
		return nil
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	_, err := w.Write([]byte("OK"))
	return err
}

func (e *Engine) handleVersion(w http.ResponseWriter, r *http.Request) error {
	v := types.Version{
		Version:       e.opts.ServerVersion,
		APIVersion:    e.opts.APIVersion,
		MinAPIVersion: e.opts.MinAPIVersion,
		GitCommit:     "dockersim",
		GoVersion:     runtime.Version(),
		Os:            "linux",
		Arch:          runtime.GOARCH,
		KernelVersion: "6.1.0-sim",
		BuildTime:     "2025-01-01T00:00:00.000000000+00:00",
	}
	v.Platform.Name = "Docker Engine - Community (simulated)"
	v.Components = []types.ComponentVersion{{
		Name:    "Engine",
		Version: e.opts.ServerVersion,
		Details: map[string]string{
			"ApiVersion":    e.opts.APIVersion,
			"MinAPIVersion": e.opts.MinAPIVersion,
			"GitCommit":     "dockersim",
			"GoVersion":     runtime.Version(),
			"Os":            "linux",
			"Arch":          runtime.GOARCH,
			"KernelVersion": "6.1.0-sim",
			"Experimental":  "false",
			"BuildTime":     v.BuildTime,
		},
	}}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (e *Engine) clusterInfoLocked() swarm.ClusterInfo {
	return swarm.ClusterInfo{
		ID: e.clusterID,
		Meta: swarm.Meta{
			Version:   swarm.Version{Index: 10},
			CreatedAt: e.clusterAt,
			UpdatedAt: e.clusterAt,
		},
		Spec: swarm.Spec{
			Annotations: swarm.Annotations{Name: "default", Labels: map[string]string{}},
			Orchestration: swarm.OrchestrationConfig{
				TaskHistoryRetentionLimit: ptr(int64(5)),
			},
			Raft: swarm.RaftConfig{
				SnapshotInterval:           10000,
				KeepOldSnapshots:           ptr(uint64(0)),
				LogEntriesForSlowFollowers: 500,
				ElectionTick:               10,
				HeartbeatTick:              1,
			},
			Dispatcher: swarm.DispatcherConfig{HeartbeatPeriod: 5 * time.Second},
			CAConfig:   swarm.CAConfig{NodeCertExpiry: 90 * 24 * time.Hour},
		},
		DefaultAddrPool: []string{"10.0.0.0/8"},
		SubnetSize:      24,
		DataPathPort:    4789,
	}
}

func ptr[T any](v T) *T { return &v }

func (e *Engine) handleInfo(w http.ResponseWriter, r *http.Request) error {
	e.mu.RLock()
	self := e.nodes[e.selfID]
	mode := e.mode
	info := system.Info{
		ID:                 "SIM0:" + strings.ToUpper(e.selfID[:min(len(e.selfID), 12)]),
		Driver:             "overlay2",
		Name:               self.ident.Hostname,
		NCPU:               int(self.ident.NanoCPUs / 1e9),
		MemTotal:           self.ident.MemoryBytes,
		ServerVersion:      e.opts.ServerVersion,
		KernelVersion:      "6.1.0-sim",
		OperatingSystem:    "dockersim (simulated Docker Engine)",
		OSType:             "linux",
		Architecture:       "x86_64",
		IndexServerAddress: "https://index.docker.io/v1/",
		DockerRootDir:      "/var/lib/docker",
		LoggingDriver:      "json-file",
		CgroupDriver:       "systemd",
		CgroupVersion:      "2",
		SystemTime:         time.Now().Format(time.RFC3339Nano),
		NEventsListener:    len(e.subs),
		Labels:             []string{},
		SecurityOptions:    []string{},
		Warnings:           []string{},
		CDISpecDirs:        []string{},
	}
	info.Swarm = swarm.Info{LocalNodeState: swarm.LocalNodeStateInactive, RemoteManagers: nil}
	switch mode {
	case ModeManager, ModeWorker:
		info.Swarm.NodeID = e.selfID
		info.Swarm.NodeAddr = self.ident.Addr
		info.Swarm.LocalNodeState = swarm.LocalNodeStateActive
		info.Swarm.RemoteManagers = []swarm.Peer{}
		for _, n := range e.sortedNodesLocked() {
			if n.role == swarm.NodeRoleManager {
				info.Swarm.RemoteManagers = append(info.Swarm.RemoteManagers, swarm.Peer{NodeID: n.id, Addr: n.ident.Addr + ":2377"})
			}
		}
		if mode == ModeManager {
			info.Swarm.ControlAvailable = true
			info.Swarm.Nodes = len(e.nodes)
			info.Swarm.Managers = len(info.Swarm.RemoteManagers)
			ci := e.clusterInfoLocked()
			info.Swarm.Cluster = &ci
		}
	}
	e.mu.RUnlock()
	writeJSON(w, http.StatusOK, info)
	return nil
}

// requireManager returns dockerd's errNoManager for non-manager modes.
func (e *Engine) requireManager() error {
	switch e.Mode() {
	case ModeManager:
		return nil
	case ModeWorker:
		return errf(http.StatusServiceUnavailable, "%s", errMsgWorker)
	}
	return errf(http.StatusServiceUnavailable, "%s", errMsgInactive)
}

func (e *Engine) handleSwarm(w http.ResponseWriter, r *http.Request) error {
	if err := e.requireManager(); err != nil {
		return err
	}
	e.mu.RLock()
	s := swarm.Swarm{ClusterInfo: e.clusterInfoLocked()}
	e.mu.RUnlock()
	writeJSON(w, http.StatusOK, s)
	return nil
}

// parseFilters reads the "filters" query parameter in either of the formats
// the client sends ({"k":{"v":true}} or the legacy {"k":["v"]}).
func parseFilters(r *http.Request) (filters.Args, error) {
	f, err := filters.FromJSON(r.URL.Query().Get("filters"))
	if err != nil {
		return f, errf(http.StatusBadRequest, "%s", err.Error())
	}
	return f, nil
}

var nodeListFilters = map[string]bool{
	"name": true, "id": true, "label": true, "role": true, "membership": true, "node.label": true,
}

// kvMatch is swarmkit's filterMatchLabels over "k" / "k=v" filter values.
func kvMatch(want []string, have map[string]string) bool {
	for _, kv := range want {
		k, v, hasV := strings.Cut(kv, "=")
		got, ok := have[k]
		if !ok || (hasV && got != v) {
			return false
		}
	}
	return true
}

func hasAnyPrefix(s string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func (e *Engine) handleNodeList(w http.ResponseWriter, r *http.Request) error {
	if err := e.requireManager(); err != nil {
		return err
	}
	f, err := parseFilters(r)
	if err != nil {
		return err
	}
	// daemon/cluster/filters.go newListNodesFilters
	if err := f.Validate(nodeListFilters); err != nil {
		return errf(http.StatusBadRequest, "%s", err.Error())
	}
	var roles []swarm.NodeRole
	for _, v := range f.Get("role") {
		switch strings.ToLower(v) {
		case "worker", "manager":
			roles = append(roles, swarm.NodeRole(strings.ToLower(v)))
		case "":
		default:
			// dockerd returns a plain error here, hence a 500.
			return errf(http.StatusInternalServerError, "Invalid role filter: '%s'", v)
		}
	}
	memberships := f.Get("membership")
	for _, v := range memberships {
		switch strings.ToLower(v) {
		case "accepted", "pending", "":
		default:
			return errf(http.StatusInternalServerError, "Invalid membership filter: '%s'", v)
		}
	}
	names, idPrefixes := f.Get("name"), f.Get("id")
	nodeLabels, engineLabels := f.Get("node.label"), f.Get("label")

	e.mu.RLock()
	out := []swarm.Node{}
	for _, n := range e.sortedNodesLocked() {
		if !hasAnyPrefix(n.ident.Hostname, names) || !hasAnyPrefix(n.id, idPrefixes) {
			continue
		}
		if len(roles) > 0 && !containsRole(roles, n.role) {
			continue
		}
		if len(memberships) > 0 && !containsFold(memberships, "accepted") {
			continue // every simulated node is accepted
		}
		if len(nodeLabels) > 0 && !kvMatch(nodeLabels, n.labels) {
			continue
		}
		if len(engineLabels) > 0 && !kvMatch(engineLabels, n.engineLabels) {
			continue
		}
		out = append(out, e.renderLocked(n))
	}
	e.mu.RUnlock()
	writeJSON(w, http.StatusOK, out)
	return nil
}

func containsRole(rs []swarm.NodeRole, r swarm.NodeRole) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

func containsFold(vs []string, s string) bool {
	for _, v := range vs {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// handleNodeInspect follows daemon/cluster/helpers.go getNode: full ID, then
// exact hostname, then ID prefix; none is 404, several is 400 (ambiguous).
func (e *Engine) handleNodeInspect(w http.ResponseWriter, input string) error {
	if err := e.requireManager(); err != nil {
		return err
	}
	e.mu.RLock()
	var match []*node
	if n, ok := e.nodes[input]; ok {
		match = []*node{n}
	} else {
		sorted := e.sortedNodesLocked()
		for _, n := range sorted {
			if n.ident.Hostname == input {
				match = append(match, n)
			}
		}
		if len(match) == 0 {
			for _, n := range sorted {
				if strings.HasPrefix(n.id, input) {
					match = append(match, n)
				}
			}
		}
	}
	var out swarm.Node
	if len(match) == 1 {
		out = e.renderLocked(match[0])
	}
	e.mu.RUnlock()
	switch len(match) {
	case 0:
		return errf(http.StatusNotFound, "node %s not found", input)
	case 1:
		writeJSON(w, http.StatusOK, out)
		return nil
	default:
		return errf(http.StatusBadRequest, "node %s is ambiguous (%d matches found)", input, len(match))
	}
}

func eventTime(v string) (time.Time, error) {
	sec, nsec, err := timetypes.ParseTimestamps(v, -1)
	if err != nil {
		return time.Time{}, err // dockerd maps this plain error to 500
	}
	if sec == -1 {
		return time.Time{}, nil
	}
	return time.Unix(sec, nsec), nil
}

// handleEvents follows api/server/router/system getEvents: replay stored
// events in [since, until], then stream live ones until `until` passes or
// the client goes away.
func (e *Engine) handleEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	since, err := eventTime(q.Get("since"))
	if err != nil {
		return err
	}
	until, err := eventTime(q.Get("until"))
	if err != nil {
		return err
	}
	var (
		timeout  <-chan time.Time
		onlyPast bool
	)
	if !until.IsZero() {
		if until.Before(since) {
			return errf(http.StatusBadRequest, "`since` time (%s) cannot be after `until` time (%s)", q.Get("since"), q.Get("until"))
		}
		now := time.Now()
		onlyPast = until.Before(now)
		if !onlyPast {
			t := time.NewTimer(until.Sub(now))
			defer t.Stop()
			timeout = t.C
		}
	}
	f, err := parseFilters(r)
	if err != nil {
		return err
	}

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	flush() // the client's Events() returns only once headers arrive

	buffered, sub := e.subscribe(since, until, f, onlyPast)
	defer e.unsubscribe(sub)

	enc := json.NewEncoder(w)
	for _, ev := range buffered {
		if err := enc.Encode(ev); err != nil {
			return nil // client gone; headers already sent
		}
	}
	flush()
	if onlyPast {
		return nil
	}
	for {
		select {
		case ev := <-sub.ch:
			if err := enc.Encode(ev); err != nil {
				return nil
			}
			flush()
		case <-timeout:
			return nil
		case <-r.Context().Done():
			return nil
		case <-e.done:
			return nil
		}
	}
}
