package kube

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func sample(s int, source, node, boot string, cpus int64) Observation {
	return Observation{Time: at(s), Node: node, Source: source, BootID: boot, UID: "uid-" + node,
		SystemUUID: "uuid-" + boot, MachineID: "m-" + boot, CPUs: cpus, MemoryBytes: cpus << 30,
		KernelVersion: "6.1.0", KubeletVersion: "v1.37.2", InternalIP: "10.0.0.1", Hostname: node, Ready: "True"}
}

func rebooted(node, boot string, first, last, count int) NodeEvent {
	return NodeEvent{Node: node, KubeEvent: reconcile.KubeEvent{
		Reason: ReasonRebooted, Type: "Warning", Count: count, Source: "kubelet, " + node,
		Message: "Node " + node + " has been rebooted, boot id: " + boot, First: at(first), Last: at(last),
	}}
}

// TestBuildNodesSharedNode is the seed story in miniature: two kubelets write
// worker-1 in turn, and each recorded Rebooted naming its own boot ID.
func TestBuildNodesSharedNode(t *testing.T) {
	obs := []Observation{
		sample(0, SourceList, "worker-1", "boot-a", 4),
		sample(10, SourceWatch, "worker-1", "boot-b", 8),
		sample(20, SourceWatch, "worker-1", "boot-a", 4),
		sample(30, SourceWatch, "worker-1", "boot-b", 8),
		sample(0, SourceList, "worker-2", "boot-c", 2),
	}
	evs := []NodeEvent{
		rebooted("worker-1", "boot-b", 9, 9, 1),
		rebooted("worker-1", "boot-a", 19, 19, 1),
		{Node: "worker-1", KubeEvent: reconcile.KubeEvent{Reason: ReasonStarting, Type: "Normal", Message: "Starting kubelet.", First: at(-5), Last: at(-5), Count: 1}},
	}
	nodes := BuildNodes(obs, evs)
	if len(nodes) != 2 || nodes[0].Name != "worker-1" || nodes[1].Name != "worker-2" {
		t.Fatalf("nodes = %+v", nodes)
	}
	w1 := nodes[0]
	if len(w1.Identities) != 2 {
		t.Fatalf("identities = %+v", w1.Identities)
	}
	a, b := w1.Identities[0], w1.Identities[1]
	if a.BootID != "boot-a" || a.CPUs != 4 || a.SystemUUID != "uuid-boot-a" || b.BootID != "boot-b" || b.CPUs != 8 {
		t.Errorf("identities = %+v", w1.Identities)
	}
	if a.EventsOnly || b.EventsOnly {
		t.Errorf("sampled boot IDs marked events-only: %+v", w1.Identities)
	}
	// a: list 0, event 19, watch 20; b: event 9 (resolved against the
	// sample at 10, which comes later), watch 10, watch 30.
	if a.Seen != 3 || b.Seen != 3 || !a.FirstSeen.Equal(at(0)) || !b.FirstSeen.Equal(at(9)) || !b.LastSeen.Equal(at(30)) {
		t.Errorf("seen/first/last: a=%+v b=%+v", a, b)
	}
	wantTimeline := []reconcile.Sighting{
		{Time: at(0), Description: 0, Source: SourceList},
		{Time: at(9), Description: 1, Source: SourceEvent},
		{Time: at(19), Description: 0, Source: SourceEvent},
		{Time: at(30), Description: 1, Source: SourceWatch},
	}
	if !reflect.DeepEqual(w1.Timeline, wantTimeline) || w1.Flips() != 3 {
		t.Errorf("timeline = %+v (flips %d)", w1.Timeline, w1.Flips())
	}
	if len(w1.Events) != 3 || w1.Events[0].Reason != ReasonStarting || w1.Events[2].Message != evs[1].Message {
		t.Errorf("events not kept oldest first: %+v", w1.Events)
	}
	if w1.UID != "uid-worker-1" || w1.Ready != "True" {
		t.Errorf("uid/ready = %q %q", w1.UID, w1.Ready)
	}
	if nodes[1].Flips() != 0 || len(nodes[1].Identities) != 1 || nodes[1].Events != nil {
		t.Errorf("healthy worker-2 = %+v", nodes[1])
	}
}

func TestBuildNodesEventsOnlyBootID(t *testing.T) {
	// The other writer was seen only through its Rebooted event (it wrote
	// before the run and then stopped); a real reboot long ago looks the
	// same, with one flip and no alternation.
	nodes := BuildNodes(
		[]Observation{sample(100, SourceList, "w", "boot-a", 4), sample(110, SourceList, "w", "boot-a", 4)},
		[]NodeEvent{rebooted("w", "boot-x", 1, 50, 3)},
	)
	n := nodes[0]
	if len(n.Identities) != 2 {
		t.Fatalf("identities = %+v", n.Identities)
	}
	x := n.Identities[0]
	if !x.EventsOnly || x.BootID != "boot-x" || x.CPUs != 0 || x.Seen != 2 || !x.FirstSeen.Equal(at(1)) || !x.LastSeen.Equal(at(50)) {
		t.Errorf("events-only identity = %+v", x)
	}
	if n.Flips() != 1 {
		t.Errorf("flips = %d, timeline %+v", n.Flips(), n.Timeline)
	}
}

