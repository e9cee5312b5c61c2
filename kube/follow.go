package kube

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// Follow lists the Nodes, then follows their changes until ctx ends or the
// stream fails, handing every Node sample to fn (the daemon's change
// detection). An expired watch (410) or one the server closed is resumed
// from a new list. It returns nil when ctx ends, else the error that ended
// it, as one line naming the cluster.
func Follow(ctx context.Context, c *Client, fn func(Observation)) error {
	for ctx.Err() == nil {
		lctx, cancel := context.WithTimeout(ctx, c.timeout)
		list, err := c.Clientset.CoreV1().Nodes().List(lctx, metav1.ListOptions{})
		cancel()
		if err != nil {
			return c.followErr(ctx, "node list", err)
		}
		now := time.Now()
		for i := range list.Items {
			fn(NodeObservation(now, SourceList, &list.Items[i]))
		}
		w, err := c.watch.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
		if err != nil {
			if expired(err) {
				continue
			}
			return c.followErr(ctx, "node watch", err)
		}
		started := time.Now()
		err = followWatch(ctx, w, fn)
		w.Stop()
		if err != nil {
			return c.followErr(ctx, "node watch", err)
		}
		// A server that ends watches at once must not make this a busy
		// loop of lists and watches.
		if time.Since(started) < time.Second {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// followWatch applies one watch's events; nil when it ended (closed by the
// server, expired, or ctx ended).
func followWatch(ctx context.Context, w watch.Interface, fn func(Observation)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				if n, ok := ev.Object.(*corev1.Node); ok {
					fn(NodeObservation(time.Now(), SourceWatch, n))
				}
			case watch.Error:
				if err := apierrors.FromObject(ev.Object); !expired(err) {
					return err
				}
				return nil
			}
		}
	}
}

func (c *Client) followErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("kubernetes %s: %s: %s", c.String(), what, oneLine(err))
}
