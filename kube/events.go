package kube

import (
	"regexp"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// Reasons of the Node events Observe replays.
const (
	// ReasonRebooted is recorded by a kubelet that finds a bootID other
	// than its own in the Node's status: "Node NAME has been rebooted, boot
	// id: BOOTID", naming its own boot ID.
	ReasonRebooted = "Rebooted"
	// ReasonStarting is recorded by a kubelet when it starts ("Starting
	// kubelet.").
	ReasonStarting = "Starting"
	// ReasonRegisteredNode is recorded by the node lifecycle controller
	// when it first sees the Node.
	ReasonRegisteredNode = "RegisteredNode"
)

func interesting(reason string) bool {
	switch reason {
	case ReasonRebooted, ReasonStarting, ReasonRegisteredNode:
		return true
	}
	return false
}

var rebootedRE = regexp.MustCompile(`has been rebooted, boot id: (\S+)\s*$`)

// RebootedBootID returns the boot ID a Rebooted event's message names, or "".
func RebootedBootID(message string) string {
	if m := rebootedRE.FindStringSubmatch(message); m != nil {
		return m[1]
	}
	return ""
}

// CoreEvent converts a core/v1 Event about a Node with one of the replayed
// reasons; ok is false for any other event. Events written through
// events.k8s.io/v1 read back through core/v1 with EventTime and Series set
// and the deprecated timestamps and count possibly empty; both shapes are
// handled.
func CoreEvent(e *corev1.Event) (NodeEvent, bool) {
	if e.InvolvedObject.Kind != "Node" || !interesting(e.Reason) {
		return NodeEvent{}, false
	}
	var seriesCount int32
	var seriesLast time.Time
	if e.Series != nil {
		seriesCount, seriesLast = e.Series.Count, e.Series.LastObservedTime.Time
	}
	source := e.Source.Component
	host := e.Source.Host
	if source == "" {
		source, host = e.ReportingController, e.ReportingInstance
	}
	first, last := eventTimes(e.FirstTimestamp.Time, e.EventTime.Time, e.CreationTimestamp.Time, e.LastTimestamp.Time, seriesLast)
	return NodeEvent{Node: e.InvolvedObject.Name, KubeEvent: reconcile.KubeEvent{
		Reason: e.Reason, Type: e.Type, Message: e.Message,
		First: first, Last: last,
		Count:  eventCount(e.Count, seriesCount),
		Source: sourceName(source, host),
	}}, true
}

// EventsV1Event converts an events.k8s.io/v1 Event about a Node with one of
// the replayed reasons; ok is false for any other event.
func EventsV1Event(e *eventsv1.Event) (NodeEvent, bool) {
	if e.Regarding.Kind != "Node" || !interesting(e.Reason) {
		return NodeEvent{}, false
	}
	var seriesCount int32
	var seriesLast time.Time
	if e.Series != nil {
		seriesCount, seriesLast = e.Series.Count, e.Series.LastObservedTime.Time
	}
	source, host := e.ReportingController, e.ReportingInstance
	if source == "" {
		source, host = e.DeprecatedSource.Component, e.DeprecatedSource.Host
	}
	first, last := eventTimes(e.DeprecatedFirstTimestamp.Time, e.EventTime.Time, e.CreationTimestamp.Time, e.DeprecatedLastTimestamp.Time, seriesLast)
	return NodeEvent{Node: e.Regarding.Name, KubeEvent: reconcile.KubeEvent{
		Reason: e.Reason, Type: e.Type, Message: e.Note,
		First: first, Last: last,
		Count:  eventCount(e.DeprecatedCount, seriesCount),
		Source: sourceName(source, host),
	}}, true
}

// eventTimes picks an event's first and last times from whichever of its
// timestamps are set: firstTimestamp, else eventTime, else creation; and
// the later of lastTimestamp and the series' last observation, else first.
func eventTimes(firstTS, eventTime, created, lastTS, seriesLast time.Time) (first, last time.Time) {
	first = firstTS
	if first.IsZero() {
		first = eventTime
	}
	if first.IsZero() {
		first = created
	}
	last = lastTS
	if seriesLast.After(last) {
		last = seriesLast
	}
	if last.Before(first) {
		last = first
	}
	return first, last
}

func eventCount(count, seriesCount int32) int {
	n := max(count, seriesCount)
	if n < 1 {
		n = 1
	}
	return int(n)
}

func sourceName(component, host string) string {
	switch {
	case component == "":
		return host
	case host == "":
		return component
	}
	return component + ", " + host
}
