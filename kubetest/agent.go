package kubetest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"runtime"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	nodeutil "k8s.io/component-helpers/node/util"
)

// AgentOptions describes the machine a test agent reports. Zero values get
// defaults: random boot, machine and system UUIDs, 2 CPUs, 4 GiB.
type AgentOptions struct {
	// Node is the Node's name (kubelet's --hostname-override). Required.
	Node string
	// What kubelet reads from the machine (cAdvisor, /proc, DMI).
	BootID, MachineID, SystemUUID string
	KernelVersion                 string // default 6.1.0-kubetest-amd64
	KubeletVersion                string // default v1.37.2
	OSImage                       string // default Debian GNU/Linux 12 (bookworm)
	CPUs                          int64  // capacity cpu; default 2
	MemoryBytes                   int64  // capacity memory; default 4 GiB
	InternalIP                    string // --node-ip; default 10.0.0.1
	Hostname                      string // the Hostname address; default Node
	// Labels are kubelet's --node-labels.
	Labels map[string]string
	// Period is nodeStatusUpdateFrequency: how often the status is
	// computed and, when it changed, patched; default 10s (kubelet's).
	Period time.Duration
	// ReportPeriod is nodeStatusReportFrequency: how often an unchanged
	// status is patched anyway (a heartbeat); default 5m (kubelet's).
	ReportPeriod time.Duration
}

func (o *AgentOptions) defaults() error {
	if o.Node == "" {
		return errors.New("kubetest: AgentOptions.Node is required")
	}
	for _, f := range []*string{&o.BootID, &o.MachineID, &o.SystemUUID} {
		if *f == "" {
			*f = randomUUID()
		}
	}
	def := func(f *string, v string) {
		if *f == "" {
			*f = v
		}
	}
	def(&o.KernelVersion, "6.1.0-kubetest-amd64")
	def(&o.KubeletVersion, "v1.37.2")
	def(&o.OSImage, "Debian GNU/Linux 12 (bookworm)")
	def(&o.InternalIP, "10.0.0.1")
	def(&o.Hostname, o.Node)
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	if o.MemoryBytes == 0 {
		o.MemoryBytes = 4 << 30
	}
	if o.Period <= 0 {
		o.Period = 10 * time.Second
	}
	if o.ReportPeriod <= 0 {
		o.ReportPeriod = 5 * time.Minute
	}
	return nil
}

// Agent is a TEST AGENT, NOT A REAL KUBELET. It runs kubelet's node-status
// loop against a real API server, following k8s.io/kubernetes v1.37.2
// (pkg/kubelet/kubelet_node_status.go and pkg/kubelet/nodestatus):
//
//   - it records "Starting kubelet." (Normal, Starting) when it starts;
//   - every Period (jittered by 4%, as kubelet's wait.JitterUntil) it
//     registers the Node if that is not done yet (create; an existing Node
//     is taken over, its default labels reconciled), then reads the Node
//     (first try from the watch cache, retries from etcd, 5 tries), sets
//     the status as kubelet's setters do (addresses; machine info with
//     capacity and allocatable; version info; daemon endpoints; GOOS and
//     GOARCH; memory, disk and PID pressure and Ready conditions with their
//     heartbeat), and patches the status subresource with kubelet's own
//     two-way strategic merge patch (component-helpers' PatchNodeStatus)
//     when it changed, heartbeat times aside, or ReportPeriod (with
//     kubelet's random delay after a change) has passed;
//   - when the Node's stored bootID is set and not its own, it records a
//     Warning event, reason Rebooted, "Node NAME has been rebooted, boot id:
//     BOOTID" (once per agent, as kubelet emits it once per process), through
//     client-go's event recorder as kubelet does: core/v1 Events, source
//     kubelet on NODE, in the default namespace.
//
// It runs no pods, reports no images or volumes and renews no node lease.
// Two agents with the same Node name and different machines are the seed
// story: a cloned worker VM whose kubelet writes the original's Node.
type Agent struct {
	opts        AgentOptions
	client      kubernetes.Interface
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	cancel      context.CancelFunc
	done        chan struct{}
	rebootOnce  sync.Once

	// loop state, touched only by the loop goroutine
	registered bool
	lastReport time.Time
	delay      time.Duration
	nodeUID    types.UID

	mu      sync.Mutex
	patches int
	lastErr error
}

