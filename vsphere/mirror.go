package vsphere

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmreconcile/vmreconcile/reconcile"
)

// Mirror is a live copy of what Inventory and Lineage read from one vCenter,
// kept by a private property collector: one WaitForUpdatesEx filter over the
// VMs, folders, datacenters and vApps under the roots (the properties
// Inventory collects) and the latestPage of one clone/deploy event collector
// per root. It syncs once, then applies update sets as vCenter sends them, so
// that an audit reads the inventory without calling vCenter at all, and
// lineage costs one ReadNextEvents when a clone or deploy event arrives.
//
// Run drives it (the daemon calls Run again after a failure, with a new
// session when the old one broke); Snapshot reads it. A failed stream
// re-syncs from scratch on the next Run rather than resuming by version: a
// response cut in flight may have carried updates that a resume would not
// send again (vcsim drops them), and a mirror that silently misses a change is
// worse than one full collect after a reconnect. Snapshot refuses a mirror
// that is not in sync, so an audit never reads stale state as current.
type Mirror struct {
	roots []types.ManagedObjectReference
	opts  MirrorOptions
	match func(name, vmPath string) bool

	mu      sync.RWMutex
	st      *mirrorState
	lin     *lineageSet
	live    bool          // in sync and following the stream
	liveCh  chan struct{} // closed while live; replaced when the stream is lost
	seq     uint64        // update sets applied since the first sync
	at      time.Time     // when the last update set was applied
	resyncs int           // syncs after the first
	syncs   int
	lastErr error
}

// MirrorOptions tune a Mirror.
type MirrorOptions struct {
	Include, Exclude []string // as InventoryOptions
	// PageSize bounds the objects of each update set (MaxObjectUpdates);
	// 0 means MirrorPageSize.
	PageSize int32
	// MaxWait is how long one WaitForUpdatesEx waits for changes before it
	// returns empty and is asked again; keep it below the session's per-call
	// timeout. 0 means 30 s.
	MaxWait time.Duration
	// CallTimeout is the deadline of every other call; 0 means 1 m.
	CallTimeout time.Duration
	// LineageSince and KnownLineage make lineage incremental: events older
	// than LineageSince are not read, and KnownLineage (by copy ref, what the
	// store learned from earlier runs) stands in for them. Zero reads all the
	// history vCenter keeps.
	LineageSince time.Time
	KnownLineage map[string]reconcile.Lineage
	// OnUpdate, when set, is called after every applied update set and after
	// every sync, outside the mirror's lock, in order.
	OnUpdate func(MirrorUpdate)
}

// MirrorUpdate is what one update set or one sync changed.
type MirrorUpdate struct {
	// Initial is the first sync: Changes is empty, the state is the baseline.
	Initial bool
	// Resync is a full sync after a lost stream: Changes is the difference
	// between the state before the loss and the state now.
	Resync bool
	// Changes are the VMs that appeared, changed or went away.
	Changes []VMChange
	// NewLineage counts clone and deploy events read.
	NewLineage int
}

// VMChange is one VM's change: Old is nil for a new VM, New nil for a VM
// that went away. Both are as decoded, before paths and lineage.
type VMChange struct {
	Ref      string
	Old, New *reconcile.VM
}

// MirrorSnapshot is the mirror's state at one version.
type MirrorSnapshot struct {
	// VMs are as Inventory returns them: filtered, sorted by path.
	VMs []reconcile.VM
	// Lineage is what the clone and deploy events say (and KnownLineage),
	// by copy ref, as Lineage returns it.
	Lineage map[string]reconcile.Lineage
	// Version counts the update sets applied since the first sync; At is
	// when the last one was applied.
	Version uint64
	At      time.Time
	// Resyncs counts full syncs after a lost stream.
	Resyncs int
}

// MirrorPageSize is the default MaxObjectUpdates of a mirror's update sets:
// smaller than Inventory's pages, because a sync is decoded while the
// daemon runs and its garbage is what sets the daemon's peak memory (a page
// of 1,000 VMs with device lists decodes through about 200 MB).
const MirrorPageSize = 200

// ErrMirrorNotSynced is returned by Snapshot when the mirror has no
// current state (not synced yet, or its stream is lost and not back).
var ErrMirrorNotSynced = errors.New("vCenter mirror is not in sync")

// mirrorState is the raw state of the mirrored objects.
type mirrorState struct {
	vms        map[string]*mirrorVM
	containers map[types.ManagedObjectReference]*mirrorObject
}

// mirrorObject holds one object's properties as vCenter sent them.
type mirrorObject struct {
	props []types.DynamicProperty
}

// mirrorVM is a VM's properties and their decoding.
type mirrorVM struct {
	mirrorObject
	vm     reconcile.VM
	parent types.ManagedObjectReference
	dir    string
	disks  *diskInfo
}

func newMirrorState() *mirrorState {
	return &mirrorState{vms: map[string]*mirrorVM{}, containers: map[types.ManagedObjectReference]*mirrorObject{}}
}

// NewMirror prepares a mirror of the VMs under roots (datacenters or the root
// folder); nothing is contacted until Run.
func NewMirror(roots []types.ManagedObjectReference, opts MirrorOptions) (*Mirror, error) {
	if len(roots) == 0 {
		return nil, errors.New("mirror: no datacenter to mirror")
	}
	for _, r := range roots {
		if r.Type != "Datacenter" && r.Type != "Folder" {
			return nil, fmt.Errorf("mirror: root %s is not a datacenter or folder", r)
		}
	}
	match, err := newMatcher(opts.Include, opts.Exclude)
	if err != nil {
		return nil, err
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = 30 * time.Second
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = time.Minute
	}
	m := &Mirror{roots: slices.Clone(roots), opts: opts, match: match, liveCh: make(chan struct{})}
	m.lin = newLineageSet()
	for ref, l := range opts.KnownLineage {
		m.lin.lineage[ref] = l
	}
	return m, nil
}

