//go:build linux

package swarmtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/a`:           `/tmp/a`,
		`/tmp/a\040b`:      `/tmp/a b`,
		`/tmp/x\134y`:      `/tmp/x\y`,
		`/tmp/trailing\04`: `/tmp/trailing\04`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRealSwarmClusterAndClone starts a manager and a 2-CPU worker, clones the
// worker onto a 1-CPU engine, and checks that the manager sees one node ID
// flip between the two hostnames; then that Close leaves nothing behind.
func TestRealSwarmClusterAndClone(t *testing.T) {
	Require(t)
	t.Parallel()
	ctx := t.Context()
	c, err := Start(ctx, Options{Workers: []EngineOptions{{Hostname: "wk"}}})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = c.Close()
		}
	})

	mgr, wk := c.Manager, c.Workers[0]
	if mgr.Name != "mgr" || wk.Name != "wk" || c.Engine("wk") != wk {
		t.Fatalf("engines named %q/%q, want mgr/wk", mgr.Name, wk.Name)
	}
	if !strings.HasPrefix(mgr.Addr, "127.") || mgr.Addr == "127.0.0.1" || mgr.Addr == wk.Addr {
		t.Errorf("addresses mgr=%s wk=%s: want distinct 127.X.Y.Z other than 127.0.0.1", mgr.Addr, wk.Addr)
	}
	nodes, err := mgr.Client().NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]swarm.Node{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	if len(nodes) != 2 || byID[mgr.NodeID].Description.Hostname != "mgr" || byID[wk.NodeID].Description.Hostname != "wk" {
		t.Fatalf("manager lists %d nodes %v; want mgr=%s and wk=%s", len(nodes), byID, mgr.NodeID, wk.NodeID)
	}
	if byID[wk.NodeID].Spec.Role != swarm.NodeRoleWorker || byID[mgr.NodeID].Spec.Role != swarm.NodeRoleManager {
		t.Errorf("roles: mgr %s, wk %s", byID[mgr.NodeID].Spec.Role, byID[wk.NodeID].Spec.Role)
	}

	clone := c.Clone(t, wk, "clone", true)
	if clone.NodeID != wk.NodeID {
		t.Fatalf("clone node ID %s, want the worker's %s", clone.NodeID, wk.NodeID)
	}
	info, err := clone.Client().Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NCPU != 1 || info.Name != "clone" {
		t.Errorf("clone reports NCPU=%d name=%q, want 1 CPU named clone (taskset + UTS namespace)", info.NCPU, info.Name)
	}

	// The manager keeps whichever session registered last, so within a few
	// seconds the node must show both hostnames.
	seen := map[string]int64{}
	deadline := time.Now().Add(30 * time.Second)
	for len(seen) < 2 && time.Now().Before(deadline) {
		n, _, err := mgr.Client().NodeInspectWithRaw(ctx, wk.NodeID)
		if err != nil {
			t.Fatal(err)
		}
		seen[n.Description.Hostname] = n.Description.Resources.NanoCPUs
		time.Sleep(200 * time.Millisecond)
	}
	if _, ok := seen["clone"]; !ok || len(seen) != 2 {
		t.Fatalf("manager showed hostnames %v for %s within 30s; want both wk and clone", seen, wk.NodeID)
	}
	if seen["clone"] != 1e9 {
		t.Errorf("clone description NanoCPUs = %d, want 1e9", seen["clone"])
	}

	// Stop is a power-off: the engine is gone, its directory stays.
	st := time.Now()
	if err := clone.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	t.Logf("clone stop %s", time.Since(st))
	if clone.Running() || len(pidsUnder(clone.Dir)) != 0 {
		t.Errorf("clone still running after Stop: %v", pidsUnder(clone.Dir))
	}
	if _, err := os.Stat(clone.DataRoot); err != nil {
		t.Errorf("clone data root gone after Stop: %v", err)
	}

	closed = true
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if pids := pidsUnder(c.Dir); len(pids) != 0 {
		t.Errorf("processes left under %s: %v", c.Dir, pids)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), c.Dir) {
		t.Errorf("mounts left under %s", c.Dir)
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("%s not removed: %v", c.Dir, err)
	}
}

// TestRealSwarmParallelClusters checks that two clusters in one process get
// separate address blocks and directories, as concurrent test processes do.
func TestRealSwarmParallelClusters(t *testing.T) {
	Require(t)
	t.Parallel()
	type result struct {
		c   *Cluster
		err error
	}
	ch := make(chan result, 2)
	for range 2 {
		go func() {
			c, err := Start(context.Background(), Options{})
			ch <- result{c, err}
		}()
	}
	var cs []*Cluster
	for range 2 {
		r := <-ch
		if r.err != nil {
			t.Error(r.err)
			continue
		}
		cs = append(cs, r.c)
		t.Cleanup(func() { _ = r.c.Close() })
	}
	if len(cs) != 2 {
		t.FailNow()
	}
	if cs[0].Manager.Addr == cs[1].Manager.Addr || cs[0].Dir == cs[1].Dir {
		t.Errorf("clusters share an address or directory: %s %s / %s %s",
			cs[0].Manager.Addr, cs[0].Dir, cs[1].Manager.Addr, cs[1].Dir)
	}
	for _, c := range cs {
		sw, err := c.Manager.Client().SwarmInspect(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if sw.ID == "" {
			t.Errorf("cluster at %s has no ID", c.Manager.Addr)
		}
	}
}

func TestRunClosesOnError(t *testing.T) {
	Require(t)
	t.Parallel()
	var dir string
	err := Run(t.Context(), Options{}, func(c *Cluster) error {
		dir = c.Dir
		return os.ErrDeadlineExceeded
	})
	if err == nil || !strings.Contains(err.Error(), os.ErrDeadlineExceeded.Error()) {
		t.Fatalf("Run returned %v, want fn's error", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Run left %s behind: %v", dir, err)
	}
}

// recordingTB records how Require ended the test instead of ending it.
type recordingTB struct {
	testing.TB
	calls []string
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Fatalf(f string, args ...any) {
	r.calls = append(r.calls, "fatal: "+fmt.Sprintf(f, args...))
}
func (r *recordingTB) Skipf(f string, args ...any) {
	r.calls = append(r.calls, "skip: "+fmt.Sprintf(f, args...))
}
func (r *recordingTB) Skip(args ...any) { r.calls = append(r.calls, "skip: "+fmt.Sprint(args...)) }

// TestRequireFailsUnderCI hides dockerd from PATH: Require must skip
// normally and fail loudly under CI=true.
func TestRequireFailsUnderCI(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for ci, want := range map[string]string{"": "skip: ", "true": "fatal: "} {
		t.Setenv("CI", ci)
		r := &recordingTB{TB: t}
		Require(r)
		if len(r.calls) == 0 || !strings.HasPrefix(r.calls[0], want) || !strings.Contains(r.calls[0], "not found in PATH") {
			t.Errorf("CI=%q: Require did %q, want %q with the reason", ci, r.calls, want)
		}
	}
}