// StartAgent starts an agent writing opts.Node through client. Stop it with
// Stop (which also flushes its events).
func StartAgent(ctx context.Context, client kubernetes.Interface, opts AgentOptions) (*Agent, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	a := &Agent{opts: opts, client: client, cancel: cancel, done: make(chan struct{})}
	a.broadcaster = record.NewBroadcaster(record.WithContext(ctx))
	a.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	a.recorder = a.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: opts.Node})
	a.recordEvent(corev1.EventTypeNormal, "Starting", "Starting kubelet.")
	go func() {
		defer close(a.done)
		wait.JitterUntil(func() { a.syncNodeStatus(ctx) }, opts.Period, 0.04, true, ctx.Done())
	}()
	return a, nil
}

// Options returns the agent's options, defaults filled in.
func (a *Agent) Options() AgentOptions { return a.opts }

// Patches is the number of status patches the agent made.
func (a *Agent) Patches() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.patches
}

// Err is the last error of the status loop, nil after a success.
func (a *Agent) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastErr
}

// Stop ends the loop and shuts the event recorder down.
func (a *Agent) Stop() {
	a.cancel()
	<-a.done
	a.broadcaster.Shutdown()
}

// nodeRef is kubelet's nodeRefWithUID: kind and name, the UID once known.
func (a *Agent) nodeRef() *corev1.ObjectReference {
	return &corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: a.opts.Node, UID: a.nodeUID}
}

func (a *Agent) recordEvent(eventType, reason, message string) {
	a.recorder.Eventf(a.nodeRef(), eventType, reason, "%s", message)
}

func (a *Agent) recordNodeStatusEvent(eventType, event string) {
	a.recorder.Eventf(a.nodeRef(), eventType, event, "Node %s status is now: %s", a.opts.Node, event)
}

func (a *Agent) syncNodeStatus(ctx context.Context) {
	err := a.registerWithAPIServer(ctx)
	if err == nil {
		err = a.updateNodeStatus(ctx)
	}
	a.mu.Lock()
	a.lastErr = err
	a.mu.Unlock()
}

// registerWithAPIServer is kubelet's tryRegisterWithAPIServer (one try per
// sync; kubelet retries with backoff in the same way).
func (a *Agent) registerWithAPIServer(ctx context.Context) error {
	if a.registered {
		return nil
	}
	node := a.initialNode()
	created, err := a.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err == nil {
		a.registered, a.nodeUID = true, created.UID
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("register node %s: %w", a.opts.Node, err)
	}
	existing, err := a.client.CoreV1().Nodes().Get(ctx, a.opts.Node, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("register node %s: get existing: %w", a.opts.Node, err)
	}
	original := existing.DeepCopy()
	if updateDefaultLabels(node, existing) {
		if _, _, err := nodeutil.PatchNodeStatus(a.client.CoreV1(), types.NodeName(a.opts.Node), original, existing); err != nil {
			return fmt.Errorf("register node %s: reconcile: %w", a.opts.Node, err)
		}
	}
	a.registered, a.nodeUID = true, existing.UID
	return nil
}

// initialNode is kubelet's initialNode without cloud provider, taints or
// volume attach annotation.
func (a *Agent) initialNode() *corev1.Node {
	labels := map[string]string{
		corev1.LabelHostname:      a.opts.Hostname,
		corev1.LabelOSStable:      runtime.GOOS,
		corev1.LabelArchStable:    runtime.GOARCH,
		"beta.kubernetes.io/os":   runtime.GOOS,
		"beta.kubernetes.io/arch": runtime.GOARCH,
	}
	for k, v := range a.opts.Labels {
		labels[k] = v
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: a.opts.Node, Labels: labels}}
	a.setNodeStatus(node)
	return node
}

// updateDefaultLabels is kubelet's: the default labels of initial are set
// on existing when they differ.
func updateDefaultLabels(initial, existing *corev1.Node) bool {
	changed := false
	for _, k := range []string{corev1.LabelHostname, corev1.LabelOSStable, corev1.LabelArchStable, "beta.kubernetes.io/os", "beta.kubernetes.io/arch"} {
		if existing.Labels[k] != initial.Labels[k] {
			if existing.Labels == nil {
				existing.Labels = map[string]string{}
			}
			existing.Labels[k] = initial.Labels[k]
			changed = true
		}
	}
	return changed
}

