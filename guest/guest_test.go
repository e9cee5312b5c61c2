package guest_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/guest"
	"github.com/vmreconcile/vmreconcile/guest/guesttest"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

func TestMain(m *testing.M) { os.Exit(guesttest.Main(m)) }

const (
	user     = "root"
	password = "Sw0rdf1sh-guest"
)

func login() *types.NamePasswordAuthentication {
	return &types.NamePasswordAuthentication{Username: user, Password: password}
}

func toVM(t *testing.T, ctx context.Context, vm *object.VirtualMachine) reconcile.VM {
	t.Helper()
	name, err := vm.ObjectName(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return reconcile.VM{Name: name, Ref: vm.Reference().Value}
}

func TestProbeClonedNodes(t *testing.T) {
	ctx, c, _ := guesttest.Simulator(t)
	notAfter := time.Now().Add(90 * 24 * time.Hour).UTC().Truncate(time.Second)
	cert := guesttest.NodeCert(t, "x1kq7bq9vbyt0sbxbivvv1i5o", "swarm-worker", "8wyt2yqbzkmffykfddmqxs0gf", notAfter)
	const engineID = "0b1f6c1e-3c1a-4f5e-9a55-0e3b0e8d1c22"
	const machineID = "4c4c4544004d3510804cb4c04f395a32"

	// A live worker and its clone: same disk contents, so the same swarm
	// state, engine ID and machine ID.
	spec := func(name string) guesttest.VMSpec {
		return guesttest.VMSpec{
			Name:  name,
			Dirs:  map[string]string{"/var/lib/docker": guesttest.DockerRoot(t, cert, engineID)},
			Files: map[string]string{"/etc/machine-id": machineID + "\n", "/etc/docker/key.json": "{}\n"},
			Units: guesttest.DockerRunning,
		}
	}
	vmsObj := guesttest.NewVMs(t, ctx, c,
		spec("worker-1"),
		spec("worker-1-clone"),
		// A fresh VM: no swarm state, docker installed but disabled, kubelet creds.
		guesttest.VMSpec{
			Name:  "fresh",
			Dirs:  map[string]string{"/var/lib/docker": guesttest.DockerRoot(t, "", "")},
			Files: map[string]string{"/etc/machine-id": "aaaabbbbccccddddeeeeffff00001111\n", "/var/lib/kubelet/pki/kubelet-client-current.pem": "x"},
			Units: map[string]guesttest.Unit{
				"docker.service": {Enabled: "disabled", Active: "inactive"},
				"docker.socket":  {Enabled: "disabled", Active: "inactive"},
			},
		},
		// No systemctl at all.
		guesttest.VMSpec{Name: "no-systemd"},
	)
	worker, clone, fresh, nosystemd := vmsObj[0], vmsObj[1], vmsObj[2], vmsObj[3]
	guesttest.Exec(t, nosystemd, "rm /usr/bin/systemctl")

	vms := []reconcile.VM{toVM(t, ctx, worker), toVM(t, ctx, clone), toVM(t, ctx, fresh), toVM(t, ctx, nosystemd)}
	start := time.Now()
	ids := guest.ProbeAll(ctx, c, vms, func(reconcile.VM) types.BaseGuestAuthentication { return login() }, 4, time.Minute)
	t.Logf("ProbeAll of %d VMs: %s", len(vms), time.Since(start))

	if len(ids) != len(vms) {
		t.Fatalf("got %d identities for %d VMs", len(ids), len(vms))
	}
	for i, id := range ids {
		if id.VMRef != vms[i].Ref {
			t.Errorf("ids[%d].VMRef = %q, want %q (order must follow input)", i, id.VMRef, vms[i].Ref)
		}
		if id.Error != "" {
			t.Errorf("%s: unexpected error %q", vms[i].Name, id.Error)
		}
		if id.ProbedAt.IsZero() {
			t.Errorf("%s: ProbedAt not set", vms[i].Name)
		}
	}
	for _, id := range ids[:2] {
		want := reconcile.GuestIdentity{
			VMRef: id.VMRef, ProbedAt: id.ProbedAt,
			NodeID: "x1kq7bq9vbyt0sbxbivvv1i5o", Role: "swarm-worker", ClusterID: "8wyt2yqbzkmffykfddmqxs0gf",
			CertNotAfter: notAfter, EngineID: engineID, KeyJSON: true, MachineID: machineID,
			DockerEnabled: "yes", DockerActive: "yes",
			KubeletEnabled: "unknown", KubeletActive: "no", // no kubelet.service
			Hostname: id.Hostname, // the container's host name; asserted in TestProbeHostKeysCloudInit
		}
		if id != want {
			t.Errorf("identity\n got %+v\nwant %+v", id, want)
		}
	}
	if ids[0].NodeID != ids[1].NodeID || !ids[0].CertNotAfter.Equal(ids[1].CertNotAfter) {
		t.Errorf("clone and worker differ: %+v vs %+v", ids[0], ids[1])
	}

	f := ids[2]
	if f.NodeID != "" || f.Role != "" || f.ClusterID != "" || !f.CertNotAfter.IsZero() || f.EngineID != "" || f.KeyJSON {
		t.Errorf("fresh VM has swarm identity: %+v", f)
	}
	if f.MachineID != "aaaabbbbccccddddeeeeffff00001111" || !f.KubeletCreds || f.DockerEnabled != "no" || f.DockerActive != "no" {
		t.Errorf("fresh VM: %+v", f)
	}
	n := ids[3]
	if n.DockerEnabled != "unknown" || n.DockerActive != "unknown" || n.NodeID != "" || n.MachineID != "" {
		t.Errorf("VM without systemctl: %+v", n)
	}

	// The probe asked systemctl and only asked (no state change).
	wantCalls := []string{
		"is-enabled docker.service", "is-active docker.service",
		"is-enabled docker.socket", "is-active docker.socket",
		"is-enabled kubelet.service", "is-active kubelet.service",
	}
	if calls := guesttest.SystemctlCalls(t, worker); !slices.Equal(calls, wantCalls) {
		t.Errorf("systemctl calls in worker:\n got %q\nwant %q", calls, wantCalls)
	}
	// Nothing left behind in the guest's temp dir.
	if left := guesttest.Exec(t, worker, "ls -A /tmp"); strings.TrimSpace(left) != "" {
		t.Errorf("probe left files in /tmp: %q", left)
	}
}

func TestProbeManagerAndDataRoot(t *testing.T) {
	ctx, c, _ := guesttest.Simulator(t)
	cert := guesttest.NodeCert(t, "node1", "swarm-manager", "cluster1", time.Now().Add(time.Hour))
	vm := guesttest.NewVM(t, ctx, c, guesttest.VMSpec{
		Name:  "manager-1",
		Files: map[string]string{"/var/lib/docker/swarm/certificates/swarm-node.crt": cert},
		Modes: map[string]int64{"/var/lib/docker/swarm/certificates/swarm-node.crt": 0o600},
	})
	// Probe as root first: the manager role comes through.
	id := guest.Probe(ctx, c, toVM(t, ctx, vm), login(), guest.ProbeOptions{})
	if id.Error != "" || id.NodeID != "node1" || id.Role != "swarm-manager" {
		t.Fatalf("root probe: %+v", id)
	}
	if !id.CertNotAfter.After(time.Now()) || id.EngineID != "" || id.DockerEnabled != "unknown" {
		t.Errorf("root probe: %+v", id)
	}
	// A data-root moved by daemon.json is followed.
	guesttest.Exec(t, vm, `mkdir -p /srv /etc/docker && mv /var/lib/docker /srv/docker && echo moved > /srv/docker/engine-id &&
printf '{\n  "log-driver": "json-file",\n  "data-root": "/srv/docker"\n}\n' > /etc/docker/daemon.json`)
	id = guest.Probe(ctx, c, toVM(t, ctx, vm), login(), guest.ProbeOptions{})
	if id.Error != "" || id.NodeID != "node1" || id.EngineID != "moved" {
		t.Errorf("probe with data-root /srv/docker: %+v", id)
	}
}

func TestProbeWrongPassword(t *testing.T) {
	ctx, c, model := guesttest.Simulator(t)
	vm := guesttest.NewVM(t, ctx, c, guesttest.VMSpec{Name: "locked"})
	guesttest.RequireGuestPassword(model, password)

	wrong := &types.NamePasswordAuthentication{Username: user, Password: "hunter2-wrong"}
	id := guest.Probe(ctx, c, toVM(t, ctx, vm), wrong, guest.ProbeOptions{})
	if !strings.Contains(id.Error, "invalid guest login") {
		t.Errorf("Error = %q, want it to mention the invalid guest login", id.Error)
	}
	t.Logf("wrong password: Error = %q", id.Error)
	if strings.Contains(id.Error, "hunter2") || id.NodeID != "" {
		t.Errorf("identity leaks password or has data: %+v", id)
	}
	_, _, _, err := guest.Run(ctx, c, vm, wrong, "echo hi")
	if err == nil || !strings.Contains(guest.Describe(err), "invalid guest login") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Run with a wrong password: err = %v", err)
	}
	// The right password works through the same wrapper.
	if id := guest.Probe(ctx, c, toVM(t, ctx, vm), login(), guest.ProbeOptions{}); id.Error != "" {
		t.Errorf("right password: %q", id.Error)
	}
}

