package kubesim_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/internal/kubesim"
	"github.com/vmreconcile/vmreconcile/kube"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

func start(t testing.TB, opts kubesim.Options) (*kubesim.Server, *kube.Client) {
	t.Helper()
	s := kubesim.New(opts)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	path, err := s.Kubeconfig(t.TempDir(), "sim")
	if err != nil {
		t.Fatal(err)
	}
	c, err := kube.NewClient(kube.Options{Kubeconfig: path})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func find(t testing.TB, cl reconcile.KubeCluster, name string) reconcile.KubeNode {
	t.Helper()
	for _, n := range cl.Nodes {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("no Node %s among %d", name, len(cl.Nodes))
	return reconcile.KubeNode{}
}

func rebootedBoots(n reconcile.KubeNode) []string {
	var boots []string
	for _, e := range n.Events {
		if e.Reason == kube.ReasonRebooted {
			boots = append(boots, kube.RebootedBootID(e.Message))
		}
	}
	return boots
}

// TestObserveSim runs the same Observe as against the real API server: a
// shared Node flapping live, one whose story is only in past events, and
// healthy Nodes.
func TestObserveSim(t *testing.T) {
	s, c := start(t, kubesim.Options{})
	healthy := s.Populate(3, "w")
	orig := kubesim.RandomIdentity("shared", "10.0.0.9")
	clone := orig
	clone.BootID, clone.SystemUUID, clone.CPUs = "clone-boot", "clone-uuid", 8
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := s.Flap(ctx, "shared", []kubesim.Identity{orig, clone}, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	past := []kubesim.Identity{kubesim.RandomIdentity("old", "10.0.0.8"), kubesim.RandomIdentity("old", "10.0.0.8")}
	s.Write("old", past[0])
	s.Backfill("old", past, time.Now().Add(-8*time.Minute), time.Now().Add(-2*time.Minute))

	cl, err := kube.Observe(t.Context(), c, kube.ObserveOptions{Window: 1500 * time.Millisecond, Interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if cl.Name != "sim" || !strings.HasPrefix(s.URL(), "https://"+cl.Server) || cl.Samples < 10 {
		t.Errorf("cluster %s %s, samples %d", cl.Name, cl.Server, cl.Samples)
	}
	sh := find(t, cl, "shared")
	if len(sh.Identities) != 2 || sh.Flips() < 4 {
		t.Errorf("shared: identities %+v, flips %d", sh.Identities, sh.Flips())
	}
	if got := rebootedBoots(sh); len(got) != 2 {
		t.Errorf("shared: Rebooted boot IDs %v", got)
	}
	old := find(t, cl, "old")
	if len(old.Identities) != 2 || !old.Identities[1].EventsOnly || old.Identities[1].BootID != past[1].BootID {
		t.Errorf("old: identities %+v", old.Identities)
	}
	for _, name := range healthy {
		if n := find(t, cl, name); len(n.Identities) != 1 || n.Flips() != 0 || n.Ready != "True" {
			t.Errorf("%s: %+v", name, n)
		}
	}
}

func TestObserveSimExpiredWatch(t *testing.T) {
	s, c := start(t, kubesim.Options{})
	id := kubesim.RandomIdentity("n1", "10.0.0.1")
	s.Write("n1", id)
	// Start just after a second begins: the change below is written at
	// about .5 and its Rebooted event keeps whole seconds (.0, before the
	// first list), so the watch sample it snaps onto falls in the same
	// second with half a second to spare, not by luck.
	time.Sleep(time.Second + 10*time.Millisecond - time.Duration(time.Now().Nanosecond()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(300 * time.Millisecond)
		s.Expire() // the open watch gets 410
		time.Sleep(200 * time.Millisecond)
		next := id
		next.BootID = "after-expiry"
		s.Write("n1", next) // after the relist: seen by the resumed watch
	}()
	// The window ends 700ms after the 410: the watch must resume at once
	// after the relist (an observer that paused a second there saw the
	// change only in the last list).
	cl, err := kube.Observe(t.Context(), c, kube.ObserveOptions{Window: time.Second, Interval: time.Hour})
	<-done
	if err != nil {
		t.Fatal(err)
	}
	n := find(t, cl, "n1")
	if len(n.Identities) != 2 || n.Identities[0].BootID != id.BootID || n.Identities[1].BootID != "after-expiry" {
		t.Fatalf("identities %+v", n.Identities)
	}
	// First list, the relist after 410, the watch event, the last list;
	// the change is first seen by the watch (its Rebooted event snapped
	// onto that sample).
	want := []string{kube.SourceList, kube.SourceWatch}
	var got []string
	for _, sg := range n.Timeline {
		got = append(got, sg.Source)
	}
	if !slices.Equal(got, want) || cl.Samples != 4 {
		t.Errorf("timeline %+v, samples %d (want the change by watch after the relist)", n.Timeline, cl.Samples)
	}
}

func TestObserveSimEventFallbacks(t *testing.T) {
	for _, forbidden := range [][]string{
		{"/api/v1/events"},
		{"/api/v1/events", "/apis/events.k8s.io/v1/events"},
		{"/api/v1/events", "/apis/events.k8s.io/v1/events", "/api/v1/namespaces/default/events"},
	} {
		t.Run(fmt.Sprint(len(forbidden)), func(t *testing.T) {
			s, c := start(t, kubesim.Options{Forbidden: forbidden})
			a, b := kubesim.RandomIdentity("n", "10.0.0.1"), kubesim.RandomIdentity("n", "10.0.0.1")
			s.Write("n", a)
			s.Write("n", b)
			cl, err := kube.Observe(t.Context(), c, kube.ObserveOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := rebootedBoots(find(t, cl, "n")); len(got) != 1 || got[0] != b.BootID {
				t.Errorf("Rebooted boot IDs %v, want [%s]", got, b.BootID)
			}
		})
	}
	s, c := start(t, kubesim.Options{Forbidden: []string{"/api/v1/events", "/apis/events.k8s.io/v1/events",
		"/api/v1/namespaces/default/events", "/apis/events.k8s.io/v1/namespaces/default/events"}})
	s.Populate(1, "n")
	_, err := kube.Observe(t.Context(), c, kube.ObserveOptions{})
	if err == nil || !strings.Contains(err.Error(), "kubernetes sim (") || !strings.Contains(err.Error(), "node events: ") || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("all event lists forbidden: err = %v", err)
	}
}

func TestObserveSimPaging(t *testing.T) {
	s, c := start(t, kubesim.Options{})
	s.Populate(1234, "n")
	cl, err := kube.Observe(t.Context(), c, kube.ObserveOptions{Lookback: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(cl.Nodes) != 1234 || cl.Nodes[0].Name != "n-0000" || cl.Nodes[1233].Name != "n-1233" || cl.Samples != 1 {
		t.Errorf("%d nodes, samples %d", len(cl.Nodes), cl.Samples)
	}
}

func TestSimUnauthorized(t *testing.T) {
	s := kubesim.New(kubesim.Options{})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cfg := s.RESTConfig()
	cfg.BearerToken = "wrong"
	c, err := kube.NewClientFromConfig("sim", cfg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = kube.Observe(t.Context(), c, kube.ObserveOptions{})
	if err == nil || !strings.Contains(err.Error(), "node list: Unauthorized") {
		t.Errorf("err = %v", err)
	}
}

// BenchmarkObserveSim5000 lists 5000 Nodes and replays their events: the
// cost of one Observe without a window on a large cluster.
func BenchmarkObserveSim5000(b *testing.B) {
	s, c := start(b, kubesim.Options{})
	s.Populate(5000, "n")
	for b.Loop() {
		if _, err := kube.Observe(b.Context(), c, kube.ObserveOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
