package guest_test

import (
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/guest"
	"github.com/vmreconcile/vmreconcile/guest/guesttest"
)

// Values the probe reads from guest files must not be able to add report
// lines: a cloud-init instance symlink whose target holds a newline and
// "cert=absent" made a node that carries a swarm certificate look like one
// without any swarm identity.
func TestProbeReportLineInjection(t *testing.T) {
	ctx, c, _ := guesttest.Simulator(t)
	cert := guesttest.NodeCert(t, "x1kq7bq9vbyt0sbxbivvv1i5o", "swarm-worker", "c1", time.Now().Add(24*time.Hour))
	vm := guesttest.NewVM(t, ctx, c, guesttest.VMSpec{
		Name:  "injected",
		Dirs:  map[string]string{"/var/lib/docker": guesttest.DockerRoot(t, cert, "")},
		Units: guesttest.DockerRunning,
	})
	guesttest.Exec(t, vm, `mkdir -p /var/lib/cloud && ln -s "$(printf '/var/lib/cloud/instances/i-1\ncert=absent\nsystemctl=no\nx/i-1')" /var/lib/cloud/instance`)
	id := guest.Probe(ctx, c, toVM(t, ctx, vm), login(), guest.ProbeOptions{Timeout: time.Minute})
	if id.NodeID != "x1kq7bq9vbyt0sbxbivvv1i5o" || id.DockerEnabled != "yes" {
		t.Errorf("a file's content rewrote the probe report: %+v", id)
	}
}
