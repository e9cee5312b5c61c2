package daemon

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/vmreconcile/vmreconcile/store"
)

// sourceRestarts remembers when each swarm's node event stream came back
// after it was lost: the manager may have restarted (kill -9, reboot,
// upgrade) and lost its event history, or the daemon failed over to
// another manager, which has a history of its own. Until the configured
// lookback has passed since then, a run's event replay does not cover the
// whole window, and its first samples may show one identity where a clone
// and its original take turns: such a run is partial and resolves nothing.
type sourceRestarts struct {
	mu sync.Mutex
	at map[string]time.Time
}

// note records that source label's stream came back at t.
func (r *sourceRestarts) note(label string, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at == nil {
		r.at = map[string]time.Time{}
	}
	r.at[label] = t
}

// within returns, sorted, the sources whose stream came back less than
// window before t, with how long before.
func (r *sourceRestarts) within(t time.Time, window time.Duration) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for label, at := range r.at {
		if age := t.Sub(at); age < window {
			out = append(out, fmt.Sprintf("%s: event stream reconnected %s before the run (a manager restart or failover loses event history)",
				label, max(age, 0).Round(time.Second)))
		}
	}
	sort.Strings(out)
	return out
}

// recordOptions are the store options of a run that started at started:
// the configured resolution policy (findings.resolve_runs/resolve_after),
// and Partial when a swarm's event history may not cover the run's
// lookback.
func (d *Daemon) recordOptions(started time.Time) store.RecordOptions {
	opts := store.RecordOptions{Resolve: store.ResolvePolicy{Runs: d.cfg.Findings.ResolveRuns, After: d.cfg.Findings.ResolveAfter}}
	if opts.Resolve.Runs < 1 {
		opts.Resolve = store.ResolvePolicy{} // the store's default
	}
	if why := d.restarts.within(started, d.historyWindow()); len(why) > 0 {
		opts.Partial = why[0]
		if len(why) > 1 {
			opts.Partial += fmt.Sprintf(" (and %d more)", len(why)-1)
		}
	}
	return opts
}

// logAbsent logs the open findings a run did not report and did not
// resolve: how far their absence is from resolving them.
func (d *Daemon) logAbsent(diff store.RunDiff) {
	for _, f := range diff.Absent {
		if f.AbsentRuns == 0 {
			d.log.Info("finding not reported by a partial run; it stays open", "kind", f.Kind, "node_id", f.NodeID)
			continue
		}
		d.log.Info("finding not reported; it stays open until its absence is confirmed", "kind", f.Kind, "node_id", f.NodeID,
			"absent_runs", f.AbsentRuns, "absent_since", f.AbsentSince, "resolve_runs", d.cfg.Findings.ResolveRuns,
			"resolve_after", d.cfg.Findings.ResolveAfter)
	}
}
