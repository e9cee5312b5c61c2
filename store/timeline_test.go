package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// cloneScenario: wk-1 (vm-1) is a swarm worker with node ID nodeid1abc; vm-2
// is cloned from it and, booted, connects as the same node, whose hostname
// then flips between the two.
func cloneScenario(t *testing.T) *Store {
	s, _ := tempStore(t)
	lin := &reconcile.Lineage{SourceRef: "vm-1", SourceName: "wk-1", Kind: "clone", Time: at(1)}
	before := []reconcile.VM{vmOf("vm-1", "wk-1", nil), vmOf("vm-9", "other", nil)}
	after := []reconcile.VM{vmOf("vm-1", "wk-1", nil), vmOf("vm-2", "wk-1-clone", lin), vmOf("vm-9", "other", nil)}
	shared := finding(reconcile.KindSharedNodeID, reconcile.Critical, "nodeid1abc", "vm-2", "vm-1")
	shared.VMs = []string{"wk-1-clone", "wk-1"}
	shared.Original = "wk-1"

	record(t, s, at(0), before, []reconcile.Node{nodeOf("nodeid1abc", descOf("wk-1", at(-4), 3)), nodeOf("nodeid2xyz", descOf("other", at(-4), 3))})
	record(t, s, at(5), after, []reconcile.Node{nodeOf("nodeid1abc", descOf("wk-1", at(1), 2), descOf("wk-1-clone", at(2), 2)), nodeOf("nodeid2xyz", descOf("other", at(1), 3))}, shared)
	record(t, s, at(10), after, []reconcile.Node{nodeOf("nodeid1abc", descOf("wk-1", at(6), 1), descOf("wk-1-clone", at(7), 3)), nodeOf("nodeid2xyz", descOf("other", at(6), 3))}, shared)
	if err := s.SaveProbe(ctx, reconcile.GuestIdentity{VMRef: "vm-2", ProbedAt: at(11), NodeID: "nodeid1abc", ClusterID: "clu1", Role: "swarm-worker", MachineID: "m-1", DockerActive: "yes"}); err != nil {
		t.Fatal(err)
	}
	id, err := s.JournalIntent(ctx, JournalRecord{PlanID: "plan-7", VMRef: "vm-2", VMName: "wk-1-clone", Action: "power-off", Reason: "impersonates node nodeid1abc", FindingKey: shared.Key(), Time: at(12)})
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return at(13) }
	if err := s.JournalOutcome(ctx, id, "done", "powered off"); err != nil {
		t.Fatal(err)
	}
	// The clone is gone: the node is wk-1 again and the finding resolves.
	record(t, s, at(15), before, []reconcile.Node{nodeOf("nodeid1abc", descOf("wk-1", at(11), 3)), nodeOf("nodeid2xyz", descOf("other", at(11), 3))})
	return s
}

func kinds(tl []TimelineEntry) []string {
	var out []string
	for _, e := range tl {
		out = append(out, e.Kind)
	}
	return out
}

func texts(tl []TimelineEntry) string {
	var b strings.Builder
	for _, e := range tl {
		b.WriteString(e.Time.Format("15:04") + " " + e.Kind + " " + e.Text + "\n")
	}
	return b.String()
}

