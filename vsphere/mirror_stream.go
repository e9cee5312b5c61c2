package vsphere

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/vmware/govmomi/event"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// mirrorVMProperties are Inventory's VM properties plus config.changeVersion,
// which vCenter changes with every configuration change: when it moves, the
// VM's properties are read again, so a change reported coarsely, finely or
// (as vcsim does for a CPU or memory reconfigure) not at all still reaches
// the mirror.
var mirrorVMProperties = append(slices.Clone(vmProperties), "config.changeVersion")

// mirrorSession is one Run: a private property collector with one filter,
// the container views and event collectors it watches.
type mirrorSession struct {
	m          *Mirror
	c          *vim25.Client
	pc         *property.Collector
	collectors map[types.ManagedObjectReference]*event.HistoryCollector
	// hw is, per event collector, the newest event key read from it.
	hw      map[types.ManagedObjectReference]int32
	version string
}

func (s *mirrorSession) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.m.opts.CallTimeout)
}

// run syncs, then follows the stream until ctx ends or a call fails.
func (s *mirrorSession) run(ctx context.Context) error {
	if err := s.setup(ctx); err != nil {
		return err
	}
	st, err := s.initial(ctx)
	if err != nil {
		return err
	}
	var events []types.BaseEvent
	for _, hc := range s.collectors {
		evs, err := s.readEvents(ctx, hc)
		if err != nil {
			return err
		}
		events = append(events, evs...)
	}
	s.notify(s.m.installSync(st, events))
	for {
		updates, err := s.wait(ctx)
		if err != nil {
			return err
		}
		if len(updates) == 0 {
			continue
		}
		u, err := s.apply(ctx, updates)
		if err != nil {
			return err
		}
		s.notify(u)
	}
}

func (s *mirrorSession) notify(u MirrorUpdate) {
	if s.m.opts.OnUpdate != nil {
		s.m.opts.OnUpdate(u)
	}
}

// setup creates the collector, views, event collectors and the filter.
func (s *mirrorSession) setup(ctx context.Context) error {
	cctx, cancel := s.call(ctx)
	defer cancel()
	pc, err := property.DefaultCollector(s.c).Create(cctx)
	if err != nil {
		return fmt.Errorf("create property collector: %w", err)
	}
	s.pc = pc
	spec := types.PropertyFilterSpec{
		PropSet: append([]types.PropertySpec{
			{Type: "VirtualMachine", PathSet: mirrorVMProperties},
			{Type: "EventHistoryCollector", PathSet: []string{"latestPage"}},
		}, containerProperties...),
	}
	s.collectors = map[types.ManagedObjectReference]*event.HistoryCollector{}
	s.hw = map[types.ManagedObjectReference]int32{}
	since, err := s.lineageSince(cctx)
	if err != nil {
		return err
	}
	for _, root := range s.m.roots {
		hc, err := event.NewManager(s.c).CreateCollectorForEvents(cctx, eventFilter(root, since))
		if err != nil {
			return fmt.Errorf("create event collector on %s: %w", root, err)
		}
		s.collectors[hc.Reference()] = hc
		if err := hc.SetPageSize(cctx, mirrorEventPage); err != nil {
			return fmt.Errorf("set event page size on %s: %w", root, err)
		}
		spec.ObjectSet = append(spec.ObjectSet, vmTreeObjectSpec(root), ancestorsObjectSpec(root),
			types.ObjectSpec{Obj: hc.Reference()})
	}
	if _, err := pc.CreateFilter(cctx, types.CreateFilter{Spec: spec}); err != nil {
		return fmt.Errorf("create property filter: %w", err)
	}
	return nil
}

