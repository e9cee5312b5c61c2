package vcsim

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// This file adds EventLog to vcsim: an event history that stands in for
// vCenter's EventManager with a retention the caller chooses. vcsim's own
// EventManager keeps about 1,000 events (a constant in the simulator) and
// its collectors see only the events that existed when they were created,
// so neither can serve a benchmark over 20,000 retained clone events nor a
// long-lived collector.
//
// An EventLog is registered in the simulator's registry under its own ref
// (type EventManager). A client reads it when its
// ServiceContent.EventManager is that ref (EventLog.Client); vcsim's own
// EventManager stays in place for vcsim's internals and keeps receiving
// vcsim's events, which the EventLog does not see. Events enter the log
// only through Post (or the PostEvent method, for govmomi's
// event.Manager.PostEvent).
//
// Collectors (CreateCollectorForEvents) read the log itself rather than a
// copy, so reading forward returns events appended after the collector was
// created. They honour these EventFilterSpec fields: EventTypeId (a
// concrete type name, or a base type such as "VmEvent"; EventEx by its
// eventTypeId), Time.BeginTime and Time.EndTime (both inclusive),
// EventChainId, MaxCount (the latest page's size) and Entity, matched
// approximately:
//
//   - The entity is compared with the event's entity arguments (vm, host,
//     computeResource, ds, net, dvs, datacenter) and, for VmDeployedEvent,
//     srcTemplate. VmClonedEvent's sourceVm is not an argument: the event
//     belongs to the copy.
//   - Self: an argument is the entity. Children: an argument's parent is the
//     entity. All: an argument is the entity or lies under it, or the entity
//     is the root folder (every event matches).
//   - "Under" follows parent refs in the registry as they are when the
//     collector first sees the argument (the answer is cached per
//     collector), so a VM is under its folders and datacenter but not under
//     its cluster or resource pool, and an argument naming a VM that no
//     longer exists matches only through the event's datacenter argument.
//
// Everything else in the spec (userName, category, type, alarm, tag, ...)
// is ignored. FullFormattedMessage is not filled in. QueryEvents is not
// implemented.
//
// Scrolling follows the vSphere API: a new collector is positioned before
// the oldest event (before the first event at or after BeginTime);
// ReadNextEvents returns the next matching events oldest first and moves
// past them; ReadPreviousEvents returns the matching events before the
// position, newest first (as vcsim's do), and moves before them;
// RewindCollector returns to the oldest event; ResetCollector moves to just
// before the latest page. Events older than the retention are dropped from
// the log and so from every collector.

// DefaultEventRetention is the retention NewEventLog uses when given 0.
const DefaultEventRetention = 50000

const (
	maxEventCollectors   = 32   // vCenter's default event.maxCollectors
	maxEventPageSize     = 1000 // vCenter's (and vcsim's) largest page
	defaultEventPageSize = 10   // vcsim's latest page when MaxCount is 0
)

// EventLog is a vcsim managed object (type EventManager) that keeps the
// newest events up to its retention. Create it with NewEventLog.
type EventLog struct {
	mo.EventManager

	retention int

	// post serialises Post, so that latestPage updates reach property
	// collectors in order. Lock order: post, then a collector's registry
	// lock, then mu.
	post sync.Mutex
	// mu guards the fields below, LatestEvent, and the state of every
	// collector of this log.
	mu         sync.Mutex
	events     []types.BaseEvent // oldest first
	first      int64             // sequence number of events[0]
	key        int32
	last       time.Time // newest CreatedTime posted
	monotonic  bool      // CreatedTime never decreased: BeginTime can be found by binary search
	collectors map[types.ManagedObjectReference]*EventLogCollector
}

// NewEventLog registers an EventLog in ctx's registry (ctx is
// simulator.Model.Service.Context) and returns it. It keeps the newest
// retention events; retention 0 or less means DefaultEventRetention. Its
// event descriptions are copied from vcsim's EventManager.
func NewEventLog(ctx *simulator.Context, retention int) *EventLog {
	if retention <= 0 {
		retention = DefaultEventRetention
	}
	l := &EventLog{
		retention:  retention,
		monotonic:  true,
		collectors: make(map[types.ManagedObjectReference]*EventLogCollector),
	}
	if m := ctx.Map.EventManager(); m != nil {
		l.Description = m.Description
	}
	l.MaxCollector = maxEventCollectors
	l.Self = types.ManagedObjectReference{Type: "EventManager", Value: "EventLog"}
	for i := 2; ctx.Map.Get(l.Self) != nil; i++ {
		l.Self.Value = fmt.Sprintf("EventLog-%d", i)
	}
	ctx.Map.Put(l)
	return l
}