func TestBuildNodesRealRebootIsOneIdentity(t *testing.T) {
	// A Node that rebooted once before the run: its Rebooted event names
	// the boot ID every sample shows. One identity, no flip.
	nodes := BuildNodes(
		[]Observation{sample(100, SourceList, "w", "boot-new", 4)},
		[]NodeEvent{rebooted("w", "boot-new", 40, 40, 1)},
	)
	if n := nodes[0]; len(n.Identities) != 1 || n.Flips() != 0 || n.Identities[0].EventsOnly || n.Identities[0].Seen != 2 {
		t.Errorf("node = %+v", n)
	}
}

func TestBuildNodesEventsForDeletedNode(t *testing.T) {
	nodes := BuildNodes(nil, []NodeEvent{rebooted("gone", "boot-z", 5, 5, 1)})
	if len(nodes) != 1 || nodes[0].Name != "gone" || nodes[0].UID != "" || len(nodes[0].Identities) != 1 || !nodes[0].Identities[0].EventsOnly {
		t.Errorf("nodes = %+v", nodes)
	}
}

func TestBuildNodesOrderIndependent(t *testing.T) {
	var obs []Observation
	for i := range 40 {
		boot, cpus := "boot-a", int64(4)
		if i%3 == 0 {
			boot, cpus = "boot-b", 8
		}
		obs = append(obs, sample(i, []string{SourceList, SourceWatch}[i%2], []string{"n1", "n2"}[i%2], boot, cpus))
	}
	obs = append(obs, sample(7, SourceWatch, "n1", "boot-a", 4)) // same instant as another
	evs := []NodeEvent{rebooted("n1", "boot-b", 3, 27, 4), rebooted("n2", "boot-q", 2, 2, 1)}
	want := BuildNodes(obs, evs)
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		o, e := slices.Clone(obs), slices.Clone(evs)
		r.Shuffle(len(o), func(i, j int) { o[i], o[j] = o[j], o[i] })
		r.Shuffle(len(e), func(i, j int) { e[i], e[j] = e[j], e[i] })
		if got := BuildNodes(o, e); !reflect.DeepEqual(got, want) {
			t.Fatalf("order changed the result:\n got %+v\nwant %+v", got, want)
		}
	}
}

func TestNodeObservation(t *testing.T) {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "cp-1", UID: "u1", Labels: map[string]string{labelControlPlane: ""}},
		Status: corev1.NodeStatus{
			Capacity: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("3500m"),
				corev1.ResourceMemory: resource.MustParse("8Gi"),
			},
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeExternalIP, Address: "203.0.113.5"},
				{Type: corev1.NodeInternalIP, Address: "10.0.0.5"},
				{Type: corev1.NodeInternalIP, Address: "fd00::5"},
				{Type: corev1.NodeHostName, Address: "cp-1.lab"},
			},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: "False"}, {Type: corev1.NodeReady, Status: "False"}},
			NodeInfo: corev1.NodeSystemInfo{
				BootID: "b", MachineID: "m", SystemUUID: "4216E0C9-7A0E-5C5B-2D1B-6E3F3A4B5C6D",
				KernelVersion: "6.1.0-18-amd64", KubeletVersion: "v1.37.2",
			},
		},
	}
	got := NodeObservation(at(1), SourceWatch, n)
	want := Observation{Time: at(1), Node: "cp-1", Source: SourceWatch, UID: "u1", BootID: "b", MachineID: "m",
		SystemUUID: "4216E0C9-7A0E-5C5B-2D1B-6E3F3A4B5C6D", KernelVersion: "6.1.0-18-amd64", KubeletVersion: "v1.37.2",
		CPUs: 4, MemoryBytes: 8 << 30, InternalIP: "10.0.0.5", Hostname: "cp-1.lab", Ready: "False", ControlPlane: true}
	if got != want {
		t.Errorf("NodeObservation:\n got %+v\nwant %+v", got, want)
	}
	n.Labels = map[string]string{labelControlPlaneLegacy: "true"}
	n.Status.Conditions = nil
	if got := NodeObservation(at(1), SourceList, n); !got.ControlPlane || got.Ready != "Unknown" {
		t.Errorf("legacy master label / no Ready condition: %+v", got)
	}
}

func TestRebootedBootID(t *testing.T) {
	for msg, want := range map[string]string{
		"Node worker-1 has been rebooted, boot id: 6f1b2c3d-0000-4000-8000-000000000001": "6f1b2c3d-0000-4000-8000-000000000001",
		"Node worker-1 has been rebooted, boot id: abc\n":                                "abc",
		"Starting kubelet.":                          "",
		"Node worker-1 has been rebooted, boot id: ": "",
	} {
		if got := RebootedBootID(msg); got != want {
			t.Errorf("RebootedBootID(%q) = %q, want %q", msg, got, want)
		}
	}
}