// vmTreeObjectSpec selects root and everything in the VMs and Templates
// hierarchy below it: folders, datacenters (their vmFolder), vApps and their
// VMs, nested vApps. It is a traversal, not a ContainerView as Inventory
// uses: vcsim deadlocks when a VM is created while a WaitForUpdatesEx
// re-collects a filter whose ObjectSet holds a view (the view's lock against
// the filter's, taken in opposite orders), and a traversal over the VM
// hierarchy reaches the same VMs. (vcsim then reports no change when a VM is
// moved to another folder; vCenter reports its new parent.)
func vmTreeObjectSpec(root types.ManagedObjectReference) types.ObjectSpec {
	sel := func(names ...string) []types.BaseSelectionSpec {
		var out []types.BaseSelectionSpec
		for _, n := range names {
			out = append(out, &types.SelectionSpec{Name: n})
		}
		return out
	}
	return types.ObjectSpec{
		Obj: root,
		SelectSet: []types.BaseSelectionSpec{
			&types.TraversalSpec{SelectionSpec: types.SelectionSpec{Name: "folder"}, Type: "Folder", Path: "childEntity",
				SelectSet: sel("folder", "dc", "vapp", "vappPools")},
			&types.TraversalSpec{SelectionSpec: types.SelectionSpec{Name: "dc"}, Type: "Datacenter", Path: "vmFolder",
				SelectSet: sel("folder")},
			&types.TraversalSpec{SelectionSpec: types.SelectionSpec{Name: "vapp"}, Type: "VirtualApp", Path: "vm"},
			&types.TraversalSpec{SelectionSpec: types.SelectionSpec{Name: "vappPools"}, Type: "VirtualApp", Path: "resourcePool",
				SelectSet: sel("vapp", "vappPools")},
		},
	}
}

// sinceSlack is how far before vCenter's current time the event read of a
// sync starts at the latest: LineageSince comes from stored events, and a
// vCenter whose clock ran fast then and was corrected since would otherwise
// stamp every new event before it, and the mirror would never see them.
const sinceSlack = 10 * time.Minute

// lineageSince is where this sync's event read starts: LineageSince, but no
// later than vCenter's clock allows (zero: all history).
func (s *mirrorSession) lineageSince(ctx context.Context) (time.Time, error) {
	since := s.m.opts.LineageSince
	if since.IsZero() {
		return since, nil
	}
	now, err := methods.GetCurrentTime(ctx, s.c)
	if err != nil {
		return time.Time{}, fmt.Errorf("read vCenter's time: %w", err)
	}
	if limit := now.Add(-sinceSlack); since.After(limit) {
		since = limit
	}
	return since, nil
}

func eventFilter(root types.ManagedObjectReference, since time.Time) types.EventFilterSpec {
	f := types.EventFilterSpec{
		Entity:      &types.EventFilterSpecByEntity{Entity: root, Recursion: types.EventFilterSpecRecursionOptionAll},
		EventTypeId: lineageEventTypes,
	}
	if !since.IsZero() {
		f.Time = &types.EventFilterSpecByTime{BeginTime: &since}
	}
	return f
}

// close frees the server-side objects, best effort.
func (s *mirrorSession) close(ctx context.Context) {
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	for _, hc := range s.collectors {
		_ = hc.Destroy(cctx)
	}
	if s.pc != nil {
		_ = s.pc.Destroy(cctx)
	}
}

// waitOnce is one WaitForUpdatesEx from the session's version.
func (s *mirrorSession) waitOnce(ctx context.Context, maxWait time.Duration) (*types.UpdateSet, error) {
	wctx, cancel := context.WithTimeout(ctx, maxWait+s.m.opts.CallTimeout)
	defer cancel()
	pageSize := s.m.opts.PageSize
	if pageSize <= 0 {
		pageSize = MirrorPageSize
	}
	res, err := methods.WaitForUpdatesEx(wctx, s.c, &types.WaitForUpdatesEx{
		This:    s.pc.Reference(),
		Version: s.version,
		Options: &types.WaitOptions{MaxWaitSeconds: types.NewInt32(int32(max(1, maxWait/time.Second))), MaxObjectUpdates: pageSize},
	})
	if err != nil {
		return nil, fmt.Errorf("wait for updates: %w", err)
	}
	if res.Returnval != nil {
		s.version = res.Returnval.Version
	}
	return res.Returnval, nil
}

