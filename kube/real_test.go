package kube

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vmreconcile/vmreconcile/kubetest"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

// TestObserveRealAPIServer runs Observe against a real kube-apiserver (on
// Debian's etcd, see kubetest). Nodes are written by kubetest's test agents,
// which write Node status as kubelet's node-status loop does; they are test
// agents, not real kubelets.
func TestObserveRealAPIServer(t *testing.T) {
	s := kubetest.NewServer(t, kubetest.Options{})
	cs, err := s.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	isolate(t)
	t.Setenv("KUBECONFIG", s.Kubeconfig) // reached as kubectl would reach it
	c, err := NewClient(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "kubetest" || c.Server() != strings.TrimPrefix(s.URL, "https://") {
		t.Fatalf("client = %s, server %s", c, s.URL)
	}
	agent := func(t *testing.T, node, boot string, cpus int64) kubetest.AgentOptions {
		return kubetest.AgentOptions{Node: node, BootID: boot, SystemUUID: "uuid-" + boot, MachineID: "machine-" + boot,
			CPUs: cpus, MemoryBytes: cpus << 30, InternalIP: "10.2.0.1",
			Period: 300 * time.Millisecond, ReportPeriod: time.Second}
	}

	t.Run("healthy", func(t *testing.T) {
		a := s.Agent(t, agent(t, "healthy-1", "boot-h1", 4)).Options()
		b := s.Agent(t, agent(t, "healthy-2", "boot-h2", 2)).Options()
		awaitBoot(t, cs, "healthy-1", "boot-h1")
		awaitBoot(t, cs, "healthy-2", "boot-h2")
		cl, err := Observe(t.Context(), c, ObserveOptions{Window: 3 * time.Second, Interval: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if cl.Name != "kubetest" || cl.Server != c.Server() || cl.Samples < 4 || !cl.ObservedTo.After(cl.ObservedFrom.Add(10*time.Minute)) {
			t.Errorf("cluster = %s %s samples=%d from %v to %v", cl.Name, cl.Server, cl.Samples, cl.ObservedFrom, cl.ObservedTo)
		}
		for _, o := range []kubetest.AgentOptions{a, b} {
			n := node(t, cl, o.Node)
			if len(n.Identities) != 1 || n.Flips() != 0 {
				t.Fatalf("%s: identities %+v, flips %d", o.Node, n.Identities, n.Flips())
			}
			id := n.Identities[0]
			want := reconcile.KubeIdentity{BootID: o.BootID, MachineID: o.MachineID, SystemUUID: o.SystemUUID,
				KernelVersion: o.KernelVersion, KubeletVersion: o.KubeletVersion, CPUs: o.CPUs, MemoryBytes: o.MemoryBytes,
				InternalIP: o.InternalIP, Hostname: o.Node}
			got := id
			got.FirstSeen, got.LastSeen, got.Seen = time.Time{}, time.Time{}, 0
			if got != want {
				t.Errorf("%s: identity\n got %+v\nwant %+v", o.Node, got, want)
			}
			// Lists at 0, 1, 2, 3 s and the heartbeats in between.
			if id.Seen < 5 || n.Ready != "True" || n.UID == "" {
				t.Errorf("%s: seen %d, ready %q, uid %q", o.Node, id.Seen, n.Ready, n.UID)
			}
			if reasons(n) != "Starting" {
				t.Errorf("%s: events %+v", o.Node, n.Events)
			}
		}
	})

	t.Run("seed story", func(t *testing.T) {
		// The original and its clone write the same Node: different boot
		// IDs, BIOS UUIDs and CPU counts.
		s.Agent(t, agent(t, "seed-1", "boot-orig", 4))
		awaitBoot(t, cs, "seed-1", "boot-orig")
		s.Agent(t, agent(t, "seed-1", "boot-clone", 8))
		cl, err := Observe(t.Context(), c, ObserveOptions{Window: 4 * time.Second, Interval: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		n := node(t, cl, "seed-1")
		byBoot := map[string]reconcile.KubeIdentity{}
		for _, id := range n.Identities {
			byBoot[id.BootID] = id
		}
		orig, clone := byBoot["boot-orig"], byBoot["boot-clone"]
		if len(n.Identities) != 2 || orig.CPUs != 4 || clone.CPUs != 8 || orig.SystemUUID != "uuid-boot-orig" ||
			clone.SystemUUID != "uuid-boot-clone" || orig.EventsOnly || clone.EventsOnly {
			t.Fatalf("identities = %+v", n.Identities)
		}
		if n.Flips() < 2 || !alternates(n) {
			t.Errorf("flips = %d, timeline %+v", n.Flips(), n.Timeline)
		}
		for _, boot := range []string{"boot-orig", "boot-clone"} {
			if !hasRebooted(n, boot) {
				t.Errorf("no Rebooted event naming %s: %+v", boot, n.Events)
			}
		}
	})

	t.Run("lookback replay", func(t *testing.T) {
		// Both writers ran, and stopped, before Observe: only their events
		// tell that the Node was shared.
		a, err := kubetest.StartAgent(t.Context(), cs, agent(t, "replay-1", "boot-r1", 4))
		if err != nil {
			t.Fatal(err)
		}
		awaitBoot(t, cs, "replay-1", "boot-r1")
		b, err := kubetest.StartAgent(t.Context(), cs, agent(t, "replay-1", "boot-r2", 8))
		if err != nil {
			t.Fatal(err)
		}
		kubetest.Eventually(t, 20*time.Second, "both Rebooted events stored", func() bool {
			return len(rebootedEvents(t, cs, "replay-1")) == 2
		})
		a.Stop()
		b.Stop()
		start := time.Now()
		cl, err := Observe(t.Context(), c, ObserveOptions{}) // one list, 10m of events
		if err != nil {
			t.Fatal(err)
		}
		n := node(t, cl, "replay-1")
		if !hasRebooted(n, "boot-r1") || !hasRebooted(n, "boot-r2") {
			t.Fatalf("events = %+v", n.Events)
		}
		for _, e := range n.Events {
			if e.Reason == ReasonRebooted && (!e.First.Before(start) || e.Source != "kubelet, replay-1" || e.Type != "Warning") {
				t.Errorf("replayed event %+v (observe started %v)", e, start)
			}
		}
		if len(n.Identities) != 2 || n.Flips() < 1 {
			t.Errorf("identities %+v, timeline %+v", n.Identities, n.Timeline)
		}
		var eventsOnly int
		for _, id := range n.Identities {
			if id.EventsOnly {
				eventsOnly++
			}
		}
		if eventsOnly != 1 {
			t.Errorf("want the writer the list did not show as events-only: %+v", n.Identities)
		}
		// Without a lookback, events from before the run are not replayed.
		cl, err = Observe(t.Context(), c, ObserveOptions{Lookback: -1})
		if err != nil {
			t.Fatal(err)
		}
		if n := node(t, cl, "replay-1"); len(n.Events) != 0 || len(n.Identities) != 1 {
			t.Errorf("no lookback: events %+v, identities %+v", n.Events, n.Identities)
		}
	})

	t.Run("system uuid byte orders", func(t *testing.T) {
		// The same BIOS UUID as Linux shows it on old and on new VM
		// hardware: the first three fields byte-swapped. Observe reports
		// what the Node says; matching both orders is the rules' job.
		le, be := "C9E01642-0E7A-5B5C-2D1B-6E3F3A4B5C6D", "4216e0c9-7a0e-5c5b-2d1b-6e3f3a4b5c6d"
		old := s.Agent(t, kubetest.AgentOptions{Node: "uuid-old-hw", SystemUUID: le, Period: 300 * time.Millisecond})
		cur := s.Agent(t, kubetest.AgentOptions{Node: "uuid-new-hw", SystemUUID: be, Period: 300 * time.Millisecond})
		awaitBoot(t, cs, "uuid-old-hw", old.Options().BootID)
		awaitBoot(t, cs, "uuid-new-hw", cur.Options().BootID)
		cl, err := Observe(t.Context(), c, ObserveOptions{Lookback: -1})
		if err != nil {
			t.Fatal(err)
		}
		if got := node(t, cl, "uuid-old-hw").Identities[0].SystemUUID; got != le {
			t.Errorf("old hardware systemUUID = %q, want %q as written", got, le)
		}
		if got := node(t, cl, "uuid-new-hw").Identities[0].SystemUUID; got != be {
			t.Errorf("new hardware systemUUID = %q, want %q as written", got, be)
		}
	})

	t.Run("expired watch", func(t *testing.T) {
		// A watch from a resourceVersion the server no longer keeps (etcd
		// compacted it away) is answered 410 Gone; the observer lists
		// again and watches on. The watch cache keeps the whole short
		// history of a test server, so this one watches etcd directly.
		s := kubetest.NewServer(t, kubetest.Options{ExtraArgs: []string{"--watch-cache=false"}})
		cs, err := s.Clientset()
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		// relisted closes when the answer to the relist has arrived: the
		// server read the Nodes before it answered, so every later write
		// is newer than the list's resourceVersion and can reach the
		// observer only by the watch resumed from there.
		relisted := make(chan struct{})
		var once sync.Once
		cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				resp, err := rt.RoundTrip(r)
				if err == nil && r.URL.Path == "/api/v1/nodes" && r.URL.Query().Get("watch") == "" {
					once.Do(func() { close(relisted) })
				}
				return resp, err
			})
		}
		c, err := NewClientFromConfig("kubetest", cfg, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		s.Agent(t, agent(t, "expire-1", "boot-e1", 2))
		awaitBoot(t, cs, "expire-1", "boot-e1")
		if err := s.CompactEtcd(t.Context()); err != nil {
			t.Fatal(err)
		}
		// A second writer (a clone) starts after the relist; its first
		// status write follows at once.
		clone := make(chan *kubetest.Agent, 1)
		go func() {
			defer close(clone)
			select {
			case <-relisted:
			case <-t.Context().Done():
				return
			}
			a, err := kubetest.StartAgent(t.Context(), cs, agent(t, "expire-1", "boot-e2", 4))
			if err != nil {
				t.Error(err)
				return
			}
			clone <- a
		}()
		o := &observer{c: c, now: time.Now}
		err = o.watchWindow(t.Context(), "1", 3*time.Second, time.Hour)
		if a, ok := <-clone; ok {
			a.Stop()
		}
		if err != nil {
			t.Fatal(err)
		}
		var lists, watches []string
		for _, ob := range o.obs {
			if ob.Node == "expire-1" {
				switch ob.Source {
				case SourceList:
					lists = append(lists, ob.BootID)
				case SourceWatch:
					watches = append(watches, ob.BootID)
				}
			}
		}
		// The relist after 410 (before the clone wrote), the last list,
		// and the clone's write by watch: the watch resumed from the
		// relist.
		if len(lists) != 2 || lists[0] != "boot-e1" || !slices.Contains(watches, "boot-e2") {
			t.Errorf("expire-1 sightings: lists %v, watch events %v (want the relist with boot-e1, the last list, and boot-e2 by watch)", lists, watches)
		}
	})

	t.Run("unauthorized", func(t *testing.T) {
		b, err := os.ReadFile(s.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		bad := filepath.Join(t.TempDir(), "kubeconfig")
		os.WriteFile(bad, []byte(strings.ReplaceAll(string(b), s.Token, "wrong-"+secretToken)), 0o600)
		bc, err := NewClient(Options{Kubeconfig: bad, Name: "prod"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = Observe(t.Context(), bc, ObserveOptions{})
		if err == nil {
			t.Fatal("observed with a wrong token")
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "kubernetes prod (context kubetest, "+c.Server()+"): node list: ") || !strings.Contains(msg, "Unauthorized") || strings.Contains(msg, "\n") {
			t.Errorf("error = %q", msg)
		}
		noSecret(t, msg)
	})
}

func awaitBoot(t *testing.T, cs kubernetes.Interface, name, boot string) {
	t.Helper()
	kubetest.Eventually(t, 20*time.Second, name+" written with boot ID "+boot, func() bool {
		n, err := cs.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
		return err == nil && n.Status.NodeInfo.BootID == boot
	})
}

func rebootedEvents(t *testing.T, cs kubernetes.Interface, name string) []string {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	l, err := cs.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name + ",reason=Rebooted"})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range l.Items {
		msgs = append(msgs, e.Message)
	}
	return msgs
}

func node(t *testing.T, cl reconcile.KubeCluster, name string) reconcile.KubeNode {
	t.Helper()
	for _, n := range cl.Nodes {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("no Node %s in %d nodes", name, len(cl.Nodes))
	return reconcile.KubeNode{}
}

func reasons(n reconcile.KubeNode) string {
	var rs []string
	for _, e := range n.Events {
		if !slices.Contains(rs, e.Reason) {
			rs = append(rs, e.Reason)
		}
	}
	return strings.Join(rs, ",")
}

func hasRebooted(n reconcile.KubeNode, boot string) bool {
	for _, e := range n.Events {
		if e.Reason == ReasonRebooted && RebootedBootID(e.Message) == boot {
			return true
		}
	}
	return false
}

// alternates reports whether the timeline goes back to an identity it left
// (x, y, x): alternation rather than one change.
func alternates(n reconcile.KubeNode) bool {
	left := map[int]bool{}
	for i := 1; i < len(n.Timeline); i++ {
		left[n.Timeline[i-1].Description] = true
		if left[n.Timeline[i].Description] {
			return true
		}
	}
	return false
}

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
