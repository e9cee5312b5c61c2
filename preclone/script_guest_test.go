package preclone_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/guest"
	"github.com/vmreconcile/vmreconcile/guest/guesttest"
	"github.com/vmreconcile/vmreconcile/preclone"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

func TestMain(m *testing.M) { os.Exit(guesttest.Main(m)) }

// The generalization script in a guest: it moves the identity (never
// deletes it), can run twice, and stops at the first step that fails
// instead of reporting "generalized" (with set -e, a failing mkdir on the
// left of && did not stop the script: it went on to empty machine-id and
// remove the SSH host keys, then exited 0 with the swarm state in place).
func TestGeneralizeScriptInGuest(t *testing.T) {
	ctx, c, _ := guesttest.Simulator(t)
	cert := guesttest.NodeCert(t, "x1kq7bq9vbyt0sbxbivvv1i5o", "swarm-worker", "c1", time.Now().Add(24*time.Hour))
	files := map[string]string{
		"/var/lib/docker/swarm/certificates/swarm-node.crt": cert,
		"/var/lib/docker/engine-id":                         "e1\n",
		"/etc/machine-id":                                   "0123456789abcdef0123456789abcdef\n",
		"/etc/ssh/ssh_host_ed25519_key":                     "k",
	}
	vms := guesttest.NewVMs(t, ctx, c,
		guesttest.VMSpec{Name: "copy-ok", Files: files, Units: guesttest.DockerRunning},
		guesttest.VMSpec{Name: "copy-broken", Files: files, Units: guesttest.DockerRunning},
	)
	auth := &types.NamePasswordAuthentication{Username: "root", Password: "x"}
	p := preclone.GeneralizePlan(reconcile.VM{Name: "copy", Ref: "vm-2"}, reconcile.VM{Name: "src", Ref: "vm-1"}, time.Now())

	ok := vms[0]
	for i := range 2 {
		code, out, stderr, err := guest.Run(ctx, c, ok, auth, p.Script)
		if err != nil || code != 0 || !strings.Contains(string(out), "generalized") {
			t.Fatalf("run %d: %d %v %s %s", i+1, code, err, out, stderr)
		}
	}
	if got, found := guesttest.ReadFile(t, ok, p.BackupDir+"/swarm/certificates/swarm-node.crt"); !found || got != cert {
		t.Errorf("certificate not in the backup")
	}
	if _, found := guesttest.ReadFile(t, ok, "/var/lib/docker/swarm/certificates/swarm-node.crt"); found {
		t.Errorf("swarm state still in place")
	}
	if got, found := guesttest.ReadFile(t, ok, "/etc/machine-id"); !found || got != "" {
		t.Errorf("machine-id %q %v (want present and empty)", got, found)
	}

	// The backup directory cannot be made (/var/backups is a file).
	bad := vms[1]
	guesttest.Exec(t, bad, "rm -rf /var/backups && echo x > /var/backups")
	code, out, _, err := guest.Run(ctx, c, bad, auth, p.Script)
	if err != nil {
		t.Fatal(err)
	}
	if code == 0 || strings.Contains(string(out), "generalized") {
		t.Errorf("a failed step reported success: exit %d, %s", code, out)
	}
	if got, _ := guesttest.ReadFile(t, bad, "/etc/machine-id"); got == "" {
		t.Errorf("later steps ran after the failed one (machine-id emptied)")
	}
	if _, found := guesttest.ReadFile(t, bad, "/var/lib/docker/swarm/certificates/swarm-node.crt"); !found {
		t.Errorf("swarm state lost")
	}
}

