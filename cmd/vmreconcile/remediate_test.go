package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vapi/rest"
	_ "github.com/vmware/govmomi/vapi/simulator" // vcsim's vAPI (tags) endpoints
	"github.com/vmware/govmomi/vapi/tags"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/audit"
	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/daemon"
	"github.com/vmreconcile/vmreconcile/guest"
	"github.com/vmreconcile/vmreconcile/guest/guesttest"
	"github.com/vmreconcile/vmreconcile/internal/dockersim"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/remediate"
	"github.com/vmreconcile/vmreconcile/store"
	"github.com/vmreconcile/vmreconcile/vsphere"
)

const (
	guestPass = "Gu3st-Sw0rdf1sh"
	simNodeID = "x1kq7bq9vbyt0sbxbivvv1i5o"
)

// guestSim starts a vcsim (VPX model, its default VMs included) for
// container-backed VMs and returns its URL (with credentials), a client and
// the model.
func guestSim(t *testing.T) (*url.URL, *vim25.Client, *simulator.Model) {
	t.Helper()
	m := simulator.VPX()
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	m.Service.RegisterEndpoints = true // vAPI (tags)
	s := m.Service.NewServer()
	t.Cleanup(func() { s.Close(); m.Remove() })
	c, err := govmomi.NewClient(context.Background(), s.URL, true)
	if err != nil {
		t.Fatal(err)
	}
	return s.URL, c.Client, m
}

// requireGuestVMs starts guesttest's private dockerd for the whole test:
// this package's TestMain is not guesttest.Main, and without it guesttest
// would stop the daemon when the first subtest that used it ends.
func requireGuestVMs(t *testing.T) {
	t.Helper()
	if err := guesttest.Setup(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true, so this is a failure, not a skip)", err)
		}
		t.Skipf("skipping: %v (set CI=true to make this a failure)", err)
	}
	t.Cleanup(func() {
		if err := guesttest.Shutdown(); err != nil {
			t.Errorf("stopping guesttest dockerd: %v", err)
		}
	})
}

func decodeRemediation(t *testing.T, r result) remediateReport {
	t.Helper()
	var rep remediateReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("stdout is not the remediate JSON: %v\nstdout: %s\nstderr: %s", err, r.stdout, r.stderr)
	}
	return rep
}

func backupDirs(root string) []string {
	m, _ := filepath.Glob(filepath.Join(root, "vmreconcile-backup-*"))
	return m
}