// wait returns the object updates of the next update set, following
// truncated sets to the end so that what is applied is one consistent
// version; nil when MaxWait passed without a change.
func (s *mirrorSession) wait(ctx context.Context) ([]types.ObjectUpdate, error) {
	var out []types.ObjectUpdate
	for {
		set, err := s.waitOnce(ctx, s.m.opts.MaxWait)
		if err != nil {
			return nil, err
		}
		if set == nil {
			return out, nil
		}
		for _, f := range set.FilterSet {
			out = append(out, f.ObjectSet...)
		}
		if set.Truncated == nil || !*set.Truncated {
			return out, nil
		}
	}
}

// initial reads the filter's initial state (every object enters) into a new
// state.
func (s *mirrorSession) initial(ctx context.Context) (*mirrorState, error) {
	st := newMirrorState()
	for {
		set, err := s.waitOnce(ctx, s.m.opts.MaxWait)
		if err != nil {
			return nil, err
		}
		if set == nil {
			return st, nil
		}
		for _, f := range set.FilterSet {
			for i := range f.ObjectSet {
				st.apply(&f.ObjectSet[i])
			}
		}
		if set.Truncated == nil || !*set.Truncated {
			return st, nil
		}
	}
}

// readEvents reads a collector forward to its end. A page shorter than asked
// for is the end, which spares the empty read Lineage makes.
func (s *mirrorSession) readEvents(ctx context.Context, hc *event.HistoryCollector) ([]types.BaseEvent, error) {
	var out []types.BaseEvent
	for {
		cctx, cancel := s.call(ctx)
		evs, err := hc.ReadNextEvents(cctx, DefaultEventPageSize)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		out = append(out, evs...)
		s.sawEvents(hc.Reference(), evs)
		if len(evs) < DefaultEventPageSize {
			return out, nil
		}
	}
}

// apply applies one update set. What the set cannot say by itself (VMs whose
// configuration version moved, new events) is read first, so that the state
// changes under the lock in one step.
func (s *mirrorSession) apply(ctx context.Context, updates []types.ObjectUpdate) (MirrorUpdate, error) {
	var (
		dirty  []types.ManagedObjectReference
		events []types.BaseEvent
	)
	// An object that enters in this set comes with its properties as of
	// this version: no need to read it again for a change in the same set.
	entered, read := map[types.ManagedObjectReference]bool{}, map[types.ManagedObjectReference]bool{}
	for i := range updates {
		if updates[i].Kind == types.ObjectUpdateKindEnter {
			entered[updates[i].Obj] = true
		}
	}
	for i := range updates {
		u := &updates[i]
		if hc, ok := s.collectors[u.Obj]; ok {
			page := latestPage(u)
			events = append(events, page...)
			gap := s.gapBefore(u.Obj, page)
			s.sawEvents(u.Obj, page)
			if read[u.Obj] || !gap {
				continue
			}
			read[u.Obj] = true
			// More events came than the page holds: read them all.
			evs, err := s.readEvents(ctx, hc)
			if err != nil {
				return MirrorUpdate{}, err
			}
			events = append(events, evs...)
			continue
		}
		if u.Kind == types.ObjectUpdateKindModify && !entered[u.Obj] && needsRefetch(u) {
			dirty = append(dirty, u.Obj)
		}
	}
	fresh, err := s.refetch(ctx, dirty)
	if err != nil {
		return MirrorUpdate{}, err
	}
	return s.m.applyUpdates(updates, fresh, events), nil
}

// mirrorEventPage is the size of an event collector's latestPage: up to
// that many clone and deploy events between two update sets arrive with the
// update itself; more are read with ReadNextEvents.
const mirrorEventPage = 100