// updateNodeStatus is kubelet's: up to five tries.
func (a *Agent) updateNodeStatus(ctx context.Context) error {
	var err error
	for try := range 5 {
		if err = a.tryUpdateNodeStatus(ctx, try); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return fmt.Errorf("update node status exceeds retry count: %w", err)
}

func (a *Agent) tryUpdateNodeStatus(ctx context.Context, try int) error {
	opts := metav1.GetOptions{}
	if try == 0 {
		// kubelet reads its informer's cache first; resourceVersion 0 is
		// served from the API server's watch cache, as fresh as that.
		opts.ResourceVersion = "0"
	}
	original, err := a.client.CoreV1().Nodes().Get(ctx, a.opts.Node, opts)
	if err != nil {
		return fmt.Errorf("error getting node %q: %w", a.opts.Node, err)
	}
	a.nodeUID = original.UID
	node := original.DeepCopy()
	if node.Labels == nil {
		node.Labels = map[string]string{}
	}
	labelsMissing := node.Labels[corev1.LabelOSStable] != runtime.GOOS || node.Labels[corev1.LabelArchStable] != runtime.GOARCH
	node.Labels[corev1.LabelOSStable], node.Labels[corev1.LabelArchStable] = runtime.GOOS, runtime.GOARCH
	a.setNodeStatus(node)
	changed := labelsMissing || nodeStatusHasChanged(&original.Status, &node.Status)
	if !changed && time.Since(a.lastReport) < a.opts.ReportPeriod+a.delay {
		return nil
	}
	if changed || a.lastReport.IsZero() {
		// kubelet's calculateDelay: spread the next unchanged report.
		a.delay = time.Duration(float64(a.opts.ReportPeriod) * (-0.5 + mathrand.Float64()))
	} else {
		a.delay = 0
	}
	if _, _, err := nodeutil.PatchNodeStatus(a.client.CoreV1(), types.NodeName(a.opts.Node), original, node); err != nil {
		return err
	}
	a.lastReport = time.Now()
	a.mu.Lock()
	a.patches++
	a.mu.Unlock()
	return nil
}

// nodeStatusHasChanged is kubelet's: any change but heartbeat times.
func nodeStatusHasChanged(original, status *corev1.NodeStatus) bool {
	o, s := original.DeepCopy(), status.DeepCopy()
	if len(o.Conditions) != len(s.Conditions) {
		return true
	}
	for _, c := range [][]corev1.NodeCondition{o.Conditions, s.Conditions} {
		sort.SliceStable(c, func(i, j int) bool { return c[i].Type < c[j].Type })
		for i := range c {
			c[i].LastHeartbeatTime = metav1.Time{}
		}
	}
	return !apiequality.Semantic.DeepEqual(o, s)
}

// setNodeStatus runs kubelet's default setters that apply to an agent, in
// kubelet's order.
func (a *Agent) setNodeStatus(node *corev1.Node) {
	now := metav1.NewTime(time.Now())
	o := a.opts
	// NodeAddress, with --node-ip given.
	node.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: o.InternalIP},
		{Type: corev1.NodeHostName, Address: o.Hostname},
	}
	a.machineInfo(node)
	// VersionInfo.
	node.Status.NodeInfo.KernelVersion = o.KernelVersion
	node.Status.NodeInfo.OSImage = o.OSImage
	node.Status.NodeInfo.ContainerRuntimeVersion = "containerd://1.7.24"
	node.Status.NodeInfo.KubeletVersion = o.KubeletVersion
	// KubeProxyVersion stays empty (kubelet v1.37: DisableNodeKubeProxyVersion).
	// DaemonEndpoints, GoRuntime.
	node.Status.DaemonEndpoints = corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}}
	node.Status.NodeInfo.OperatingSystem, node.Status.NodeInfo.Architecture = runtime.GOOS, runtime.GOARCH
	for _, c := range []struct {
		typ            corev1.NodeConditionType
		reason, msg, e string
	}{
		{corev1.NodeMemoryPressure, "KubeletHasSufficientMemory", "kubelet has sufficient memory available", "NodeHasSufficientMemory"},
		{corev1.NodeDiskPressure, "KubeletHasNoDiskPressure", "kubelet has no disk pressure", "NodeHasNoDiskPressure"},
		{corev1.NodePIDPressure, "KubeletHasSufficientPID", "kubelet has sufficient PID available", "NodeHasSufficientPID"},
	} {
		a.pressureCondition(node, now, c.typ, c.reason, c.msg, c.e)
	}
	a.readyCondition(node, now)
}

