package guest

import (
	"github.com/vmreconcile/vmreconcile/reconcile"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/guest/guesttest"
)

// The probe script, run by an unprivileged guest user (vcsim always execs as
// root, so su drops privileges inside the script): an unreadable swarm
// directory is reported as an error, not as "no swarm identity".
func TestProbeScriptUnprivileged(t *testing.T) {
	ctx, c, _ := guesttest.Simulator(t)
	vm := guesttest.NewVM(t, ctx, c, guesttest.VMSpec{
		Name: "unprivileged",
		Files: map[string]string{
			"/var/lib/docker/swarm/certificates/swarm-node.crt": "not even PEM",
			"/etc/machine-id": "0123456789abcdef0123456789abcdef\n",
		},
	})
	guesttest.Exec(t, vm, "chmod 0710 /var/lib/docker && chmod 0600 /var/lib/docker/swarm/certificates/swarm-node.crt")
	auth := &types.NamePasswordAuthentication{Username: "root", Password: "x"}

	code, out, stderr, err := Run(ctx, c, vm, auth, "su -s /bin/sh nobody -c "+shellQuote(probeScript))
	if err != nil || code != 0 {
		t.Fatalf("run: %d %v %s", code, err, stderr)
	}
	_, reason := parseReport(out)
	if !strings.Contains(reason, "not readable") || !strings.Contains(reason, "uid 65534") {
		t.Errorf("reason %q for report:\n%s", reason, out)
	}

	// As root the same garbage file is a parse error.
	id := Probe(ctx, c, toVM(vm.Reference().Value), auth, ProbeOptions{Timeout: 30 * time.Second})
	if id.Error != "swarm-node.crt: no PEM certificate in file" || id.MachineID != "" {
		t.Errorf("garbage cert: %+v", id)
	}
}

func toVM(ref string) reconcile.VM { return reconcile.VM{Ref: ref} }