// Client returns a copy of c, sharing its session, whose EventManager is
// the log: govmomi's event.NewManager and vsphere.Lineage on it read the
// log. c itself is not changed.
func (l *EventLog) Client(c *vim25.Client) *vim25.Client {
	cp := *c
	cp.ServiceContent.EventManager = &l.Self
	return &cp
}

// Len returns how many events the log holds.
func (l *EventLog) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

// Collectors returns how many collectors of the log exist.
func (l *EventLog) Collectors() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.collectors)
}

// Post appends events to the log, oldest first, as vCenter would log them:
// each gets the next Key (and ChainId, when zero), and CreatedTime is set to
// now unless the caller set it (synthetic history may be backdated). The
// events are stored, not copied: the caller must not change them after.
// Nil events are skipped. Collectors whose filter matches one of them get
// a latestPage update. ctx is the simulator's context
// (simulator.Model.Service.Context) or a method's.
func (l *EventLog) Post(ctx *simulator.Context, events ...types.BaseEvent) {
	l.post.Lock()
	defer l.post.Unlock()
	for _, c := range l.append(events) {
		ctx.WithLock(c, func() {
			l.mu.Lock()
			page := c.latestPage()
			l.mu.Unlock()
			ctx.Update(c, []types.PropertyChange{{Name: "latestPage", Val: page}})
		})
	}
}

// append stores events, prunes the log to its retention and returns the
// collectors that matched one of them.
func (l *EventLog) append(events []types.BaseEvent) []*EventLogCollector {
	l.mu.Lock()
	defer l.mu.Unlock()
	start := l.end()
	for _, e := range events {
		if e == nil {
			continue
		}
		ev := e.GetEvent()
		l.key++
		ev.Key = l.key
		if ev.ChainId == 0 {
			ev.ChainId = ev.Key
		}
		if ev.CreatedTime.IsZero() {
			ev.CreatedTime = time.Now()
		}
		if ev.CreatedTime.Before(l.last) {
			l.monotonic = false
		} else {
			l.last = ev.CreatedTime
		}
		l.events = append(l.events, e)
	}
	if drop := len(l.events) - l.retention; drop > 0 {
		clear(l.events[:drop])
		l.events = l.events[drop:]
		l.first += int64(drop)
	}
	if n := len(l.events); n > 0 {
		l.LatestEvent = l.events[n-1]
	}

	var matched []*EventLogCollector
	for _, c := range l.collectors {
		if c.admit(max(start, l.first), l.end()) {
			matched = append(matched, c)
		}
	}
	return matched
}

// end is the sequence number the next event will get. l.mu is held.
func (l *EventLog) end() int64 { return l.first + int64(len(l.events)) }

// at returns the event with sequence number seq. l.mu is held.
func (l *EventLog) at(seq int64) types.BaseEvent { return l.events[seq-l.first] }

// Get is what vcsim's property collector reads.
func (l *EventLog) Get() mo.Reference {
	l.mu.Lock()
	defer l.mu.Unlock()
	return &mo.EventManager{
		Self:         l.Self,
		Description:  l.Description,
		LatestEvent:  l.LatestEvent,
		MaxCollector: l.MaxCollector,
	}
}

// PostEvent is the vSphere method, for govmomi's event.Manager.PostEvent.
// The TaskInfo is ignored.
func (l *EventLog) PostEvent(ctx *simulator.Context, req *types.PostEvent) soap.HasFault {
	if req.EventToPost == nil {
		return &methods.PostEventBody{Fault_: simulator.Fault("", &types.InvalidArgument{InvalidProperty: "eventToPost"})}
	}
	req.EventToPost.GetEvent().CreatedTime = time.Time{}
	if ctx.Session != nil {
		req.EventToPost.GetEvent().UserName = ctx.Session.UserName
	}
	l.Post(ctx, req.EventToPost)
	return &methods.PostEventBody{Res: new(types.PostEventResponse)}
}

