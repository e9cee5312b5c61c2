package kube

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// ObserveOptions configures Observe. The zero value replays 10 minutes of
// Node events and takes a single Node list.
type ObserveOptions struct {
	// Lookback is how far back Node events are replayed; default 10m,
	// negative for no replay (events of the window only). The API server
	// keeps events for its --event-ttl (default 1h), so a longer lookback
	// reaches back no further than that.
	Lookback time.Duration
	// Window is how long Nodes are watched after the first list; 0 takes a
	// single list.
	Window time.Duration
	// Interval is how often the Nodes are listed again within the window,
	// besides the watch (a sample of every Node, also of those whose
	// kubelet writes nothing new); default 10s, at least 1s.
	Interval time.Duration
	// Now replaces time.Now for timestamps and the lookback (tests); the
	// window itself is paced by real timers.
	Now func() time.Time
	// Prior are sightings made before this call by a follower of the same
	// cluster (the daemon's Node watch, see Follow): the writes between two
	// audits, which a single list would miss. Those older than the
	// lookback are left out.
	Prior []Observation
}

const (
	defaultLookback = 10 * time.Minute
	defaultInterval = 10 * time.Second
	minInterval     = time.Second
	// watchGrace lets a watch run a little past the window's end before its
	// context cuts it (the window's own timer ends it first).
	watchGrace = 5 * time.Second
	// pageSize is the limit of one list request.
	pageSize = 500
)

// Observe watches a cluster's Nodes through c and returns every identity
// each Node was written with.
//
// A single Node list shows one writer of a shared Node, and only by luck, so
// Observe combines:
//   - a Node list at the start, every Interval within Window and at its end;
//   - during Window, a watch of the Nodes from the first list's
//     resourceVersion: every status write of every kubelet arrives as a
//     modification (a watch that expires, 410 Gone, is resumed from a new
//     list; one the server ends is resumed where it stopped);
//   - the Node events (Rebooted, Starting, RegisteredNode) of the lookback
//     and the window, listed at the end: a Rebooted event names the boot ID
//     of the kubelet that found another's in the Node, so flips that
//     happened before the run are visible too.
//
// ObservedFrom is the start of the replay (or of the window when there is
// none), ObservedTo the end of the window. A failing request fails the whole
// observation with one line naming the cluster: missing data is never
// reported as a quiet cluster.
func Observe(ctx context.Context, c *Client, opts ObserveOptions) (reconcile.KubeCluster, error) {
	if opts.Lookback == 0 {
		opts.Lookback = defaultLookback
	}
	if opts.Interval <= 0 {
		opts.Interval = defaultInterval
	}
	opts.Interval = max(opts.Interval, minInterval)
	opts.Window = max(opts.Window, 0)
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	o := &observer{c: c, now: now}

	start := now()
	since := start
	if opts.Lookback > 0 {
		since = start.Add(-opts.Lookback)
	}
	for _, p := range opts.Prior {
		if !p.Time.Before(since) {
			o.obs = append(o.obs, p)
		}
	}
	rv, err := o.listNodes(ctx)
	if err != nil {
		return reconcile.KubeCluster{}, err
	}
	if opts.Window > 0 {
		if err := o.watchWindow(ctx, rv, opts.Window, opts.Interval); err != nil {
			return reconcile.KubeCluster{}, err
		}
	}
	events, err := o.listEvents(ctx, since)
	if err != nil {
		return reconcile.KubeCluster{}, err
	}
	return reconcile.KubeCluster{
		Name:         c.Name(),
		Server:       c.Server(),
		ObservedFrom: since,
		ObservedTo:   now(),
		Samples:      o.samples,
		Events:       len(events),
		Nodes:        BuildNodes(o.obs, events),
	}, nil
}

// observer accumulates the sightings of one Observe.
type observer struct {
	c       *Client
	now     func() time.Time
	obs     []Observation
	samples int // Node lists and watch events applied
}

// listNodes lists every Node (in pages) and records a sighting of each,
// timed at the request: the server reads its store after the request left,
// so a change a list shows is never later than its watch event. It returns
// the list's resourceVersion, for a watch to start from.
func (o *observer) listNodes(ctx context.Context) (string, error) {
	at := o.now()
	var rv, cont string
	for {
		cctx, cancel := context.WithTimeout(ctx, o.c.timeout)
		list, err := o.c.Clientset.CoreV1().Nodes().List(cctx, metav1.ListOptions{Limit: pageSize, Continue: cont})
		cancel()
		if err != nil {
			return "", o.fail(ctx, "node list", err)
		}
		if rv == "" {
			rv = list.ResourceVersion
		}
		for i := range list.Items {
			o.obs = append(o.obs, NodeObservation(at, SourceList, &list.Items[i]))
		}
		if cont = list.Continue; cont == "" {
			break
		}
	}
	o.samples++
	return rv, nil
}

