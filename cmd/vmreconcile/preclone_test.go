package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/object"

	"github.com/vmreconcile/vmreconcile/guest/guesttest"
	"github.com/vmreconcile/vmreconcile/internal/dockersim"
	"github.com/vmreconcile/vmreconcile/internal/vcsim"
	"github.com/vmreconcile/vmreconcile/preclone"
	"github.com/vmreconcile/vmreconcile/store"
)

// swarmDir writes a /var/lib/docker with swarm state and engine-id.
func swarmDir(t *testing.T, cert, engineID string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "swarm", "certificates", "swarm-node.crt")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	for f, c := range map[string]string{p: cert, filepath.Join(dir, "swarm", "state.json"): "[]", filepath.Join(dir, "engine-id"): engineID + "\n"} {
		if err := os.WriteFile(f, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// cloudInitStub stands in for cloud-init: "clean" removes the instance state.
const cloudInitStub = "#!/bin/sh\necho \"cloud-init $*\" >> /var/log/cloud-init-stub.log\n" +
	"[ \"$1\" = clean ] && rm -rf /var/lib/cloud/instance /var/lib/cloud/instances /var/lib/cloud/data\nexit 0\n"

// dirtyFiles are what an un-generalized node carries besides swarm state.
func dirtyFiles() map[string]string {
	return map[string]string{
		"/etc/machine-id":                   "4c4c4544004d3510804cb4c04f395a32\n",
		"/etc/ssh/ssh_host_ed25519_key":     "PRIVATE",
		"/etc/ssh/ssh_host_ed25519_key.pub": "ssh-ed25519 AAAA",
		"/var/lib/cloud/data/instance-id":   "iid-wk-01\n",
		"/usr/bin/cloud-init":               cloudInitStub,
	}
}

func decodePreclone(t *testing.T, r result) preclone.Output {
	t.Helper()
	var o preclone.Output
	if err := json.Unmarshal([]byte(r.stdout), &o); err != nil {
		t.Fatalf("stdout is not preclone JSON: %v\nstdout: %s\nstderr: %s", err, r.stdout, r.stderr)
	}
	return o
}

func checkOf(t *testing.T, r preclone.Report, id string) preclone.Check {
	t.Helper()
	for _, c := range r.Checks {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("%s: no check %s", r.Name, id)
	return preclone.Check{}
}

func wide(t *testing.T, s string) {
	t.Helper()
	for i, line := range strings.Split(s, "\n") {
		if n := len([]rune(line)); n > 100 {
			t.Errorf("line %d is %d columns (> 100): %q", i+1, n, line)
		}
	}
}

// TestPreclone runs the built binary against vcsim VMs backed by containers
// (guesttest) and a dockersim swarm manager. One test, so that one private
// dockerd serves every VM (main_test.go's TestMain owns the process).
func TestPreclone(t *testing.T) {
	const (
		cluster  = "8wyt2yqbzkmffykfddmqxs0gf"
		workerID = "x1kq7bq9vbyt0sbxbivvv1i5o"
		mgrID    = "m9ab3cd4ef5gh6ij7kl8mn9op"
		offID    = "q0rs1tu2vw3xy4za5bc6de7fg"
		engineID = "0b1f6c1e-3c1a-4f5e-9a55-0e3b0e8d1c22"
	)
	start := time.Now()
	ctx, c, _ := guesttest.Simulator(t)
	workerCert := guesttest.NodeCert(t, workerID, "swarm-worker", cluster, time.Now().Add(80*24*time.Hour))

	mgr := dockersim.New(dockersim.Options{ClusterID: cluster})
	for _, n := range []dockersim.NodeSpec{{ID: workerID, Hostname: "wk-01"}, {ID: mgrID, Hostname: "mgr-01", Role: "manager"}, {ID: offID, Hostname: "wk-off"}} {
		if _, err := mgr.AddNode(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := mgr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Close)

	workerDir := swarmDir(t, workerCert, engineID)
	copyDir := swarmDir(t, workerCert, engineID) // the clone's disk: same contents, own copy
	disabled := map[string]guesttest.Unit{
		"docker.service": {Enabled: "disabled", Active: "inactive"},
		"docker.socket":  {Enabled: "disabled", Active: "inactive"},
	}
	// clean-01, then wk-01, then its copy (vCenter's createDate has
	// one-second resolution): preclone refuses a "copy" older than its source.
	vms := guesttest.NewVMs(t, ctx, c,
		guesttest.VMSpec{Name: "clean-01", Files: map[string]string{"/etc/machine-id": ""}, Units: disabled})
	time.Sleep(1100 * time.Millisecond)
	vms = append(vms, guesttest.NewVMs(t, ctx, c,
		guesttest.VMSpec{Name: "wk-01", DockerArgs: []string{"--hostname=wk-01"}, Files: dirtyFiles(),
			Modes: map[string]int64{"/usr/bin/cloud-init": 0o755},
			Dirs:  map[string]string{"/var/lib/docker": workerDir}, Units: guesttest.DockerRunning})...)
	time.Sleep(1100 * time.Millisecond)
	vms = append(vms, guesttest.NewVMs(t, ctx, c,
		guesttest.VMSpec{Name: "wk-01-copy", DockerArgs: []string{"--hostname=wk-01"}, Files: dirtyFiles(),
			Modes: map[string]int64{"/usr/bin/cloud-init": 0o755},
			Dirs:  map[string]string{"/var/lib/docker": copyDir}, Units: guesttest.DockerRunning},
		guesttest.VMSpec{Name: "mgr-01", DockerArgs: []string{"--hostname=mgr-01"}, Units: guesttest.DockerRunning,
			Dirs: map[string]string{"/var/lib/docker": swarmDir(t, guesttest.NodeCert(t, mgrID, "swarm-manager", cluster, time.Now().Add(80*24*time.Hour)), "e-mgr")}},
		guesttest.VMSpec{Name: "wk-off", DockerArgs: []string{"--hostname=wk-off"}, Units: guesttest.DockerRunning,
			Dirs: map[string]string{"/var/lib/docker": swarmDir(t, guesttest.NodeCert(t, offID, "swarm-worker", cluster, time.Now().Add(80*24*time.Hour)), "e-off")}},
		guesttest.VMSpec{Name: "never-probed", PoweredOff: true},
		guesttest.VMSpec{Name: "tmpl-01", Files: map[string]string{"/etc/machine-id": ""}, Units: disabled},
	)...)
	byName := map[string]*object.VirtualMachine{}
	for _, vm := range vms {
		n, _ := vm.ObjectName(ctx)
		byName[n] = vm
	}
	t.Logf("setup (dockerd, 7 VMs): %s", time.Since(start).Round(time.Millisecond))

	u := *c.URL()
	u.User = url.UserPassword("administrator@vsphere.local", "Sim-Pass-1")
	dbPath := filepath.Join(t.TempDir(), "state.db")
	env := []string{"GOVC_URL=" + u.String(), "GOVC_INSECURE=1", "GOVC_GUEST_LOGIN=root:Gu3st-Pass"}
	pre := func(args ...string) result {
		t.Helper()
		t0 := time.Now()
		r := runBin(t, env, append([]string{"preclone", "-store", dbPath, "-H", mgr.Host()}, args...)...)
		t.Logf("preclone %s: exit %d in %s", strings.Join(args, " "), r.code, time.Since(t0).Round(time.Millisecond))
		if f := os.Getenv("VMRECONCILE_TRANSCRIPT"); f != "" && !slices.Contains(args, "-json") { // README material
			if fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				fmt.Fprintf(fh, "$ vmreconcile preclone -H tcp://mgr:2376 %s\n%s%s[exit %d]\n\n", strings.Join(args, " "), r.stdout, r.stderr, r.code)
				fh.Close()
			}
		}
		if strings.Contains(r.stdout+r.stderr, "Gu3st-Pass") || strings.Contains(r.stdout+r.stderr, "Sim-Pass-1") {
			t.Errorf("output leaks a password")
		}
		return r
	}

	t.Run("clean VM is SAFE", func(t *testing.T) {
		r := pre("clean-01")
		if r.code != ExitOK {
			t.Fatalf("exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
		}
		for _, want := range []string{"VM clean-01 (/DC0/vm/clean-01", "SAFE", "guest: probed now", "PASS    swarm-identity", "PASS    swarm-node-now"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("table lacks %q:\n%s", want, r.stdout)
			}
		}
		wide(t, r.stdout)
	})

	t.Run("live worker is UNSAFE and names its node ID", func(t *testing.T) {
		r := pre("-json", "wk-01")
		if r.code != ExitFindings {
			t.Fatalf("exit %d, want 3\n%s%s", r.code, r.stdout, r.stderr)
		}
		o := decodePreclone(t, r)
		if o.Verdict != preclone.Unsafe || len(o.VMs) != 1 || len(o.Swarms) != 1 || o.Swarms[0].ClusterID != cluster {
			t.Fatalf("output: %+v", o)
		}
		vm := o.VMs[0]
		if vm.Guest.Source != preclone.SourceLive || vm.Guest.NodeID != workerID || vm.Guest.Role != "swarm-worker" {
			t.Errorf("guest: %+v", vm.Guest)
		}
		id := checkOf(t, vm, preclone.CheckSwarmIdentity)
		if id.Status != preclone.Fail || !strings.Contains(id.Summary, "every clone will connect as node "+workerID) ||
			!strings.Contains(strings.Join(id.Evidence, "\n"), "state ready") || !strings.Contains(id.Fix, "Never 'docker node rm'") {
			t.Errorf("swarm-identity: %+v", id)
		}
		want := map[string]preclone.Status{
			preclone.CheckManagerRole: preclone.Pass, preclone.CheckSwarmNode: preclone.Fail, preclone.CheckDockerAtBoot: preclone.Fail,
			preclone.CheckEngineID: preclone.Warn, preclone.CheckMachineID: preclone.Warn, preclone.CheckSSHHostKeys: preclone.Warn,
			preclone.CheckCloudInit: preclone.Warn, preclone.CheckKubelet: preclone.Pass, preclone.CheckUUIDAction: preclone.Pass,
		}
		for k, s := range want {
			if got := checkOf(t, vm, k); got.Status != s {
				t.Errorf("%s = %s, want %s: %+v", k, got.Status, s, got)
			}
		}
		var ids []string
		for _, ch := range vm.Checks {
			ids = append(ids, ch.ID)
		}
		if !slices.Equal(ids, preclone.CheckIDs) {
			t.Errorf("checks %v, want %v", ids, preclone.CheckIDs)
		}
	})

	t.Run("manager is UNSAFE with the raft warning", func(t *testing.T) {
		r := pre("mgr-01")
		if r.code != ExitFindings {
			t.Fatalf("exit %d, want 3\n%s%s", r.code, r.stdout, r.stderr)
		}
		for _, want := range []string{"FAIL    manager-role", "a copy must never start", "joins raft with the same node", mgrID, "UNSAFE"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("table lacks %q:\n%s", want, r.stdout)
			}
		}
		wide(t, r.stdout)
	})

	t.Run("powered off: from the stored probe, else UNVERIFIED", func(t *testing.T) {
		if r := pre("wk-off"); r.code != ExitFindings { // probes and stores
			t.Fatalf("first run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		powerOff(t, ctx, byName["wk-off"])
		r := pre("-json", "wk-off", "never-probed")
		if r.code != ExitFindings {
			t.Fatalf("exit %d, want 3 (worst of UNSAFE, UNVERIFIED)\n%s%s", r.code, r.stdout, r.stderr)
		}
		o := decodePreclone(t, r)
		if len(o.VMs) != 2 || o.Verdict != preclone.Unsafe {
			t.Fatalf("%+v", o)
		}
		off, never := o.VMs[0], o.VMs[1]
		if off.Verdict != preclone.Unsafe || off.Guest.Source != preclone.SourceStored || off.Guest.NodeID != offID ||
			checkOf(t, off, preclone.CheckSwarmIdentity).Status != preclone.Fail {
			t.Errorf("wk-off: %+v", off)
		}
		if !strings.Contains(strings.Join(checkOf(t, off, preclone.CheckSwarmIdentity).Evidence, " "), "from the stored probe of") {
			t.Errorf("wk-off evidence does not say it is from history: %+v", checkOf(t, off, preclone.CheckSwarmIdentity))
		}
		if never.Verdict != preclone.Unverified || never.Guest.Source != preclone.SourceNone ||
			checkOf(t, never, preclone.CheckSwarmIdentity).Status != preclone.Unknown || !strings.Contains(never.Reason, "no guest probe") {
			t.Errorf("never-probed: %+v", never)
		}
		// Alone, the unprobed VM exits 4.
		if r := pre("never-probed"); r.code != ExitUnverified || !strings.Contains(r.stdout, "UNVERIFIED") {
			t.Errorf("never-probed alone: exit %d, want 4\n%s", r.code, r.stdout)
		}
	})

	t.Run("template from its stored probe", func(t *testing.T) {
		if r := pre("tmpl-01"); r.code != ExitOK {
			t.Fatalf("probe while on: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		tm := byName["tmpl-01"]
		powerOff(t, ctx, tm)
		if err := tm.MarkAsTemplate(ctx); err != nil {
			t.Fatal(err)
		}
		r := pre("-json", "tmpl-01")
		o := decodePreclone(t, r)
		if r.code != ExitOK || len(o.VMs) != 1 || !o.VMs[0].Template || o.VMs[0].Verdict != preclone.Safe || o.VMs[0].Guest.Source != preclone.SourceStored {
			t.Errorf("template: exit %d %+v", r.code, o)
		}
	})

	t.Run("unknown VM name", func(t *testing.T) {
		r := pre("no-such-vm")
		if r.code != ExitUsage || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, `"no-such-vm"`) || r.stdout != "" {
			t.Errorf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("generalize the copy", func(t *testing.T) {
		if r := pre("wk-01-copy"); r.code != ExitFindings || !strings.Contains(r.stdout, workerID) {
			t.Fatalf("copy before: exit %d\n%s", r.code, r.stdout)
		}
		// The plan, printed.
		r := pre("-generalize-plan", "wk-01-copy", "wk-01")
		if r.code != ExitOK {
			t.Fatalf("plan: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		for _, want := range []string{"Generalization plan for the COPY wk-01-copy", "never on wk-01", "systemctl disable --now docker.socket docker.service",
			"/var/backups/vmreconcile-generalize-", ": > /etc/machine-id", "rm -f /etc/ssh/ssh_host_*", "cloud-init clean", "-apply"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("plan lacks %q:\n%s", want, r.stdout)
			}
		}
		wide(t, r.stdout)
		// Never on the source itself.
		if r := pre("-generalize-plan", "wk-01", "wk-01"); r.code != ExitUsage || !strings.Contains(r.stderr, "source itself") {
			t.Errorf("target = source: exit %d %s", r.code, r.stderr)
		}
		// Nor on the live member when the source does not share its ID.
		if r := pre("-generalize-plan", "wk-01", "clean-01", "-apply"); r.code != ExitUsage || !strings.Contains(r.stderr, "live member itself") {
			t.Errorf("live member as target: exit %d %s", r.code, r.stderr)
		}

		r = pre("-json", "-generalize-plan", "wk-01-copy", "wk-01", "-apply")
		if r.code != ExitOK {
			t.Fatalf("apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		var po preclone.Generalization
		if err := json.Unmarshal([]byte(r.stdout), &po); err != nil {
			t.Fatalf("%v: %s", err, r.stdout)
		}
		if po.Applied == nil || po.Applied.Status != "done" || po.Recheck == nil || po.Recheck.Verdict != preclone.Safe {
			t.Fatalf("apply output: %s", r.stdout)
		}
		if id := checkOf(t, *po.Recheck, preclone.CheckSwarmIdentity); id.Status != preclone.Pass {
			t.Errorf("copy still has swarm identity: %+v", id)
		}
		cp := byName["wk-01-copy"]
		if m, _ := guesttest.ReadFile(t, cp, "/etc/machine-id"); m != "" {
			t.Errorf("copy machine-id = %q", m)
		}
		if _, ok := guesttest.ReadFile(t, cp, "/etc/machine-id"); !ok {
			t.Errorf("copy machine-id deleted, want truncated")
		}
		if _, err := os.Stat(filepath.Join(copyDir, "swarm")); !os.IsNotExist(err) {
			t.Errorf("copy still has /var/lib/docker/swarm: %v", err)
		}
		backup := guesttest.Exec(t, cp, "ls /var/backups/vmreconcile-generalize-*/")
		if !strings.Contains(backup, "swarm") || !strings.Contains(backup, "engine-id") {
			t.Errorf("backup dir holds %q", backup)
		}
		if calls := guesttest.SystemctlCalls(t, cp); !slices.Contains(calls, "disable --now docker.socket docker.service") {
			t.Errorf("copy systemctl calls: %q", calls)
		}
		// The source is untouched.
		src := byName["wk-01"]
		if _, err := os.Stat(filepath.Join(workerDir, "swarm", "certificates", "swarm-node.crt")); err != nil {
			t.Errorf("source lost its swarm state: %v", err)
		}
		if m, _ := guesttest.ReadFile(t, src, "/etc/machine-id"); m == "" {
			t.Errorf("source machine-id emptied")
		}
		for _, call := range guesttest.SystemctlCalls(t, src) {
			if !strings.HasPrefix(call, "is-") {
				t.Errorf("source got systemctl %q", call)
			}
		}
		// Journaled: intent and outcome.
		st, err := store.Open(dbPath, store.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		es, err := st.JournalEntries(context.Background(), po.Applied.PlanID)
		if err != nil || len(es) != 2 || es[0].Phase != store.PhaseIntent || es[1].Status != "done" || es[0].Action != "generalize" || es[0].VMName != "wk-01-copy" {
			t.Errorf("journal %+v %v", es, err)
		}
		// Idempotent: a second apply changes nothing and still passes.
		if r := pre("-generalize-plan", "wk-01-copy", "wk-01", "-apply"); r.code != ExitOK || !strings.Contains(r.stdout, "Re-check of wk-01-copy") {
			t.Errorf("second apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		// And the re-check from scratch agrees.
		if r := pre("wk-01-copy"); r.code != ExitOK {
			t.Errorf("copy after: exit %d\n%s", r.code, r.stdout)
		}
		if r := pre("wk-01"); r.code != ExitFindings {
			t.Errorf("source after: exit %d", r.code)
		}
	})
	t.Logf("total: %s", time.Since(start).Round(time.Millisecond))
}

func powerOff(t *testing.T, ctx context.Context, vm *object.VirtualMachine) {
	t.Helper()
	task, err := vm.PowerOff(ctx)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestPrecloneConfigVCenter: with no -u or GOVC_URL, preclone finds its VMs
// in the config file's vCenter; a powered-off VM never probed is UNVERIFIED.
func TestPrecloneConfigVCenter(t *testing.T) {
	u, c := startVCSim(t)
	if _, err := vcsim.CreateVM(context.Background(), c, vcsim.VM{Name: "golden-01", NumCPU: 2, MemoryMB: 2048}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pass, _ := u.User.Password()
	cfg := writeCfg(t, dir, "c.yaml", vcenterYAML(u))
	r := runBin(t, nil, "preclone", "-config", cfg, "-store", filepath.Join(dir, "state.db"), "golden-01")
	if r.code != ExitUnverified {
		t.Fatalf("exit %d, want %d (UNVERIFIED): %s\n%s", r.code, ExitUnverified, r.stderr, r.stdout)
	}
	if !strings.Contains(r.stdout, "golden-01") || !strings.Contains(r.stdout, "UNVERIFIED") || strings.Contains(r.stdout+r.stderr, pass) {
		t.Errorf("output:\n%s%s", r.stdout, r.stderr)
	}
	r = runBin(t, nil, "preclone", "-config", cfg, "-store", filepath.Join(dir, "state.db"), "no-such-vm")
	if r.code != ExitUsage || !strings.Contains(r.stderr, `"no-such-vm"`) {
		t.Errorf("unknown VM: exit %d: %s", r.code, r.stderr)
	}
}