// CreateCollectorForEvents is the vSphere method. The collector lives in
// the caller's session, as vCenter's do, and counts against MaxCollector
// until DestroyCollector.
func (l *EventLog) CreateCollectorForEvents(ctx *simulator.Context, req *types.CreateCollectorForEvents) soap.HasFault {
	body := new(methods.CreateCollectorForEventsBody)
	size, fault := pageSize(req.Filter.MaxCount)
	if fault == nil {
		fault = checkRecursion(req.Filter.Entity)
	}
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	if l.Collectors() >= int(l.MaxCollector) {
		body.Fault_ = simulator.Fault("Too many event collectors to create", new(types.InvalidState))
		return body
	}

	c := &EventLogCollector{log: l, size: size, filter: newEventFilter(ctx.Map, req.Filter)}
	c.Self = types.ManagedObjectReference{Type: "EventHistoryCollector"}
	c.Filter = req.Filter
	if ctx.Session != nil {
		s := ctx.Session
		s.Put(c)
		c.remove = func(x *simulator.Context) { s.Remove(x, c.Self) }
	} else {
		ctx.Map.Put(c)
		c.remove = func(x *simulator.Context) { x.Map.Remove(x, c.Self) }
	}

	l.mu.Lock()
	c.pos = l.startOf(req.Filter.Time)
	c.fillPage()
	l.collectors[c.Self] = c
	l.mu.Unlock()

	body.Res = &types.CreateCollectorForEventsResponse{Returnval: c.Self}
	return body
}

// startOf returns where a new collector starts: before the oldest event, or,
// when the log is in time order, before the first event at or after
// BeginTime, so that reading only the newest events does not scan the rest.
// l.mu is held.
func (l *EventLog) startOf(t *types.EventFilterSpecByTime) int64 {
	if t == nil || t.BeginTime == nil || !l.monotonic {
		return l.first
	}
	begin := *t.BeginTime
	i := sort.Search(len(l.events), func(i int) bool {
		return !l.events[i].GetEvent().CreatedTime.Before(begin)
	})
	return l.first + int64(i)
}

// EventLogCollector is an EventHistoryCollector over an EventLog.
type EventLogCollector struct {
	mo.EventHistoryCollector

	log    *EventLog
	remove func(*simulator.Context)

	// Guarded by log.mu.
	filter *eventFilter
	size   int
	pos    int64   // sequence number the next ReadNextEvents starts at
	page   []int64 // the latest page's sequence numbers, oldest first
}

// admit adds the matching events with sequence numbers in [from, to) to
// the latest page and reports whether there were any. log.mu is held.
func (c *EventLogCollector) admit(from, to int64) bool {
	added := false
	for seq := from; seq < to; seq++ {
		if c.filter.match(c.log.at(seq)) {
			c.page = append(c.page, seq)
			added = true
		}
	}
	if n := len(c.page) - c.size; n > 0 {
		c.page = slices.Delete(c.page, 0, n)
	}
	return added
}

// fillPage sets the latest page to the newest size matching events.
// log.mu is held.
func (c *EventLogCollector) fillPage() {
	c.page = c.page[:0]
	for seq := c.log.end() - 1; seq >= c.log.first && len(c.page) < c.size; seq-- {
		if c.filter.match(c.log.at(seq)) {
			c.page = append(c.page, seq)
		}
	}
	slices.Reverse(c.page)
}

// latestPage returns the latest page, newest first (as vcsim's), leaving
// out events the retention has dropped. log.mu is held.
func (c *EventLogCollector) latestPage() []types.BaseEvent {
	page := make([]types.BaseEvent, 0, len(c.page))
	for i := len(c.page) - 1; i >= 0; i-- {
		if seq := c.page[i]; seq >= c.log.first {
			page = append(page, c.log.at(seq))
		}
	}
	return page
}

// Get is what vcsim's property collector reads.
func (c *EventLogCollector) Get() mo.Reference {
	c.log.mu.Lock()
	defer c.log.mu.Unlock()
	return &mo.EventHistoryCollector{
		HistoryCollector: mo.HistoryCollector{Self: c.Self, Filter: c.Filter},
		LatestPage:       c.latestPage(),
	}
}

