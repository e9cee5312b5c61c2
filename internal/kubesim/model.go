package kubesim

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// Options configures a Server.
type Options struct {
	// Token is the bearer token every request must carry; default random
	// (read it back with Server.Token).
	Token string
	// WatchHistory is how many Node changes are kept for watches from an
	// older resourceVersion; older ones get 410 Expired. Default 10000.
	WatchHistory int
	// Forbidden lists request paths answered 403 Forbidden, as RBAC would
	// (for example "/api/v1/events" for a user who may list events only
	// per namespace).
	Forbidden []string
	// Now replaces time.Now for the timestamps the model writes.
	Now func() time.Time
}

// Identity is the machine a kubelet reports in a Node's status.
type Identity struct {
	BootID, MachineID, SystemUUID string
	KernelVersion, KubeletVersion string
	CPUs, MemoryBytes             int64
	InternalIP, Hostname          string
}

// Server is the simulated API server. Its methods are safe for concurrent
// use.
type Server struct {
	opts Options
	srv  *httptest.Server

	mu        sync.Mutex
	rv        int64
	nodes     map[string]*corev1.Node
	events    []corev1.Event
	history   []change // Node changes, oldest first
	compacted int64    // watches from a resourceVersion below this get 410
	watchers  map[*watcher]struct{}
	rebooted  map[string]bool // node/bootID pairs that recorded Rebooted
}

// change is one Node change, as a watch delivers it.
type change struct {
	rv   int64
	typ  watch.EventType
	node corev1.Node
}

// New returns a Server; Start serves it.
func New(opts Options) *Server {
	if opts.Token == "" {
		opts.Token = randomHex(16)
	}
	if opts.WatchHistory <= 0 {
		opts.WatchHistory = 10000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Server{opts: opts, rv: 1000, nodes: map[string]*corev1.Node{},
		watchers: map[*watcher]struct{}{}, rebooted: map[string]bool{}}
}

// Token is the bearer token the server accepts.
func (s *Server) Token() string { return s.opts.Token }

// SetNode creates or replaces a Node (its status included), as a kubelet's
// registration and status patches do together, and tells the watchers.
func (s *Server) SetNode(n corev1.Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setNodeLocked(n)
}

func (s *Server) setNodeLocked(n corev1.Node) {
	n.TypeMeta = metav1.TypeMeta{}
	typ := watch.Modified
	if old, ok := s.nodes[n.Name]; ok {
		n.UID, n.CreationTimestamp = old.UID, old.CreationTimestamp
	} else {
		typ = watch.Added
		n.UID = types.UID(randomUUID())
		n.CreationTimestamp = metav1.NewTime(s.opts.Now())
	}
	s.rv++
	n.ResourceVersion = strconv.FormatInt(s.rv, 10)
	s.nodes[n.Name] = &n
	s.publishLocked(change{rv: s.rv, typ: typ, node: *n.DeepCopy()})
}

// DeleteNode removes a Node and tells the watchers.
func (s *Server) DeleteNode(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[name]
	if !ok {
		return fmt.Errorf("kubesim: no Node %q", name)
	}
	delete(s.nodes, name)
	s.rv++
	n.ResourceVersion = strconv.FormatInt(s.rv, 10)
	s.publishLocked(change{rv: s.rv, typ: watch.Deleted, node: *n})
	return nil
}

// Node returns a copy of the Node called name.
func (s *Server) Node(name string) (corev1.Node, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[name]
	if !ok {
		return corev1.Node{}, false
	}
	return *n.DeepCopy(), true
}

// AddEvent stores an event (namespace default when unset), as a recorder
// writing through the core/v1 Events API does.
func (s *Server) AddEvent(e corev1.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addEventLocked(e)
}

func (s *Server) addEventLocked(e corev1.Event) {
	if e.Namespace == "" {
		e.Namespace = metav1.NamespaceDefault
	}
	if e.Name == "" {
		e.Name = fmt.Sprintf("%s.%x", e.InvolvedObject.Name, s.opts.Now().UnixNano()+s.rv)
	}
	s.rv++
	e.ResourceVersion = strconv.FormatInt(s.rv, 10)
	e.UID = types.UID(randomUUID())
	if e.CreationTimestamp.IsZero() {
		e.CreationTimestamp = e.FirstTimestamp
	}
	s.events = append(s.events, e)
}

// Events returns the stored events, oldest first.
func (s *Server) Events() []corev1.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// Write models the kubelet of the machine id writing Node name's status at
// the current time: it registers the Node if absent, records a Rebooted
// Warning event when the stored bootID is set and not id's (once per Node
// and boot ID, as kubelet records it once per process), and replaces the
// status with id's machine and a Ready heartbeat.
func (s *Server) Write(name string, id Identity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	var n corev1.Node
	if old, ok := s.nodes[name]; ok {
		n = *old.DeepCopy()
	} else {
		n = NewNode(name, id, now)
		s.addEventLocked(StartingEvent(name, now))
	}
	if b := n.Status.NodeInfo.BootID; b != "" && b != id.BootID && !s.rebooted[name+"/"+id.BootID] {
		s.rebooted[name+"/"+id.BootID] = true
		s.addEventLocked(nodeEvent(name, corev1.EventTypeWarning, "Rebooted",
			fmt.Sprintf("Node %s has been rebooted, boot id: %s", name, id.BootID), now))
	}
	n.Status = status(id, now)
	s.setNodeLocked(n)
}

// Flap has several machines write Node name in turn, one every every,
// until ctx ends: a Node shared by a VM and its clones.
func (s *Server) Flap(ctx context.Context, name string, ids []Identity, every time.Duration) error {
	if len(ids) < 2 || every <= 0 {
		return errors.New("kubesim: Flap needs two identities and a positive period")
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for i := 0; ; i++ {
			s.Write(name, ids[i%len(ids)])
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// Backfill records the Rebooted events that the writers ids of Node name
// would have left between from and to (each kubelet once, at its first
// write over another's boot ID), so a replay of the lookback shows them.
func (s *Server) Backfill(name string, ids []Identity, from, to time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	step := to.Sub(from) / time.Duration(len(ids)+1)
	for i, id := range ids {
		at := from.Add(time.Duration(i+1) * step)
		s.rebooted[name+"/"+id.BootID] = true
		s.addEventLocked(nodeEvent(name, corev1.EventTypeWarning, "Rebooted",
			fmt.Sprintf("Node %s has been rebooted, boot id: %s", name, id.BootID), at))
	}
}

// Populate adds n healthy Nodes named prefix-0000 ... with random
// identities and returns their names.
func (s *Server) Populate(n int, prefix string) []string {
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("%s-%04d", prefix, i)
		s.Write(names[i], RandomIdentity(names[i], fmt.Sprintf("10.%d.%d.%d", 100+i>>16, i>>8&255, i&255)))
	}
	return names
}

// Expire forgets the watch history: every watch from a resourceVersion
// older than the current one is answered 410 Expired (etcd compaction),
// and every open watch is ended with that error.
func (s *Server) Expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.history = nil
	s.compacted = s.rv
	for w := range s.watchers {
		w.expire()
		delete(s.watchers, w)
	}
}

// NewNode is Node name as the kubelet of machine id registers it at now:
// the default labels and id's status with a Ready heartbeat. Scale tests
// write the same Node to a real API server.
func NewNode(name string, id Identity, now time.Time) corev1.Node {
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		corev1.LabelHostname: name, corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64",
	}}, Status: status(id, now)}
}

