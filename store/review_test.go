package store

import (
	"errors"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// TestMarkAlertedIDOneEpisode: with two episodes of one key pending their
// opening alert (resolved and came back while the sink was down), marking
// the first episode leaves the second pending.
func TestMarkAlertedIDOneEpisode(t *testing.T) {
	s, _ := tempStore(t)
	a := finding(reconcile.KindSharedNodeID, reconcile.Critical, "n1", "vm-1", "vm-2")
	record(t, s, at(0), nil, nil, a)
	record(t, s, at(1), nil, nil)
	record(t, s, at(2), nil, nil, a)
	open, _, err := s.PendingAlerts(ctx)
	if err != nil || len(open) != 2 || open[0].ID == open[1].ID {
		t.Fatalf("pending openings: %+v %v", open, err)
	}
	first, second := open[0], open[1]
	if first.ID > second.ID {
		first, second = second, first
	}
	if err := s.MarkAlertedID(ctx, first.ID, false); err != nil {
		t.Fatal(err)
	}
	open, res, _ := s.PendingAlerts(ctx)
	if len(open) != 1 || open[0].ID != second.ID {
		t.Fatalf("after marking episode %d: pending openings %+v, want episode %d only", first.ID, open, second.ID)
	}
	if len(res) != 1 || res[0].ID != first.ID {
		t.Fatalf("resolution of episode %d not pending: %+v", first.ID, res)
	}
	if err := s.MarkAlertedID(ctx, first.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkAlertedID(ctx, first.ID, true); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := s.MarkAlertedID(ctx, second.ID, true); err != nil { // still open: nothing to mark
		t.Fatal(err)
	}
	if err := s.MarkAlertedID(ctx, 999, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	open, res, _ = s.PendingAlerts(ctx)
	if len(open) != 1 || open[0].ID != second.ID || len(res) != 0 {
		t.Fatalf("pending %+v / %+v, want only episode %d's opening", open, res, second.ID)
	}
}

// TestUseAfterClose: a method running while (or after) the store is closed
// gets an error, never a nil dereference or a data race.
func TestUseAfterClose(t *testing.T) {
	s, _ := tempStore(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			_, _ = s.OpenFindings(ctx)
		}
	}()
	time.Sleep(time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
	if _, err := s.OpenFindings(ctx); err == nil {
		t.Fatal("OpenFindings after Close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