// watchWindow watches the Nodes from resourceVersion rv for window, listing
// them again every interval and at the end.
func (o *observer) watchWindow(ctx context.Context, rv string, window, interval time.Duration) error {
	end := time.Now().Add(window)
	wctx, cancel := context.WithDeadline(ctx, end.Add(watchGrace))
	defer cancel()
	windowEnd := time.NewTimer(window)
	defer windowEnd.Stop()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		started := time.Now()
		secs := int64(time.Until(end)/time.Second) + 1
		w, err := o.c.watch.CoreV1().Nodes().Watch(wctx, metav1.ListOptions{
			ResourceVersion: rv, AllowWatchBookmarks: true, TimeoutSeconds: &secs,
		})
		switch {
		case err == nil:
		case expired(err):
			// The resourceVersion is older than the server keeps: list
			// again and watch from there.
			if rv, err = o.listNodes(ctx); err != nil {
				return err
			}
			continue
		default:
			return o.fail(ctx, "node watch", err)
		}
		var end watchEnd
		rv, end, err = o.follow(ctx, w, rv, windowEnd.C, ticker.C)
		w.Stop()
		switch {
		case err != nil || end == windowDone:
			return err
		case end == watchExpired:
			// follow listed again: watch from that list at once, or
			// the changes of the pause arrive late, or not at all.
			continue
		}
		// The server ended the watch before the window did: resume from
		// where it stopped, pausing when it ends at once.
		if time.Since(started) < time.Second {
			select {
			case <-time.After(time.Second):
			case <-windowEnd.C:
				_, err := o.listNodes(ctx)
				return err
			case <-ctx.Done():
				return o.fail(ctx, "node watch", ctx.Err())
			}
		}
	}
}

// watchEnd is how one watch ended, when it ended without an error.
type watchEnd int

const (
	// watchClosed: the server ended the watch; resume from the returned
	// resourceVersion.
	watchClosed watchEnd = iota
	// watchExpired: the watch got 410 Gone and the Nodes were listed
	// again; watch from the returned resourceVersion (the list's) at once.
	watchExpired
	// windowDone: the window ended, after a last list.
	windowDone
)

// follow applies the events of one watch until it ends or the window does,
// and says which; it returns the resourceVersion to watch from next.
func (o *observer) follow(ctx context.Context, w watch.Interface, rv string, windowEnd, tick <-chan time.Time) (string, watchEnd, error) {
	for {
		select {
		case <-ctx.Done():
			return rv, watchClosed, o.fail(ctx, "node watch", ctx.Err())
		case <-windowEnd:
			_, err := o.listNodes(ctx)
			return rv, windowDone, err
		case <-tick:
			if _, err := o.listNodes(ctx); err != nil {
				return rv, watchClosed, err
			}
		case ev, ok := <-w.ResultChan():
			if !ok {
				return rv, watchClosed, nil
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				if n, ok := ev.Object.(*corev1.Node); ok {
					o.obs = append(o.obs, NodeObservation(o.now(), SourceWatch, n))
					o.samples++
				}
			case watch.Error:
				err := apierrors.FromObject(ev.Object)
				if !expired(err) {
					return rv, watchClosed, o.fail(ctx, "node watch", err)
				}
				newRV, err := o.listNodes(ctx)
				return newRV, watchExpired, err
			}
			if m, err := meta.Accessor(ev.Object); err == nil && m.GetResourceVersion() != "" {
				rv = m.GetResourceVersion()
			}
		}
	}
}

// expired reports whether err says a watch's resourceVersion is too old
// (410 Gone, or the Expired reason).
func expired(err error) bool {
	return apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
}

// fail describes err from doing what as one line naming the cluster. It
// unwraps to err, so errors.Is(err, context.Canceled) still works.
func (o *observer) fail(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w (%s)", ctx.Err(), oneLine(err))
	}
	return &sourceError{msg: fmt.Sprintf("%s: %s: %s", o.c, what, oneLine(err)), err: err}
}

// sourceError is an error rendered on one line, naming the cluster.
type sourceError struct {
	msg string
	err error
}

func (e *sourceError) Error() string { return e.msg }
func (e *sourceError) Unwrap() error { return e.err }