// StartingEvent is the "Starting kubelet." event a kubelet records when it
// starts, about Node name at at.
func StartingEvent(name string, at time.Time) corev1.Event {
	return nodeEvent(name, corev1.EventTypeNormal, "Starting", "Starting kubelet.", at)
}

// RandomIdentity is a machine with random IDs, 4 CPUs and 8 GiB.
func RandomIdentity(hostname, ip string) Identity {
	return Identity{BootID: randomUUID(), MachineID: randomHex(16), SystemUUID: randomUUID(),
		KernelVersion: "6.1.0-28-amd64", KubeletVersion: "v1.37.2", CPUs: 4, MemoryBytes: 8 << 30,
		InternalIP: ip, Hostname: hostname}
}

func status(id Identity, now time.Time) corev1.NodeStatus {
	t := metav1.NewTime(now)
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewMilliQuantity(id.CPUs*1000, resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(id.MemoryBytes, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(110, resource.DecimalSI),
	}
	return corev1.NodeStatus{
		Capacity: capacity, Allocatable: capacity.DeepCopy(),
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: id.InternalIP}, {Type: corev1.NodeHostName, Address: id.Hostname}},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "kubelet is posting ready status", LastHeartbeatTime: t, LastTransitionTime: t}},
		NodeInfo: corev1.NodeSystemInfo{BootID: id.BootID, MachineID: id.MachineID, SystemUUID: id.SystemUUID,
			KernelVersion: id.KernelVersion, KubeletVersion: id.KubeletVersion, OperatingSystem: "linux", Architecture: "amd64",
			OSImage: "Debian GNU/Linux 12 (bookworm)", ContainerRuntimeVersion: "containerd://1.7.24"},
	}
}

// nodeEvent is an event about a Node as kubelet's recorder writes it.
func nodeEvent(node, typ, reason, msg string, at time.Time) corev1.Event {
	t := metav1.NewTime(at)
	return corev1.Event{
		InvolvedObject: corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: node},
		Reason:         reason, Message: msg, Type: typ, Count: 1,
		FirstTimestamp: t, LastTimestamp: t,
		Source:              corev1.EventSource{Component: "kubelet", Host: node},
		ReportingController: "kubelet", ReportingInstance: node,
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