// ReadNextEvents is the vSphere method.
func (c *EventLogCollector) ReadNextEvents(_ *simulator.Context, req *types.ReadNextEvents) soap.HasFault {
	body := new(methods.ReadNextEventsBody)
	if fault := readCount(req.MaxCount); fault != nil {
		body.Fault_ = fault
		return body
	}
	l := c.log
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []types.BaseEvent
	seq := max(c.pos, l.first)
	for end := l.end(); seq < end && len(out) < int(req.MaxCount); seq++ {
		if e := l.at(seq); c.filter.match(e) {
			out = append(out, e)
		}
	}
	c.pos = seq
	body.Res = &types.ReadNextEventsResponse{Returnval: out}
	return body
}

// ReadPreviousEvents is the vSphere method. Events come newest first.
func (c *EventLogCollector) ReadPreviousEvents(_ *simulator.Context, req *types.ReadPreviousEvents) soap.HasFault {
	body := new(methods.ReadPreviousEventsBody)
	if fault := readCount(req.MaxCount); fault != nil {
		body.Fault_ = fault
		return body
	}
	l := c.log
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []types.BaseEvent
	seq := min(c.pos, l.end()) - 1
	for ; seq >= l.first && len(out) < int(req.MaxCount); seq-- {
		if e := l.at(seq); c.filter.match(e) {
			out = append(out, e)
		}
	}
	c.pos = seq + 1
	body.Res = &types.ReadPreviousEventsResponse{Returnval: out}
	return body
}

// SetCollectorPageSize is the vSphere method: the latest page is refilled
// with the newest maxCount matching events; the position is kept.
func (c *EventLogCollector) SetCollectorPageSize(ctx *simulator.Context, req *types.SetCollectorPageSize) soap.HasFault {
	body := new(methods.SetCollectorPageSizeBody)
	size, fault := pageSize(req.MaxCount)
	if fault != nil {
		body.Fault_ = fault
		return body
	}
	c.log.mu.Lock()
	c.size = size
	c.fillPage()
	page := c.latestPage()
	c.log.mu.Unlock()
	ctx.Update(c, []types.PropertyChange{{Name: "latestPage", Val: page}})
	body.Res = new(types.SetCollectorPageSizeResponse)
	return body
}

// ResetCollector is the vSphere method: the position moves to just before
// the latest page.
func (c *EventLogCollector) ResetCollector(_ *simulator.Context, _ *types.ResetCollector) soap.HasFault {
	c.log.mu.Lock()
	c.pos = c.log.end()
	if len(c.page) > 0 {
		c.pos = max(c.page[0], c.log.first)
	}
	c.log.mu.Unlock()
	return &methods.ResetCollectorBody{Res: new(types.ResetCollectorResponse)}
}

// RewindCollector is the vSphere method: the position moves to before the
// oldest event.
func (c *EventLogCollector) RewindCollector(_ *simulator.Context, _ *types.RewindCollector) soap.HasFault {
	c.log.mu.Lock()
	c.pos = c.log.first
	c.log.mu.Unlock()
	return &methods.RewindCollectorBody{Res: new(types.RewindCollectorResponse)}
}

// DestroyCollector is the vSphere method: the collector stops counting
// against MaxCollector and its ref is gone.
func (c *EventLogCollector) DestroyCollector(ctx *simulator.Context, _ *types.DestroyCollector) soap.HasFault {
	c.log.mu.Lock()
	delete(c.log.collectors, c.Self)
	c.log.mu.Unlock()
	c.remove(ctx)
	return &methods.DestroyCollectorBody{Res: new(types.DestroyCollectorResponse)}
}

func pageSize(n int32) (int, *soap.Fault) {
	switch {
	case n == 0:
		return defaultEventPageSize, nil
	case n < 0 || n > maxEventPageSize:
		return 0, simulator.Fault("", &types.InvalidArgument{InvalidProperty: "maxCount"})
	}
	return int(n), nil
}

func readCount(n int32) *soap.Fault {
	if n <= 0 || n > maxEventPageSize {
		return simulator.Fault("", &types.InvalidArgument{InvalidProperty: "maxCount"})
	}
	return nil
}

