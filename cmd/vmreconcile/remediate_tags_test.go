package main

import (
	"strings"
	"testing"
)

// TestRemediateTagsFailClosed: a vCenter whose vSphere tags cannot be read
// (here: no vAPI endpoint) might hide a vmreconcile.skip tag, so its VMs are
// left alone and the plan says why; -no-tags relies on the custom attribute
// alone and plans the action.
func TestRemediateTagsFailClosed(t *testing.T) {
	u, sim, _ := flappingWorld(t) // vcsim without the vAPI endpoint
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
