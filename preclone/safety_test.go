package preclone

import (
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// Arguments swapped and no clone event: the live original (created first)
// shares the node ID with its copy, which let the plan run on the original.
func TestRefuseTargetOlderThanSource(t *testing.T) {
	orig := reconcile.VM{Name: "wk-01", Ref: "vm-1", Created: now.Add(-90 * 24 * time.Hour), PowerState: "poweredOn"}
	cp := reconcile.VM{Name: "wk-01-copy", Ref: "vm-2", Created: now.Add(-time.Hour), PowerState: "poweredOn"}
	shared := &reconcile.GuestIdentity{NodeID: "n1", Role: "swarm-worker", ClusterID: "c1"}
	sw := swarmWith("n1")
	if why := RefuseTarget(TargetInput{Target: orig, Source: cp, TargetGuest: shared, SourceGuest: shared, Swarms: sw}); !strings.Contains(why, "swap the arguments") {
		t.Errorf("the original as target: %q", why)
	}
	if why := RefuseTarget(TargetInput{Target: cp, Source: orig, TargetGuest: shared, SourceGuest: shared, Swarms: sw}); why != "" {
		t.Errorf("the copy as target refused: %q", why)
	}
}
