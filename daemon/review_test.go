package daemon

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/internal/dockersim"
	"github.com/vmreconcile/vmreconcile/reconcile"
	"github.com/vmreconcile/vmreconcile/store"
	"github.com/vmreconcile/vmreconcile/vsphere"
)

// TestShutdownCancelsDetectionAudit: SIGTERM while a detection-triggered
// audit runs must give it ShutdownTimeout and then cancel it, like a
// scheduled one; Run must not wait for the audit to finish on its own.
func TestShutdownCancelsDetectionAudit(t *testing.T) {
	t.Parallel()
	_, vcCfg := startVCSim(t, 0)
	eng := dockersim.New(dockersim.Options{Self: dockersim.NodeSpec{Hostname: "mgr", NanoCPUs: 2e9, MemoryBytes: 4 << 30}})
	if err := eng.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	cfg := baseConfig(t)
	cfg.VCenters = []config.VCenter{vcCfg}
	cfg.Swarms = []config.Swarm{{Name: "sim", Hosts: []string{eng.Host()}}}
	cfg.Observe.Window = time.Minute // every audit observes the swarm for a minute
	r := startDaemon(t, cfg, cfg.Store.Path, func(o *Options) {
		o.ShutdownTimeout = 500 * time.Millisecond
		o.Debounce = 10 * time.Millisecond
	})
	// The startup audit is running (a minute); a detected change queues a
	// detection audit behind it.
	r.d.requestAudit(trigger{source: "vsphere", reason: "test change", at: time.Now()})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(r.logs.String(), "change detected; auditing now") {
		if time.Now().After(deadline) {
			t.Fatal("the detection audit was not requested")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)

	start := time.Now()
	r.cancel()
	r.cancel = nil
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("Run did not return within 20 s of cancellation (grace 500 ms)")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Run returned %s after cancellation, want about the 500 ms grace", took.Round(time.Millisecond))
	}
	if err := r.st.Close(); err != nil {
		t.Error(err)
	}
}

