package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

// ObserveOptions configures Observe. The zero value replays 10 minutes of
// events and takes a single NodeList sample.
type ObserveOptions struct {
	// Lookback is how far back node events are replayed; default 10m,
	// negative for no replay. The manager keeps only its last 256 events
	// (all types, in memory, lost on restart), so on a busy manager the
	// replay may reach back less far than asked.
	Lookback time.Duration
	// Window is how long to observe: NodeList is sampled every Interval and
	// live node events are followed. 0 takes a single sample.
	Window time.Duration
	// Interval is the sampling interval within Window; default 1s.
	Interval time.Duration
	// Now replaces time.Now for timestamps and the since/until of the event
	// replay (tests); the window itself is paced by real timers.
	Now func() time.Time
}

const (
	defaultLookback = 10 * time.Minute
	defaultInterval = time.Second
	// eventGrace bounds how long the event stream may run past the window's
	// end (clock skew between us and the manager) before it is cut.
	eventGrace = 5 * time.Second
)

// errNotManager is wrapped by the error Observe returns when the host is not
// a swarm manager; test with IsNotManager.
var errNotManager = errors.New("not a swarm manager")

// IsNotManager reports whether err says the observed host is not a swarm
// manager (a worker, or not in a swarm at all).
func IsNotManager(err error) bool { return errors.Is(err, errNotManager) }

// Observe watches a swarm through the manager cli talks to and returns every
// identity each node ID presented.
//
// A single NodeList shows one side of a flipping node, and only by luck, so
// Observe combines:
//   - a replay of the manager's node events since now-Lookback: every update
//     carries the node's hostname of that moment, so flips that happened
//     before the run are visible too;
//   - NodeList samples, at the start and every Interval within Window, which
//     give the full descriptions (hostname, CPUs, memory, address, engine);
//   - during a Window, the live node events (the same Events call as the
//     replay, with until set to the window's end).
//
// ObservedFrom is the start of the replay (or of the window when there is
// none), ObservedTo the end of the window. It fails with one line naming the
// host when the host cannot be reached or is not a swarm manager.
func Observe(ctx context.Context, cli client.APIClient, opts ObserveOptions) (reconcile.Swarm, error) {
	if opts.Lookback == 0 {
		opts.Lookback = defaultLookback
	}
	if opts.Interval <= 0 {
		opts.Interval = defaultInterval
	}
	if opts.Window < 0 {
		opts.Window = 0
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	host := cli.DaemonHost()
	endpoint := RedactHost(host)

	// Info is the first request, so it also negotiates the API version.
	before := now()
	info, err := cli.Info(ctx)
	after := now()
	if err != nil {
		return reconcile.Swarm{}, newHostError(host, "docker info", err)
	}
	clusterID, err := managerCluster(ctx, cli, info)
	if err != nil {
		return reconcile.Swarm{}, err
	}

	start := now()
	end := start.Add(opts.Window)
	since := start
	if opts.Lookback > 0 {
		since = start.Add(-opts.Lookback)
	}
	out := reconcile.Swarm{Endpoint: endpoint, ClusterID: clusterID, ObservedFrom: since}

	// One stream replays since..now and, for a window, follows live events
	// until its end; the daemon closes it at until. Event times are the
	// managers' clocks: since/until are sent in the manager's time and the
	// events brought back to ours (see managerSkew).
	skew := managerSkew(info.SystemTime, before, after)
	evCtx, cancelEvents := context.WithCancel(ctx)
	defer cancelEvents()
	stream := followEvents(evCtx, cli, since.Add(skew), end.Add(skew), skew)

	var obs []Observation
	sample := func() error {
		// Timed at the request, not at the answer: the manager reads its
		// store after the request left, so a change it shows is never
		// later than its event; timed at the answer, a rename during the
		// call sorted the old name after the new name's event.
		at := now()
		nodes, err := cli.NodeList(ctx, swarm.NodeListOptions{})
		if err != nil {
			return newHostError(host, "node list", err)
		}
		out.Samples++
		obs = slices.Grow(obs, len(nodes))
		for _, n := range nodes {
			obs = append(obs, listObservation(at, n))
		}
		return nil
	}
	if err := sampleWindow(ctx, endpoint, opts, sample); err != nil {
		return reconcile.Swarm{}, err
	}

	// Wait for the event stream to end at until; cut it after a grace period
	// (a manager whose clock runs behind ours keeps it open longer).
	var res eventResult
	select {
	case res = <-stream:
	case <-time.After(eventGrace):
		cancelEvents()
		res = <-stream
		res.err = nil // cut by us, not failed
	case <-ctx.Done():
		return reconcile.Swarm{}, fmt.Errorf("observing %s: %w", endpoint, ctx.Err())
	}
	if res.err != nil {
		return reconcile.Swarm{}, newHostError(host, "node events", res.err)
	}
	out.Events = res.count
	obs = append(obs, res.obs...)
	out.ObservedTo = now()
	out.Nodes = BuildNodes(obs)
	return out, nil
}

// eventResult is what the event stream delivered.
type eventResult struct {
	obs   []Observation
	count int // node events of any action
	err   error
}

// managerSkew estimates how far the manager's clock runs ahead of ours
// (negative: behind) from Info's SystemTime, read between before and after.
// Node event times come from the managers' clocks (the store's update time)
// and samples are timed by ours; merged by time with a manager a second
// behind, a rename's event sorted before the last samples of the old name,
// which read as old → new → old → new: node-flapping on a node renamed once.
// An offset within the measurement's own uncertainty (the call's round trip)
// is taken as none, so synchronized clocks are left alone.
func managerSkew(systemTime string, before, after time.Time) time.Duration {
	t, err := time.Parse(time.RFC3339Nano, systemTime)
	if err != nil || t.IsZero() {
		return 0
	}
	rtt := after.Sub(before)
	off := t.Sub(before.Add(rtt / 2))
	if off.Abs() <= rtt {
		return 0
	}
	return off
}

// followEvents reads node events from since to until (the manager's clock)
// and delivers them on the returned channel when the stream ends, their times
// moved back by skew to our clock.
func followEvents(ctx context.Context, cli client.APIClient, since, until time.Time, skew time.Duration) <-chan eventResult {
	done := make(chan eventResult, 1)
	msgs, errs := cli.Events(ctx, events.ListOptions{
		Since:   timestamp(since),
		Until:   timestamp(until),
		Filters: filters.NewArgs(filters.Arg("type", string(events.NodeEventType))),
	})
	go func() {
		var res eventResult
		defer func() { done <- res }()
		for {
			select {
			case m := <-msgs:
				if m.Type != events.NodeEventType {
					continue
				}
				res.count++
				if o, ok := eventObservation(m); ok {
					o.Time = o.Time.Add(-skew)
					res.obs = append(res.obs, o)
				}
			case err := <-errs:
				if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, context.Canceled) {
					res.err = err
				}
				return
			}
		}
	}()
	return done
}

