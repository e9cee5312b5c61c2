package vsphere

import (
	"context"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"

	"github.com/vmreconcile/vmreconcile/internal/vcsim"
	"github.com/vmreconcile/vmreconcile/reconcile"
)

// Lineage benchmarks: 20,000 retained clone and deploy events (vcsim's own
// EventManager keeps about 1,000, so they live in a vcsim.EventLog with a
// retention of 50,000) over 100 VMs, read through vcsim's SOAP server.
const (
	benchLineageEvents = 20000
	benchLineageNewest = 50 // the events a Since run reads
)

type lineageBench struct {
	ctx   context.Context
	c     *vim25.Client // reads the event log
	since time.Time     // the time of the 50th newest event
	want  int           // copies in the whole history
}

// newLineageBench builds the model and the event history; b.Cleanup stops
// them.
func newLineageBench(b *testing.B) *lineageBench {
	b.Helper()
	model := simulator.VPX()
	model.Machine = 50 // 100 VMs
	if err := model.Create(); err != nil {
		b.Fatal(err)
	}
	srv := model.Service.NewServer()
	ctx := context.Background()
	client, err := govmomi.NewClient(ctx, srv.URL, true)
	if err != nil {
		srv.Close()
		model.Remove()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = client.Logout(ctx)
		srv.Close()
		model.Remove()
	})

	sim := model.Service.Context
	log := vcsim.NewEventLog(sim, 50000)
	start := time.Now().Add(-benchLineageEvents * time.Second).Truncate(time.Second)
	events, err := log.SeedCloneEvents(sim, benchLineageEvents, vcsim.VMRefs(sim), start, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	copies := map[string]bool{}
	for _, e := range events {
		copies[e.GetEvent().Vm.Vm.Value] = true
	}
	return &lineageBench{
		ctx:   ctx,
		c:     log.Client(client.Client),
		since: events[len(events)-benchLineageNewest].GetEvent().CreatedTime,
		want:  len(copies),
	}
}

// run measures Lineage with opts, reporting SOAP calls per op and the CPU
// time of the process (client and in-process vcsim) per op.
func (lb *lineageBench) run(b *testing.B, opts LineageOptions, check func(map[string]reconcile.Lineage)) {
	cc, calls := counting(lb.c)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		lin, err := Lineage(lb.ctx, cc, lb.c.ServiceContent.RootFolder, opts)
		if err != nil {
			b.Fatal(err)
		}
		check(lin)
	}
	reportCPU(b, cpu)
	b.ReportMetric(float64(calls.total())/float64(b.N), "calls/op")
}

// BenchmarkLineageFull reads the whole retained history, as every audit and
// daemon cycle does today.
func BenchmarkLineageFull(b *testing.B) {
	lb := newLineageBench(b)
	lb.run(b, LineageOptions{}, func(lin map[string]reconcile.Lineage) {
		if len(lin) != lb.want {
			b.Fatalf("%d copies, want %d", len(lin), lb.want)
		}
	})
}

// BenchmarkLineageSince reads only the newest 50 events: the incremental
// path, where the daemon passes the time of what its store already holds.
func BenchmarkLineageSince(b *testing.B) {
	lb := newLineageBench(b)
	lb.run(b, LineageOptions{Since: lb.since}, func(lin map[string]reconcile.Lineage) {
		if len(lin) != benchLineageNewest {
			b.Fatalf("%d copies, want %d", len(lin), benchLineageNewest)
		}
	})
}