func TestTimelineNode(t *testing.T) {
	s := cloneScenario(t)
	for _, subject := range []string{"nodeid1abc", "nodeid1", "wk-1-clone-hostname-does-not-exist"} {
		tl, err := s.Timeline(ctx, subject)
		if subject == "wk-1-clone-hostname-does-not-exist" {
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("unknown subject: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Timeline(%s): %v", subject, err)
		}
		want := []string{EntryObservation, EntryLineage, EntryObservation, EntryFindingOpened, EntryProbe, EntryJournal, EntryJournal, EntryFindingResolved}
		if got := kinds(tl); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("Timeline(%s) kinds:\n%v\nwant\n%v\n%s", subject, got, want, texts(tl))
		}
		for i := 1; i < len(tl); i++ {
			if tl[i].Time.Before(tl[i-1].Time) {
				t.Fatalf("not in time order:\n%s", texts(tl))
			}
		}
		// wk-1 was seen in all 4 runs: one episode; the clone's identity in runs 2-3.
		o := tl[0]
		if o.NodeID != "nodeid1abc" || o.Description.Hostname != "wk-1" || o.Runs != 4 || o.FirstRun != 1 || o.LastRun != 4 ||
			o.Description.Seen != 9 || !o.Time.Equal(at(-4)) || !o.End.Equal(at(15)) || o.VMRef != "vm-1" || o.VMName != "wk-1" {
			t.Fatalf("wk-1 episode: %+v %+v", o, o.Description)
		}
		want0 := "node nodeid1abc as hostname wk-1, 4 CPUs, 8192 MiB, addr 10.0.0.1, engine 27.3.1 in 4 runs (1-4), 9 sightings, matched wk-1 (vm-1)"
		if o.Text != want0 {
			t.Fatalf("text %q\nwant %q", o.Text, want0)
		}
		c := tl[2]
		if c.Description.Hostname != "wk-1-clone" || c.Runs != 2 || c.FirstRun != 2 || c.LastRun != 3 || c.VMRef != "vm-2" {
			t.Fatalf("clone episode: %+v", c)
		}
		if l := tl[1]; l.VMRef != "vm-2" || l.Text != "wk-1-clone (vm-2) cloned from wk-1 (vm-1)" || !l.Time.Equal(at(1)) {
			t.Fatalf("lineage entry: %+v", l)
		}
		if f := tl[3]; f.Finding == nil || f.Finding.Kind != reconcile.KindSharedNodeID || !f.Time.Equal(at(5)) ||
			!strings.Contains(f.Text, "critical finding shared-node-id opened: node nodeid1abc VMs wk-1-clone (vm-2), wk-1 (vm-1); original wk-1") {
			t.Fatalf("finding entry: %+v", f)
		}
		if j := tl[6]; j.Journal == nil || j.Text != "plan plan-7: power-off wk-1-clone (vm-2): done (powered off)" {
			t.Fatalf("journal entry: %q", j.Text)
		}
		if r := tl[7]; !r.Time.Equal(at(15)) || r.Finding.ResolvedAt.IsZero() {
			t.Fatalf("resolved entry: %+v", r)
		}
	}
	// The other node shows nothing of the clone.
	tl, err := s.Timeline(ctx, "nodeid2xyz")
	if err != nil || len(tl) != 1 || tl[0].Kind != EntryObservation || tl[0].Runs != 4 {
		t.Fatalf("other node:\n%s%v", texts(tl), err)
	}
	// A hostname leads to its node.
	if tl, err := s.Timeline(ctx, "other"); err != nil || len(tl) == 0 {
		t.Fatalf("by VM name other: %v", err)
	}
	if _, err := s.Timeline(ctx, "nodeid"); !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "nodeid1abc, nodeid2xyz") {
		t.Fatalf("ambiguous prefix: %v", err)
	}
}

func TestTimelineVM(t *testing.T) {
	s := cloneScenario(t)
	for _, subject := range []string{"wk-1-clone", "vm-2"} {
		tl, err := s.Timeline(ctx, subject)
		if err != nil {
			t.Fatalf("Timeline(%s): %v", subject, err)
		}
		want := []string{EntryObservation, EntryLineage, EntryObservation, EntryVMSeen, EntryFindingOpened, EntryVMGone, EntryProbe, EntryJournal, EntryJournal, EntryFindingResolved}
		if got := kinds(tl); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("Timeline(%s) kinds:\n%v\nwant\n%v\n%s", subject, got, want, texts(tl))
		}
		if e := tl[3]; e.Text != "VM wk-1-clone (vm-2) first seen at /DC0/vm/wk-1-clone on vc1" || !e.Time.Equal(at(5)) {
			t.Fatalf("vm-seen: %+v", e)
		}
		if e := tl[5]; !strings.Contains(e.Text, "last seen") || !e.Time.Equal(at(10)) {
			t.Fatalf("vm-gone: %+v", e)
		}
		if e := tl[6]; e.Probe == nil || e.Probe.MachineID != "m-1" ||
			e.Text != "guest probe of wk-1-clone (vm-2): node ID nodeid1abc, cluster clu1, role swarm-worker, machine-id m-1, docker active yes" {
			t.Fatalf("probe: %q", e.Text)
		}
		if e := tl[7]; e.Text != "plan plan-7: intent to power-off wk-1-clone (vm-2): impersonates node nodeid1abc" {
			t.Fatalf("intent: %q", e.Text)
		}
	}
	// The original: its copies show in its lineage, it is never gone.
	tl, err := s.Timeline(ctx, "wk-1")
	if err != nil {
		t.Fatal(err)
	}
	got := texts(tl)
	if !strings.Contains(got, "lineage wk-1-clone (vm-2) cloned from wk-1 (vm-1)") || strings.Contains(got, EntryVMGone) || !strings.Contains(got, "VM wk-1 (vm-1) first seen") {
		t.Fatalf("timeline of wk-1:\n%s", got)
	}
}
