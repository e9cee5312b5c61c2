package dockersim

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// subscriberBuffer mirrors dockerd's pubsub buffer: a stream that falls this
// far behind loses events (dockerd drops after a 100ms send timeout).
const subscriberBuffer = 1024

type subscriber struct {
	ch     chan events.Message
	filter filters.Args
}

// emitLocked records a swarm-scope node event the way dockerd's
// logNodeEvent/logClusterEvent do: name = Spec.Name or else hostname, plus
// *.old/*.new attributes for availability, role and state changes on
// update. live=false stores it for replay only (backfilled history).
func (e *Engine) emitLocked(n *node, action events.Action, at time.Time, old *node, live bool) {
	attrs := map[string]string{"name": n.ident.Hostname}
	if action == events.ActionUpdate && old != nil {
		if n.availability != old.availability {
			attrs["availability.old"] = strings.ToLower(string(old.availability))
			attrs["availability.new"] = strings.ToLower(string(n.availability))
		}
		if n.role != old.role {
			attrs["role.old"] = string(old.role)
			attrs["role.new"] = string(n.role)
		}
		if n.state != old.state {
			attrs["state.old"] = string(old.state)
			attrs["state.new"] = string(n.state)
		}
	}
	at = at.UTC()
	msg := events.Message{
		Type:     events.NodeEventType,
		Action:   action,
		Actor:    events.Actor{ID: n.id, Attributes: attrs},
		Scope:    "swarm",
		Time:     at.Unix(),
		TimeNano: at.UnixNano(),
	}
	e.storeLocked(msg)
	if !live {
		return
	}
	for s := range e.subs {
		if !includeEvent(s.filter, msg) {
			continue
		}
		select {
		case s.ch <- cloneMessage(msg):
		default: // slow reader: dropped, as dockerd's pubsub does
		}
	}
}

// storeLocked inserts msg keeping e.events sorted by TimeNano (stable for
// equal times) and bounded to the newest EventLimit events.
func (e *Engine) storeLocked(msg events.Message) {
	if k := len(e.events); k == 0 || e.events[k-1].TimeNano <= msg.TimeNano {
		e.events = append(e.events, msg)
	} else {
		i, _ := slices.BinarySearchFunc(e.events, msg.TimeNano, func(ev events.Message, t int64) int {
			if ev.TimeNano <= t {
				return -1
			}
			return 1
		})
		e.events = slices.Insert(e.events, i, msg)
	}
	if over := len(e.events) - e.opts.EventLimit; over > 0 {
		clear(e.events[:over])
		e.events = e.events[over:]
	}
}

// subscribe returns the stored events within [since, until] that match f,
// and (unless onlyPast) a live subscription, atomically, like dockerd's
// SubscribeTopic. As in dockerd, nothing is replayed when both since and
// until are zero.
func (e *Engine) subscribe(since, until time.Time, f filters.Args, onlyPast bool) ([]events.Message, *subscriber) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var buffered []events.Message
	if !since.IsZero() || !until.IsZero() {
		var sinceNano, untilNano int64
		if !since.IsZero() {
			sinceNano = since.UnixNano()
		}
		if !until.IsZero() {
			untilNano = until.UnixNano()
		}
		for _, ev := range e.events {
			if ev.TimeNano < sinceNano {
				continue
			}
			if untilNano > 0 && ev.TimeNano > untilNano {
				break
			}
			if includeEvent(f, ev) {
				buffered = append(buffered, cloneMessage(ev))
			}
		}
	}
	if onlyPast {
		return buffered, nil
	}
	s := &subscriber{ch: make(chan events.Message, subscriberBuffer), filter: f}
	e.subs[s] = struct{}{}
	return buffered, s
}

func (e *Engine) unsubscribe(s *subscriber) {
	if s == nil {
		return
	}
	e.mu.Lock()
	delete(e.subs, s)
	e.mu.Unlock()
}

func cloneMessage(m events.Message) events.Message {
	m.Actor.Attributes = maps.Clone(m.Actor.Attributes)
	return m
}

// includeEvent ports dockerd's daemon/events.Filter.Include.
func includeEvent(f filters.Args, ev events.Message) bool {
	if f.Len() == 0 {
		return true
	}
	return matchEventAction(f, ev) &&
		f.ExactMatch("type", string(ev.Type)) &&
		(!f.Contains("scope") || f.ExactMatch("scope", ev.Scope)) &&
		fuzzyMatchName(f, ev, events.DaemonEventType) &&
		fuzzyMatchName(f, ev, events.ContainerEventType) &&
		fuzzyMatchName(f, ev, events.PluginEventType) &&
		fuzzyMatchName(f, ev, events.VolumeEventType) &&
		fuzzyMatchName(f, ev, events.NetworkEventType) &&
		matchImage(f, ev) &&
		fuzzyMatchName(f, ev, events.NodeEventType) &&
		fuzzyMatchName(f, ev, events.ServiceEventType) &&
		fuzzyMatchName(f, ev, events.SecretEventType) &&
		fuzzyMatchName(f, ev, events.ConfigEventType) &&
		(!f.Contains("label") || f.MatchKVList("label", ev.Actor.Attributes))
}

func matchEventAction(f filters.Args, ev events.Message) bool {
	for _, v := range f.Get("event") {
		switch v {
		case "health_status", "exec_create", "exec_start":
			return f.FuzzyMatch("event", string(ev.Action))
		}
	}
	return f.ExactMatch("event", string(ev.Action))
}

// fuzzyMatchName: a "node=X" (etc.) filter matches when X is a prefix of the
// actor ID or of its "name" attribute.
func fuzzyMatchName(f filters.Args, ev events.Message, t events.Type) bool {
	return f.FuzzyMatch(string(t), ev.Actor.ID) || f.FuzzyMatch(string(t), ev.Actor.Attributes["name"])
}

// matchImage is dockerd's matchImage without reference normalisation (the
// simulator only emits node events, which never carry an image).
func matchImage(f filters.Args, ev events.Message) bool {
	nameAttr := "image"
	if ev.Type == events.ImageEventType {
		nameAttr = "name"
	}
	return f.ExactMatch("image", ev.Actor.ID) || f.ExactMatch("image", ev.Actor.Attributes[nameAttr])
}
