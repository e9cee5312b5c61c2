package daemon

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/store"
)

const crashChildEnv = "VMRECONCILE_DAEMON_CRASH_CHILD"

// TestDaemonKill9MidRun kills (SIGKILL) a daemon process in the middle of
// audits several times and checks that the store then opens exclusively
// (the lock died with the process), reads cleanly, and that a new daemon
// records runs on it.
func TestDaemonKill9MidRun(t *testing.T) {
	if p := os.Getenv(crashChildEnv); p != "" {
		crashChild(t, p)
		return
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	for i, wait := range []time.Duration{1500 * time.Millisecond, 2300 * time.Millisecond, 3100 * time.Millisecond} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDaemonKill9MidRun$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(wait)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()

		st, err := store.Open(path, store.Options{Exclusive: true})
		if err != nil {
			t.Fatalf("kill %d: store does not open after kill -9: %v\nchild:\n%s", i, err, tail(out.String(), 20))
		}
		runs, err := st.Runs(context.Background(), 0)
		if err != nil {
			t.Fatalf("kill %d: runs: %v", i, err)
		}
		if _, err := st.History(context.Background(), time.Time{}); err != nil {
			t.Fatalf("kill %d: history: %v", i, err)
		}
		if _, err := st.OpenFindings(context.Background()); err != nil {
			t.Fatalf("kill %d: findings: %v", i, err)
		}
		t.Logf("kill %d after %s: %d runs recorded so far", i, wait, len(runs))
		if i == 2 && len(runs) == 0 {
			t.Errorf("no run recorded by the killed daemons: the kills did not land mid-run\nchild:\n%s", tail(out.String(), 20))
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("reliability: daemon killed with SIGKILL mid-run 3 times, store reopened and consistent every time")
}

// crashChild runs a daemon with slow audits back to back until killed.
func crashChild(t *testing.T, path string) {
	model, vc, vcCfg := vcsimModel(t)
	simVMs(t, vc)
	slowVCSim(model, 300) // each audit takes a while: kills land mid-run
	cfg := baseConfig(t)
	cfg.VCenters = []config.VCenter{vcCfg}
	cfg.Schedules.Audit = "@every 1s"
	cfg.Store.Path = path
	st, err := store.Open(path, store.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{Config: cfg, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = d.Run(ctx)
}