// alertWorld records findings straight into a store for alerter tests.
func alertWorld(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func recordFindings(t *testing.T, st *store.Store, when time.Time, fs ...reconcile.Finding) {
	t.Helper()
	snap := reconcile.Snapshot{CollectedAt: when, VCenters: []string{"vc1"}}
	// These tests are about alert order: a finding resolves at its first
	// absence (store.ResolvePolicy{Runs: 1}); resolution is tested in store.
	if _, err := st.RecordRunWith(t.Context(), snap, reconcile.Result{Findings: fs}, when, when, store.RecordOptions{Resolve: store.ResolvePolicy{Runs: 1}}); err != nil {
		t.Fatal(err)
	}
}

// scriptedHook answers each POST with the next status of script (200 once
// the script is used up) and records the accepted deliveries.
type scriptedHook struct {
	*httptest.Server
	mu     sync.Mutex
	script []int
	got    []string // event + " " + delivery id
	delay  time.Duration
}

func newScriptedHook(t *testing.T) *scriptedHook {
	h := &scriptedHook{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		delay := h.delay
		h.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		if r.Context().Err() != nil {
			return // the client gave up
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		code := 200
		if len(h.script) > 0 {
			code, h.script = h.script[0], h.script[1:]
		}
		if code == 200 {
			h.got = append(h.got, r.Header.Get("X-Vmreconcile-Event")+" "+r.Header.Get("X-Vmreconcile-Delivery"))
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *scriptedHook) deliveries() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.got...)
}

func testAlerter(st *store.Store, url string, retries int, timeout time.Duration) *alerter {
	log := NewLogger(config.Log{Level: "error"}, nil)
	return newAlerter(config.Alerts{Webhooks: []config.Webhook{{URL: url, Retries: retries, Timeout: timeout}}}, &http.Client{}, 10*time.Millisecond,
		st, newMetrics(), log, time.Now)
}

// TestAlertEpisodesMarkedSeparately: two episodes of the same finding key
// pending at once (the webhook was down while the finding opened, resolved
// and came back). Delivering the first episode's opening must not mark the
// second's as sent: when the second's delivery fails it stays pending and
// goes out on the next flush.
func TestAlertEpisodesMarkedSeparately(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := alertWorld(t)
	f := reconcile.Finding{Kind: reconcile.KindSharedNodeID, Severity: reconcile.Critical, NodeID: "n1", VMRefs: []string{"vm-1", "vm-2"}}
	t0 := time.Now().Add(-time.Hour)
	recordFindings(t, st, t0, f)                    // episode 1 opens
	recordFindings(t, st, t0.Add(time.Minute))      // and resolves
	recordFindings(t, st, t0.Add(2*time.Minute), f) // episode 2 opens
	eps, err := st.FindingEpisodes(ctx, f.Key())
	if err != nil || len(eps) != 2 {
		t.Fatalf("episodes: %+v %v", eps, err)
	}

	hook := newScriptedHook(t)
	// The first delivery (episode 1's opening) succeeds, the second fails.
	a := testAlerter(st, hook.URL, 0, time.Second)
	hook.script = []int{200, 503}
	_ = a.flush(ctx)
	hook.mu.Lock()
	hook.script = nil
	hook.mu.Unlock()
	if err := a.flush(ctx); err != nil {
		t.Fatalf("second flush: %v", err)
	}
	want := []string{
		"opened " + deliveryID(eps[0], EventOpened),
		"resolved " + deliveryID(eps[0], EventResolved),
		"opened " + deliveryID(eps[1], EventOpened),
	}
	got := hook.deliveries()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("deliveries = %v, want %v", got, want)
	}
	if open, res, _ := st.PendingAlerts(ctx); len(open)+len(res) != 0 {
		t.Fatalf("still pending: %d opened, %d resolved", len(open), len(res))
	}
}

// TestAlertEpisodesInOrder: when a finding resolved and then came back while
// the webhook was down, the earlier episode's resolution goes out before the
// later episode's opening, so that a receiver folding alerts by key ends up
// with the finding open.
func TestAlertEpisodesInOrder(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := alertWorld(t)
	f := reconcile.Finding{Kind: reconcile.KindSharedNodeID, Severity: reconcile.Critical, NodeID: "n1", VMRefs: []string{"vm-1", "vm-2"}}
	t0 := time.Now().Add(-time.Hour)
	hook := newScriptedHook(t)
	a := testAlerter(st, hook.URL, 0, time.Second)
	recordFindings(t, st, t0, f)
	if err := a.flush(ctx); err != nil { // episode 1 opening delivered
		t.Fatal(err)
	}
	hook.mu.Lock()
	hook.script = []int{503, 503, 503, 503}
	hook.mu.Unlock()
	recordFindings(t, st, t0.Add(time.Minute)) // resolves: not delivered
	_ = a.flush(ctx)
	recordFindings(t, st, t0.Add(2*time.Minute), f) // episode 2: not delivered
	_ = a.flush(ctx)
	hook.mu.Lock()
	hook.script = nil
	hook.mu.Unlock()
	if err := a.flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := hook.deliveries()
	if len(got) != 3 || !strings.HasPrefix(got[1], "resolved ") || !strings.HasPrefix(got[2], "opened ") {
		t.Fatalf("deliveries = %v, want opened, then the resolution of episode 1 before the opening of episode 2", got)
	}
}

// TestAlertSlowWebhookBounded: a webhook that times out is not retried for
// every pending alert in the same flush: one alert's retries show it is down,
// the rest stay pending for the next flush. Otherwise a slow receiver holds
// the audit (and the audit lock) for len(pending) x retries x timeout.
func TestAlertSlowWebhookBounded(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := alertWorld(t)
	var fs []reconcile.Finding
	for i := range 8 {
		fs = append(fs, reconcile.Finding{Kind: reconcile.KindSharedNodeID, Severity: reconcile.Critical, NodeID: "n" + itoa(int64(i)), VMRefs: []string{"vm-1"}})
	}
	recordFindings(t, st, time.Now(), fs...)
	hook := newScriptedHook(t)
	hook.delay = 2 * time.Second
	a := testAlerter(st, hook.URL, 1, 150*time.Millisecond)
	start := time.Now()
	if err := a.flush(ctx); err == nil {
		t.Fatal("flush to a hanging webhook succeeded")
	}
	// One alert: 2 attempts x 150 ms + 10 ms backoff. All eight: 2.5 s.
	if took := time.Since(start); took > time.Second {
		t.Errorf("flush to a hanging webhook took %s for 8 alerts, want it to give up on the webhook after one", took.Round(time.Millisecond))
	}
	hook.mu.Lock()
	hook.delay = 0
	hook.mu.Unlock()
	if err := a.flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A POST the client timed out on may still have reached the receiver
	// (at-least-once): count distinct deliveries.
	distinct := map[string]bool{}
	for _, d := range hook.deliveries() {
		distinct[d] = true
	}
	if len(distinct) != 8 {
		t.Fatalf("%d distinct deliveries after the webhook recovered, want 8: %v", len(distinct), hook.deliveries())
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestVCenterReconnectDiffsState: a VM cloned while the vCenter change
// stream was down triggers an audit when the stream comes back (the mirror
// re-syncs and reports what changed meanwhile), while VMs that did not change
// trigger nothing; and audits read the mirror.
func TestVCenterReconnectDiffsState(t *testing.T) {
	t.Parallel()
	vc, vcCfg := startVCSim(t, 0)
	wkRef := simVMs(t, vc)
	cfg := baseConfig(t)
	cfg.VCenters = []config.VCenter{vcCfg}
	st := alertWorld(t)
	logs := &syncBuffer{}
	d, err := New(Options{Config: cfg, Store: st, Logger: NewLogger(config.Log{Format: "json", Level: "debug"}, logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.closeSources)
	v := d.src.VCenters()[0]
	follow := func() (stop func()) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			connected := false
			_ = d.followVCenter(ctx, v, &connected)
		}()
		return func() { cancel(); <-done }
	}

	stop := follow()
	waitLive := func() vsphere.MirrorSnapshot {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		for v.Mirror() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		snap, err := v.Mirror().Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	if snap := waitLive(); len(snap.VMs) != 2 {
		t.Fatalf("mirror has %d VMs, want the two", len(snap.VMs))
	}
	stop()
	if len(d.detect) != 0 {
		t.Fatalf("the initial state triggered %d audits", len(d.detect))
	}

	cloneSimVM(t, vc, wkRef) // while nobody watches
	stop = follow()
	defer stop()
	select {
	case tr := <-d.detect:
		if !strings.HasPrefix(tr.reason, "new VM ") {
			t.Errorf("trigger %q, want a new VM", tr.reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a VM cloned while the stream was down triggered nothing after the reconnect")
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(d.detect); n != 0 {
		t.Errorf("%d more triggers after the reconnect, want none (the other VMs did not change)", n)
	}
	snap := waitLive()
	if snap.Resyncs != 1 || len(snap.VMs) != 3 {
		t.Errorf("after the reconnect: %d re-syncs, %d VMs; want 1 and 3", snap.Resyncs, len(snap.VMs))
	}
	// An audit reads the mirror: the clone and its lineage are in the run.
	out, err := d.collect(t.Context(), time.Now(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var withLineage int
	for _, vm := range out.Snapshot.VMs {
		if vm.Lineage != nil && vm.Lineage.SourceRef == wkRef {
			withLineage++
		}
	}
	if len(out.Snapshot.VMs) != 3 || withLineage != 1 {
		t.Errorf("audit over the mirror: %d VMs, %d with the clone's lineage; want 3 and 1", len(out.Snapshot.VMs), withLineage)
	}
}

// TestCheckVanished: a vCenter that had VMs and suddenly reports none (lost
// permissions, a bad include pattern) must not be recorded as a run: it
// would resolve every open finding. After a restart the store's last run is
// the baseline.
func TestCheckVanished(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	vms := func(vc string, n int) reconcile.Snapshot {
		s := reconcile.Snapshot{VCenters: []string{vc}, CollectedAt: time.Now()}
		for i := range n {
			s.VMs = append(s.VMs, reconcile.VM{VCenter: vc, Name: fmt.Sprintf("vm%d", i), Ref: fmt.Sprintf("vm-%d", i), Path: fmt.Sprintf("/DC0/vm/vm%d", i)})
		}
		return s
	}
	d := &Daemon{st: st}
	if err := d.checkVanished(ctx, vms("vc1", 0)); err != nil {
		t.Fatalf("first run with no VMs: %v", err)
	}
	if err := d.checkVanished(ctx, vms("vc1", 3)); err != nil {
		t.Fatalf("3 VMs: %v", err)
	}
	err = d.checkVanished(ctx, vms("vc1", 0))
	if err == nil || !strings.Contains(err.Error(), "vcenter vc1 returned no VMs, 3 in the last recorded run") {
		t.Fatalf("vanished inventory: %v", err)
	}
	// A restarted daemon takes the baseline from the store.
	snap := vms("vc1", 5)
	if _, err := st.RecordRun(ctx, snap, reconcile.Reconcile(snap, reconcile.History{}), time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	d = &Daemon{st: st}
	if err := d.checkVanished(ctx, vms("vc1", 0)); err == nil || !strings.Contains(err.Error(), "5 in the last recorded run") {
		t.Fatalf("after restart: %v", err)
	}
}

func TestDetectionLookback(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name       string
		configured time.Duration
		since      time.Time
		want       time.Duration
	}{
		{"scheduled run", 10 * time.Minute, time.Time{}, 10 * time.Minute},
		{"recent trigger within the window", 10 * time.Minute, now.Add(-time.Minute), 10 * time.Minute},
		{"trigger older than the window", 15 * time.Second, now.Add(-time.Minute), 90 * time.Second},
		{"manager clock hours behind: capped", 15 * time.Second, now.Add(-5 * time.Hour), time.Hour},
		{"configured above the cap stays", 2 * time.Hour, now.Add(-5 * time.Hour), 2 * time.Hour},
	}
	for _, tc := range cases {
		if got := detectionLookback(tc.configured, now, tc.since); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
