package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// resolveStep is one event in a finding's life, at minute min.
type resolveStep struct {
	what string // "present", "absent", "fail", "partial", "remedy" (journal done for vm-2), "remedy-other" (another VM)
	min  int
}

// TestResolvePolicy is issue 9 item 2: a swarm manager restart (its event
// history lost, the first samples show one identity) resolved an open
// critical shared-node-id, which reopened seconds later as a new episode.
// Missing data is not a fix: an open finding resolves only after
// DefaultResolveRuns consecutive complete successful runs without it,
// spanning DefaultResolveAfter, or with a remediation outcome in the journal.
func TestResolvePolicy(t *testing.T) {
	cases := []struct {
		name  string
		steps []resolveStep
		// wantResolved is the minute of the resolving run, -1 when still open.
		wantResolved int
		wantBy       string
		wantAbsent   int // AbsentRuns at the end
	}{
		{"absent in one run: still open", steps("present 0", "absent 5"), -1, "", 1},
		{"absent in two runs: still open", steps("present 0", "absent 5", "absent 10"), -1, "", 2},
		{"three runs, too short a span: still open", steps("present 0", "absent 1", "absent 2", "absent 3"), -1, "", 3},
		{"span long enough, two runs: still open", steps("present 0", "absent 5", "absent 20"), -1, "", 2},
		{"three runs spanning 10m: resolved once", steps("present 0", "absent 5", "absent 10", "absent 15", "absent 20"), 15, ResolvedByAbsence, 3},
		{"reappears in between: same episode, count restarts",
			steps("present 0", "absent 5", "absent 10", "present 15", "absent 20", "absent 25"), -1, "", 2},
		{"reappears, then absent long enough again",
			steps("present 0", "absent 5", "absent 10", "present 15", "absent 20", "absent 25", "absent 30"), 30, ResolvedByAbsence, 3},
		{"a failed run breaks the streak", steps("present 0", "absent 5", "absent 10", "fail 12", "absent 15", "absent 20"), -1, "", 2},
		{"a failed run, then three runs", steps("present 0", "absent 5", "fail 7", "absent 10", "absent 15", "absent 20"), 20, ResolvedByAbsence, 3},
		{"a partial run (source restarted) never counts",
			steps("present 0", "absent 5", "absent 10", "partial 15", "absent 20", "absent 25"), -1, "", 2},
		{"partial runs only: never resolved", steps("present 0", "partial 5", "partial 10", "partial 15", "partial 20"), -1, "", 0},
		{"remediation done, then absent: resolved at once", steps("present 0", "remedy 2", "absent 5"), 5, ResolvedByRemediation, 1},
		{"remediation done but still present: open", steps("present 0", "remedy 2", "present 5"), -1, "", 0},
		{"remediation of an unrelated VM: policy applies", steps("present 0", "remedy-other 2", "absent 5"), -1, "", 1},
		{"an action for another finding on its VM: policy applies", steps("present 0", "remedy-otherkey 2", "absent 5"), -1, "", 1},
		{"the same moref in another vCenter: policy applies", steps("present 0", "remedy-othervc 2", "absent 5"), -1, "", 1},
		{"remediation done before the episode opened: policy applies", steps("remedy -5", "present 0", "absent 5"), -1, "", 1},
		{"remediation done, partial run: still open", steps("present 0", "remedy 2", "partial 5"), -1, "", 0},
		{"a critical finding is never superseded", steps("present 0", "covered 5"), -1, "", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := at(-60)
			s := openT(t, filepath.Join(t.TempDir(), "s.db"), Options{Exclusive: true, Now: func() time.Time { return clock }})
			f := finding(reconcile.KindSharedNodeID, reconcile.Critical, "n1", "vm-1", "vm-2")
			f.Original = f.VMs[0] // vm-2 is the copy
			resolvedIn := -1
			for _, st := range tc.steps {
				clock = at(st.min)
				snap, res := world(at(st.min), nil, nil)
				var opts RecordOptions
				switch st.what {
				case "present":
					snap, res = world(at(st.min), nil, nil, f)
				case "absent":
				case "covered": // another critical finding on its node covers its VMs
					g := finding(reconcile.KindSharedNodeID, reconcile.Critical, "n1", "vm-1", "vm-2", "vm-3")
					snap, res = world(at(st.min), nil, nil, g)
				case "partial":
					opts.Partial = "swarm test: event stream reconnected"
				case "fail":
					if _, err := s.RecordFailure(ctx, at(st.min), at(st.min), errors.New("swarm test: connection refused")); err != nil {
						t.Fatal(err)
					}
					continue
				case "remedy", "remedy-other", "remedy-otherkey", "remedy-othervc":
					rec := JournalRecord{PlanID: "p", VMRef: "vm-2", Action: "power-off", FindingKey: f.Key()}
					switch st.what {
					case "remedy-other":
						rec.VMRef = "vm-9"
					case "remedy-otherkey":
						rec.FindingKey = "clone-of-swarm-node|n1|vm-1,vm-2"
					case "remedy-othervc":
						rec.VCenter = "vc2"
					}
					id, err := s.JournalIntent(ctx, rec)
					if err != nil {
						t.Fatal(err)
					}
					if err := s.JournalOutcome(ctx, id, "done", ""); err != nil {
						t.Fatal(err)
					}
					continue
				}
				d, err := s.RecordRunWith(context.Background(), snap, res, at(st.min), at(st.min), opts)
				if err != nil {
					t.Fatal(err)
				}
				if len(d.Resolved) > 0 {
					if resolvedIn >= 0 {
						t.Fatalf("resolved twice: at %d and %d", resolvedIn, st.min)
					}
					resolvedIn = st.min
				}
				if len(d.Opened) > 0 && st.min > 0 && st.what == "present" {
					t.Fatalf("minute %d opened a new episode %v", st.min, keys(d.Opened))
				}
			}
			eps, err := s.FindingEpisodes(ctx, f.Key())
			if err != nil || len(eps) != 1 {
				t.Fatalf("episodes %+v, %v; want exactly one", eps, err)
			}
			ep := eps[0]
			if resolvedIn != tc.wantResolved {
				t.Fatalf("resolved in the run at minute %d, want %d (-1: open); finding %+v", resolvedIn, tc.wantResolved, ep)
			}
			if tc.wantResolved >= 0 && (!ep.ResolvedAt.Equal(at(tc.wantResolved)) || ep.ResolvedBy != tc.wantBy) {
				t.Fatalf("resolved at %s by %q, want %s by %q", ep.ResolvedAt, ep.ResolvedBy, at(tc.wantResolved), tc.wantBy)
			}
			if tc.wantResolved < 0 && (!ep.Open() || ep.ResolvedBy != "") {
				t.Fatalf("finding resolved: %+v", ep)
			}
			if ep.AbsentRuns != tc.wantAbsent {
				t.Fatalf("absent runs %d, want %d", ep.AbsentRuns, tc.wantAbsent)
			}
			// The alerts: one opening, and a resolution only when it resolved.
			mine := func(fs []StoredFinding) (n int) {
				for _, x := range fs {
					if x.Key == f.Key() {
						n++
					}
				}
				return n
			}
			open, _, err := s.PendingAlerts(ctx)
			if err != nil || mine(open) != 1 {
				t.Fatalf("pending openings %d, %v; want 1", mine(open), err)
			}
			if err := s.MarkAlertedID(ctx, ep.ID, false); err != nil {
				t.Fatal(err)
			}
			_, resolved, _ := s.PendingAlerts(ctx)
			if want := map[bool]int{true: 1, false: 0}[tc.wantResolved >= 0]; mine(resolved) != want {
				t.Fatalf("pending resolution alerts %d, want %d", mine(resolved), want)
			}
		})
	}
}