// TestRemediateGuestOps runs the built binary against vcsim with two
// container-backed VMs holding the same swarm-node.crt (a worker and its
// clone) and a simulated manager that saw the node ID flip between them.
func TestRemediateGuestOps(t *testing.T) {
	requireGuestVMs(t)
	u, c, model := guestSim(t)
	ctx := context.Background()
	cert := guesttest.NodeCert(t, simNodeID, "swarm-worker", "cluster1", time.Now().Add(30*24*time.Hour))
	wkRoot, clRoot := guesttest.DockerRoot(t, cert, "0b1f6c1e-3c1a-4f5e-9a55-0e3b0e8d1c22"), guesttest.DockerRoot(t, cert, "0b1f6c1e-3c1a-4f5e-9a55-0e3b0e8d1c22")
	wk := guesttest.NewVM(t, ctx, c, guesttest.VMSpec{Name: "worker-1", Dirs: map[string]string{"/var/lib/docker": wkRoot},
		Units: guesttest.DockerRunning, DockerArgs: []string{"--hostname", "worker-1"}})
	time.Sleep(1100 * time.Millisecond) // the original is the VM created first
	cl := guesttest.NewVM(t, ctx, c, guesttest.VMSpec{Name: "worker-1-clone", Dirs: map[string]string{"/var/lib/docker": clRoot},
		Units: guesttest.DockerRunning, DockerArgs: []string{"--hostname", "worker-1-clone"}})
	guesttest.RequireGuestPassword(model, guestPass)
	clRef := cl.Reference().Value

	mgr := dockersim.New(dockersim.Options{})
	if _, err := mgr.AddNode(dockersim.NodeSpec{ID: simNodeID, Hostname: "worker-1"}); err != nil {
		t.Fatal(err)
	}
	if err := mgr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Close)
	// The clone registered as the node once, then the worker again.
	_ = mgr.SetDescription(simNodeID, dockersim.Identity{Hostname: "worker-1-clone", NanoCPUs: 1e9})
	_ = mgr.SetDescription(simNodeID, dockersim.Identity{Hostname: "worker-1", NanoCPUs: 2e9})

	state := t.TempDir()
	env := []string{"GOVC_URL=" + u.String(), "GOVC_INSECURE=1", "DOCKER_HOST=" + mgr.Host(), "XDG_STATE_HOME=" + state}
	storePath := filepath.Join(state, "vmreconcile", "state.db")
	login := "root:" + guestPass
	base := []string{"remediate", "-lookback", "10m", "-max-percent", "100"}
	args := func(extra ...string) []string { return append(append([]string(nil), base...), extra...) }
	timed := func(t *testing.T, env []string, a ...string) result {
		t.Helper()
		start := time.Now()
		r := runBin(t, env, a...)
		t.Logf("%s: exit %d in %s", strings.Join(a, " "), r.code, time.Since(start).Round(time.Millisecond))
		return r
	}

	t.Run("plan", func(t *testing.T) {
		r := timed(t, env, args("-l", login, "-json")...)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		rep := decodeRemediation(t, r)
		p := rep.Plan
		if rep.Applied || len(p.Entries) != 1 || p.Entries[0].VM.Name != "worker-1-clone" || p.Entries[0].Original != "worker-1" ||
			!strings.Contains(p.Entries[0].Reason, "confirmed in the guest") {
			t.Fatalf("plan: %+v", p)
		}
		r = timed(t, env, args("-l", login)...)
		t.Logf("plan table:\n%s", r.stdout)
		for _, want := range []string{"PLAN plan-", "worker-1-clone (/DC0/vm/worker-1-clone, " + clRef + ")", "disable-docker", "shared-node-id", "Dry run: nothing was changed"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("table lacks %q:\n%s", want, r.stdout)
			}
		}
		if strings.Contains(r.stdout+r.stderr, guestPass) {
			t.Error("output shows the guest password")
		}
		guesttest.AssertOnlyQueries(t, cl, "worker-1-clone (dry run)")
	})

	t.Run("caps", func(t *testing.T) {
		r := timed(t, env, "remediate", "-lookback", "10m", "-l", login) // default -max-percent 10 of 6 VMs
		if r.code != ExitFindings || !strings.Contains(r.stderr, "REFUSED, NOTHING DONE") || !strings.Contains(r.stderr, "worker-1-clone") ||
			!strings.Contains(r.stdout, "REFUSED BY THE CAPS") {
			t.Errorf("max-percent: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
		}
		r = timed(t, env, args("-l", login, "-apply", "-vm", "worker-1*", "-vm", "DC0_H0_VM0")...)
		t.Logf("caps:\n%s%s", r.stdout, r.stderr)
		if r.code != ExitFindings || !strings.Contains(r.stderr, "2 VMs qualify but -max-actions allows 1") {
			t.Errorf("max-actions: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
		}
		// The original was refused even though the glob names it.
		if !strings.Contains(r.stdout, "worker-1 (/DC0/vm/worker-1, "+wk.Reference().Value+"): original of the shared-node-id finding") {
			t.Errorf("original not refused:\n%s", r.stdout)
		}
		guesttest.AssertOnlyQueries(t, cl, "worker-1-clone (caps)")
	})

	t.Run("skip marker", func(t *testing.T) {
		m := object.NewCustomFieldsManager(c)
		def, err := m.Add(ctx, remediate.SkipMarker, "VirtualMachine", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Set(ctx, cl.Reference(), def.Key, "CHG-77"); err != nil {
			t.Fatal(err)
		}
		r := timed(t, env, args("-l", login, "-apply")...)
		if r.code != 0 || !strings.Contains(r.stdout, "skip marker: custom attribute vmreconcile.skip = \"CHG-77\"") || !strings.Contains(r.stdout, "Nothing to do") {
			t.Errorf("exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
		}
		guesttest.AssertOnlyQueries(t, cl, "worker-1-clone (skip marker)")

		// A plan saved before the marker was set is stale afterwards.
		if err := m.Set(ctx, cl.Reference(), def.Key, ""); err != nil {
			t.Fatal(err)
		}
		planFile := filepath.Join(t.TempDir(), "plan.json")
		if r := timed(t, env, args("-l", login, "-out", planFile)...); r.code != 0 {
			t.Fatalf("-out: exit %d: %s", r.code, r.stderr)
		}
		if err := m.Set(ctx, cl.Reference(), def.Key, "CHG-78"); err != nil {
			t.Fatal(err)
		}
		r = timed(t, env, "remediate", "-lookback", "10m", "-l", login, "-apply", planFile)
		msg := strings.TrimSpace(r.stderr)
		if r.code != ExitUsage || !strings.Contains(msg, "is stale") || !strings.Contains(msg, clRef+" disable-docker\" would no longer be planned") || strings.Count(msg, "\n") != 0 {
			t.Errorf("stale plan: exit %d: %q", r.code, msg)
		}
		t.Logf("stale: %s", msg)
		if err := m.Set(ctx, cl.Reference(), def.Key, ""); err != nil {
			t.Fatal(err)
		}
		guesttest.AssertOnlyQueries(t, cl, "worker-1-clone (stale plan)")

		// The vSphere tag works the same.
		rc := rest.NewClient(c)
		if err := rc.Login(ctx, u.User); err != nil {
			t.Fatal(err)
		}
		tm := tags.NewManager(rc)
		cat, err := tm.CreateCategory(ctx, &tags.Category{Name: "ops", Cardinality: "MULTIPLE", AssociableTypes: []string{"VirtualMachine"}})
		if err != nil {
			t.Fatal(err)
		}
		tag, err := tm.CreateTag(ctx, &tags.Tag{Name: remediate.SkipMarker, CategoryID: cat})
		if err != nil {
			t.Fatal(err)
		}
		if err := tm.AttachTag(ctx, tag, cl.Reference()); err != nil {
			t.Fatal(err)
		}
		r = timed(t, env, args("-l", login, "-apply")...)
		if r.code != 0 || !strings.Contains(r.stdout, "skip marker: vSphere tag vmreconcile.skip") || r.stderr != "" {
			t.Errorf("tag: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
		}
		if err := tm.DetachTag(ctx, tag, cl.Reference()); err != nil {
			t.Fatal(err)
		}
		guesttest.AssertOnlyQueries(t, cl, "worker-1-clone (skip tag)")
	})

	t.Run("wrong password", func(t *testing.T) {
		r := timed(t, env, args("-l", "root:Wr0ng-Passw0rd", "-apply")...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != ExitRuntime || len(lines) != 2 || !strings.Contains(lines[0], "worker-1-clone ("+clRef+"): invalid guest login") ||
			!strings.Contains(lines[1], "nothing was done") {
			t.Errorf("exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, "Wr0ng-Passw0rd") {
			t.Error("output shows the password")
		}
		guesttest.AssertOnlyQueries(t, cl, "worker-1-clone (wrong password)")
		if _, err := os.Stat(storePath); err == nil {
			st, _ := store.Open(storePath, store.Options{ReadOnly: true})
			if u, _ := st.Unfinished(ctx); len(u) != 0 {
				t.Errorf("journal has intents: %+v", u)
			}
			st.Close()
		}
	})

	planFile := filepath.Join(t.TempDir(), "plan.json")
	t.Run("apply saved plan", func(t *testing.T) {
		if r := timed(t, env, args("-l", login, "-out", planFile)...); r.code != 0 {
			t.Fatalf("-out: exit %d: %s", r.code, r.stderr)
		}
		r := timed(t, env, "remediate", "-lookback", "10m", "-l", login, "-apply", planFile)
		if r.code != 0 || !strings.Contains(r.stdout, "APPLIED plan-") || !strings.Contains(r.stdout, "worker-1-clone ("+clRef+") disable-docker: done: systemctl disable --now docker.service docker.socket") {
			t.Fatalf("exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
		}
		calls := guesttest.SystemctlCalls(t, cl)
		if guesttest.CountCalls(calls, "disable --now docker.service docker.socket") != 1 {
			t.Errorf("clone: %q", calls)
		}
		guesttest.AssertOnlyQueries(t, wk, "worker-1")
		// Again: the journal says it was done; nothing is redone.
		r = timed(t, env, "remediate", "-lookback", "10m", "-l", login, "-apply", planFile)
		if r.code != 0 || !strings.Contains(r.stdout, "already-done: done by an earlier apply of this plan") {
			t.Errorf("rerun: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
		}
		if n := guesttest.CountCalls(guesttest.SystemctlCalls(t, cl), "disable"); n != 1 {
			t.Errorf("%d disables", n)
		}
		// A fresh plan knows it is done (guest probe: disabled and inactive).
		r = timed(t, env, args("-l", login, "-apply")...)
		if r.code != 0 || !strings.Contains(r.stdout, "Already done") || !strings.Contains(r.stdout, "Nothing to do") {
			t.Errorf("fresh plan after apply: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("killed mid-action", func(t *testing.T) {
		// Docker back on in the clone; its systemctl hangs after disabling,
		// so the binary can be killed between journal intent and outcome.
		guesttest.WriteFiles(t, cl, map[string]guesttest.File{
			guesttest.SystemctlStateDir + "/docker.service.enabled": {Content: "enabled\n"},
			guesttest.SystemctlStateDir + "/docker.service.active":  {Content: "active\n"},
			guesttest.SystemctlStateDir + "/docker.socket.enabled":  {Content: "enabled\n"},
			guesttest.SystemctlStateDir + "/docker.socket.active":   {Content: "active\n"},
			"/usr/local/bin/systemctl":                              {Content: "#!/bin/sh\n/usr/bin/systemctl \"$@\"; rc=$?\ncase \"$1\" in disable) sleep 301 ;; esac\nexit $rc\n", Mode: 0o755},
		})
		cmd := exec.Command(binPath, args("-l", login, "-apply", "-forget-identity")...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for guesttest.CountCalls(guesttest.SystemctlCalls(t, cl), "disable") < 2 {
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("never reached disable: %s %s", so.String(), se.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		// The guest side dies with it (as if the VM had been reset).
		guesttest.Exec(t, cl, "pkill -9 -f remediate=vmreconcile; pkill -9 -f 'sleep 301'; rm /usr/local/bin/systemctl; true")
		st, err := store.Open(storePath, store.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		u, _ := st.Unfinished(ctx)
		st.Close()
		if len(u) != 1 || u[0].VMRef != clRef {
			t.Fatalf("unfinished after kill: %+v", u)
		}
		if _, err := os.Stat(filepath.Join(clRoot, "swarm")); err != nil {
			t.Fatalf("identity moved before the kill?! %v", err)
		}

		r := timed(t, env, args("-l", login, "-apply", "-forget-identity")...)
		want := "completes interrupted intent #" + itoa(u[0].ID)
		if r.code != 0 || !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "Docker already disabled and inactive") || !strings.Contains(r.stdout, "moved swarm, engine-id") {
			t.Fatalf("rerun: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
		}
		if n := guesttest.CountCalls(guesttest.SystemctlCalls(t, cl), "disable"); n != 2 {
			t.Errorf("%d disable calls in all, want 2 (apply + killed run; the rerun must not disable again)", n)
		}
		if b := backupDirs(clRoot); len(b) != 1 {
			t.Errorf("backups %v", b)
		}
		if _, err := os.Stat(filepath.Join(clRoot, "swarm")); !os.IsNotExist(err) {
			t.Errorf("swarm state not moved: %v", err)
		}
		st, _ = store.Open(storePath, store.Options{ReadOnly: true})
		u, _ = st.Unfinished(ctx)
		st.Close()
		if len(u) != 0 {
			t.Errorf("unfinished after rerun: %+v", u)
		}
		guesttest.AssertOnlyQueries(t, wk, "worker-1")
		if _, err := os.Stat(filepath.Join(wkRoot, "swarm", "certificates", "swarm-node.crt")); err != nil || len(backupDirs(wkRoot)) != 0 {
			t.Errorf("the original's identity was touched: %v", err)
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestDaemonRemediator drives the daemon's remediation hook directly: dry
// run, apply, the idempotent rerun and the caps, with real guest operations.
func TestDaemonRemediator(t *testing.T) {
	requireGuestVMs(t)
	u, c, model := guestSim(t)
	ctx := context.Background()
	cert := guesttest.NodeCert(t, simNodeID, "swarm-worker", "cluster1", time.Now().Add(30*24*time.Hour))
	wkRoot, clRoot := guesttest.DockerRoot(t, cert, "0b1f6c1e-3c1a-4f5e-9a55-0e3b0e8d1c22"), guesttest.DockerRoot(t, cert, "0b1f6c1e-3c1a-4f5e-9a55-0e3b0e8d1c22")
	wk := guesttest.NewVM(t, ctx, c, guesttest.VMSpec{Name: "worker-1", Dirs: map[string]string{"/var/lib/docker": wkRoot}, Units: guesttest.DockerRunning})
	time.Sleep(1100 * time.Millisecond)
	cl := guesttest.NewVM(t, ctx, c, guesttest.VMSpec{Name: "worker-1-clone", Dirs: map[string]string{"/var/lib/docker": clRoot}, Units: guesttest.DockerRunning})
	guesttest.RequireGuestPassword(model, guestPass)

	pass, _ := u.User.Password()
	cfg := config.Default()
	cfg.VCenters = []config.VCenter{{URL: u.String(), Username: u.User.Username(), Password: config.Secret(pass), Insecure: true}}
	cfg.Guest.Login = config.Secret("root:" + guestPass)
	cfg.Policy.Remediate, cfg.Policy.MaxPercent = "on", 100
	cfg.Store.Path = filepath.Join(t.TempDir(), "state.db")

	// What the daemon's audit hands over: inventory plus guest probes.
	snapshot := func() (reconcile.Snapshot, reconcile.Result) {
		vms, err := vsphere.Inventory(ctx, c, c.ServiceContent.RootFolder, vsphere.InventoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var probe []reconcile.VM
		for i := range vms {
			vms[i].VCenter = u.Hostname()
			if vms[i].Name == "worker-1" || vms[i].Name == "worker-1-clone" {
				probe = append(probe, vms[i])
			}
		}
		snap := reconcile.Snapshot{CollectedAt: time.Now().UTC(), VCenters: []string{u.Hostname()}, VMs: vms}
		snap.Guests = guest.ProbeAll(ctx, c, probe, func(reconcile.VM) types.BaseGuestAuthentication {
			return &types.NamePasswordAuthentication{Username: "root", Password: guestPass}
		}, 2, time.Minute)
		return snap, reconcile.Reconcile(snap, reconcile.History{})
	}
	st, err := store.Open(cfg.Store.Path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src := audit.NewSources(cfg)
	defer src.Close()
	if _, err := src.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	logins, err := guest.NewLogins(cfg.Guest, "guest.login")
	if err != nil {
		t.Fatal(err)
	}
	r, err := daemon.NewRunner(cfg, src, logins, st)
	if err != nil {
		t.Fatal(err)
	}
	snap, res := snapshot()
	plan, _, err := r.Plan(ctx, snap, res)
	if err != nil || len(plan.Entries) != 1 || plan.Entries[0].VM.Ref != cl.Reference().Value || plan.Entries[0].Action != "disable-docker" {
		t.Fatalf("dry run: %+v %v", plan.Entries, err)
	}
	guesttest.AssertOnlyQueries(t, cl, "worker-1-clone (dry run)")
	outs, err := r.Apply(ctx, plan)
	if err != nil || len(outs) != 1 || !strings.Contains(outs[0].Detail, "systemctl disable --now docker.service docker.socket") {
		t.Fatalf("apply: %+v %v", outs, err)
	}
	guesttest.AssertOnlyQueries(t, wk, "worker-1")
	// The next audit: the guest probe shows Docker off, nothing to do.
	snap, res = snapshot()
	if plan, _, err = r.Plan(ctx, snap, res); err != nil || len(plan.Entries) != 0 {
		t.Errorf("rerun: %+v %v", plan.Entries, err)
	}
	if n := guesttest.CountCalls(guesttest.SystemctlCalls(t, cl), "disable"); n != 1 {
		t.Errorf("%d disables", n)
	}
	// Caps: refused, nothing done.
	guesttest.WriteFiles(t, cl, map[string]guesttest.File{
		guesttest.SystemctlStateDir + "/docker.service.enabled": {Content: "enabled\n"},
		guesttest.SystemctlStateDir + "/docker.service.active":  {Content: "active\n"},
	})
	cfg.Policy.MaxPercent = 1
	r, _ = daemon.NewRunner(cfg, src, logins, st)
	snap, res = snapshot()
	plan, _, _ = r.Plan(ctx, snap, res)
	var refused *remediate.Refused
	if _, err := r.Apply(ctx, plan); !errors.As(err, &refused) || !strings.Contains(err.Error(), "worker-1-clone") {
		t.Errorf("caps: %v", err)
	}
	if n := guesttest.CountCalls(guesttest.SystemctlCalls(t, cl), "disable"); n != 1 {
		t.Errorf("%d disables after a refused run", n)
	}
	// No guest login with disable-docker on: a config error.
	cfg.Guest.Login = ""
	if _, err := daemon.NewRunner(cfg, src, &guest.Logins{}, st); err == nil || !strings.Contains(err.Error(), "guest.login") {
		t.Errorf("no login: %v", err)
	}
}