// gapBefore reports whether events may have come between the ones already
// read from collector and page (its latest page): when the page is full and
// even its oldest event is newer than any read from that collector, older
// new ones may have fallen off it.
func (s *mirrorSession) gapBefore(collector types.ManagedObjectReference, page []types.BaseEvent) bool {
	if len(page) < mirrorEventPage {
		return false
	}
	oldest := page[0].GetEvent().Key
	for _, e := range page {
		oldest = min(oldest, e.GetEvent().Key)
	}
	return oldest > s.hw[collector]
}

// sawEvents raises collector's high-water mark to the newest of events.
func (s *mirrorSession) sawEvents(collector types.ManagedObjectReference, events []types.BaseEvent) {
	for _, e := range events {
		s.hw[collector] = max(s.hw[collector], e.GetEvent().Key)
	}
}

// latestPage returns the events of a collector's latestPage change.
func latestPage(u *types.ObjectUpdate) []types.BaseEvent {
	var out []types.BaseEvent
	for _, c := range u.ChangeSet {
		if a, ok := c.Val.(types.ArrayOfEvent); ok && c.Name == "latestPage" {
			out = append(out, a.Event...)
		}
	}
	return out
}

// needsRefetch reports whether a change set moved config.changeVersion or
// names a property below one the filter asked for.
func needsRefetch(u *types.ObjectUpdate) bool {
	for _, c := range u.ChangeSet {
		if c.Name == "config.changeVersion" {
			return true
		}
		if !knownProp(u.Obj.Type, c.Name) && nestedName(u.Obj.Type, c.Name) {
			return true
		}
	}
	return false
}