func checkRecursion(e *types.EventFilterSpecByEntity) *soap.Fault {
	if e == nil {
		return nil
	}
	switch e.Recursion {
	case types.EventFilterSpecRecursionOptionSelf, types.EventFilterSpecRecursionOptionChildren,
		types.EventFilterSpecRecursionOptionAll:
		return nil
	}
	return simulator.Fault("", &types.InvalidArgument{InvalidProperty: "filter.entity.recursion"})
}

// eventFilter matches events against an EventFilterSpec (see the file
// comment for what is honoured). It caches per event type and per entity
// argument, so it is used under the log's mu.
type eventFilter struct {
	spec  types.EventFilterSpec
	reg   *simulator.Registry
	root  bool // the entity is the root folder and recursion is All
	types map[reflect.Type]bool
	rel   map[types.ManagedObjectReference]bool
}

func newEventFilter(reg *simulator.Registry, spec types.EventFilterSpec) *eventFilter {
	f := &eventFilter{
		spec:  spec,
		reg:   reg,
		types: make(map[reflect.Type]bool),
		rel:   make(map[types.ManagedObjectReference]bool),
	}
	if e := spec.Entity; e != nil && e.Recursion == types.EventFilterSpecRecursionOptionAll && e.Entity.Type == "Folder" {
		if obj, ok := reg.Get(e.Entity).(mo.Entity); ok && obj.Entity().Parent == nil {
			f.root = true
		}
	}
	return f
}

func (f *eventFilter) match(e types.BaseEvent) bool {
	ev := e.GetEvent()
	if f.spec.EventChainId != 0 && ev.ChainId != f.spec.EventChainId {
		return false
	}
	if t := f.spec.Time; t != nil {
		if (t.BeginTime != nil && ev.CreatedTime.Before(*t.BeginTime)) ||
			(t.EndTime != nil && ev.CreatedTime.After(*t.EndTime)) {
			return false
		}
	}
	return f.typeMatches(e) && f.entityMatches(e)
}

func (f *eventFilter) typeMatches(e types.BaseEvent) bool {
	if len(f.spec.EventTypeId) == 0 {
		return true
	}
	if x, ok := e.(*types.EventEx); ok {
		return slices.Contains(f.spec.EventTypeId, x.EventTypeId)
	}
	kind := reflect.TypeOf(e).Elem()
	ok, seen := f.types[kind]
	if !seen {
		ok = slices.Contains(f.spec.EventTypeId, kind.Name())
		if !ok {
			field, found := kind.FieldByNameFunc(func(name string) bool {
				return slices.Contains(f.spec.EventTypeId, name)
			})
			ok = found && field.Anonymous
		}
		f.types[kind] = ok
	}
	return ok
}

func (f *eventFilter) entityMatches(e types.BaseEvent) bool {
	if f.spec.Entity == nil || f.root {
		return true
	}
	var buf [8]types.ManagedObjectReference
	for _, ref := range entityArguments(e, buf[:0]) {
		if f.related(ref) {
			return true
		}
	}
	return false
}

// related reports whether ref is the filter's entity (Self), a child of it
// (Children), or it or under it (All).
func (f *eventFilter) related(ref types.ManagedObjectReference) bool {
	want := f.spec.Entity
	if ref == want.Entity {
		return want.Recursion != types.EventFilterSpecRecursionOptionChildren
	}
	if want.Recursion == types.EventFilterSpecRecursionOptionSelf {
		return false
	}
	if ok, seen := f.rel[ref]; seen {
		return ok
	}
	ok := false
	cur := ref
	for depth := 0; depth < 64; depth++ {
		obj, isEntity := f.reg.Get(cur).(mo.Entity)
		if !isEntity || obj.Entity().Parent == nil {
			break
		}
		cur = *obj.Entity().Parent
		if cur == want.Entity {
			ok = true
			break
		}
		if want.Recursion == types.EventFilterSpecRecursionOptionChildren {
			break
		}
	}
	f.rel[ref] = ok
	return ok
}