// timestamp formats t as the API's since/until ("seconds.nanoseconds").
func timestamp(t time.Time) string {
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}

// eventObservation turns a node create/update event into an observation;
// other actions (remove) carry no identity.
func eventObservation(m events.Message) (Observation, bool) {
	if m.Action != events.ActionUpdate && m.Action != events.ActionCreate {
		return Observation{}, false
	}
	name := m.Actor.Attributes["name"]
	if name == "" || m.Actor.ID == "" {
		return Observation{}, false
	}
	at := time.Unix(0, m.TimeNano)
	if m.TimeNano == 0 {
		at = time.Unix(m.Time, 0)
	}
	return Observation{Time: at, NodeID: m.Actor.ID, Source: SourceEvent, Hostname: name}, true
}

func listObservation(at time.Time, n swarm.Node) Observation {
	return Observation{
		Time:          at,
		NodeID:        n.ID,
		Source:        SourceList,
		Hostname:      n.Description.Hostname,
		NanoCPUs:      n.Description.Resources.NanoCPUs,
		MemoryBytes:   n.Description.Resources.MemoryBytes,
		Addr:          n.Status.Addr,
		EngineVersion: n.Description.Engine.EngineVersion,
		Role:          string(n.Spec.Role),
		State:         string(n.Status.State),
		Availability:  string(n.Spec.Availability),
		SpecName:      n.Spec.Annotations.Name,
	}
}

// sampleWindow takes the first sample and, over opts.Window, one every
// opts.Interval and a last one at its end. It is paced with real timers,
// not opts.Now, so a fake clock cannot stretch or freeze the window.
func sampleWindow(ctx context.Context, endpoint string, opts ObserveOptions, sample func() error) error {
	if err := sample(); err != nil {
		return err
	}
	if opts.Window <= 0 {
		return nil
	}
	ticker := time.NewTicker(opts.Interval)
	defer ticker.Stop()
	windowEnd := time.NewTimer(opts.Window)
	defer windowEnd.Stop()
	for last := false; !last; {
		select {
		case <-ctx.Done():
			return fmt.Errorf("observing %s: %w", endpoint, ctx.Err())
		case <-ticker.C:
		case <-windowEnd.C:
			last = true
		}
		if err := sample(); err != nil {
			return err
		}
	}
	return nil
}
