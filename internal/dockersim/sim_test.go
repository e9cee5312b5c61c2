package dockersim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
)

// start launches e and registers cleanup.
func start(t *testing.T, e *Engine) {
	t.Helper()
	if err := e.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(e.Close)
}

// newClient returns a real docker client for host, negotiating unless pinned.
func newClient(t *testing.T, host string, pin string) *client.Client {
	t.Helper()
	opts := []client.Opt{client.WithHost(host), client.WithAPIVersionNegotiation()}
	if pin != "" {
		opts = append(opts, client.WithVersion(pin))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		t.Fatalf("NewClientWithOpts: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pathRecorder records request paths seen by the engine.
type pathRecorder struct {
	mu    sync.Mutex
	paths []string
}

func (p *pathRecorder) hook(r *http.Request) {
	p.mu.Lock()
	p.paths = append(p.paths, r.Method+" "+r.URL.Path)
	p.mu.Unlock()
}

func (p *pathRecorder) list() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.paths...)
}

func TestPingAndVersionNegotiation(t *testing.T) {
	e := New(Options{})
	rec := &pathRecorder{}
	e.reqHook = rec.hook
	start(t, e)
	ctx := ctxT(t)

	if !strings.HasPrefix(e.Host(), "tcp://127.0.0.1:") {
		t.Fatalf("Host() = %q", e.Host())
	}
	cli := newClient(t, e.Host(), "")
	ping, err := cli.Ping(ctx)
	if err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if ping.APIVersion != "1.47" || ping.OSType != "linux" {
		t.Errorf("ping = %+v", ping)
	}
	if ping.SwarmStatus == nil || ping.SwarmStatus.NodeState != swarm.LocalNodeStateActive || !ping.SwarmStatus.ControlAvailable {
		t.Errorf("ping swarm status = %+v", ping.SwarmStatus)
	}

	v, err := cli.ServerVersion(ctx)
	if err != nil {
		t.Fatalf("ServerVersion: %v", err)
	}
	if v.APIVersion != "1.47" || v.MinAPIVersion != "1.24" || v.Version != DefaultServerVersion || v.Os != "linux" {
		t.Errorf("version = %+v", v)
	}
	if len(v.Components) != 1 || v.Components[0].Name != "Engine" || v.Components[0].Details["ApiVersion"] != "1.47" {
		t.Errorf("components = %+v", v.Components)
	}
	if got := cli.ClientVersion(); got != "1.47" {
		t.Errorf("negotiated client version = %q, want 1.47", got)
	}
	paths := rec.list()
	if !slicesContains(paths, "HEAD /_ping") || !slicesContains(paths, "GET /v1.47/version") {
		t.Errorf("paths = %v, want HEAD /_ping and GET /v1.47/version", paths)
	}

	// A client pinned to an older API version works without negotiating.
	old := newClient(t, e.Host(), "1.41")
	nodes, err := old.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		t.Fatalf("NodeList with 1.41 client: %v", err)
	}
	if len(nodes) != 1 || nodes[0].ID != e.LocalNodeID() {
		t.Errorf("nodes = %+v", nodes)
	}
	if old.ClientVersion() != "1.41" || !slicesContains(rec.list(), "GET /v1.41/nodes") {
		t.Errorf("pinned client: version %q paths %v", old.ClientVersion(), rec.list())
	}

	// Too new / too old versions get dockerd's errors.
	tooNew := newClient(t, e.Host(), "1.51")
	_, err = tooNew.ServerVersion(ctx)
	if err == nil || !strings.Contains(err.Error(), "client version 1.51 is too new. Maximum supported API version is 1.47") || !cerrdefs.IsInvalidArgument(err) {
		t.Errorf("too-new error = %v", err)
	}
	e2 := New(Options{MinAPIVersion: "1.44"})
	start(t, e2)
	_, err = newClient(t, e2.Host(), "1.41").ServerVersion(ctx)
	if err == nil || !strings.Contains(err.Error(), "client version 1.41 is too old. Minimum supported API version is 1.44") {
		t.Errorf("too-old error = %v", err)
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestRawWireFormat(t *testing.T) {
	e := New(Options{})
	start(t, e)
	base := "http://" + strings.TrimPrefix(e.Host(), "tcp://")

	get := func(method, path string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	resp, body := get("GET", "/_ping")
	if resp.StatusCode != 200 || body != "OK" || resp.Header.Get("Swarm") != "active/manager" ||
		resp.Header.Get("Api-Version") != "1.47" || resp.Header.Get("OSType") != "linux" {
		t.Errorf("GET /_ping: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = get("HEAD", "/v1.47/_ping")
	if resp.StatusCode != 200 || body != "" || resp.Header.Get("Swarm") != "active/manager" {
		t.Errorf("HEAD /_ping: %d %q", resp.StatusCode, body)
	}
	for _, p := range []string{"/v1.47/containers/json", "/nonsense", "/v1.47/nodes/a/b"} {
		resp, body = get("GET", p)
		if resp.StatusCode != 404 || strings.TrimSpace(body) != `{"message":"page not found"}` ||
			resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %q", p, resp.StatusCode, body)
		}
	}
	resp, body = get("POST", "/v1.47/nodes")
	if resp.StatusCode != 404 {
		t.Errorf("POST /nodes: %d %q", resp.StatusCode, body)
	}
	resp, body = get("GET", "/v1.47/nodes/nope")
	if resp.StatusCode != 404 || strings.TrimSpace(body) != `{"message":"node nope not found"}` {
		t.Errorf("GET /nodes/nope: %d %q", resp.StatusCode, body)
	}
	// Field names in a node are the Engine API's.
	resp, body = get("GET", "/nodes/"+e.LocalNodeID())
	if resp.StatusCode != 200 {
		t.Errorf("GET /nodes/%s: %d %q", e.LocalNodeID(), resp.StatusCode, body)
	}
	for _, want := range []string{`"ID":"` + e.LocalNodeID() + `"`, `"Version":{"Index":`, `"CreatedAt":`, `"Hostname":"sim-manager-1"`,
		`"NanoCPUs":2000000000`, `"MemoryBytes":4294967296`, `"EngineVersion":"27.5.1"`, `"State":"ready"`,
		`"Addr":"10.0.0.2"`, `"Role":"manager"`, `"Availability":"active"`, `"ManagerStatus":{"Leader":true,"Reachability":"reachable","Addr":"10.0.0.2:2377"}`} {
		if !strings.Contains(body, want) {
			t.Errorf("node JSON lacks %s: %s", want, body)
		}
	}
	// Event stream with until in the past: newline-delimited objects, then EOF.
	if _, err := e.AddNode(NodeSpec{ID: "n1", Hostname: "h1", CreatedAt: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	resp, body = get("GET", fmt.Sprintf("/v1.47/events?since=%d&until=%d.000000000", time.Now().Add(-time.Hour).Unix(), time.Now().Unix()))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("events: %d %v", resp.StatusCode, resp.Header)
	}
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if len(lines) != 1 || !regexp.MustCompile(`^\{"Type":"node","Action":"create","Actor":\{"ID":"n1","Attributes":\{"name":"h1"\}\},"scope":"swarm","time":\d+,"timeNano":\d+\}$`).MatchString(lines[0]) {
		t.Errorf("events body = %q", body)
	}
	resp, body = get("GET", "/events?since=200&until=100")
	if resp.StatusCode != 400 || !strings.Contains(body, "`since` time (200) cannot be after `until` time (100)") {
		t.Errorf("since>until: %d %q", resp.StatusCode, body)
	}
}

func TestInfoAndSwarm(t *testing.T) {
	e := New(Options{ClusterID: "clusterabc", Self: NodeSpec{ID: "mgr1", Hostname: "swarm-mgr-01", NanoCPUs: 8e9, MemoryBytes: 16 << 30, Addr: "192.168.10.5"}})
	start(t, e)
	ctx := ctxT(t)
	if _, err := e.AddNode(NodeSpec{ID: "w1", Hostname: "worker-a"}); err != nil {
		t.Fatal(err)
	}
	cli := newClient(t, e.Host(), "")
	info, err := cli.Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.Name != "swarm-mgr-01" || info.NCPU != 8 || info.MemTotal != 16<<30 || info.ServerVersion != DefaultServerVersion {
		t.Errorf("info = %+v", info)
	}
	s := info.Swarm
	if s.LocalNodeState != swarm.LocalNodeStateActive || s.NodeID != "mgr1" || !s.ControlAvailable ||
		s.Cluster == nil || s.Cluster.ID != "clusterabc" || s.Nodes != 2 || s.Managers != 1 || s.NodeAddr != "192.168.10.5" {
		t.Errorf("info.Swarm = %+v", s)
	}
	sw, err := cli.SwarmInspect(ctx)
	if err != nil {
		t.Fatalf("SwarmInspect: %v", err)
	}
	if sw.ID != "clusterabc" || sw.Spec.Name != "default" {
		t.Errorf("swarm = %+v", sw.ClusterInfo)
	}
}

func TestNodeListFilters(t *testing.T) {
	e := New(Options{Self: NodeSpec{ID: "mgr0000000000000000000001", Hostname: "mgr-1"}})
	start(t, e)
	ctx := ctxT(t)
	add := func(s NodeSpec) {
		t.Helper()
		if _, err := e.AddNode(s); err != nil {
			t.Fatal(err)
		}
	}
	add(NodeSpec{ID: "aaa111", Hostname: "web-01", Labels: map[string]string{"zone": "a"}})
	add(NodeSpec{ID: "aaa222", Hostname: "web-02", Labels: map[string]string{"zone": "b"}})
	add(NodeSpec{ID: "bbb333", Hostname: "db-01", EngineLabels: map[string]string{"ssd": "true"}})
	add(NodeSpec{ID: "ccc444", Hostname: "mgr-2", Role: swarm.NodeRoleManager})

	cli := newClient(t, e.Host(), "")
	list := func(args ...filters.KeyValuePair) ([]string, error) {
		ns, err := cli.NodeList(ctx, swarm.NodeListOptions{Filters: filters.NewArgs(args...)})
		var ids []string
		for _, n := range ns {
			ids = append(ids, n.ID)
		}
		return ids, err
	}
	cases := []struct {
		name string
		args []filters.KeyValuePair
		want string
	}{
		{"all, sorted by ID", nil, "aaa111,aaa222,bbb333,ccc444,mgr0000000000000000000001"},
		{"id prefix", []filters.KeyValuePair{filters.Arg("id", "aaa")}, "aaa111,aaa222"},
		{"full id", []filters.KeyValuePair{filters.Arg("id", "bbb333")}, "bbb333"},
		{"name prefix", []filters.KeyValuePair{filters.Arg("name", "web")}, "aaa111,aaa222"},
		{"two names", []filters.KeyValuePair{filters.Arg("name", "web-02"), filters.Arg("name", "db")}, "aaa222,bbb333"},
		{"role manager", []filters.KeyValuePair{filters.Arg("role", "manager")}, "ccc444,mgr0000000000000000000001"},
		{"role worker", []filters.KeyValuePair{filters.Arg("role", "worker")}, "aaa111,aaa222,bbb333"},
		{"name+role (AND)", []filters.KeyValuePair{filters.Arg("name", "mgr"), filters.Arg("role", "worker")}, ""},
		{"node.label", []filters.KeyValuePair{filters.Arg("node.label", "zone=b")}, "aaa222"},
		{"node.label key only", []filters.KeyValuePair{filters.Arg("node.label", "zone")}, "aaa111,aaa222"},
		{"engine label", []filters.KeyValuePair{filters.Arg("label", "ssd=true")}, "bbb333"},
		{"membership", []filters.KeyValuePair{filters.Arg("membership", "accepted")}, "aaa111,aaa222,bbb333,ccc444,mgr0000000000000000000001"},
		{"no match", []filters.KeyValuePair{filters.Arg("name", "nope")}, ""},
	}
	for _, c := range cases {
		got, err := list(c.args...)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("%s: got %v, want %s", c.name, got, c.want)
		}
	}

	// Content of a listed node.
	ns, _ := cli.NodeList(ctx, swarm.NodeListOptions{Filters: filters.NewArgs(filters.Arg("id", "ccc444"))})
	if n := ns[0]; n.Description.Hostname != "mgr-2" || n.Spec.Role != swarm.NodeRoleManager || n.ManagerStatus == nil ||
		n.ManagerStatus.Leader || n.Status.State != swarm.NodeStateReady || n.Description.Resources.NanoCPUs != 2e9 {
		t.Errorf("ccc444 = %+v", n)
	}

	// dockerd rejects filter keys it does not know, and bad role values.
	_, err := list(filters.Arg("bogus", "x"))
	if err == nil || !strings.Contains(err.Error(), "invalid filter 'bogus'") || !cerrdefs.IsInvalidArgument(err) {
		t.Errorf("unknown filter: %v", err)
	}
	_, err = list(filters.Arg("role", "boss"))
	if err == nil || !strings.Contains(err.Error(), "Invalid role filter: 'boss'") {
		t.Errorf("bad role: %v", err)
	}
}

func TestNodeInspect(t *testing.T) {
	e := New(Options{})
	start(t, e)
	ctx := ctxT(t)
	if _, err := e.AddNode(NodeSpec{ID: "abc123", Hostname: "web-01", NanoCPUs: 4e9, MemoryBytes: 8 << 30, Addr: "10.1.2.3", EngineVersion: "28.0.1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.AddNode(NodeSpec{ID: "abc456", Hostname: "dup"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.AddNode(NodeSpec{ID: "xyz789", Hostname: "dup"}); err != nil {
		t.Fatal(err)
	}
	cli := newClient(t, e.Host(), "")

	for _, ref := range []string{"abc123", "web-01", "abc1"} {
		n, raw, err := cli.NodeInspectWithRaw(ctx, ref)
		if err != nil {
			t.Fatalf("inspect %s: %v", ref, err)
		}
		if n.ID != "abc123" || n.Description.Hostname != "web-01" || n.Description.Resources.NanoCPUs != 4e9 ||
			n.Description.Resources.MemoryBytes != 8<<30 || n.Status.Addr != "10.1.2.3" ||
			n.Description.Engine.EngineVersion != "28.0.1" || n.Spec.Role != swarm.NodeRoleWorker || n.ManagerStatus != nil {
			t.Errorf("inspect %s = %+v", ref, n)
		}
		if !json.Valid(raw) {
			t.Errorf("raw not JSON: %s", raw)
		}
	}

	_, _, err := cli.NodeInspectWithRaw(ctx, "nope")
	if !cerrdefs.IsNotFound(err) || !strings.Contains(err.Error(), "node nope not found") {
		t.Errorf("not found: %v (IsNotFound=%v)", err, cerrdefs.IsNotFound(err))
	}
	_, _, err = cli.NodeInspectWithRaw(ctx, "abc") // ID prefix of two nodes
	if err == nil || !cerrdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "node abc is ambiguous (2 matches found)") {
		t.Errorf("ambiguous prefix: %v", err)
	}
	_, _, err = cli.NodeInspectWithRaw(ctx, "dup") // hostname shared by two nodes
	if err == nil || !strings.Contains(err.Error(), "node dup is ambiguous (2 matches found)") {
		t.Errorf("ambiguous hostname: %v", err)
	}

	if err := e.RemoveNode("abc123"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cli.NodeInspectWithRaw(ctx, "abc123"); !cerrdefs.IsNotFound(err) {
		t.Errorf("after remove: %v", err)
	}
	if err := e.RemoveNode(e.LocalNodeID()); err == nil {
		t.Error("removing own node should fail")
	}
}

func TestSetDescriptionBumpsVersion(t *testing.T) {
	e := New(Options{})
	id, err := e.AddNode(NodeSpec{Hostname: "orig", NanoCPUs: 2e9})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := e.Node(id)
	time.Sleep(2 * time.Millisecond)
	if err := e.SetDescription(id, Identity{Hostname: "clone", NanoCPUs: 4e9, Addr: "10.9.9.9"}); err != nil {
		t.Fatal(err)
	}
	after, _ := e.Node(id)
	if after.Version.Index <= before.Version.Index || !after.UpdatedAt.After(before.UpdatedAt) || !after.CreatedAt.Equal(before.CreatedAt) {
		t.Errorf("meta before %+v after %+v", before.Meta, after.Meta)
	}
	if after.Description.Hostname != "clone" || after.Description.Resources.NanoCPUs != 4e9 || after.Status.Addr != "10.9.9.9" ||
		after.Description.Resources.MemoryBytes != before.Description.Resources.MemoryBytes {
		t.Errorf("after = %+v", after)
	}
	evs := e.StoredEvents()
	last := evs[len(evs)-1]
	if last.Action != events.ActionUpdate || last.Actor.ID != id || last.Actor.Attributes["name"] != "clone" ||
		last.TimeNano != after.UpdatedAt.UnixNano() || last.Scope != "swarm" || last.Type != events.NodeEventType {
		t.Errorf("last event = %+v", last)
	}
	if err := e.SetDescription("missing", Identity{Hostname: "x"}); err == nil {
		t.Error("SetDescription on unknown node should fail")
	}
	if err := e.SetState(id, swarm.NodeStateDown); err != nil {
		t.Fatal(err)
	}
	evs = e.StoredEvents()
	if a := evs[len(evs)-1].Actor.Attributes; a["state.old"] != "ready" || a["state.new"] != "down" || a["name"] != "clone" {
		t.Errorf("state event attrs = %v", a)
	}
}

// collect reads an event stream until it ends (io.EOF) or n messages arrived.
func collect(t *testing.T, msgs <-chan events.Message, errs <-chan error, n int, timeout time.Duration) ([]events.Message, error) {
	t.Helper()
	var out []events.Message
	deadline := time.After(timeout)
	for n <= 0 || len(out) < n {
		select {
		case m := <-msgs:
			out = append(out, m)
		case err := <-errs:
			return out, err
		case <-deadline:
			return out, errors.New("timeout")
		}
	}
	return out, nil
}

func TestEventsReplayBackfill(t *testing.T) {
	e := New(Options{})
	start(t, e)
	ctx := ctxT(t)
	nodeID, _ := e.AddNode(NodeSpec{ID: "victim00000000000000000001", Hostname: "worker-07", CreatedAt: time.Now().Add(-2 * time.Hour)})
	other, _ := e.AddNode(NodeSpec{ID: "bystander", Hostname: "worker-08", CreatedAt: time.Now().Add(-2 * time.Hour)})

	idents := []Identity{
		{Hostname: "worker-07", NanoCPUs: 4e9, MemoryBytes: 8 << 30, Addr: "10.0.1.7"},
		{Hostname: "worker-07-clone", NanoCPUs: 2e9, MemoryBytes: 4 << 30, Addr: "10.0.1.99"},
	}
	now := time.Now()
	from := now.Add(-30 * time.Minute).Truncate(time.Second).Add(123456789) // non-zero nanos
	to := from.Add(9 * time.Minute)
	if err := e.Backfill(nodeID, idents, from, to, time.Minute); err != nil {
		t.Fatal(err)
	}
	// Unrelated noise that filters must drop.
	if err := e.Backfill(other, []Identity{{Hostname: "worker-08"}}, from, to, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	cur, _ := e.Node(nodeID)
	if cur.Description.Hostname != "worker-07-clone" || !cur.UpdatedAt.Equal(to.UTC()) {
		t.Errorf("after backfill node = %s updated %v", cur.Description.Hostname, cur.UpdatedAt)
	}

	cli := newClient(t, e.Host(), "")
	f := filters.NewArgs(filters.Arg("type", "node"), filters.Arg("event", "update"), filters.Arg("node", nodeID))
	msgs, errs := cli.Events(ctx, events.ListOptions{
		Since:   strconv.FormatInt(from.Add(-time.Second).Unix(), 10) + ".000000000",
		Until:   now.Format(time.RFC3339Nano), // the client converts this to unix.nanos
		Filters: f,
	})
	got, err := collect(t, msgs, errs, 0, 10*time.Second)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("stream should end with EOF when until is past, got %v", err)
	}
	if len(got) != 10 {
		t.Fatalf("got %d events, want 10: %+v", len(got), got)
	}
	for i, m := range got {
		wantName := idents[i%2].Hostname
		wantTime := from.Add(time.Duration(i) * time.Minute)
		if m.Type != events.NodeEventType || m.Action != events.ActionUpdate || m.Scope != "swarm" ||
			m.Actor.ID != nodeID || m.Actor.Attributes["name"] != wantName ||
			m.TimeNano != wantTime.UnixNano() || m.Time != wantTime.Unix() {
			t.Errorf("event %d = %+v, want name %s at %v", i, m, wantName, wantTime)
		}
	}

	// A `node=` filter also matches by name prefix (dockerd's fuzzy match).
	msgs, errs = cli.Events(ctx, events.ListOptions{
		Since:   strconv.FormatInt(from.Unix(), 10),
		Until:   strconv.FormatInt(now.Unix(), 10),
		Filters: filters.NewArgs(filters.Arg("node", "worker-07-cl")),
	})
	got, err = collect(t, msgs, errs, 0, 10*time.Second)
	if !errors.Is(err, io.EOF) || len(got) != 5 {
		t.Errorf("name-filtered replay: %d events, err %v", len(got), err)
	}

	// A window in the middle: [from+2m, from+4m] inclusive -> 3 events.
	msgs, errs = cli.Events(ctx, events.ListOptions{
		Since:   fmt.Sprintf("%d.%09d", from.Add(2*time.Minute).Unix(), from.Nanosecond()),
		Until:   fmt.Sprintf("%d.%09d", from.Add(4*time.Minute).Unix(), from.Nanosecond()),
		Filters: filters.NewArgs(filters.Arg("node", nodeID)),
	})
	got, err = collect(t, msgs, errs, 0, 10*time.Second)
	if !errors.Is(err, io.EOF) || len(got) != 3 || got[0].Actor.Attributes["name"] != "worker-07" || got[1].Actor.Attributes["name"] != "worker-07-clone" {
		t.Errorf("window replay: %+v err %v", got, err)
	}

	// Without filters, the replay includes both nodes, time-ordered.
	msgs, errs = cli.Events(ctx, events.ListOptions{Since: strconv.FormatInt(from.Unix(), 10), Until: strconv.FormatInt(now.Unix(), 10)})
	got, err = collect(t, msgs, errs, 0, 10*time.Second)
	if !errors.Is(err, io.EOF) || len(got) != 10+7 {
		t.Errorf("unfiltered replay: %d events, err %v", len(got), err)
	}
	for i := 1; i < len(got); i++ {
		if got[i].TimeNano < got[i-1].TimeNano {
			t.Errorf("replay not time-ordered at %d", i)
		}
	}
}

func TestEventRetention(t *testing.T) {
	e := New(Options{EventLimit: 10})
	id, _ := e.AddNode(NodeSpec{Hostname: "a"}) // create event now
	from := time.Now().Add(-time.Hour)
	if err := e.Backfill(id, []Identity{{Hostname: "a"}, {Hostname: "b"}}, from, from.Add(24*time.Minute), time.Minute); err != nil {
		t.Fatal(err)
	}
	evs := e.StoredEvents()
	if len(evs) != 10 {
		t.Fatalf("kept %d events, want 10", len(evs))
	}
	// Newest kept: the live create event plus the last 9 backfilled ones.
	if evs[9].Action != events.ActionCreate || evs[0].TimeNano != from.Add(16*time.Minute).UnixNano() {
		t.Errorf("kept wrong events: first %v last %v", time.Unix(0, evs[0].TimeNano), evs[9].Action)
	}
	// The node was created (now) after the backfill window, so its current
	// description is unchanged by it.
	if n, _ := e.Node(id); n.Description.Hostname != "a" {
		t.Errorf("hostname = %s", n.Description.Hostname)
	}
	if got := New(Options{}).opts.EventLimit; got != 256 {
		t.Errorf("default EventLimit = %d", got)
	}
}

func TestLiveEventsDuringFlap(t *testing.T) {
	e := New(Options{})
	start(t, e)
	ctx := ctxT(t)
	nodeID, _ := e.AddNode(NodeSpec{Hostname: "worker-03", Addr: "10.0.3.3"})
	other, _ := e.AddNode(NodeSpec{Hostname: "worker-04"})
	// History that must NOT be replayed: no since/until means live only.
	_ = e.Backfill(nodeID, []Identity{{Hostname: "old"}}, time.Now().Add(-time.Hour), time.Now().Add(-50*time.Minute), time.Minute)

	cli := newClient(t, e.Host(), "")
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, errs := cli.Events(sctx, events.ListOptions{Filters: filters.NewArgs(filters.Arg("type", "node"), filters.Arg("node", nodeID))})

	idents := []Identity{{Hostname: "worker-03", Addr: "10.0.3.3"}, {Hostname: "worker-03-clone", Addr: "10.0.3.200"}}
	if err := e.Flap(ctx, nodeID, idents, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := e.Flap(ctx, other, []Identity{{Hostname: "worker-04"}}, 15*time.Millisecond); err != nil { // noise
		t.Fatal(err)
	}
	got, err := collect(t, msgs, errs, 6, 10*time.Second)
	if err != nil {
		t.Fatalf("live events: %v (got %d)", err, len(got))
	}
	start := time.Now().Add(-time.Minute).UnixNano()
	for i, m := range got {
		// Node currently matches idents[0], so the first flip is to the clone.
		want := idents[(i+1)%2].Hostname
		if m.Actor.ID != nodeID || m.Action != events.ActionUpdate || m.Actor.Attributes["name"] != want || m.TimeNano < start {
			t.Errorf("live event %d = %+v, want name %s", i, m, want)
		}
		if i > 0 && m.TimeNano <= got[i-1].TimeNano {
			t.Errorf("live events out of order at %d", i)
		}
	}
	// The node really flips: inspect shows one identity or the other.
	n, _, err := cli.NodeInspectWithRaw(ctx, nodeID)
	if err != nil {
		t.Fatal(err)
	}
	if h := n.Description.Hostname; (h != "worker-03" || n.Status.Addr != "10.0.3.3") && (h != "worker-03-clone" || n.Status.Addr != "10.0.3.200") {
		t.Errorf("inspect during flap: %s %s", h, n.Status.Addr)
	}
	cancel()
	select {
	case err := <-errs:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("stream did not stop after cancel")
	}
}

func TestEventsUntilInFuture(t *testing.T) {
	e := New(Options{})
	start(t, e)
	ctx := ctxT(t)
	id, _ := e.AddNode(NodeSpec{Hostname: "n"})
	cli := newClient(t, e.Host(), "")
	t0 := time.Now()
	msgs, errs := cli.Events(ctx, events.ListOptions{
		Since: strconv.FormatInt(t0.Add(-time.Minute).Unix(), 10),
		Until: fmt.Sprintf("%d.%09d", t0.Add(700*time.Millisecond).Unix(), t0.Add(700*time.Millisecond).Nanosecond()),
	})
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = e.SetDescription(id, Identity{Hostname: "n2"})
	}()
	got, err := collect(t, msgs, errs, 0, 10*time.Second)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("want EOF at until, got %v", err)
	}
	if el := time.Since(t0); el < 600*time.Millisecond {
		t.Errorf("stream ended after %v, before until", el)
	}
	if len(got) != 2 || got[0].Action != events.ActionCreate || got[1].Actor.Attributes["name"] != "n2" {
		t.Errorf("got %+v", got)
	}
}

func TestNonManagerModes(t *testing.T) {
	ctx := ctxT(t)

	e := New(Options{Mode: ModeInactive})
	start(t, e)
	cli := newClient(t, e.Host(), "")
	ping, err := cli.Ping(ctx)
	if err != nil || ping.SwarmStatus == nil || ping.SwarmStatus.NodeState != swarm.LocalNodeStateInactive || ping.SwarmStatus.ControlAvailable {
		t.Errorf("ping = %+v, %v", ping, err)
	}
	info, err := cli.Info(ctx)
	if err != nil || info.Swarm.LocalNodeState != swarm.LocalNodeStateInactive || info.Swarm.NodeID != "" || info.Swarm.Cluster != nil {
		t.Errorf("info.Swarm = %+v, %v", info.Swarm, err)
	}
	const wantInactive = `Error response from daemon: This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.`
	_, err = cli.NodeList(ctx, swarm.NodeListOptions{})
	if err == nil || err.Error() != wantInactive || !cerrdefs.IsUnavailable(err) {
		t.Errorf("NodeList error = %v", err)
	}
	_, _, err = cli.NodeInspectWithRaw(ctx, "x")
	if err == nil || err.Error() != wantInactive {
		t.Errorf("NodeInspect error = %v", err)
	}
	_, err = cli.SwarmInspect(ctx)
	if err == nil || err.Error() != wantInactive {
		t.Errorf("SwarmInspect error = %v", err)
	}

	w := New(Options{Mode: ModeWorker, Self: NodeSpec{ID: "wself"}})
	start(t, w)
	wc := newClient(t, w.Host(), "")
	info, err = wc.Info(ctx)
	if err != nil || info.Swarm.LocalNodeState != swarm.LocalNodeStateActive || info.Swarm.NodeID != "wself" || info.Swarm.ControlAvailable || info.Swarm.Cluster != nil {
		t.Errorf("worker info.Swarm = %+v, %v", info.Swarm, err)
	}
	_, err = wc.NodeList(ctx, swarm.NodeListOptions{})
	if err == nil || !strings.Contains(err.Error(), "Worker nodes can't be used to view or modify cluster state") || !cerrdefs.IsUnavailable(err) {
		t.Errorf("worker NodeList error = %v", err)
	}

	// Switching a manager to inactive at runtime.
	m := New(Options{})
	start(t, m)
	mc := newClient(t, m.Host(), "")
	if _, err := mc.NodeList(ctx, swarm.NodeListOptions{}); err != nil {
		t.Fatal(err)
	}
	m.SetMode(ModeInactive)
	if _, err := mc.NodeList(ctx, swarm.NodeListOptions{}); err == nil || err.Error() != wantInactive {
		t.Errorf("after SetMode: %v", err)
	}
}

func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	e := New(Options{UnixSocket: sock})
	start(t, e)
	if e.UnixHost() != "unix://"+sock {
		t.Fatalf("UnixHost = %q", e.UnixHost())
	}
	ctx := ctxT(t)
	cli := newClient(t, e.UnixHost(), "")
	nodes, err := cli.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil || len(nodes) != 1 {
		t.Fatalf("NodeList over unix socket: %v %v", nodes, err)
	}
	if cli.ClientVersion() != "1.47" {
		t.Errorf("client version %s", cli.ClientVersion())
	}
}

func TestGeneratedIDs(t *testing.T) {
	re := regexp.MustCompile(`^[a-z0-9]{25}$`)
	e := New(Options{})
	seen := map[string]bool{}
	for _, id := range append(e.Populate(200, "w"), e.LocalNodeID(), e.ClusterID()) {
		if !re.MatchString(id) || seen[id] {
			t.Fatalf("bad or duplicate ID %q", id)
		}
		seen[id] = true
	}
	a, b := New(Options{IDSeed: 42}), New(Options{IDSeed: 42})
	if a.LocalNodeID() != b.LocalNodeID() || strings.Join(a.Populate(5, "x"), ",") != strings.Join(b.Populate(5, "x"), ",") {
		t.Error("seeded IDs differ")
	}
	if _, err := a.AddNode(NodeSpec{ID: a.LocalNodeID()}); err == nil {
		t.Error("duplicate ID accepted")
	}
	if _, err := a.AddNode(NodeSpec{ID: "bad/id"}); err == nil {
		t.Error("ID with slash accepted")
	}
	if _, err := a.AddNode(NodeSpec{Role: "boss"}); err == nil {
		t.Error("bad role accepted")
	}
}

func TestScale2000Nodes(t *testing.T) {
	e := New(Options{})
	ids := e.Populate(2000, "worker-")
	start(t, e)
	ctx := ctxT(t)
	cli := newClient(t, e.Host(), "")
	t0 := time.Now()
	nodes, err := cli.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("NodeList of %d nodes took %v", len(nodes), time.Since(t0))
	if len(nodes) != 2001 {
		t.Fatalf("got %d nodes, want 2001 (2000 + the manager)", len(nodes))
	}
	hosts, addrs := map[string]bool{}, map[string]bool{}
	for i, n := range nodes {
		if i > 0 && nodes[i-1].ID >= n.ID {
			t.Fatal("nodes not sorted by ID")
		}
		if n.Status.State != swarm.NodeStateReady || n.Spec.Availability != swarm.NodeAvailabilityActive || n.Description.Resources.NanoCPUs == 0 {
			t.Fatalf("unhealthy node %+v", n)
		}
		hosts[n.Description.Hostname] = true
		addrs[n.Status.Addr] = true
	}
	if len(hosts) != 2001 || len(addrs) != 2001 || !hosts["worker-0001"] || !hosts["worker-2000"] {
		t.Errorf("hostnames/addrs not unique: %d/%d", len(hosts), len(addrs))
	}
	ns, err := cli.NodeList(ctx, swarm.NodeListOptions{Filters: filters.NewArgs(filters.Arg("name", "worker-19"))})
	if err != nil || len(ns) != 100 {
		t.Errorf("name prefix worker-19: %d nodes, %v", len(ns), err)
	}
	if n, _, err := cli.NodeInspectWithRaw(ctx, ids[1234]); err != nil || n.Description.Hostname != "worker-1235" {
		t.Errorf("inspect ids[1234]: %+v %v", n.Description, err)
	}
	if len(e.StoredEvents()) != 0 {
		t.Errorf("Populate emitted %d events", len(e.StoredEvents()))
	}
}

func TestCloseEndsStreamsAndFlappers(t *testing.T) {
	e := New(Options{})
	start(t, e)
	ctx := ctxT(t)
	id, _ := e.AddNode(NodeSpec{Hostname: "a"})
	if err := e.Flap(context.Background(), id, []Identity{{Hostname: "a"}, {Hostname: "b"}}, 5*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	cli := newClient(t, e.Host(), "")
	msgs, errs := cli.Events(ctx, events.ListOptions{})
	if _, err := collect(t, msgs, errs, 2, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { e.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung")
	}
	n1, _ := e.Node(id)
	time.Sleep(30 * time.Millisecond)
	if n2, _ := e.Node(id); n2.Version.Index != n1.Version.Index {
		t.Error("flapper still running after Close")
	}
	if err := e.Flap(ctx, id, []Identity{{Hostname: "x"}}, time.Millisecond); err == nil {
		t.Error("Flap after Close should fail")
	}
}

// TestOnRequest: Options.OnRequest sees every request, with its method and
// path, before it is served.
func TestOnRequest(t *testing.T) {
	rec := &pathRecorder{}
	e := New(Options{OnRequest: rec.hook})
	start(t, e)
	cli := newClient(t, e.Host(), "1.47")
	if _, err := cli.NodeList(ctxT(t), swarm.NodeListOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Info(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rec.list(), ","); got != "GET /v1.47/nodes,GET /v1.47/info" {
		t.Errorf("requests seen = %q", got)
	}
}