func TestProbePoweredOffAndNoTools(t *testing.T) {
	ctx, c, _ := guesttest.Simulator(t)
	off := guesttest.NewVM(t, ctx, c, guesttest.VMSpec{Name: "off", PoweredOff: true})
	id := guest.Probe(ctx, c, toVM(t, ctx, off), login(), guest.ProbeOptions{})
	if id.Error != "VM is powered off" {
		t.Errorf("powered-off VM: Error = %q", id.Error)
	}
	// Run does not pre-check the power state: vSphere's fault says it.
	_, _, _, err := guest.Run(ctx, c, off, login(), "true")
	if err == nil || !strings.Contains(guest.Describe(err), "powered off") {
		t.Errorf("Run on a powered-off VM: %v (%q)", err, guest.Describe(err))
	}

	// A plain vcsim VM (no container): powered on, tools not running.
	plain := plainVM(t, ctx, c)
	id = guest.Probe(ctx, c, reconcile.VM{Ref: plain.Reference().Value}, login(), guest.ProbeOptions{})
	t.Logf("VM without tools: Error = %q", id.Error)
	if !strings.Contains(id.Error, "Tools") {
		t.Errorf("VM without tools: Error = %q", id.Error)
	}
	id = guest.Probe(ctx, c, reconcile.VM{Ref: "vm-does-not-exist"}, login(), guest.ProbeOptions{})
	if id.Error == "" {
		t.Errorf("missing VM: no error")
	}
	t.Logf("missing VM: %q", id.Error)
}