// entityArguments appends to refs the refs of e's entity arguments, and of
// a VmDeployedEvent's srcTemplate.
func entityArguments(e types.BaseEvent, refs []types.ManagedObjectReference) []types.ManagedObjectReference {
	ev := e.GetEvent()
	if ev.Datacenter != nil {
		refs = append(refs, ev.Datacenter.Datacenter)
	}
	if ev.Vm != nil {
		refs = append(refs, ev.Vm.Vm)
	}
	if ev.ComputeResource != nil {
		refs = append(refs, ev.ComputeResource.ComputeResource)
	}
	if ev.Host != nil {
		refs = append(refs, ev.Host.Host)
	}
	if ev.Ds != nil {
		refs = append(refs, ev.Ds.Datastore)
	}
	if ev.Net != nil {
		refs = append(refs, ev.Net.Network)
	}
	if ev.Dvs != nil {
		refs = append(refs, ev.Dvs.Dvs)
	}
	if d, ok := e.(*types.VmDeployedEvent); ok {
		refs = append(refs, d.SrcTemplate.Vm)
	}
	return refs
}

// VMRefs returns the refs of the VMs (and templates) in ctx's registry,
// ordered by value.
func VMRefs(ctx *simulator.Context) []types.ManagedObjectReference {
	var refs []types.ManagedObjectReference
	for _, e := range ctx.Map.All("VirtualMachine") {
		refs = append(refs, e.Reference())
	}
	slices.SortFunc(refs, func(a, b types.ManagedObjectReference) int { return cmp.Compare(a.Value, b.Value) })
	return refs
}

// SeedCloneEvents posts n synthetic lineage events over vms (at least two
// VMs in ctx's registry), the i-th created at start + i*step, and returns
// them in order. Event i names vms[i%len(vms)] as the copy and another VM
// as its source, which changes each time the copy comes round again, so a
// copy named by several events has a different source in each and only
// the newest is its lineage. Every fourth event is a VmDeployedEvent
// (source in srcTemplate), the others VmClonedEvent (source in sourceVm).
// Each carries the copy's datacenter.
func (l *EventLog) SeedCloneEvents(ctx *simulator.Context, n int, vms []types.ManagedObjectReference, start time.Time, step time.Duration) ([]types.BaseEvent, error) {
	if len(vms) < 2 {
		return nil, fmt.Errorf("seed clone events: %d VMs, need at least 2", len(vms))
	}
	args := make([]types.VmEventArgument, len(vms))
	dcs := make([]*types.DatacenterEventArgument, len(vms))
	for i, ref := range vms {
		vm, ok := ctx.Map.Get(ref).(mo.Entity)
		if !ok {
			return nil, fmt.Errorf("seed clone events: %s is not in the inventory", ref)
		}
		args[i] = types.VmEventArgument{EntityEventArgument: types.EntityEventArgument{Name: vm.Entity().Name}, Vm: ref}
		dcs[i] = datacenterArgument(ctx.Map, vm)
	}

	events := make([]types.BaseEvent, n)
	k := len(vms)
	for i := range n {
		c := i % k
		s := (c + 1 + i/k) % k
		if s == c {
			s = (s + 1) % k
		}
		copyArg := args[c]
		base := types.Event{
			CreatedTime: start.Add(time.Duration(i) * step),
			Vm:          &copyArg,
			Datacenter:  dcs[c],
		}
		if i%4 == 3 {
			events[i] = &types.VmDeployedEvent{VmEvent: types.VmEvent{Event: base}, SrcTemplate: args[s]}
		} else {
			events[i] = &types.VmClonedEvent{VmCloneEvent: types.VmCloneEvent{VmEvent: types.VmEvent{Event: base}}, SourceVm: args[s]}
		}
	}
	l.Post(ctx, events...)
	return events, nil
}

// datacenterArgument returns the argument naming the datacenter above e, or
// nil.
func datacenterArgument(reg *simulator.Registry, e mo.Entity) *types.DatacenterEventArgument {
	for depth := 0; depth < 64 && e.Entity().Parent != nil; depth++ {
		parent, ok := reg.Get(*e.Entity().Parent).(mo.Entity)
		if !ok {
			return nil
		}
		if dc := parent.Entity(); dc.Self.Type == "Datacenter" {
			return &types.DatacenterEventArgument{EntityEventArgument: types.EntityEventArgument{Name: dc.Name}, Datacenter: dc.Self}
		}
		e = parent
	}
	return nil
}