// refetch reads the properties of refs again (one call).
func (s *mirrorSession) refetch(ctx context.Context, refs []types.ManagedObjectReference) ([]types.ObjectContent, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	spec := types.PropertyFilterSpec{
		PropSet:                       append([]types.PropertySpec{{Type: "VirtualMachine", PathSet: mirrorVMProperties}}, containerProperties...),
		ReportMissingObjectsInResults: types.NewBool(true),
	}
	for _, r := range slices.Compact(refs) {
		spec.ObjectSet = append(spec.ObjectSet, types.ObjectSpec{Obj: r})
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	var out []types.ObjectContent
	err := collectPages(cctx, s.c, spec, s.m.opts.PageSize, func(objects []types.ObjectContent) error {
		out = append(out, objects...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read changed VMs: %w", err)
	}
	return out, nil
}

// applyUpdates changes the state in one step and bumps the version.
func (m *Mirror) applyUpdates(updates []types.ObjectUpdate, fresh []types.ObjectContent, events []types.BaseEvent) MirrorUpdate {
	m.mu.Lock()
	defer m.mu.Unlock()
	// before holds copies: apply changes the state's VMs in place.
	before := map[string]*reconcile.VM{}
	remember := func(ref string) {
		if _, ok := before[ref]; !ok {
			before[ref] = vmPtr(m.st.vms[ref])
		}
	}
	for i := range updates {
		u := &updates[i]
		if u.Obj.Type == "VirtualMachine" {
			remember(u.Obj.Value)
		}
		m.st.apply(u)
	}
	for i := range fresh {
		o := &fresh[i]
		if o.Obj.Type == "VirtualMachine" {
			if _, ok := m.st.vms[o.Obj.Value]; !ok {
				continue // gone meanwhile; its leave follows
			}
			remember(o.Obj.Value)
		}
		m.st.replace(o)
	}
	var u MirrorUpdate
	for _, ref := range slices.Sorted(maps.Keys(before)) {
		old, cur := before[ref], vmPtr(m.st.vms[ref])
		switch {
		case old == nil && cur == nil:
		case old == nil || cur == nil || !sameVM(*old, *cur):
			u.Changes = append(u.Changes, VMChange{Ref: ref, Old: old, New: cur})
		}
	}
	u.NewLineage = m.addEvents(events)
	m.seq++
	m.at = time.Now()
	return u
}

// apply applies one object update to the state. Objects of other types
// (event collectors) are not kept.
func (st *mirrorState) apply(u *types.ObjectUpdate) {
	switch u.Obj.Type {
	case "VirtualMachine":
		ref := u.Obj.Value
		switch u.Kind {
		case types.ObjectUpdateKindLeave:
			delete(st.vms, ref)
			return
		case types.ObjectUpdateKindEnter:
			st.vms[ref] = &mirrorVM{}
		}
		o := st.vms[ref]
		if o == nil {
			return // a modify of a VM we never saw enter
		}
		for _, c := range u.ChangeSet {
			o.set(u.Obj.Type, c)
		}
		o.decode(u.Obj)
	case "Folder", "Datacenter", "VirtualApp":
		switch u.Kind {
		case types.ObjectUpdateKindLeave:
			delete(st.containers, u.Obj)
			return
		case types.ObjectUpdateKindEnter:
			st.containers[u.Obj] = &mirrorObject{}
		}
		o := st.containers[u.Obj]
		if o == nil {
			return
		}
		for _, c := range u.ChangeSet {
			o.set(u.Obj.Type, c)
		}
	}
}

// replace sets an object's properties to what a refetch returned.
func (st *mirrorState) replace(o *types.ObjectContent) {
	u := types.ObjectUpdate{Obj: o.Obj, Kind: types.ObjectUpdateKindEnter}
	for _, p := range o.PropSet {
		u.ChangeSet = append(u.ChangeSet, types.PropertyChange{Name: p.Name, Op: types.PropertyChangeOpAssign, Val: p.Val})
	}
	st.apply(&u)
}

func (o *mirrorVM) decode(ref types.ManagedObjectReference) {
	o.vm, o.parent, o.dir, o.disks = decodeVM(&types.ObjectContent{Obj: ref, PropSet: o.props})
}

// set applies one property change to the object's properties. A change
// below a property (a nested name) is left to the refetch.
func (o *mirrorObject) set(kind string, c types.PropertyChange) {
	if !knownProp(kind, c.Name) {
		return
	}
	i := slices.IndexFunc(o.props, func(p types.DynamicProperty) bool { return p.Name == c.Name })
	switch c.Op {
	case types.PropertyChangeOpRemove, types.PropertyChangeOpIndirectRemove:
		if i >= 0 {
			o.props = slices.Delete(o.props, i, i+1)
		}
	default:
		val := c.Val
		if c.Name == "config.hardware.device" {
			val = trimDevices(val)
		}
		if i >= 0 {
			o.props[i].Val = val
		} else {
			o.props = append(o.props, types.DynamicProperty{Name: c.Name, Val: val})
		}
	}
}

// filterPaths returns the properties the filter asks of kind.
func filterPaths(kind string) []string {
	if kind == "VirtualMachine" {
		return mirrorVMProperties
	}
	for _, ps := range containerProperties {
		if ps.Type == kind {
			return ps.PathSet
		}
	}
	return nil
}

// knownProp reports whether name is a property the filter asks of kind.
func knownProp(kind, name string) bool { return slices.Contains(filterPaths(kind), name) }

// nestedName reports whether name lies below a VM property the filter asks
// for ("config.hardware.device[4000]", "guest.net[0].ipAddress").
func nestedName(kind, name string) bool {
	if kind != "VirtualMachine" {
		return false
	}
	for _, p := range mirrorVMProperties {
		if strings.HasPrefix(name, p+".") || strings.HasPrefix(name, p+"[") {
			return true
		}
	}
	return false
}

// trimDevices keeps of a device list what decodeVM reads (NICs for MACs,
// disks for linked clones): the rest of a device list is most of a VM's
// size, and the mirror holds thousands.
func trimDevices(v types.AnyType) types.AnyType {
	a, ok := v.(types.ArrayOfVirtualDevice)
	if !ok {
		return v
	}
	var keep []types.BaseVirtualDevice
	for _, d := range a.VirtualDevice {
		switch d.(type) {
		case *types.VirtualDisk, types.BaseVirtualEthernetCard:
			keep = append(keep, d)
		}
	}
	return types.ArrayOfVirtualDevice{VirtualDevice: keep}
}