func plainVM(t *testing.T, ctx context.Context, c *vim25.Client) *object.VirtualMachine {
	t.Helper()
	vms, err := find.NewFinder(c).VirtualMachineList(ctx, "/DC0/vm/DC0_H0_VM0")
	if err != nil {
		t.Fatal(err)
	}
	return vms[0]
}

func TestRun(t *testing.T) {
	ctx, c, _ := guesttest.Simulator(t)
	vm := guesttest.NewVM(t, ctx, c, guesttest.VMSpec{Name: "runner"})

	script := `x='it'"'"'s'
y="$((6 * 7))"
printf '%s "%s" $HOME\n' "$x" "$y"
echo 'single $NOT_EXPANDED' "double $y" \
  continued
echo "to stderr" >&2
exit 3`
	start := time.Now()
	code, stdout, stderr, err := guest.Run(ctx, c, vm, login(), script)
	t.Logf("Run: %s", time.Since(start))
	if err != nil {
		t.Fatal(err)
	}
	if code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	if want := "it's \"42\" $HOME\nsingle $NOT_EXPANDED double 42 continued\n"; string(stdout) != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	if string(stderr) != "to stderr\n" {
		t.Errorf("stderr %q", stderr)
	}

	// Side effects happen in the guest, and the temp files are gone.
	code, _, _, err = guest.Run(ctx, c, vm, login(), `systemctl disable --now docker.service && touch /root/"done $((1+1))"`)
	if err != nil || code != 0 {
		t.Fatalf("second run: %d %v", code, err)
	}
	if _, ok := guesttest.ReadFile(t, vm, "/root/done 2"); !ok {
		t.Error("side effect missing in guest")
	}
	if calls := guesttest.SystemctlCalls(t, vm); !slices.Equal(calls, []string{"disable --now docker.service"}) {
		t.Errorf("systemctl calls %q", calls)
	}
	if s, _ := guesttest.ReadFile(t, vm, guesttest.SystemctlStateDir+"/docker.service.enabled"); s != "disabled\n" {
		t.Errorf("stand-in state %q", s)
	}
	if left := guesttest.Exec(t, vm, "ls -A /tmp"); strings.TrimSpace(left) != "" {
		t.Errorf("Run left files in /tmp: %q", left)
	}

	// A syntax error is a failing script, not a Run error.
	code, _, stderr, err = guest.Run(ctx, c, vm, login(), "if then fi")
	if err != nil || code == 0 || len(stderr) == 0 {
		t.Errorf("syntax error: code %d stderr %q err %v", code, stderr, err)
	}

	// A timeout ends the wait and kills the program.
	tctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	_, _, _, err = guest.Run(tctx, c, vm, login(), "sleep 30")
	if guest.Describe(err) != "timed out" {
		t.Errorf("timeout: %v", err)
	}
}