// machineInfo is kubelet's MachineInfo setter: IDs, capacity, the Rebooted
// event, allocatable (capacity less kubeadm's default hard eviction
// thresholds: 100Mi of memory, 10% of ephemeral storage).
func (a *Agent) machineInfo(node *corev1.Node) {
	o := a.opts
	if node.Status.Capacity == nil {
		node.Status.Capacity = corev1.ResourceList{}
	}
	node.Status.NodeInfo.MachineID = o.MachineID
	node.Status.NodeInfo.SystemUUID = o.SystemUUID
	node.Status.Capacity[corev1.ResourceCPU] = *resource.NewMilliQuantity(o.CPUs*1000, resource.DecimalSI)
	node.Status.Capacity[corev1.ResourceMemory] = *resource.NewQuantity(o.MemoryBytes, resource.BinarySI)
	node.Status.Capacity["hugepages-1Gi"] = *resource.NewQuantity(0, resource.BinarySI)
	node.Status.Capacity["hugepages-2Mi"] = *resource.NewQuantity(0, resource.BinarySI)
	node.Status.Capacity[corev1.ResourcePods] = *resource.NewQuantity(110, resource.DecimalSI)
	if node.Status.NodeInfo.BootID != "" && node.Status.NodeInfo.BootID != o.BootID {
		a.rebootOnce.Do(func() {
			a.recordEvent(corev1.EventTypeWarning, "Rebooted",
				fmt.Sprintf("Node %s has been rebooted, boot id: %s", o.Node, o.BootID))
		})
	}
	node.Status.NodeInfo.BootID = o.BootID
	storage := int64(20 << 30)
	node.Status.Capacity[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(storage, resource.BinarySI)

	reserved := corev1.ResourceList{
		corev1.ResourceMemory:           resource.MustParse("100Mi"),
		corev1.ResourceEphemeralStorage: *resource.NewQuantity(storage/10, resource.BinarySI),
	}
	node.Status.Allocatable = corev1.ResourceList{}
	for k, v := range node.Status.Capacity {
		value := v.DeepCopy()
		if r, ok := reserved[k]; ok {
			value.Sub(r)
		}
		if value.Sign() < 0 {
			value.Set(0)
		}
		node.Status.Allocatable[k] = value
	}
}

// pressureCondition is kubelet's Memory/Disk/PIDPressureCondition for a
// node under no pressure.
func (a *Agent) pressureCondition(node *corev1.Node, now metav1.Time, typ corev1.NodeConditionType, reason, msg, event string) {
	var c *corev1.NodeCondition
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type == typ {
			c = &node.Status.Conditions[i]
		}
	}
	isNew := c == nil
	if isNew {
		c = &corev1.NodeCondition{Type: typ, Status: corev1.ConditionUnknown}
	}
	c.LastHeartbeatTime = now
	if c.Status != corev1.ConditionFalse {
		c.Status, c.Reason, c.Message, c.LastTransitionTime = corev1.ConditionFalse, reason, msg, now
		a.recordNodeStatusEvent(corev1.EventTypeNormal, event)
	}
	if isNew {
		node.Status.Conditions = append(node.Status.Conditions, *c)
	}
}

// readyCondition is kubelet's ReadyCondition for a healthy node: Ready
// True, last in the list, transition time kept while the status holds.
func (a *Agent) readyCondition(node *corev1.Node, now metav1.Time) {
	ready := corev1.NodeCondition{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue,
		Reason: "KubeletReady", Message: "kubelet is posting ready status", LastHeartbeatTime: now,
	}
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type != corev1.NodeReady {
			continue
		}
		if node.Status.Conditions[i].Status == ready.Status {
			ready.LastTransitionTime = node.Status.Conditions[i].LastTransitionTime
		} else {
			ready.LastTransitionTime = now
			a.recordNodeStatusEvent(corev1.EventTypeNormal, "NodeReady")
		}
		node.Status.Conditions[i] = ready
		return
	}
	ready.LastTransitionTime = now
	node.Status.Conditions = append(node.Status.Conditions, ready)
}

func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
