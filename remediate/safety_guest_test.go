package remediate_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/guest/guesttest"
	"github.com/vmreconcile/vmreconcile/remediate"
	"github.com/vmreconcile/vmreconcile/store"
)

// dockerStub stands for the docker CLI of a node in a swarm. Like dockerd's
// Leave (daemon/cluster: clearPersistentState), `swarm leave --force`
// deletes the contents of <data-root>/swarm.
const dockerStub = `#!/bin/sh
printf '%s\n' "$*" >> /var/log/docker-cli.log
case "$*" in
"info --format {{.Swarm.LocalNodeState}}") echo active ;;
"swarm leave --force") rm -rf /var/lib/docker/swarm/*; echo "Node left the swarm." ;;
esac
`

// -forget-identity runs `docker swarm leave --force` (local only) and
// promises the identity is kept in a backup, never deleted. Leave deletes the
// swarm state (and force-removes the swarm's task containers), so the script
// must copy the identity into the backup before it leaves.
func TestSafetyForgetIdentityNeverDeletes(t *testing.T) {
	ctx, c, model := guesttest.Simulator(t)
	cert := guesttest.NodeCert(t, "x1kq7bq9vbyt0sbxbivvv1i5o", "swarm-worker", "cluster1", time.Now().Add(30*24*time.Hour))
	root := guesttest.DockerRoot(t, cert, "0b1f6c1e-3c1a-4f5e-9a55-0e3b0e8d1c22")
	// An odd data-root: spaces and shell syntax in daemon.json reach the
	// script as data, never as code.
	odd := "/srv/d r$(touch /tmp/pwned)`touch /tmp/pwned2`"
	vms := guesttest.NewVMs(t, ctx, c,
		guesttest.VMSpec{Name: "clone-leave", Dirs: map[string]string{"/var/lib/docker": root}, Units: guesttest.DockerRunning},
		guesttest.VMSpec{Name: "clone-odd-root", Units: guesttest.DockerRunning, Files: map[string]string{
			"/etc/docker/daemon.json":                  `{"log-driver": "journald", "data-root": "` + odd + `"}`,
			odd + "/swarm/certificates/swarm-node.crt": cert,
			odd + "/engine-id":                         "e1\n",
		}},
	)
	leave, oddVM := vms[0], vms[1]
	guesttest.WriteFiles(t, leave, map[string]guesttest.File{"/usr/local/bin/docker": {Content: dockerStub, Mode: 0o755}})
	guesttest.RequireGuestPassword(model, password)
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	x := &remediate.Executor{Client: c, Journal: st, Auth: func(remediate.VMInfo) types.BaseGuestAuthentication { return login() }}
	entry := func(name, ref string) remediate.Entry {
		return remediate.Entry{VM: remediate.VMInfo{Name: name, Ref: ref, PowerState: "poweredOn"},
			Action: remediate.ActionDisableDocker, ForgetIdentity: true, Reason: "test"}
	}

	t.Run("swarm leave", func(t *testing.T) {
		p := remediate.Plan{ID: "plan-leave", Entries: []remediate.Entry{entry("clone-leave", leave.Reference().Value)}}
		outs, err := x.Apply(context.WithoutCancel(ctx), p)
		if err != nil || outs[0].Status != remediate.StatusDone {
			t.Fatalf("apply: %v %+v", err, outs)
		}
		t.Logf("outcome: %s", outs[0].Detail)
		b := backups(t, root)
		if len(b) != 1 {
			t.Fatalf("backups %v", b)
		}
		if got, ok := guesttest.ReadFile(t, leave, "/var/lib/docker/"+filepath.Base(b[0])+"/swarm/certificates/swarm-node.crt"); !ok || got != cert {
			t.Errorf("the node certificate is not in the backup: the identity was deleted, not moved")
		}
		log, _ := guesttest.ReadFile(t, leave, "/var/log/docker-cli.log")
		if !strings.Contains(log, "swarm leave --force") {
			t.Errorf("docker swarm leave --force was not run: %q", log)
		}
		if _, ok := guesttest.ReadFile(t, leave, "/var/lib/docker/"+filepath.Base(b[0])+"/engine-id"); !ok {
			t.Errorf("engine-id not moved into the backup")
		}
		if _, ok := guesttest.ReadFile(t, leave, "/var/lib/docker/swarm/certificates/swarm-node.crt"); ok {
			t.Errorf("the swarm state is still in place")
		}
		if !strings.Contains(outs[0].Detail, "docker swarm leave --force") {
			t.Errorf("summary does not say swarm leave ran: %q", outs[0].Detail)
		}
		// A rerun (same plan, after a crash say) does nothing twice.
		outs, err = x.Apply(context.WithoutCancel(ctx), p)
		if err != nil || len(outs) != 1 || outs[0].Status == remediate.StatusFailed {
			t.Fatalf("rerun: %v %+v", err, outs)
		}
		if log2, _ := guesttest.ReadFile(t, leave, "/var/log/docker-cli.log"); strings.Count(log2, "swarm leave") != 1 {
			t.Errorf("swarm leave ran again on rerun: %q", log2)
		}
	})

	t.Run("odd data-root", func(t *testing.T) {
		p := remediate.Plan{ID: "plan-odd", Entries: []remediate.Entry{entry("clone-odd-root", oddVM.Reference().Value)}}
		outs, err := x.Apply(context.WithoutCancel(ctx), p)
		if err != nil || outs[0].Status != remediate.StatusDone {
			t.Fatalf("apply: %v %+v", err, outs)
		}
		t.Logf("outcome: %s", outs[0].Detail)
		if _, ok := guesttest.ReadFile(t, oddVM, odd+"/swarm/certificates/swarm-node.crt"); ok {
			t.Errorf("the swarm state under the daemon.json data-root was not moved")
		}
		got := guesttest.Exec(t, oddVM, "ls "+shq(odd)+"/vmreconcile-backup-*/swarm/certificates/swarm-node.crt 2>/dev/null; true")
		if !strings.Contains(got, "swarm-node.crt") {
			t.Errorf("no backup under the data-root: %q", got)
		}
		if got := guesttest.Exec(t, oddVM, "ls /tmp/pwned /tmp/pwned2 2>/dev/null; true"); got != "" {
			t.Errorf("daemon.json's data-root ran as code: %q", got)
		}
		if !strings.Contains(outs[0].Detail, "moved swarm, engine-id to ") {
			t.Errorf("summary: %q", outs[0].Detail)
		}
	})
}

func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