func steps(ss ...string) []resolveStep {
	var out []resolveStep
	for _, s := range ss {
		var st resolveStep
		var min int
		for i := len(s) - 1; i >= 0; i-- {
			if s[i] == ' ' {
				st.what = s[:i]
				if _, err := fmt.Sscan(s[i+1:], &min); err != nil {
					panic(s)
				}
				break
			}
		}
		st.min = min
		out = append(out, st)
	}
	return out
}

// TestSupersededResolvesAtOnce: a clone-of-swarm-node (warning) whose
// clone's engine started is reported as shared-node-id (critical, same node,
// covering its VMs) from then on: the warning resolves in that run, as
// superseded; that is the same problem reclassified, not missing data. A
// finding about other objects (a duplicate MAC on the same VMs) is not
// superseded by it.
func TestSupersededResolvesAtOnce(t *testing.T) {
	s, _ := tempStore(t)
	clone := finding(reconcile.KindCloneOfSwarmNode, reconcile.Warning, "n1", "vm-2")
	shared := finding(reconcile.KindSharedNodeID, reconcile.Critical, "n1", "vm-1", "vm-2")
	mac := finding(reconcile.KindDuplicateMAC, reconcile.Warning, "", "vm-1", "vm-2")
	opts := RecordOptions{}
	rec := func(min int, fs ...reconcile.Finding) RunDiff {
		snap, res := world(at(min), nil, nil, fs...)
		d, err := s.RecordRunWith(ctx, snap, res, at(min), at(min), opts)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	rec(0, clone, mac)
	d := rec(2, shared)
	if len(d.Resolved) != 1 || d.Resolved[0].Key != clone.Key() || d.Resolved[0].ResolvedBy != ResolvedBySuperseded {
		t.Fatalf("run with shared-node-id: resolved %+v, want the clone finding only, superseded", d.Resolved)
	}
	if len(d.Absent) != 1 || d.Absent[0].Key != mac.Key() {
		t.Fatalf("absent %+v, want the duplicate MAC, still open", d.Absent)
	}
	opts.Partial = "swarm x restarted"
	rec(3, clone)
	if d := rec(4, shared); len(d.Resolved) != 0 {
		t.Fatalf("a partial run resolved %+v", d.Resolved)
	}
}

// TestResolvePolicyRuns1 keeps the explicit Runs 1 policy (tests, and the
// behaviour callers may still ask for) resolving at the first absence.
func TestResolvePolicyRuns1(t *testing.T) {
	s, _ := tempStore(t)
	f := finding(reconcile.KindDuplicateMAC, reconcile.Warning, "", "vm-1", "vm-3")
	record(t, s, at(0), nil, nil, f)
	d := record(t, s, at(1), nil, nil)
	if len(d.Resolved) != 1 || d.Resolved[0].ResolvedBy != ResolvedByAbsence {
		t.Fatalf("Runs 1: %+v", d)
	}
}

// TestPartialRunRecorded: a partial run is stored with its reason.
func TestPartialRunRecorded(t *testing.T) {
	s, _ := tempStore(t)
	snap, res := world(at(0), nil, nil)
	if _, err := s.RecordRunWith(ctx, snap, res, at(0), at(0), RecordOptions{Partial: "swarm x restarted"}); err != nil {
		t.Fatal(err)
	}
	last, _, err := s.LastRun(ctx)
	if err != nil || !last.OK || last.Partial != "swarm x restarted" {
		t.Fatalf("last run %+v, %v", last, err)
	}
}

// TestRecordDelivery: an alert is marked sent only when every sink is done
// with it, delivered or given up; SinkDone tells a sink what it already did.
func TestRecordDelivery(t *testing.T) {
	s, _ := tempStore(t)
	f := finding(reconcile.KindSharedNodeID, reconcile.Critical, "n1", "vm-1", "vm-2")
	record(t, s, at(0), nil, nil, f)
	open, _, _ := s.PendingAlerts(ctx)
	id := open[0].ID
	sinks := []string{"webhook:a", "slack:b"}
	done, err := s.RecordDelivery(ctx, Delivery{FindingID: id, Sink: "webhook:a", Status: DeliveryDelivered, Attempts: 1}, sinks)
	if err != nil || done {
		t.Fatalf("first sink: complete %v, %v", done, err)
	}
	if m, _ := s.SinkDone(ctx, "webhook:a"); !m[DeliveryKey{FindingID: id}] {
		t.Fatalf("SinkDone(webhook:a) = %v", m)
	}
	if m, _ := s.SinkDone(ctx, "slack:b"); len(m) != 0 {
		t.Fatalf("SinkDone(slack:b) = %v", m)
	}
	if o, _, _ := s.PendingAlerts(ctx); len(o) != 1 {
		t.Fatal("marked sent with one sink of two done")
	}
	done, err = s.RecordDelivery(ctx, Delivery{FindingID: id, Sink: "slack:b", Status: DeliveryFailed, Attempts: 4, Detail: "HTTP 404"}, sinks)
	if err != nil || !done {
		t.Fatalf("second sink: complete %v, %v", done, err)
	}
	if o, _, _ := s.PendingAlerts(ctx); len(o) != 0 {
		t.Fatal("still pending with every sink done")
	}
	ds, err := s.Deliveries(ctx, id)
	if err != nil || len(ds) != 2 || ds[0].Sink != "slack:b" || ds[0].Status != DeliveryFailed || ds[0].Detail != "HTTP 404" || ds[0].Attempts != 4 {
		t.Fatalf("deliveries %+v, %v", ds, err)
	}
	if m, _ := s.SinkDone(ctx, "webhook:a"); len(m) != 0 {
		t.Fatalf("SinkDone lists an alert no longer pending: %v", m)
	}
	if _, err := s.RecordDelivery(ctx, Delivery{FindingID: id, Sink: "x", Status: "pending"}, sinks); err == nil {
		t.Fatal("invalid status accepted")
	}
}

// TestRemediationResolvesOnlyWhenEveryCopyWasActedOn: a shared node ID held
// by an original and two copies, one copy remediated: the finding's absence
// in the next run is not explained by the remediation (the other copy may
// just have missed its turn), so it stays open under the absence policy.
func TestRemediationResolvesOnlyWhenEveryCopyWasActedOn(t *testing.T) {
	clock := at(0)
	s := openT(t, filepath.Join(t.TempDir(), "s.db"), Options{Exclusive: true, Now: func() time.Time { return clock }})
	f := finding(reconcile.KindSharedNodeID, reconcile.Critical, "n1", "vm-1", "vm-2", "vm-3")
	f.Original = f.VMs[0]
	done := func(ref string) {
		t.Helper()
		id, err := s.JournalIntent(ctx, JournalRecord{PlanID: "p", VMRef: ref, Action: "disable-docker", FindingKey: f.Key()})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.JournalOutcome(ctx, id, "done", ""); err != nil {
			t.Fatal(err)
		}
	}
	run := func(min int, fs ...reconcile.Finding) RunDiff {
		t.Helper()
		clock = at(min)
		snap, res := world(at(min), nil, nil, fs...)
		d, err := s.RecordRunWith(ctx, snap, res, at(min), at(min), RecordOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	run(0, f)
	clock = at(1)
	done("vm-2")
	if d := run(2); len(d.Resolved) != 0 {
		t.Fatalf("resolved with one copy of two remediated: %+v", d.Resolved)
	}
	run(3, f) // the other copy answers again
	clock = at(4)
	done("vm-3")
	if d := run(5); len(d.Resolved) != 1 || d.Resolved[0].ResolvedBy != ResolvedByRemediation {
		t.Fatalf("both copies remediated, then absent: resolved %+v, want by remediation", d.Resolved)
	}
}