func TestCoreEventShapes(t *testing.T) {
	// As kubelet's recorder writes it (core/v1).
	legacy := &corev1.Event{
		InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "w1"},
		Reason:         ReasonRebooted, Type: "Warning", Message: "Node w1 has been rebooted, boot id: b1",
		FirstTimestamp: metav1.NewTime(at(1)), LastTimestamp: metav1.NewTime(at(5)), Count: 3,
		Source: corev1.EventSource{Component: "kubelet", Host: "w1"},
	}
	e, ok := CoreEvent(legacy)
	want := NodeEvent{Node: "w1", KubeEvent: reconcile.KubeEvent{Reason: ReasonRebooted, Type: "Warning",
		Message: legacy.Message, First: at(1), Last: at(5), Count: 3, Source: "kubelet, w1"}}
	if !ok || !reflect.DeepEqual(e, want) {
		t.Errorf("legacy: %v %+v", ok, e)
	}
	// As events.k8s.io/v1 writes it, read back through core/v1: eventTime
	// and series, no first/last timestamps, no count, reporting fields.
	series := &corev1.Event{
		InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "w1"},
		Reason:         ReasonRegisteredNode, Type: "Normal", Message: "Node w1 event: Registered Node w1 in Controller",
		EventTime:           metav1.NewMicroTime(at(2)),
		Series:              &corev1.EventSeries{Count: 4, LastObservedTime: metav1.NewMicroTime(at(9))},
		ReportingController: "node-controller", ReportingInstance: "cp-1",
	}
	e, ok = CoreEvent(series)
	if !ok || !e.First.Equal(at(2)) || !e.Last.Equal(at(9)) || e.Count != 4 || e.Source != "node-controller, cp-1" {
		t.Errorf("series shape: %v %+v", ok, e)
	}
	for _, other := range []*corev1.Event{
		{InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "p"}, Reason: ReasonStarting},
		{InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "w1"}, Reason: "NodeHasSufficientMemory"},
	} {
		if _, ok := CoreEvent(other); ok {
			t.Errorf("kept %+v", other)
		}
	}
}

func TestEventsV1Event(t *testing.T) {
	ev := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(at(30))},
		Regarding:  corev1.ObjectReference{Kind: "Node", Name: "w2"},
		Reason:     ReasonRebooted, Type: "Warning", Note: "Node w2 has been rebooted, boot id: b2",
		EventTime: metav1.NewMicroTime(at(3)), ReportingController: "kubelet", ReportingInstance: "w2",
	}
	e, ok := EventsV1Event(ev)
	if !ok || e.Node != "w2" || e.Message != ev.Note || !e.First.Equal(at(3)) || !e.Last.Equal(at(3)) || e.Count != 1 || e.Source != "kubelet, w2" {
		t.Errorf("events/v1: %v %+v", ok, e)
	}
	ev.DeprecatedFirstTimestamp, ev.DeprecatedLastTimestamp, ev.DeprecatedCount = metav1.NewTime(at(1)), metav1.NewTime(at(7)), 2
	if e, _ := EventsV1Event(ev); !e.First.Equal(at(1)) || !e.Last.Equal(at(7)) || e.Count != 2 {
		t.Errorf("deprecated fields: %+v", e)
	}
	ev.Regarding.Kind = "Pod"
	if _, ok := EventsV1Event(ev); ok {
		t.Error("kept a Pod event")
	}
}

// TestBuildNodesEventSecondPrecision: core/v1 event timestamps keep whole
// seconds. The clone's Rebooted event, written with its first status at
// 12:00:00.5, reads 12:00:00, before the original's sample at 12:00:00.1:
// that must not count as a flip of its own.
func TestBuildNodesEventSecondPrecision(t *testing.T) {
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	a := sample(0, SourceWatch, "w", "boot-a", 4)
	a.Time = ms(100)
	b := sample(0, SourceWatch, "w", "boot-b", 8)
	b.Time = ms(500)
	first := sample(0, SourceList, "w", "boot-a", 4)
	first.Time = ms(-3000)
	nodes := BuildNodes([]Observation{first, a, b}, []NodeEvent{rebooted("w", "boot-b", 0, 0, 1)})
	n := nodes[0]
	if n.Flips() != 1 || len(n.Identities) != 2 || !n.Identities[1].FirstSeen.Equal(ms(500)) || n.Identities[1].Seen != 2 {
		t.Errorf("timeline %+v, identities %+v", n.Timeline, n.Identities)
	}
	// Without a sample of its boot ID within its second, the event keeps
	// its time.
	nodes = BuildNodes([]Observation{first, a}, []NodeEvent{rebooted("w", "boot-b", 0, 0, 1)})
	if n := nodes[0]; n.Flips() != 2 || !n.Identities[1].FirstSeen.Equal(t0) {
		t.Errorf("unsnapped: timeline %+v, identities %+v", n.Timeline, n.Identities)
	}
}
