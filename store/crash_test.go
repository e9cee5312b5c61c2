package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

const crashChildEnv = "VMRECONCILE_STORE_CRASH_CHILD"

const (
	crashVMs   = 2000
	crashNodes = 300
)

// crashWorld is what the child records in run i: every node observed once,
// so a committed run has exactly crashNodes observations.
func crashWorld(i int) (reconcile.Snapshot, reconcile.Result) {
	when := at(5 * i)
	vms := make([]reconcile.VM, crashVMs)
	for j := range vms {
		vms[j] = vmOf(fmt.Sprintf("vm-%d", j), fmt.Sprintf("wk-%d", j), nil)
	}
	nodes := make([]reconcile.Node, crashNodes)
	for j := range nodes {
		nodes[j] = nodeOf(fmt.Sprintf("node%04d", j), descOf(fmt.Sprintf("wk-%d", j), when.Add(-time.Minute), 2))
	}
	fs := []reconcile.Finding{finding(reconcile.KindNodeFlapping, reconcile.Warning, fmt.Sprintf("node%04d", i%crashNodes))}
	return world(when, vms, nodes, fs...)
}

// crashChild writes runs in a loop until it is killed.
func crashChild(path string) {
	s, err := Open(path, Options{Exclusive: true})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	deadline := time.Now().Add(60 * time.Second) // never outlive a dead parent for long
	for time.Now().Before(deadline) {
		last, _, _ := s.LastRun(context.Background())
		i := int(last.ID) + 1
		id, err := s.JournalIntent(context.Background(), JournalRecord{PlanID: "crash", VMRef: "vm-1", Action: "record", Reason: strconv.Itoa(i)})
		if err != nil {
			fmt.Println("intent:", err)
			os.Exit(2)
		}
		snap, res := crashWorld(i)
		d, err := s.RecordRunWith(context.Background(), snap, res, snap.CollectedAt.Add(-time.Minute), snap.CollectedAt, immediate)
		if err != nil {
			fmt.Println("record:", err)
			os.Exit(2)
		}
		fmt.Printf("committed %d\n", d.RunID)
		if err := s.JournalOutcome(context.Background(), id, "done", ""); err != nil {
			fmt.Println("outcome:", err)
			os.Exit(2)
		}
	}
	os.Exit(0)
}

// TestCrashMidWrite kills (SIGKILL) a child process writing runs in a loop,
// at a random moment, several times, and checks after each kill that the
// store opens (exclusively: the lock died with the child), passes
// integrity_check, holds every run the child reported committed, and holds
// no partial run.
func TestCrashMidWrite(t *testing.T) {
	if p := os.Getenv(crashChildEnv); p != "" {
		crashChild(p)
		return
	}
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	committed := 0
	for round := 0; round < 4; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashMidWrite$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		seen := 0
		for seen < 3 && sc.Scan() {
			line := sc.Text()
			n, ok := strings.CutPrefix(line, "committed ")
			if !ok {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("child: %s", line)
			}
			committed, _ = strconv.Atoi(n)
			seen++
		}
		if seen < 3 {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child stopped after %d commits: %v", seen, sc.Err())
		}
		// While the child runs, it holds the lock under its pid.
		_, err = Open(path, Options{Exclusive: true})
		var le *LockedError
		if !errors.As(err, &le) || le.PID != cmd.Process.Pid {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("exclusive open while the child runs: %v (child pid %d)", err, cmd.Process.Pid)
		}
		time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
		if err := cmd.Process.Signal(os.Kill); err != nil {
			t.Fatal(err)
		}
		for sc.Scan() { // commits reported between the sleep and the kill
			if n, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
				committed, _ = strconv.Atoi(n)
			}
		}
		cmd.Wait()

		s, err := Open(path, Options{Exclusive: true})
		if err != nil {
			t.Fatalf("round %d: open after SIGKILL: %v", round, err)
		}
		var ic string
		if err := s.db.QueryRow(`PRAGMA integrity_check`).Scan(&ic); err != nil || ic != "ok" {
			t.Fatalf("round %d: integrity_check %q, %v", round, ic, err)
		}
		last, ok, err := s.LastRun(ctx)
		if err != nil || !ok || int(last.ID) < committed {
			t.Fatalf("round %d: last run %d, child reported %d committed (%v)", round, last.ID, committed, err)
		}
		rows, err := s.db.Query(`SELECT r.id, (SELECT count(*) FROM node_observations o WHERE o.run_id = r.id) FROM runs r`)
		if err != nil {
			t.Fatal(err)
		}
		runs := 0
		for rows.Next() {
			var id, n int
			rows.Scan(&id, &n)
			if n != crashNodes {
				t.Fatalf("round %d: run %d has %d observations, want %d (partial transaction visible)", round, id, n, crashNodes)
			}
			runs++
		}
		rows.Close()
		if runs != int(last.ID) {
			t.Fatalf("round %d: %d runs, ids up to %d", round, runs, last.ID)
		}
		if n := count(t, s, `SELECT count(*) FROM vms`); n != crashVMs {
			t.Fatalf("round %d: %d VMs", round, n)
		}
		if n := count(t, s, `SELECT count(*) FROM findings WHERE resolved_at IS NULL`); n != 1 {
			t.Fatalf("round %d: %d open findings", round, n)
		}
		un, err := s.Unfinished(ctx)
		if err != nil || len(un) > round+1 {
			t.Fatalf("round %d: unfinished %+v, %v", round, un, err)
		}
		t.Logf("round %d: %d runs committed, %d unfinished intents", round, last.ID, len(un))
		s.Close()
	}
	t.Logf("reliability: store killed with SIGKILL mid-write %d times, PRAGMA integrity_check ok every time", 4)
}
