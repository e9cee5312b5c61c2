package swarm

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/internal/dockersim"
	"github.com/vmreconcile/vmreconcile/internal/scale"
)

// BenchmarkObserve2000 is one audit's Observe of a 2,000-node swarm: the
// options the audit uses by default (config.Default: a 10-minute event
// replay, no window), the client it makes (NewClientTLS), and a manager
// (dockersim, in process, over loopback TCP) whose event buffer is full of
// node updates (256, dockerd's limit), the most a replay can bring back.
//
// Besides ns/op, B/op, allocs/op and cpu-ns/op (client and simulator
// together, one process) it reports req/op (HTTP requests the manager served per Observe;
// the first Observe of a client also pings once to negotiate the API
// version), peak-heap-B (the heap above the fixture at the peak of one
// Observe, sampled) and kept-heap-B (what its result keeps alive).
func BenchmarkObserve2000(b *testing.B) {
	const nodes = 2000
	var requests atomic.Int64
	e := dockersim.New(dockersim.Options{IDSeed: 13, OnRequest: func(*http.Request) { requests.Add(1) }})
	ids := e.Populate(nodes-1, "worker-") // and the manager itself
	now := time.Now()
	for i := range 8 { // 8 nodes flapping over the lookback: 8×32 events
		err := e.Backfill(ids[i*97], []dockersim.Identity{{Hostname: fmt.Sprintf("clone-%d", i), Addr: "10.9.0.1"}, {Hostname: fmt.Sprintf("worker-%04d", i*97+1)}},
			now.Add(-9*time.Minute), now.Add(-9*time.Minute+31*10*time.Second), 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := e.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.Close)
	cli, err := NewClientTLS(e.Host(), false, "", 30*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cli.Close() })
	opts := ObserveOptions{Lookback: 10 * time.Minute, Interval: time.Second}
	// Untimed: the first Observe (version negotiation) and the heap figures.
	peak, kept := scale.HeapPeak(func() any {
		sw, err := Observe(b.Context(), cli, opts)
		if err != nil {
			b.Fatal(err)
		}
		if len(sw.Nodes) != nodes || sw.Events != 256 || sw.Samples != 1 {
			b.Fatalf("observed %d nodes, %d events, %d samples; want %d, 256, 1", len(sw.Nodes), sw.Events, sw.Samples, nodes)
		}
		return sw
	})
	requests.Store(0)
	b.ResetTimer()
	cpu := scale.CPU()
	for b.Loop() {
		if _, err := Observe(b.Context(), cli, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(scale.CPU()-cpu)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(requests.Load())/float64(b.N), "req/op")
	b.ReportMetric(float64(peak), "peak-heap-B")
	b.ReportMetric(float64(kept), "kept-heap-B")
}
