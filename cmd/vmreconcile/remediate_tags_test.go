package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/dockersim"
	"github.com/vmreconcile/vmreconcile/vsphere"
)

// TestRemediateTagsFailClosed: a vCenter whose vSphere tags cannot be read
// (here: no vAPI endpoint) might hide a vmreconcile.skip tag, so its VMs are
// left alone and the plan says why; -no-tags relies on the custom attribute
// alone and plans the action.
func TestRemediateTagsFailClosed(t *testing.T) {
	u, c := vcsim(t) // no vAPI endpoint
	ctx := context.Background()
	wk, err := vsphere.CreateSimVM(ctx, c, vsphere.SimVM{Name: "wk-1", NumCPU: 4, MemoryMB: 8192, Hostname: "wk-1", IP: "10.1.0.11", PowerOn: true, ToolsRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vsphere.CloneSimVM(ctx, c, wk.Reference(), vsphere.SimClone{Name: "wk-1-clone", PowerOn: true, Hostname: "wk-1-clone", IP: "10.1.0.99"}); err != nil {
		t.Fatal(err)
	}
	sim := dockersim.New(dockersim.Options{Self: dockersim.NodeSpec{Hostname: "mgr-1"}})
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	id, err := sim.AddNode(dockersim.NodeSpec{Hostname: "wk-1", NanoCPUs: 4e9, MemoryBytes: 8 << 30, Addr: "10.1.0.11"})
	if err != nil {
		t.Fatal(err)
	}
	fight := []dockersim.Identity{{Hostname: "wk-1-clone", Addr: "10.1.0.99"}, {Hostname: "wk-1", Addr: "10.1.0.11"}}
	if err := sim.Backfill(id, fight, time.Now().Add(-2*time.Minute), time.Now(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	env := []string{"GOVC_URL=" + u.String(), "GOVC_INSECURE=1", "DOCKER_HOST=" + sim.Host(), "XDG_STATE_HOME=" + t.TempDir()}

	r := runBin(t, env, "remediate", "-json", "-max-percent", "100")
	if r.code != ExitOK {
		t.Fatalf("plan: exit %d: %s", r.code, r.stderr)
	}
	p := decodeRemediation(t, r).Plan
	if len(p.Entries) != 0 {
		t.Errorf("planned %+v although the tags could not be read", p.Entries)
	}
	refused := false
	for _, rf := range p.Refused {
		if rf.VM.Name == "wk-1-clone" && strings.Contains(rf.Why, "tags could not be read") {
			refused = true
		}
	}
	if !refused || !strings.Contains(r.stderr, "vSphere tags not readable") || !strings.Contains(r.stderr, "-no-tags") {
		t.Errorf("refused %+v; stderr %q", p.Refused, r.stderr)
	}

	r = runBin(t, env, "remediate", "-json", "-max-percent", "100", "-no-tags")
	p = decodeRemediation(t, r).Plan
	if r.code != ExitOK || len(p.Entries) != 1 || p.Entries[0].VM.Name != "wk-1-clone" || p.Entries[0].Original != "wk-1" {
		t.Errorf("-no-tags: exit %d, plan %+v, stderr %s", r.code, p.Entries, r.stderr)
	}
}
