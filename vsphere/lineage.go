package vsphere

import (
	"context"
	"fmt"
	"time"

	"github.com/vmware/govmomi/event"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// DefaultEventPageSize is how many events each ReadNextEvents asks for when
// the options leave it zero.
const DefaultEventPageSize = 500

// LineageOptions tunes Lineage. The zero value reads all the history vCenter
// still keeps.
type LineageOptions struct {
	// Since, when set, skips events older than this: what a store already
	// holds (LineageSince) is not read again.
	Since time.Time
	// PageSize is the maxCount of each ReadNextEvents; 0 means
	// DefaultEventPageSize. vCenter accepts at most 1000.
	PageSize int32
}

// lineageEventTypes are the events that name a copy and its source.
// VmBeingClonedEvent is left out: it is posted before the copy exists, so it
// names the source but not the copy's ref.
var lineageEventTypes = []string{"VmClonedEvent", "VmDeployedEvent"}

// Lineage reads clone and deploy events under root from vCenter's event
// history and returns, by the copy's VM ref, where each copy came from. When
// several events name the same copy the newest wins. SourceName is the
// source's name at the time of the event; ResolveLineage refreshes it from
// the inventory.
//
// It pages through an EventHistoryCollector rather than calling QueryEvents,
// which returns only one page (vcsim: 10 events) unless asked for a count,
// and destroys the collector when done: vCenter allows few per session.
// Events older than vCenter's event retention are gone; the caller should
// keep what earlier runs learned (reconcile.History.Lineage).
func Lineage(ctx context.Context, c *vim25.Client, root types.ManagedObjectReference, opts LineageOptions) (map[string]reconcile.Lineage, error) {
	pageSize := opts.PageSize
	if pageSize <= 0 {
		pageSize = DefaultEventPageSize
	}

	filter := types.EventFilterSpec{
		Entity: &types.EventFilterSpecByEntity{
			Entity:    root,
			Recursion: types.EventFilterSpecRecursionOptionAll,
		},
		EventTypeId: lineageEventTypes,
	}
	if !opts.Since.IsZero() {
		begin := opts.Since
		filter.Time = &types.EventFilterSpecByTime{BeginTime: &begin}
	}

	collector, err := event.NewManager(c).CreateCollectorForEvents(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("create event collector on %s: %w", root, err)
	}
	defer func() {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		_ = collector.Destroy(cctx)
	}()

	// A new collector is positioned before its oldest event, so reading
	// forward walks the whole history. (RewindCollector is not used: vcsim's
	// skips the oldest event.)
	set := newLineageSet()
	for {
		events, err := collector.ReadNextEvents(ctx, pageSize)
		if err != nil {
			return nil, fmt.Errorf("read events on %s: %w", root, err)
		}
		if len(events) == 0 {
			return set.lineage, nil
		}
		for _, e := range events {
			set.add(e)
		}
	}
}

// lineageSet keeps, per copy, the lineage of the newest event naming it.
// Pages come oldest first, but nothing in the API promises order within
// them, so the newest is chosen by time (then by event key, which vCenter
// assigns in increasing order). An event key seen before is skipped: an
// incremental read overlaps the previous one.
type lineageSet struct {
	lineage map[string]reconcile.Lineage
	key     map[string]int32
	seen    map[int32]struct{}
}

func newLineageSet() *lineageSet {
	return &lineageSet{lineage: make(map[string]reconcile.Lineage), key: make(map[string]int32), seen: make(map[int32]struct{})}
}

// add merges one event and reports whether it was one not seen before.
func (s *lineageSet) add(e types.BaseEvent) bool {
	copyRef, l, ok := lineageOf(e)
	if !ok {
		return false
	}
	key := e.GetEvent().Key
	if _, dup := s.seen[key]; dup {
		return false
	}
	s.seen[key] = struct{}{}
	if old, known := s.lineage[copyRef]; known {
		if l.Time.Before(old.Time) || (l.Time.Equal(old.Time) && key < s.key[copyRef]) {
			return true
		}
	}
	s.lineage[copyRef] = l
	s.key[copyRef] = key
	return true
}

// lineageOf extracts the copy's ref and its lineage from a clone or deploy
// event.
func lineageOf(e types.BaseEvent) (string, reconcile.Lineage, bool) {
	var (
		copyArg *types.VmEventArgument
		src     types.VmEventArgument
		kind    string
	)
	switch e := e.(type) {
	case *types.VmClonedEvent:
		copyArg, src, kind = e.Vm, e.SourceVm, KindClone
	case *types.VmDeployedEvent:
		copyArg, src, kind = e.Vm, e.SrcTemplate, KindDeploy
	default:
		return "", reconcile.Lineage{}, false
	}
	if copyArg == nil || copyArg.Vm.Value == "" || src.Vm.Value == "" {
		return "", reconcile.Lineage{}, false
	}
	return copyArg.Vm.Value, reconcile.Lineage{
		SourceRef:  src.Vm.Value,
		SourceName: src.Name,
		Kind:       kind,
		Time:       e.GetEvent().CreatedTime,
	}, true
}

// ResolveLineage returns a copy of vms with lineage attached: lin (by VM
// ref, from Lineage and whatever earlier runs kept) wins over the
// linked-clone lineage Inventory found in the disks, except that a copy the
// disks show to be linked to the same source keeps the Kind "linked-clone"
// (with the event's time). Every SourceName is then set to the source's
// current name when the source is still in vms, so lineage survives the
// source being renamed. Entries of lin for VMs not in vms are ignored.
func ResolveLineage(vms []reconcile.VM, lin map[string]reconcile.Lineage) []reconcile.VM {
	names := make(map[string]string, len(vms))
	for i := range vms {
		names[vms[i].Ref] = vms[i].Name
	}

	out := make([]reconcile.VM, len(vms))
	for i, vm := range vms {
		var l *reconcile.Lineage
		if ev, ok := lin[vm.Ref]; ok {
			l = &ev
			if disk := vm.Lineage; disk != nil && disk.Kind == KindLinkedClone && disk.SourceRef == ev.SourceRef {
				l.Kind = KindLinkedClone
			}
		} else if vm.Lineage != nil {
			cp := *vm.Lineage
			l = &cp
		}
		if l != nil {
			if name, ok := names[l.SourceRef]; ok {
				l.SourceName = name
			}
		}
		vm.Lineage = l
		out[i] = vm
	}
	return out
}