// The generalization script on a copy of a kubeadm node: kubelet is
// disabled and its credentials moved into the backup (never deleted); a
// second run does nothing twice; a kubelet that no unit runs stops the
// script before its credentials are moved.
func TestGeneralizeKubeletInGuest(t *testing.T) {
	ctx, c, _ := guesttest.Simulator(t)
	files, modes, keyPEM := guesttest.KubeletFiles(t, "kwk-1", "https://10.0.0.100:6443", time.Now().Add(24*time.Hour))
	vms := guesttest.NewVMs(t, ctx, c,
		guesttest.VMSpec{Name: "kcopy-ok", Files: files, Modes: modes, Units: guesttest.KubeletRunning},
		guesttest.VMSpec{Name: "kcopy-stray", Files: files, Modes: modes, Units: guesttest.KubeletRunning},
	)
	auth := &types.NamePasswordAuthentication{Username: "root", Password: "x"}
	p := preclone.GeneralizePlan(reconcile.VM{Name: "copy", Ref: "vm-2"}, reconcile.VM{Name: "src", Ref: "vm-1"}, time.Now())

	ok := vms[0]
	for i := range 2 {
		code, out, stderr, err := guest.Run(ctx, c, ok, auth, p.Script)
		if err != nil || code != 0 || !strings.Contains(string(out), "generalized") {
			t.Fatalf("run %d: %d %v %s %s", i+1, code, err, out, stderr)
		}
	}
	if calls := guesttest.SystemctlCalls(t, ok); guesttest.CountCalls(calls, "disable --now kubelet") != 2 {
		t.Errorf("systemctl calls %q", calls)
	}
	if st, _ := guesttest.ReadFile(t, ok, guesttest.SystemctlStateDir+"/kubelet.service.enabled"); strings.TrimSpace(st) != "disabled" {
		t.Errorf("kubelet.service is %q", st)
	}
	if got, found := guesttest.ReadFile(t, ok, p.BackupDir+"/kubelet-pki/kubelet-client-current.pem"); !found || !strings.Contains(got, keyPEM) {
		t.Errorf("kubelet PKI not in the backup")
	}
	if got, found := guesttest.ReadFile(t, ok, p.BackupDir+"/kubelet.conf"); !found || !strings.Contains(got, "server: https://10.0.0.100:6443") {
		t.Errorf("kubelet.conf not in the backup")
	}
	for _, f := range []string{guesttest.KubeletClientPEM, guesttest.KubeletConf} {
		if _, found := guesttest.ReadFile(t, ok, f); found {
			t.Errorf("%s still in place", f)
		}
	}
	// The probe now finds no kubelet identity: preclone passes the check.
	id := guest.Probe(ctx, c, reconcile.VM{Ref: ok.Reference().Value}, auth, guest.ProbeOptions{})
	if id.Error != "" || id.KubeletCreds || id.KubeletNode != "" || id.KubeletEnabled != "no" {
		t.Errorf("probe after generalize: %+v", id)
	}
	r := preclone.Evaluate(preclone.Input{VM: reconcile.VM{Name: "copy", Ref: ok.Reference().Value, PowerState: "poweredOn"}, Guest: &id, GuestSource: preclone.SourceLive, Now: time.Now()})
	for _, ch := range r.Checks {
		if ch.ID == preclone.CheckKubelet && ch.Status != preclone.Pass {
			t.Errorf("kubelet check after generalize: %+v", ch)
		}
	}

	stray := vms[1]
	guesttest.WriteFiles(t, stray, map[string]guesttest.File{"/usr/local/bin/kubelet": {Content: "#!/bin/sh\nsleep 600\n", Mode: 0o755}})
	guesttest.Exec(t, stray, "cd / && (kubelet </dev/null >/dev/null 2>&1 &) ; sleep 0.5; pidof kubelet")
	code, out, stderr, err := guest.Run(ctx, c, stray, auth, p.Script)
	if err != nil {
		t.Fatal(err)
	}
	if code == 0 || strings.Contains(string(out), "generalized") || !strings.Contains(string(stderr), "a kubelet runs outside kubelet.service") {
		t.Errorf("a running kubelet did not stop the script: exit %d, %s %s", code, out, stderr)
	}
	if _, found := guesttest.ReadFile(t, stray, guesttest.KubeletClientPEM); !found {
		t.Errorf("credentials moved from under a running kubelet")
	}
}
