package kubetest

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestAgent runs test agents (not real kubelets) against the real
// kube-apiserver and checks that the Node and events they write are what
// kubelet writes.
func TestAgent(t *testing.T) {
	s := NewServer(t, Options{})
	cs, err := s.Clientset()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("status", func(t *testing.T) {
		a := s.Agent(t, AgentOptions{Node: "w1", BootID: "boot-a", MachineID: "mach-a", SystemUUID: "uuid-a",
			CPUs: 4, MemoryBytes: 8 << 30, InternalIP: "10.1.0.11", Period: 200 * time.Millisecond, ReportPeriod: time.Second,
			Labels: map[string]string{"node-role.kubernetes.io/worker": ""}})
		var n *corev1.Node
		Eventually(t, 20*time.Second, "w1 registered with a Ready heartbeat", func() bool {
			n, err = cs.CoreV1().Nodes().Get(t.Context(), "w1", metav1.GetOptions{})
			return err == nil && ready(n) != nil
		})
		info := n.Status.NodeInfo
		if info.BootID != "boot-a" || info.MachineID != "mach-a" || info.SystemUUID != "uuid-a" ||
			info.KernelVersion != "6.1.0-kubetest-amd64" || info.KubeletVersion != "v1.37.2" || info.OperatingSystem == "" {
			t.Errorf("nodeInfo = %+v", info)
		}
		if q := n.Status.Capacity[corev1.ResourceCPU]; q.Value() != 4 {
			t.Errorf("capacity cpu = %s", q.String())
		}
		wantAlloc := resource.MustParse("8092Mi") // 8Gi less 100Mi hard eviction
		if q := n.Status.Allocatable[corev1.ResourceMemory]; q.Cmp(wantAlloc) != 0 {
			t.Errorf("allocatable memory = %s, want %s", q.String(), wantAlloc.String())
		}
		if got := n.Status.Addresses; len(got) != 2 || got[0] != (corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.1.0.11"}) ||
			got[1] != (corev1.NodeAddress{Type: corev1.NodeHostName, Address: "w1"}) {
			t.Errorf("addresses = %+v", got)
		}
		if n.Labels[corev1.LabelHostname] != "w1" || n.Labels[corev1.LabelOSStable] == "" {
			t.Errorf("labels = %v", n.Labels)
		}
		if c := n.Status.Conditions; len(c) != 4 || c[3].Type != corev1.NodeReady {
			t.Errorf("conditions (Ready last) = %+v", c)
		}
		// Unchanged status is reported again after ReportPeriod (plus
		// kubelet's random delay of up to half of it): the heartbeat moves.
		first := ready(n).LastHeartbeatTime
		Eventually(t, 10*time.Second, "the Ready heartbeat advances", func() bool {
			n, err = cs.CoreV1().Nodes().Get(t.Context(), "w1", metav1.GetOptions{})
			return err == nil && ready(n).LastHeartbeatTime.After(first.Time)
		})
		if !ready(n).LastTransitionTime.Equal(&first) && ready(n).LastTransitionTime.After(first.Time) {
			t.Errorf("Ready transition time moved without a transition: %v", ready(n).LastTransitionTime)
		}
		if err := a.Err(); err != nil {
			t.Errorf("agent error: %v", err)
		}
		ev := findEvent(t, cs, "w1", "Starting")
		if ev.Message != "Starting kubelet." || ev.Source.Component != "kubelet" || ev.Source.Host != "w1" || ev.Namespace != "default" {
			t.Errorf("Starting event = %+v", ev)
		}
	})

	t.Run("rebooted", func(t *testing.T) {
		// Two agents on one Node: the seed story. Each finds the other's
		// bootID and records Rebooted naming its own, once.
		opts := AgentOptions{Node: "shared", InternalIP: "10.1.0.12", Period: 200 * time.Millisecond}
		a, b := opts, opts
		a.BootID, a.CPUs = "boot-orig", 4
		b.BootID, b.CPUs = "boot-clone", 8
		s.Agent(t, a)
		Eventually(t, 20*time.Second, "shared registered", func() bool {
			n, err := cs.CoreV1().Nodes().Get(t.Context(), "shared", metav1.GetOptions{})
			return err == nil && n.Status.NodeInfo.BootID == "boot-orig"
		})
		s.Agent(t, b)
		for _, boot := range []string{"boot-clone", "boot-orig"} {
			var ev corev1.Event
			Eventually(t, 20*time.Second, "a Rebooted event naming "+boot, func() bool {
				for _, e := range nodeEvents(t, cs, "shared", "Rebooted") {
					if strings.HasSuffix(e.Message, "boot id: "+boot) {
						ev = e
						return true
					}
				}
				return false
			})
			if ev.Type != corev1.EventTypeWarning || ev.Message != "Node shared has been rebooted, boot id: "+boot ||
				ev.Source.Component != "kubelet" || ev.InvolvedObject.Kind != "Node" || ev.Count != 1 {
				t.Errorf("Rebooted event = %+v", ev)
			}
		}
		time.Sleep(time.Second) // more flips: still one event per agent
		if evs := nodeEvents(t, cs, "shared", "Rebooted"); len(evs) != 2 {
			t.Errorf("Rebooted events = %d, want one per agent", len(evs))
		}
	})
}

func ready(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady && n.Status.Conditions[i].Status == corev1.ConditionTrue {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

func nodeEvents(t *testing.T, cs kubernetes.Interface, node, reason string) []corev1.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	l, err := cs.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + node + ",reason=" + reason})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func findEvent(t *testing.T, cs kubernetes.Interface, node, reason string) corev1.Event {
	t.Helper()
	var evs []corev1.Event
	Eventually(t, 10*time.Second, reason+" event for "+node, func() bool {
		evs = nodeEvents(t, cs, node, reason)
		return len(evs) > 0
	})
	return evs[0]
}
