package daemon

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vmreconcile/vmreconcile/config"
	"github.com/vmreconcile/vmreconcile/internal/scale"
	"github.com/vmreconcile/vmreconcile/store"
)

// BenchmarkDaemonScale runs the daemon over a vCenter of scale.VMs VMs
// (vcsim), a swarm of 2,000 nodes (dockersim) and a Kubernetes cluster of
// 5,000 Nodes (kubesim), all in this process. Untimed: the daemon starts,
// its mirror syncs and its first audit runs. Each op is then one audit
// (what a trigger starts) over the live mirror. Reported besides ns/op:
//   - vcenter-calls/op: SOAP requests vcsim served during the op (the
//     mirror's stream included);
//   - daemon-heap-MB: the Go heap the running daemon holds after its first
//     audit (sessions, mirror, Kubernetes follower, store cache), measured
//     as the heap after GC with the daemon running minus before it started;
//     the simulators are not in it;
//   - idle-%core: the CPU of the whole process (daemon and simulators)
//     over 10 s without changes (from 10 s after the audit), as a
//     percentage of one core;
//   - rss-MB: the process's peak RSS, simulators included (an upper bound).
func BenchmarkDaemonScale(b *testing.B) {
	var soapCalls atomic.Int64
	w := scale.Start(b, scale.VMs(3000), func() { soapCalls.Add(1) })
	pw, _ := w.VCenter.User.Password()
	vcURL := *w.VCenter
	vcURL.User = nil
	vcCfg := config.VCenter{URL: vcURL.String(), Username: w.VCenter.User.Username(), Password: config.Secret(pw), Insecure: true}

	cfg := config.Default()
	cfg.Schedules.Audit, cfg.Schedules.Lineage, cfg.Schedules.Prune = "@every 24h", "@every 24h", "@every 24h"
	cfg.Listen = ""
	cfg.Store.Path = filepath.Join(b.TempDir(), "state.db")
	cfg.VCenters = []config.VCenter{vcCfg}
	cfg.Swarms = []config.Swarm{{Name: "sim", Hosts: []string{w.SwarmHost}}}
	cfg.Kubernetes = []config.Kubernetes{{Name: "sim", Kubeconfig: w.Kubeconfig}}

	heap0 := heapAfterGC()
	st, err := store.Open(cfg.Store.Path, store.Options{Exclusive: true})
	if err != nil {
		b.Fatal(err)
	}
	d, err := New(Options{Config: cfg, Store: st, Logger: NewLogger(config.Log{Format: "json", Level: "warn"}, &syncBuffer{})})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done; _ = st.Close() })
	waitMirror(b, d)
	if err := d.AuditNow(ctx); err != nil {
		b.Fatal(err)
	}
	heap := heapAfterGC() - heap0

	// Idle: after 10 s for the runtime to return the audit's garbage to the
	// OS (its scavenger is most of the first seconds), 10 s measured.
	time.Sleep(10 * time.Second)
	stopProfile := idleProfile(b)
	cpu := scale.CPU()
	time.Sleep(10 * time.Second)
	idle := float64(scale.CPU()-cpu) / float64(10*time.Second) * 100
	stopProfile()

	soapCalls.Store(0)
	b.ResetTimer()
	for b.Loop() {
		if err := d.AuditNow(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(soapCalls.Load())/float64(b.N), "vcenter-calls/op")
	b.ReportMetric(float64(heap)/(1<<20), "daemon-heap-MB")
	b.ReportMetric(idle, "idle-%core")
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "rss-MB")
	}
}

func waitMirror(b *testing.B, d *Daemon) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	v := d.src.VCenters()[0]
	for v.Mirror() == nil {
		if ctx.Err() != nil {
			b.Fatal("the vCenter watcher made no mirror")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := v.Mirror().Snapshot(ctx); err != nil {
		b.Fatal(err)
	}
}

func heapAfterGC() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// idleProfile writes a CPU profile of the idle window to the file
// VMRECONCILE_IDLE_PROFILE names, if set (where idle CPU goes).
func idleProfile(b *testing.B) func() {
	path := os.Getenv("VMRECONCILE_IDLE_PROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }
}
