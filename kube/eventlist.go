package kube

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// listEvents lists the Node events (Rebooted, Starting, RegisteredNode)
// whose last occurrence is at or after since.
//
// Both event APIs serve the same objects; core/v1 is asked first (what
// kubelet writes through), events.k8s.io/v1 when core/v1 is forbidden to
// this user. Kubelet and the node controller record Node events in the
// default namespace; the cluster-wide list is tried first and the default
// namespace alone when that is forbidden. Anything else fails.
func (o *observer) listEvents(ctx context.Context, since time.Time) ([]NodeEvent, error) {
	attempts := []struct {
		list      func(context.Context, string) ([]NodeEvent, error)
		namespace string
	}{
		{o.listCoreEvents, metav1.NamespaceAll},
		{o.listEventsV1, metav1.NamespaceAll},
		{o.listCoreEvents, metav1.NamespaceDefault},
		{o.listEventsV1, metav1.NamespaceDefault},
	}
	var evs []NodeEvent
	var err error
	for _, a := range attempts {
		evs, err = a.list(ctx, a.namespace)
		if !apierrors.IsForbidden(err) {
			break
		}
	}
	if err != nil {
		return nil, o.fail(ctx, "node events", err)
	}
	kept := evs[:0]
	for _, e := range evs {
		if !e.Last.Before(since) {
			kept = append(kept, e)
		}
	}
	return kept, nil
}

// listCoreEvents lists core/v1 events about Nodes in namespace, in pages.
func (o *observer) listCoreEvents(ctx context.Context, namespace string) ([]NodeEvent, error) {
	var out []NodeEvent
	err := o.pages(ctx, func(ctx context.Context, cont string) (string, error) {
		list, err := o.c.Clientset.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.kind=Node", Limit: pageSize, Continue: cont,
		})
		if err != nil {
			return "", err
		}
		for i := range list.Items {
			if e, ok := CoreEvent(&list.Items[i]); ok {
				out = append(out, e)
			}
		}
		return list.Continue, nil
	}, func() { out = out[:0] })
	return out, err
}

// listEventsV1 lists events.k8s.io/v1 events about Nodes in namespace.
func (o *observer) listEventsV1(ctx context.Context, namespace string) ([]NodeEvent, error) {
	var out []NodeEvent
	err := o.pages(ctx, func(ctx context.Context, cont string) (string, error) {
		list, err := o.c.Clientset.EventsV1().Events(namespace).List(ctx, metav1.ListOptions{
			FieldSelector: "regarding.kind=Node", Limit: pageSize, Continue: cont,
		})
		if err != nil {
			return "", err
		}
		for i := range list.Items {
			if e, ok := EventsV1Event(&list.Items[i]); ok {
				out = append(out, e)
			}
		}
		return list.Continue, nil
	}, func() { out = out[:0] })
	return out, err
}

// pages calls page with each continue token until the list is complete,
// each request under the client's timeout. When a continue token expires
// (the list outlived the server's compaction), reset is called and the list
// starts over, at most three times.
func (o *observer) pages(ctx context.Context, page func(context.Context, string) (string, error), reset func()) error {
	for attempt := 0; ; attempt++ {
		cont := ""
		var err error
		for {
			cctx, cancel := context.WithTimeout(ctx, o.c.timeout)
			cont, err = page(cctx, cont)
			cancel()
			if err != nil || cont == "" {
				break
			}
		}
		if err == nil || !expired(err) || attempt == 2 {
			return err
		}
		reset()
	}
}
