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