// The fields preclone uses: host name, SSH host keys and cloud-init state.
func TestProbeHostKeysCloudInit(t *testing.T) {
	ctx, c, _ := guesttest.Simulator(t)
	vms := guesttest.NewVMs(t, ctx, c,
		guesttest.VMSpec{
			Name:       "keys-and-ci",
			DockerArgs: []string{"--hostname=wk-keys"},
			Files: map[string]string{
				"/etc/ssh/ssh_host_ed25519_key":     "private",
				"/etc/ssh/ssh_host_ed25519_key.pub": "ssh-ed25519 AAAA",
				"/var/lib/cloud/data/instance-id":   "iid-datasource-vmware-42\n",
			},
		},
		guesttest.VMSpec{
			Name:  "link-only",
			Files: map[string]string{"/var/lib/cloud/instances/i-0abc/boot-finished": "x", "/etc/ssh/ssh_host_rsa_key.pub": "pub only"},
		},
		guesttest.VMSpec{Name: "bare", DockerArgs: []string{"--hostname=bare-01"}},
	)
	guesttest.Exec(t, vms[1], "ln -s /var/lib/cloud/instances/i-0abc /var/lib/cloud/instance")

	ids := make([]reconcile.GuestIdentity, len(vms))
	for i, vm := range vms {
		ids[i] = guest.Probe(ctx, c, toVM(t, ctx, vm), login(), guest.ProbeOptions{})
		if ids[i].Error != "" {
			t.Fatalf("vm %d: %s", i, ids[i].Error)
		}
	}
	if id := ids[0]; id.Hostname != "wk-keys" || !id.SSHHostKeys || id.CloudInitInstance != "iid-datasource-vmware-42" {
		t.Errorf("keys-and-ci: %+v", id)
	}
	// Only a public key is no host key; the instance link names the instance.
	if id := ids[1]; id.SSHHostKeys || id.CloudInitInstance != "i-0abc" || id.Hostname == "" {
		t.Errorf("link-only: %+v", id)
	}
	if id := ids[2]; id.Hostname != "bare-01" || id.SSHHostKeys || id.CloudInitInstance != "" {
		t.Errorf("bare: %+v", id)
	}
}