// Snapshot returns the mirror's current state. When the mirror is not in
// sync it waits for it until ctx ends, then fails with ErrMirrorNotSynced
// (and the stream's last error).
func (m *Mirror) Snapshot(ctx context.Context) (MirrorSnapshot, error) {
	for {
		m.mu.RLock()
		if m.live {
			defer m.mu.RUnlock()
			return m.snapshotLocked(), nil
		}
		ch, last := m.liveCh, m.lastErr
		m.mu.RUnlock()
		var lost <-chan time.Time
		if last != nil {
			// The stream failed: wait for a re-sync no longer than a call
			// may take, rather than holding the audit until its deadline.
			t := time.NewTimer(m.opts.CallTimeout)
			defer t.Stop()
			lost = t.C
		}
		select {
		case <-ch:
		case <-lost:
			return MirrorSnapshot{}, fmt.Errorf("%w: %w", ErrMirrorNotSynced, last)
		case <-ctx.Done():
			if last != nil {
				return MirrorSnapshot{}, fmt.Errorf("%w: %w", ErrMirrorNotSynced, last)
			}
			return MirrorSnapshot{}, fmt.Errorf("%w: %w", ErrMirrorNotSynced, ctx.Err())
		}
	}
}

// snapshotLocked builds the inventory from the decoded VMs: paths, linked
// clones, filter and order exactly as Inventory does.
func (m *Mirror) snapshotLocked() MirrorSnapshot {
	b := newBuilder()
	for _, o := range m.st.vms {
		b.addVM(o.vm, o.parent, o.dir, o.disks)
	}
	for ref, o := range m.st.containers {
		b.containers[ref] = decodeContainer(&types.ObjectContent{Obj: ref, PropSet: o.props})
	}
	return MirrorSnapshot{
		VMs:     filterSorted(b.finish(), m.match),
		Lineage: maps.Clone(m.lin.lineage),
		Version: m.seq,
		At:      m.at,
		Resyncs: m.resyncs,
	}
}

// Live reports whether the mirror is in sync and following its stream.
func (m *Mirror) Live() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.live
}

// Run syncs the mirror over c and follows the change stream until ctx ends
// (nil) or the stream fails (the error; the mirror is then not live until the
// next Run has synced again).
func (m *Mirror) Run(ctx context.Context, c *vim25.Client) error {
	s := &mirrorSession{m: m, c: c}
	defer s.close(ctx)
	err := s.run(ctx)
	m.mu.Lock()
	if m.live {
		m.live = false
		m.liveCh = make(chan struct{})
	}
	if ctx.Err() == nil {
		m.lastErr = err
	}
	m.mu.Unlock()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// installSync swaps in a freshly synced state and reports what changed
// since the state before (nothing on the first sync).
func (m *Mirror) installSync(st *mirrorState, events []types.BaseEvent) MirrorUpdate {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := MirrorUpdate{Initial: m.syncs == 0, Resync: m.syncs > 0}
	if u.Resync {
		m.resyncs++
		u.Changes = diffStates(m.st, st)
	}
	m.syncs++
	m.st = st
	// Event keys are de-duplicated within a session's reads only: a
	// vCenter restored from a backup numbers its events again, and a key
	// seen before the loss may name a new event now. Re-adding an event is
	// harmless (the newest per copy wins either way).
	m.lin.seen = map[int32]struct{}{}
	u.NewLineage = m.addEvents(events)
	m.seq++
	m.at = time.Now()
	m.live = true
	m.lastErr = nil
	close(m.liveCh)
	return u
}

// addEvents merges clone and deploy events into the lineage, skipping events
// already seen (by key: the overlap of an incremental read repeats some).
func (m *Mirror) addEvents(events []types.BaseEvent) int {
	n := 0
	for _, e := range events {
		if m.lin.add(e) {
			n++
		}
	}
	return n
}

// diffStates lists the VMs that differ between two states.
func diffStates(old, cur *mirrorState) []VMChange {
	var out []VMChange
	for ref, o := range old.vms {
		n, ok := cur.vms[ref]
		if !ok {
			out = append(out, VMChange{Ref: ref, Old: vmPtr(o)})
			continue
		}
		if !sameVM(o.vm, n.vm) {
			out = append(out, VMChange{Ref: ref, Old: vmPtr(o), New: vmPtr(n)})
		}
	}
	for ref, n := range cur.vms {
		if _, ok := old.vms[ref]; !ok {
			out = append(out, VMChange{Ref: ref, New: vmPtr(n)})
		}
	}
	slices.SortFunc(out, func(a, b VMChange) int { return strings.Compare(a.Ref, b.Ref) })
	return out
}

func vmPtr(o *mirrorVM) *reconcile.VM {
	if o == nil {
		return nil
	}
	v := o.vm
	return &v
}

// sameVM compares the decoded fields a change watcher cares about.
func sameVM(a, b reconcile.VM) bool {
	return a.Name == b.Name && a.PowerState == b.PowerState && a.GuestHostname == b.GuestHostname &&
		a.BIOSUUID == b.BIOSUUID && a.InstanceUUID == b.InstanceUUID && a.NumCPU == b.NumCPU &&
		a.MemoryMB == b.MemoryMB && a.Template == b.Template && a.ToolsRunning == b.ToolsRunning &&
		slices.Equal(a.IPs, b.IPs) && slices.Equal(a.MACs, b.MACs)
}
