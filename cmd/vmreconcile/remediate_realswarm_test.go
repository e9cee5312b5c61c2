package main

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/guest/guesttest"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/remediate"
	"github.com/vmreconcile/vmreconcile/swarm"
	"github.com/vmreconcile/vmreconcile/swarmtest"
)

// TestRealSwarmRemediateClone is the whole story on real engines: a swarm
// (manager + worker wk1), a clone engine started from a copy of wk1's data
// root (same node ID: the manager flips between them), and in vcsim a
// container-backed VM for each of wk1 and the clone. The clone VM's
// container mounts the clone engine's real data root at /var/lib/docker and
// shares the host's pid namespace; its systemctl stops the clone engine
// through its pidfile on `disable --now`/`stop`. The built binary confirms
// the shared node ID from the real certificates (remediate's guest probe)
// and disables Docker on the clone only; afterwards the original's node
// stays stable for 30 s and its VM was never touched.
func TestRealSwarmRemediateClone(t *testing.T) {
	swarmtest.Require(t)
	requireGuestVMs(t)
	cl := swarmtest.NewCluster(t, swarmtest.Options{
		Manager: swarmtest.EngineOptions{Hostname: "mgr"},
		Workers: []swarmtest.EngineOptions{{Hostname: "wk1"}},
	})
	wk := cl.Workers[0]
	u, c, model := guestSim(t)
	ctx := context.Background()
	simVMFor(t, c, cl.Manager, 2)
	wkVM := guesttest.NewVM(t, ctx, c, guesttest.VMSpec{
		Name: "wk1", Units: guesttest.DockerRunning,
		Dirs:       map[string]string{"/var/lib/docker": wk.DataRoot},
		DockerArgs: []string{"--hostname", "wk1"},
	})
	clone := cl.Clone(t, wk, "wk1-clone", true)
	if clone.NodeID != wk.NodeID {
		t.Fatalf("clone node ID %s, worker %s", clone.NodeID, wk.NodeID)
	}
	const pidDir = "/run/clone-engine"
	cloneVM := guesttest.NewVM(t, ctx, c, guesttest.VMSpec{
		Name: "wk1-clone", Units: guesttest.DockerRunning,
		Dirs: map[string]string{"/var/lib/docker": clone.DataRoot, pidDir: filepath.Dir(clone.PIDFile)},
		Files: map[string]string{"/usr/local/bin/systemctl": `#!/bin/sh
# the clone engine is docker.service of this VM
case " $* " in
*" disable "*"--now"*|*" stop "*) kill $(cat ` + pidDir + "/" + filepath.Base(clone.PIDFile) + `) ;;
esac
exec /usr/bin/systemctl "$@"
`},
		Modes:      map[string]int64{"/usr/local/bin/systemctl": 0o755},
		DockerArgs: []string{"--hostname", "wk1-clone", "--pid=host"},
	})
	guesttest.RequireGuestPassword(model, guestPass)
	login := "root:" + guestPass
	env := []string{"GOVC_URL=" + u.String(), "GOVC_INSECURE=1", "DOCKER_HOST=" + cl.Manager.Host, "XDG_STATE_HOME=" + t.TempDir()}

	// audit -verify proves it from inside: both guests hold the real
	// certificate of the same node.
	r := runBin(t, env, "audit", "-verify", "-json", "-observe", "10s", "-lookback", "5m", "-l", login)
	if r.code != ExitFindings {
		t.Fatalf("audit -verify: exit %d: %s", r.code, r.stderr)
	}
	res := decode(t, r)
	shared := findingsOf(res, reconcile.KindSharedNodeID)
	if len(shared) != 1 || !shared[0].Confirmed || shared[0].NodeID != wk.NodeID || shared[0].Original != "wk1" ||
		!slices.Equal(shared[0].VMs, []string{"wk1", "wk1-clone"}) {
		t.Fatalf("audit -verify shared-node-id: %+v", shared)
	}
	for _, v := range res.VMs {
		if v.Name != "wk1" && v.Name != "wk1-clone" {
			continue
		}
		if v.Guest == nil || v.Guest.Error != "" || v.Guest.NodeID != wk.NodeID || v.Guest.Role != "swarm-worker" || v.Guest.DockerActive != "yes" {
			t.Errorf("probe of %s: %+v", v.Name, v.Guest)
		}
	}
	if strings.Contains(r.stdout+r.stderr, guestPass) {
		t.Errorf("audit output contains the guest password")
	}

	start := time.Now()
	r = runBin(t, env, "remediate", "-json", "-observe", "10s", "-lookback", "5m", "-max-percent", "100", "-l", login)
	t.Logf("remediate (plan): exit %d in %s", r.code, time.Since(start).Round(time.Millisecond))
	if r.code != 0 {
		t.Fatalf("plan: exit %d: %s", r.code, r.stderr)
	}
	p := decodeRemediation(t, r).Plan
	if len(p.Entries) != 1 || p.Entries[0].VM.Name != "wk1-clone" || p.Entries[0].Original != "wk1" || p.Entries[0].NodeID != wk.NodeID ||
		!strings.Contains(p.Entries[0].Reason, "confirmed in the guest") {
		t.Fatalf("plan: %+v", p)
	}

	start = time.Now()
	r = runBin(t, env, "remediate", "-json", "-apply", "-observe", "5s", "-lookback", "5m", "-max-percent", "100", "-l", login)
	t.Logf("remediate -apply: exit %d in %s", r.code, time.Since(start).Round(time.Millisecond))
	if r.code != 0 {
		t.Fatalf("apply: exit %d: %s\n%s", r.code, r.stderr, r.stdout)
	}
	rep := decodeRemediation(t, r)
	if !rep.Applied || len(rep.Outcomes) != 1 || rep.Outcomes[0].Status != remediate.StatusDone || rep.Outcomes[0].Entry.VM.Name != "wk1-clone" {
		t.Fatalf("outcomes: %+v", rep.Outcomes)
	}
	t.Logf("outcome: %s", rep.Outcomes[0].Detail)
	if calls := guesttest.SystemctlCalls(t, cloneVM); !slices.Contains(calls, "disable --now docker.service docker.socket") {
		t.Errorf("clone systemctl calls: %q", calls)
	}
	deadline := time.Now().Add(30 * time.Second)
	for clone.Running() && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if clone.Running() {
		t.Fatalf("the clone engine still runs after disable --now")
	}

	// The original gets its node back, and keeps it.
	cli := cl.Manager.Client()
	deadline = time.Now().Add(60 * time.Second)
	for {
		n, _, err := cli.NodeInspectWithRaw(ctx, wk.NodeID)
		if err == nil && n.Description.Hostname == "wk1" && n.Status.State == "ready" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not back to wk1/ready: %+v %v", wk.NodeID, n.Description.Hostname, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	start = time.Now()
	obs, err := swarm.Observe(ctx, cli, swarm.ObserveOptions{Lookback: -1, Window: 30 * time.Second, Interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("observed %d samples, %d events in %s", obs.Samples, obs.Events, time.Since(start).Round(time.Second))
	for _, n := range obs.Nodes {
		if n.ID != wk.NodeID {
			continue
		}
		var hosts []string
		for _, d := range n.Descriptions {
			hosts = append(hosts, d.Hostname)
		}
		if n.Flips() != 0 || !slices.Equal(hosts, []string{"wk1"}) || n.State != "ready" {
			t.Errorf("node %s after remediation: flips %d, identities %v, state %s", n.ID, n.Flips(), hosts, n.State)
		}
	}
	if !wk.Running() {
		t.Error("the original's engine stopped")
	}
	guesttest.AssertOnlyQueries(t, wkVM, "wk1")
}
